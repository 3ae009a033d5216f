package composition

import (
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// MaxNameLength keeps derived names (the "-card" ConfigMap, "-data" claim) and label values
// within Kubernetes' 63-character limits.
const MaxNameLength = 50

var (
	// imageRef is a container image reference: [registry[:port]/]path[:tag][@digest].
	imageRef = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	// envName is a portable environment variable name.
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks an input and returns every problem, each with the path of the attribute it is
// about (the paths use the provider's attribute names).
func Validate(in Input) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateName(field.NewPath("name"), in.Name)...)
	errs = append(errs, validateWorkload(in.Workload, field.NewPath("pod"), contract.NewKeys(in.LabelDomain))...)
	for _, msg := range validation.IsDNS1123Label(in.Namespace) {
		errs = append(errs, field.Invalid(field.NewPath("namespace"), in.Namespace, msg))
	}
	switch in.Kind {
	case KindAgent:
		if !slices.Contains(Frameworks, in.Framework) {
			errs = append(errs, field.NotSupported(field.NewPath("framework"), in.Framework, Frameworks))
		}
		if !slices.Contains(Protocols, in.Protocol) {
			errs = append(errs, field.NotSupported(field.NewPath("protocol"), in.Protocol, Protocols))
		}
	case KindTool:
		if !slices.Contains(Transports, in.Transport) {
			errs = append(errs, field.NotSupported(field.NewPath("transport"), in.Transport, Transports))
		}
	default:
		errs = append(errs, field.NotSupported(field.NewPath("kind"), string(in.Kind), []string{string(KindAgent), string(KindTool)}))
	}

	switch {
	case in.Image == "" && in.Endpoint == "":
		errs = append(errs, field.Required(field.NewPath("image"), "set image (run it in the cluster) or endpoint (it runs elsewhere)"))
	case in.Image != "" && in.Endpoint != "":
		errs = append(errs, field.Invalid(field.NewPath("endpoint"), in.Endpoint, "set either image or endpoint, not both"))
	case in.Image != "":
		if !imageRef.MatchString(in.Image) {
			errs = append(errs, field.Invalid(field.NewPath("image"), in.Image, "must be an image reference such as ghcr.io/org/agent:1.0.0 (lower-case repository, optional :tag and @sha256:digest)"))
		}
	default:
		if u, err := url.Parse(in.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(field.NewPath("endpoint"), in.Endpoint, "must be an http(s) URL such as http://10.0.0.5:8000"))
		}
	}
	if in.Port != 0 && (in.Port < 1 || in.Port > 65535) {
		errs = append(errs, field.Invalid(field.NewPath("port"), in.Port, "must be between 1 and 65535"))
	}

	errs = append(errs, validateCardSigner(in)...)

	for _, modes := range []struct {
		name string
		list []string
	}{{"input_modes", in.InputModes}, {"output_modes", in.OutputModes}} {
		for i, m := range modes.list {
			if _, _, err := mime.ParseMediaType(m); err != nil || !strings.Contains(m, "/") {
				errs = append(errs, field.Invalid(field.NewPath(modes.name).Index(i), m, "must be a media type such as text/plain or application/json"))
			}
		}
	}
	for i, v := range in.A2AVersions {
		if !slices.Contains(A2AVersions, v) {
			errs = append(errs, field.NotSupported(field.NewPath("a2a_versions").Index(i), v, A2AVersions))
		}
	}
	if in.NoJSONRPC && !in.A2AREST && in.Protocol != "acp" {
		errs = append(errs, field.Invalid(field.NewPath("a2a_jsonrpc"), false,
			"an A2A agent serves at least one binding: set a2a_rest = true for an agent that serves only HTTP+JSON (REST), or leave a2a_jsonrpc true"))
	}
	seen := map[string]bool{}
	for i, s := range in.Skills {
		p := field.NewPath("skills").Index(i)
		if s.ID == "" {
			errs = append(errs, field.Required(p.Child("id"), "every skill needs an id"))
		} else if seen[s.ID] {
			errs = append(errs, field.Duplicate(p.Child("id"), s.ID))
		}
		seen[s.ID] = true
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "every skill needs a name"))
		}
	}
	if in.Kind == KindTool && len(in.Skills) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("skills"), "skills describe agents; tools publish theirs over MCP"))
	}

	if in.Replicas < 0 {
		errs = append(errs, field.Invalid(field.NewPath("replicas"), in.Replicas, "must be 0 or more"))
	}
	if a := in.Autoscaling; a != nil {
		p := field.NewPath("autoscaling")
		if in.Replicas != 0 {
			errs = append(errs, field.Forbidden(field.NewPath("replicas"), "set either replicas or autoscaling: with autoscaling the HorizontalPodAutoscaler owns the replica count"))
		}
		errs = append(errs, validateAutoscaling(p, a)...)
		if in.Endpoint != "" {
			errs = append(errs, field.Forbidden(p, "an agent registered by endpoint runs elsewhere and cannot be autoscaled here"))
		}
	}

	// Checked with the defaults filled in: a default request above a limit is an error too.
	errs = append(errs, validateResources(field.NewPath("resources"), in.Resources, containerResources(in.Resources, in.Autoscaling != nil))...)
	if in.Resources != nil && in.Endpoint != "" {
		errs = append(errs, field.Forbidden(field.NewPath("resources"), "an agent registered by endpoint runs elsewhere; its resources are not set here"))
	}

	for _, k := range sortedKeys(in.Env) {
		if !envName.MatchString(k) {
			errs = append(errs, field.Invalid(field.NewPath("env").Key(k), k, "environment variable names are letters, digits and '_', not starting with a digit"))
		}
	}
	for _, k := range sortedKeys(in.SecretEnv) {
		p := field.NewPath("secret_env").Key(k)
		if !envName.MatchString(k) {
			errs = append(errs, field.Invalid(p, k, "environment variable names are letters, digits and '_', not starting with a digit"))
		}
		if _, dup := in.Env[k]; dup {
			errs = append(errs, field.Duplicate(p, k+" is also set in env"))
		}
		errs = append(errs, validateSecretRef(p, in.SecretEnv[k])...)
	}
	if l := in.LLM; l != nil {
		p := field.NewPath("llm")
		if u, err := url.Parse(l.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(p.Child("base_url"), l.BaseURL, "must be an http(s) URL such as http://ollama:11434/v1"))
		}
		if l.APIKey != nil {
			errs = append(errs, validateSecretRef(p.Child("api_key"), *l.APIKey)...)
		}
	}
	if in.OTELEndpoint != "" {
		// OpenTelemetry SDKs take an http(s) URL for OTLP over HTTP and gRPC alike.
		if u, err := url.Parse(in.OTELEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			errs = append(errs, field.Invalid(field.NewPath("otel_endpoint"), in.OTELEndpoint, "must be an absolute http(s) URL with a host, such as http://otel-collector.observability:4317"))
		}
	}
	errs = append(errs, validateEgress(in.Egress)...)
	if in.NoNetworkPolicy && len(in.Egress) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("network_policy", "egress"), len(in.Egress), "egress rules need the NetworkPolicy: remove them, or enabled = false"))
	}
	if in.ExposeAsTool && in.Protocol != "a2a" {
		errs = append(errs, field.Invalid(field.NewPath("expose_as_tool"), true, "only A2A agents can be offered as MCP tools"))
	}
	if in.Kind == KindTool && len(in.Tools) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("tools"), "only agents are wired to tools"))
	}
	if p := in.Persistence; p != nil {
		pp := field.NewPath("persistence")
		switch {
		case p.Size == "" && p.Store == nil:
			errs = append(errs, field.Required(pp.Child("size"), "set size (a volume) or store (a Secret with the store's URL)"))
		case p.Size != "" && p.Store != nil:
			errs = append(errs, field.Invalid(pp.Child("store"), "", "set either size or store, not both"))
		case p.Size != "":
			if q, err := resource.ParseQuantity(p.Size); err != nil || q.Sign() <= 0 {
				errs = append(errs, field.Invalid(pp.Child("size"), p.Size, "must be a positive quantity such as 1Gi or 500Mi"))
			}
			if in.Endpoint != "" {
				errs = append(errs, field.Forbidden(pp.Child("size"), "an agent registered by endpoint runs elsewhere and gets no volume here"))
			}
		default:
			errs = append(errs, validateSecretRef(pp.Child("store"), *p.Store)...)
		}
		if p.MountPath != "" && !strings.HasPrefix(p.MountPath, "/") {
			errs = append(errs, field.Invalid(pp.Child("mount_path"), p.MountPath, "must be an absolute path"))
		}
	}

	keys := objectKeys(in)
	for i, patch := range in.Patches {
		p := field.NewPath("composition", "patches").Index(i)
		if !slices.Contains(keys, patch.Target) {
			errs = append(errs, field.NotSupported(p.Child("target"), patch.Target, keys))
		}
		if !slices.Contains(PatchTypes, patch.Type) {
			errs = append(errs, field.NotSupported(p.Child("type"), patch.Type, PatchTypes))
		}
	}
	for _, k := range sortedKeys(in.Templates) {
		if !slices.Contains(allObjectKeys, k) {
			errs = append(errs, field.NotSupported(field.NewPath("composition", "templates").Key(k), k, allObjectKeys))
		}
	}
	return errs
}

func validateName(p *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	// Service names are DNS-1035 labels: the strictest of the names derived from it.
	for _, msg := range validation.IsDNS1035Label(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	if len(name) > MaxNameLength {
		errs = append(errs, field.TooLong(p, name, MaxNameLength))
	}
	return errs
}

func validateSecretRef(p *field.Path, ref SecretRef) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(ref.Secret) {
		errs = append(errs, field.Invalid(p.Child("secret"), ref.Secret, msg))
	}
	for _, msg := range validation.IsConfigMapKey(ref.Key) {
		errs = append(errs, field.Invalid(p.Child("key"), ref.Key, msg))
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validateResources checks names and quantities, and that no request exceeds its limit. merged
// is given with the defaults filled in; given is what was asked for, to say when a default is
// the cause.
func validateResources(p *field.Path, given, merged *Resources) field.ErrorList {
	if merged == nil {
		return nil
	}
	if given == nil {
		given = &Resources{}
	}
	var errs field.ErrorList
	parsed := map[string]map[string]resource.Quantity{}
	for _, part := range []struct {
		name string
		list map[string]string
	}{{"requests", merged.Requests}, {"limits", merged.Limits}} {
		parsed[part.name] = map[string]resource.Quantity{}
		for _, k := range sortedKeys(part.list) {
			at := p.Child(part.name).Key(k)
			if !slices.Contains(ResourceNames, k) {
				errs = append(errs, field.NotSupported(at, k, ResourceNames))
				continue
			}
			q, err := resource.ParseQuantity(part.list[k])
			if err != nil {
				errs = append(errs, field.Invalid(at, part.list[k], "not a Kubernetes quantity (e.g. 250m or 1 for cpu, 128Mi or 1Gi for memory)"))
				continue
			}
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(at, part.list[k], "must not be negative"))
				continue
			}
			parsed[part.name][k] = q
		}
	}
	for _, k := range ResourceNames {
		req, okReq := parsed["requests"][k]
		lim, okLim := parsed["limits"][k]
		if !okReq || !okLim || req.Cmp(lim) <= 0 {
			continue
		}
		msg := fmt.Sprintf("must not exceed the limit (%s)", merged.Limits[k])
		if _, asked := given.Requests[k]; !asked {
			msg = fmt.Sprintf("the default request exceeds the limit (%s): set requests.%s too", merged.Limits[k], k)
		} else if _, asked := given.Limits[k]; !asked {
			msg = fmt.Sprintf("must not exceed the default limit (%s): set limits.%s too", merged.Limits[k], k)
		}
		errs = append(errs, field.Invalid(p.Child("requests").Key(k), merged.Requests[k], msg))
	}
	return errs
}

// validateAutoscaling checks the bounds and target of an autoscaling block at p.
func validateAutoscaling(p *field.Path, a *Autoscaling) field.ErrorList {
	var errs field.ErrorList
	if a.MinReplicas < 1 {
		errs = append(errs, field.Invalid(p.Child("min_replicas"), a.MinReplicas, "must be 1 or more"))
	}
	if a.MaxReplicas < a.MinReplicas {
		errs = append(errs, field.Invalid(p.Child("max_replicas"), a.MaxReplicas, fmt.Sprintf("must be at least min_replicas (%d)", a.MinReplicas)))
	}
	if a.TargetCPUUtilization < 1 || a.TargetCPUUtilization > 100 {
		errs = append(errs, field.Invalid(p.Child("target_cpu_utilization"), a.TargetCPUUtilization, "must be a percentage between 1 and 100"))
	}
	return errs
}

// validateCardSigner checks identity.card_signer: it signs an A2A agent's card in the agent's
// pod, with the SVID the Workload API gives the pod.
func validateCardSigner(in Input) field.ErrorList {
	if in.Identity == nil || in.Identity.CardSigner == nil {
		return nil
	}
	var errs field.ErrorList
	p := field.NewPath("identity", "card_signer")
	switch {
	case in.Kind != KindAgent || in.Protocol != "a2a":
		errs = append(errs, field.Forbidden(p, "only A2A agents have cards to sign: remove card_signer"))
	case in.Image == "":
		errs = append(errs, field.Forbidden(p, "an agent registered by endpoint runs elsewhere: the card signer runs in the agent's pod, so sign the card where the agent runs, or remove card_signer"))
	case !in.Identity.Mounted():
		errs = append(errs, field.Forbidden(p, "the card signer signs with the pod's X509-SVID from the SPIRE Workload API: set the provider's "+
			"spire.workload_api_csi_driver (or spire.workload_api_host_path) so that pods get its socket"))
	}
	if in.Identity.Client == nil {
		errs = append(errs, field.Required(field.NewPath("identity", "keycloak_client"), "the router binds a signed card to the identity "+
			"it knows from the agent's keycloak_client: add keycloak_client = {} (with allowed_callers as needed), or remove card_signer"))
	}
	if img := in.Identity.CardSigner.Image; img == "" {
		errs = append(errs, field.Required(p.Child("image"), "the kagenti-router image to run the card signer from"))
	} else if !imageRef.MatchString(img) {
		errs = append(errs, field.Invalid(p.Child("image"), img, "must be an image reference such as ghcr.io/kagenti/kagenti-router:0.1.0"))
	}
	if in.Port == contract.CardSignerPort {
		errs = append(errs, field.Invalid(field.NewPath("port"), in.Port, fmt.Sprintf("port %d is the card signer's in the agent's pod (identity.card_signer): choose another", contract.CardSignerPort)))
	}
	return errs
}
