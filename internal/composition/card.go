package composition

import (
	"encoding/json"
	"slices"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// a2aCard is an A2A agent card that names the versions and bindings the agent serves: in 0.3's
// fields (protocolVersion, url, preferredTransport, additionalInterfaces) when it speaks 0.3,
// and in 1.0's (supportedInterfaces) when it speaks 1.0. kagenti-router reads them to know when
// to translate, and serves its own card in their place.
type a2aCard struct {
	ProtocolVersion      string            `json:"protocolVersion,omitempty"`
	Name                 string            `json:"name"`
	Description          string            `json:"description"`
	URL                  string            `json:"url,omitempty"`
	PreferredTransport   string            `json:"preferredTransport,omitempty"`
	AdditionalInterfaces []a2aInterfaceV03 `json:"additionalInterfaces,omitempty"`
	SupportedInterfaces  []a2aInterface    `json:"supportedInterfaces,omitempty"`
	Version              string            `json:"version"`
	Capabilities         a2aCapabilities   `json:"capabilities"`
	DefaultInputModes    []string          `json:"defaultInputModes"`
	DefaultOutputModes   []string          `json:"defaultOutputModes"`
	Skills               []a2aSkill        `json:"skills"`
}

// a2aInterfaceV03 is an entry of 0.3's additionalInterfaces.
type a2aInterfaceV03 struct {
	URL       string `json:"url"`
	Transport string `json:"transport"`
}

// a2aInterface is an entry of 1.0's supportedInterfaces.
type a2aInterface struct {
	URL             string `json:"url"`
	ProtocolBinding string `json:"protocolBinding"`
	ProtocolVersion string `json:"protocolVersion"`
}

// The A2A bindings an agent may serve.
const (
	bindingJSONRPC = "JSONRPC"
	bindingREST    = "HTTP+JSON"
)

type a2aCapabilities struct {
	Streaming bool `json:"streaming"`
}

type a2aSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Examples    []string `json:"examples,omitempty"`
}

// acpManifest is an ACP agent manifest (GET /agents/{name}).
type acpManifest struct {
	Name               string      `json:"name"`
	Description        string      `json:"description"`
	InputContentTypes  []string    `json:"input_content_types"`
	OutputContentTypes []string    `json:"output_content_types"`
	Metadata           acpMetadata `json:"metadata"`
}

type acpMetadata struct {
	Framework    string   `json:"framework"`
	Tags         []string `json:"tags,omitempty"`
	Capabilities []acpCap `json:"capabilities,omitempty"`
}

type acpCap struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// DefaultModes are the media types a card advertises when the agent sets none.
var DefaultModes = []string{"text/plain"}

// agentCard renders an agent's card (A2A) or manifest (ACP) and the ConfigMap key it goes under.
func agentCard(in Input, url string) (string, string, error) {
	version := in.Version
	if version == "" {
		version = "1.0.0"
	}
	inModes, outModes := in.InputModes, in.OutputModes
	if len(inModes) == 0 {
		inModes = DefaultModes
	}
	if len(outModes) == 0 {
		outModes = DefaultModes
	}
	var doc any
	key := contract.CardKey
	if in.Protocol == "acp" {
		key = contract.ManifestKey
		m := acpManifest{
			Name: in.Name, Description: in.Description,
			InputContentTypes: inModes, OutputContentTypes: outModes,
			Metadata: acpMetadata{Framework: in.Framework},
		}
		for _, s := range in.Skills {
			m.Metadata.Capabilities = append(m.Metadata.Capabilities, acpCap{Name: s.Name, Description: s.Description})
			m.Metadata.Tags = append(m.Metadata.Tags, s.Tags...)
		}
		doc = m
	} else {
		c := a2aCard{
			Name: in.Name, Description: in.Description, Version: version,
			Capabilities:      a2aCapabilities{Streaming: !in.NoStreaming},
			DefaultInputModes: inModes, DefaultOutputModes: outModes,
			Skills: []a2aSkill{},
		}
		setA2AInterfaces(&c, in, url)
		for _, s := range in.Skills {
			tags := s.Tags
			if tags == nil {
				tags = []string{}
			}
			c.Skills = append(c.Skills, a2aSkill{ID: s.ID, Name: s.Name, Description: s.Description, Tags: tags, Examples: s.Examples})
		}
		doc = c
	}
	b, err := json.Marshal(doc)
	return string(b), key, err
}

// setA2AInterfaces writes into a card the versions and bindings the agent serves, at url.
func setA2AInterfaces(c *a2aCard, in Input, url string) {
	versions := in.A2AVersions
	if len(versions) == 0 {
		versions = DefaultA2AVersions
	}
	var bindings []string // the preferred first
	if !in.NoJSONRPC {
		bindings = append(bindings, bindingJSONRPC)
	}
	if in.A2AREST {
		bindings = append(bindings, bindingREST)
	}
	if slices.Contains(versions, "0.3") {
		c.ProtocolVersion, c.URL, c.PreferredTransport = "0.3.0", url, bindings[0]
		for _, b := range bindings[1:] {
			c.AdditionalInterfaces = append(c.AdditionalInterfaces, a2aInterfaceV03{URL: url, Transport: b})
		}
	}
	if slices.Contains(versions, "1.0") {
		for _, v := range versions {
			for _, b := range bindings {
				c.SupportedInterfaces = append(c.SupportedInterfaces, a2aInterface{URL: url, ProtocolBinding: b, ProtocolVersion: v})
			}
		}
	}
}
