// Package composition expands a Kagenti agent or tool into the Kubernetes objects that run it.
// Render is a pure function of its Input and the embedded templates: no I/O, clock, randomness
// or map order. It knows nothing of Terraform.
package composition

import "maps"

// Kind is the composite's kind.
type Kind string

// Composite kinds.
const (
	KindAgent Kind = "agent"
	KindTool  Kind = "tool"
)

// Frameworks an agent can be composed for; each has a preset.
var Frameworks = []string{"langgraph", "crewai", "ag2", "llama-stack", "beeai", "custom"}

// Protocols an agent can speak.
var Protocols = []string{"a2a", "acp"}

// A2AVersions are the A2A protocol versions an agent may speak; DefaultA2AVersions is what an
// agent speaks when its settings say nothing (most agents today are built on a 0.3 SDK).
var (
	A2AVersions        = []string{"0.3", "1.0"}
	DefaultA2AVersions = []string{"0.3"}
)

// ToolProtocol is the protocol every tool speaks, in its protocol label.
const ToolProtocol = "mcp"

// Transports a tool can serve MCP over; each has a preset.
var Transports = []string{"streamable-http", "sse"}

// Input is the spec of one agent or tool. The JSON form (no secret values: secret env only
// references Secrets) is stored on the composite's Service for import.
type Input struct {
	Kind        Kind   `json:"kind"`
	Name        string `json:"name"`
	Namespace   string `json:"namespace"`
	LabelDomain string `json:"-"`

	// Framework and Protocol are for agents; Transport for tools.
	Framework string `json:"framework,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Transport string `json:"transport,omitempty"`

	// Exactly one of Image (run it in the cluster) or Endpoint (it runs elsewhere) is set.
	Image    string `json:"image,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// Port is the container port; 0 means the preset's.
	Port int64 `json:"port,omitempty"`

	Description string  `json:"description,omitempty"`
	Version     string  `json:"version,omitempty"`
	Skills      []Skill `json:"skills,omitempty"`
	// NoStreaming says in the card that the agent does not stream (message/stream); cards say
	// it does by default.
	NoStreaming bool `json:"no_streaming,omitempty"`
	// InputModes and OutputModes are the media types the card advertises (text/plain when
	// empty).
	InputModes  []string `json:"input_modes,omitempty"`
	OutputModes []string `json:"output_modes,omitempty"`
	// A2AVersions are the A2A versions the agent speaks (DefaultA2AVersions when empty), and
	// A2AREST whether it serves the HTTP+JSON binding, NoJSONRPC whether it does not serve
	// JSON-RPC (it does by default); all go into its card.
	A2AVersions []string `json:"a2a_versions,omitempty"`
	A2AREST     bool     `json:"a2a_rest,omitempty"`
	NoJSONRPC   bool     `json:"no_jsonrpc,omitempty"`

	// Replicas is ignored when Autoscaling is set (the HPA owns the count).
	Replicas    int64        `json:"replicas,omitempty"`
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// Resources are the container's requests and limits.
	Resources *Resources `json:"resources,omitempty"`

	Env       map[string]string    `json:"env,omitempty"`
	SecretEnv map[string]SecretRef `json:"secret_env,omitempty"`
	LLM       *LLM                 `json:"llm,omitempty"`
	// Tools are the MCP tools wired into an agent, resolved to their URLs.
	Tools []ToolRef `json:"tools,omitempty"`
	// ExposeAsTool offers an A2A agent as an MCP tool through the router.
	ExposeAsTool bool         `json:"expose_as_tool,omitempty"`
	Persistence  *Persistence `json:"persistence,omitempty"`
	OTELEndpoint string       `json:"otel_endpoint,omitempty"`

	// NetworkPolicy limits a workload that runs in the cluster to calls from the router and to
	// calls out to the router, DNS, its LLM, OTLP and identity provider endpoints and Egress.
	// NoNetworkPolicy opts out.
	NoNetworkPolicy bool         `json:"no_network_policy,omitempty"`
	Egress          []EgressRule `json:"egress,omitempty"`
	// IdentityProviderURL is Keycloak's URL as the provider reaches it, where a workload with
	// a Keycloak client exchanges tokens.
	IdentityProviderURL string `json:"-"`

	// Identity gives the workload a SPIFFE identity (and a Keycloak client); its env tells the
	// workload who it is and where to get tokens.
	Identity *Identity `json:"identity,omitempty"`

	// Workload is metadata, scheduling and the pod's command, env sources and service account.
	Workload

	Patches []Patch `json:"patches,omitempty"`
	// Templates replace embedded templates by key (e.g. "deployment"); the text is a Go
	// template of one Kubernetes object, rendered with the same data.
	Templates map[string]string `json:"templates,omitempty"`
}

// Skill is an A2A agent skill, published in the card.
type Skill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Examples    []string `json:"examples,omitempty"`
}

// Autoscaling becomes a HorizontalPodAutoscaler.
type Autoscaling struct {
	MinReplicas          int64 `json:"min_replicas"`
	MaxReplicas          int64 `json:"max_replicas"`
	TargetCPUUtilization int64 `json:"target_cpu_utilization"`
}

// SecretRef names a key of a Secret in the composite's namespace.
type SecretRef struct {
	Secret string `json:"secret"`
	Key    string `json:"key"`
}

// LLM points an agent at its model server.
type LLM struct {
	BaseURL string     `json:"base_url"`
	Model   string     `json:"model"`
	APIKey  *SecretRef `json:"api_key,omitempty"`
}

// ToolRef is a tool wired into an agent.
type ToolRef struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Transport string `json:"transport"`
}

// EgressRule lets a workload's pods open connections to a port, in a CIDR or anywhere.
type EgressRule struct {
	CIDR     string `json:"cidr,omitempty"`
	Port     int64  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// EgressProtocols are the protocols an egress rule may name (TCP when empty).
var EgressProtocols = []string{"TCP", "UDP", "SCTP"}

// Persistence is either a volume (Size) or an external store (Store) for checkpoints.
type Persistence struct {
	Size         string     `json:"size,omitempty"`
	StorageClass string     `json:"storage_class,omitempty"`
	MountPath    string     `json:"mount_path,omitempty"`
	Store        *SecretRef `json:"store,omitempty"`
}

// Patch changes one composed object after rendering.
type Patch struct {
	// Target is the composed object's key: serviceaccount, deployment, service, card, hpa,
	// pdb, pvc.
	Target string `json:"target"`
	// Type is strategic (Kubernetes strategic merge), merge (RFC 7386) or json (RFC 6902).
	Type string `json:"type"`
	// Patch is the patch document, in YAML or JSON.
	Patch string `json:"patch"`
}

// Identity is a workload identity attached to an agent or tool: a SPIRE entry for its service
// account and, optionally, a Keycloak client named by its SPIFFE ID.
type Identity struct {
	SPIFFEID string `json:"spiffe_id"`
	// WorkloadAPI, when mounted, puts the SPIRE agent's socket at /spiffe-workload-api and
	// SPIFFE_ENDPOINT_SOCKET points at it.
	WorkloadAPI
	X509SVIDTTL string          `json:"x509_svid_ttl,omitempty"`
	JWTSVIDTTL  string          `json:"jwt_svid_ttl,omitempty"`
	Client      *IdentityClient `json:"keycloak_client,omitempty"`
	// CardSigner runs the platform's card signer beside an A2A agent that does not sign its
	// own card.
	CardSigner *CardSigner `json:"card_signer,omitempty"`
}

// CardSigner is a container beside an A2A agent (kagenti-router's card-signer command) that
// serves the agent's card, as the composition mounts it, signed with the pod's X509-SVID from
// the Workload API, on the Service port contract.CardSignerPortName. The router verifies the
// card it fetches there: so an agent whose code knows nothing of card signatures passes
// strict card verification, bound to the identity SPIRE attests its pod for.
type CardSigner struct {
	// Image is the kagenti-router image to run it from (the provider fills in its own
	// version's when the user sets none).
	Image string `json:"image"`
}

// AuthClientSecret is the authentication of a client that logs in with a generated secret (the
// keycloak package's AuthClientSecret; the composition may not import it).
const AuthClientSecret = "client-secret"

// IdentityClient is the Keycloak side of an identity. Issuer, JWKSURI and TokenURL are the
// realm's, resolved at apply, and handed to the workload as env.
type IdentityClient struct {
	Authentication string   `json:"authentication"`
	TokenExchange  bool     `json:"token_exchange,omitempty"`
	Audiences      []string `json:"audiences,omitempty"`
	AllowedCallers []string `json:"allowed_callers,omitempty"`
	Issuer         string   `json:"issuer,omitempty"`
	JWKSURI        string   `json:"jwks_uri,omitempty"`
	TokenURL       string   `json:"token_url,omitempty"`
}

// Resources are a container's compute resource requests and limits: "cpu", "memory" and
// "ephemeral-storage", as Kubernetes quantities.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// ResourceNames are the resources a container may ask for here.
var ResourceNames = []string{"cpu", "memory", "ephemeral-storage"}

// withDefaults is r with defaults for the keys it does not set (nil when both are empty).
func (r *Resources) withDefaults(defaults Resources) *Resources {
	out := Resources{Requests: map[string]string{}, Limits: map[string]string{}}
	maps.Copy(out.Requests, defaults.Requests)
	maps.Copy(out.Limits, defaults.Limits)
	if r != nil {
		maps.Copy(out.Requests, r.Requests)
		maps.Copy(out.Limits, r.Limits)
	}
	if len(out.Requests) == 0 {
		out.Requests = nil
	}
	if len(out.Limits) == 0 {
		out.Limits = nil
	}
	if out.Requests == nil && out.Limits == nil {
		return nil
	}
	return &out
}

// containerResources are what a workload's container is given: the resources asked for, and a
// CPU request of 100m when it autoscales without one. A HorizontalPodAutoscaler scaling on CPU
// utilization needs the request the utilization is a percentage of.
func containerResources(r *Resources, autoscaled bool) *Resources {
	var defaults Resources
	if autoscaled {
		defaults.Requests = map[string]string{"cpu": "100m"}
	}
	return r.withDefaults(defaults)
}

// WorkloadAPIMountPath is where pods find the directory of the SPIRE agent's Workload API socket.
const WorkloadAPIMountPath = "/spiffe-workload-api"

// WorkloadAPI is where pods get the SPIRE agent's Workload API socket from: a directory on the
// node (hostPath, which Pod Security's baseline and restricted profiles forbid) or a volume of
// the SPIFFE CSI driver (csi.spiffe.io, which restricted allows). Its JSON keys are flat, as
// they were when only the host path existed, so stored inputs keep reading.
type WorkloadAPI struct {
	HostPath  string `json:"workload_api_host_path,omitempty"`
	CSIDriver string `json:"workload_api_csi_driver,omitempty"`
	// SocketName is the socket's file name in that directory (agent.sock when empty; the SPIFFE
	// CSI driver's charts name it spire-agent.sock).
	SocketName string `json:"workload_api_socket_name,omitempty"`
}

// Mounted reports whether pods get the socket at all.
func (w WorkloadAPI) Mounted() bool { return w.HostPath != "" || w.CSIDriver != "" }

// MountPath is where the socket's directory is mounted in the pod.
func (WorkloadAPI) MountPath() string { return WorkloadAPIMountPath }

// SocketPath is the socket's path inside the pod.
func (w WorkloadAPI) SocketPath() string {
	name := w.SocketName
	if name == "" {
		name = "agent.sock"
	}
	return WorkloadAPIMountPath + "/" + name
}

// Published is the input as the composite's Service carries it for discovery and import. The
// Service is readable by more than the Deployment is (the router reads every Service it routes
// to), so it holds no env values, patches or custom templates: env keys only, their values are
// read back from the Deployment on import; patches and templates are not recovered by import.
func (in Input) Published() Input {
	out := in
	if len(in.Env) > 0 {
		out.Env = make(map[string]string, len(in.Env))
		for k := range in.Env {
			out.Env[k] = ""
		}
	}
	out.Patches, out.Templates = nil, nil
	return out
}
