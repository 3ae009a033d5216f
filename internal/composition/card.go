package composition

import (
	"encoding/json"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// a2aCard is an A2A agent card (protocol 0.3 field names, which 1.0 clients also read through
// their compatibility layer). The router rewrites url to its own public URL.
type a2aCard struct {
	ProtocolVersion    string          `json:"protocolVersion"`
	Name               string          `json:"name"`
	Description        string          `json:"description"`
	URL                string          `json:"url"`
	PreferredTransport string          `json:"preferredTransport"`
	Version            string          `json:"version"`
	Capabilities       a2aCapabilities `json:"capabilities"`
	DefaultInputModes  []string        `json:"defaultInputModes"`
	DefaultOutputModes []string        `json:"defaultOutputModes"`
	Skills             []a2aSkill      `json:"skills"`
}

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
			ProtocolVersion: "0.3.0", Name: in.Name, Description: in.Description, URL: url,
			PreferredTransport: "JSONRPC", Version: version,
			Capabilities:      a2aCapabilities{Streaming: !in.NoStreaming},
			DefaultInputModes: inModes, DefaultOutputModes: outModes,
			Skills: []a2aSkill{},
		}
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
