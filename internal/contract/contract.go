// Package contract is what the provider writes to the cluster and the router reads: label and
// annotation keys, and the names and keys of the card and policy ConfigMaps. Both sides import
// it, so the two cannot drift apart. Every key hangs off a configurable label domain because
// upstream Kagenti renamed its labels once.
package contract

import "strings"

// ManagedBy is the app.kubernetes.io/managed-by value of every composed object.
const ManagedBy = "kagenti"

// FieldManager is the server-side apply field manager of every composed object.
const FieldManager = "kagenti"

// Composite kinds, the value of the type label.
const (
	TypeAgent = "agent"
	TypeTool  = "tool"
)

// Keys of the card ConfigMap's data.
const (
	// CardKey holds the A2A agent card (JSON) of an A2A agent.
	CardKey = "agent-card.json"
	// ManifestKey holds the ACP agent manifest (JSON) of an ACP agent.
	ManifestKey = "agent-manifest.json"
)

// CardConfigMapName is the ConfigMap that holds an agent's card or manifest.
func CardConfigMapName(agent string) string { return agent + "-card" }

// ClientSecretName is the Secret that holds the Keycloak credentials of a workload whose client
// authenticates with a generated secret (keys "client-id" and ClientSecretKey).
func ClientSecretName(serviceAccount string) string { return serviceAccount + "-keycloak" }

// ClientSecretKey is the key of the secret itself in a ClientSecretName Secret.
const ClientSecretKey = "client-secret"

// Keys are the label and annotation keys under one domain.
type Keys struct{ Domain string }

// NewKeys returns the keys under domain ("kagenti.io" when empty).
func NewKeys(domain string) Keys {
	if domain == "" {
		domain = "kagenti.io"
	}
	return Keys{Domain: strings.TrimSuffix(domain, "/")}
}

func (k Keys) key(name string) string { return k.Domain + "/" + name }

// Type labels a composed object with its composite's kind: agent or tool. The router discovers
// agents by it.
func (k Keys) Type() string { return k.key("type") }

// Composite labels a composed object with its composite's name (the namespace is the object's).
func (k Keys) Composite() string { return k.key("composite") }

// Framework labels an agent's objects with its framework (langgraph, crewai, ...).
func (k Keys) Framework() string { return k.key("framework") }

// Protocol labels an agent's objects with a2a or acp, and a tool's with mcp.
func (k Keys) Protocol() string { return k.key("protocol") }

// Transport labels a tool's objects with its MCP transport (streamable-http, sse).
func (k Keys) Transport() string { return k.key("transport") }

// Revision labels a composed object with the composition revision that rendered it.
func (k Keys) Revision() string { return k.key("composition-revision") }

// ResourceName annotates a composed object with its stable key in the composition.
func (k Keys) ResourceName() string { return k.key("composition-resource-name") }

// Spec annotates an agent's or tool's Service with the composite's spec (JSON, no secret
// values), from which `terraform import` rebuilds the resource.
func (k Keys) Spec() string { return k.key("spec") }

// Endpoint annotates the Service of an agent or tool that runs outside the cluster with the URL
// the router sends its traffic to.
func (k Keys) Endpoint() string { return k.key("endpoint") }

// URL annotates a composite's Service with the URL its clients use (for a tool: the MCP URL).
func (k Keys) URL() string { return k.key("url") }

// Platform labels an agent namespace with the namespace of the platform that serves it.
func (k Keys) Platform() string { return k.key("platform") }

// RouterNamespace labels ("true") a namespace where a platform runs kagenti-router: agents'
// NetworkPolicies admit the router's pods of such namespaces only. The platform sets it; a
// namespace's labels are the cluster admin's, not a tenant's.
func (k Keys) RouterNamespace() string { return k.key("router-namespace") }

// Isolated labels ("true") the pods of an agent or tool that its own NetworkPolicy isolates.
// A platform with a mesh admits the mesh's traffic (ambient's kubelet probes, the waypoint) to
// these pods only: a policy selecting a pod that opted out would isolate it.
func (k Keys) Isolated() string { return k.key("isolated") }

// ExposeAsTool annotates the Service of an A2A agent offered as an MCP tool ("true").
func (k Keys) ExposeAsTool() string { return k.key("expose-as-tool") }

// Policy annotates an agent's or tool's Service with its access policy (JSON), which the router
// enforces and uses for token exchange.
func (k Keys) Policy() string { return k.key("policy") }

// Policy is the access policy of one agent or tool.
type Policy struct {
	// Audience is the client id (the workload's SPIFFE ID) that tokens forwarded to it are
	// exchanged for; empty when it has no identity, and then the caller's token is not forwarded.
	Audience string `json:"audience,omitempty"`
	// AudienceScope is the client scope to request with that audience.
	AudienceScope string `json:"audience_scope,omitempty"`
	// AllowedCallers are the client ids (azp) or SPIFFE IDs (sub of a JWT-SVID) that may call;
	// empty means any authenticated caller.
	AllowedCallers []string `json:"allowed_callers,omitempty"`
	// RequiredScopes must all be in the caller token's scope claim.
	RequiredScopes []string `json:"required_scopes,omitempty"`
}

// Card verification modes of the router (its -card-verification flag, the platform's
// router_settings.card_verification).
const (
	CardVerificationOff        = "off"
	CardVerificationPermissive = "permissive"
	CardVerificationStrict     = "strict"
)

// CardVerificationModes are the router's card verification modes.
var CardVerificationModes = []string{CardVerificationOff, CardVerificationPermissive, CardVerificationStrict}

// CardVerificationHeader is the header with which the router serves an A2A card: "verified",
// "off" (the router does not verify cards), or "failed: <why>" (permissive mode serves it anyway).
const CardVerificationHeader = "Kagenti-Card-Verification"

// CardSignerPortName names the Service port of an agent whose card the platform's card signer
// signs: a container beside the agent that serves the agent's card, signed with the pod's
// X509-SVID, at /.well-known/agent-card.json. The router fetches the card to verify there,
// instead of from the agent, when the Service has this port.
const CardSignerPortName = "kagenti-card"

// CardSignerPort is the card signer's container and Service port.
const CardSignerPort = 8099

// CardSignerCommand is the kagenti-router subcommand that runs the card signer.
const CardSignerCommand = "card-signer"
