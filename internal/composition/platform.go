package composition

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// RouterName names the router's Deployment, Service and ServiceAccount.
const RouterName = "kagenti-router"

// PlatformInput is the spec of a Kagenti platform: a namespace running kagenti-router.
type PlatformInput struct {
	Namespace   string `json:"namespace"`
	LabelDomain string `json:"-"`
	// AgentNamespaces the router serves; empty means every namespace (cluster-wide read).
	AgentNamespaces []string `json:"agent_namespaces,omitempty"`
	Image           string   `json:"image"`
	Replicas        int64    `json:"replicas"`
	PublicURL       string   `json:"public_url,omitempty"`
	// Issuer, Audience and TokenURL configure token validation and exchange; ClientSecretName
	// is the Secret with the router's client-id and client-secret.
	Issuer           string `json:"issuer,omitempty"`
	Audience         string `json:"audience,omitempty"`
	TokenURL         string `json:"token_url,omitempty"`
	ClientSecretName string `json:"client_secret_name,omitempty"`
	// IssuerCA is PEM of the CA that signs the issuer's certificate (a Keycloak behind a private
	// CA): it goes in a ConfigMap the router trusts it from.
	IssuerCA string `json:"issuer_ca,omitempty"`
	// Gateway attaches the router to an existing Gateway API Gateway with an HTTPRoute.
	Gateway *GatewayRef `json:"gateway,omitempty"`
	// Mesh is "" or "istio-ambient" (agent namespaces enrolled in ambient mode).
	Mesh string `json:"mesh,omitempty"`
	// Waypoint adds an Istio waypoint for the platform namespace (with Mesh).
	Waypoint bool `json:"waypoint,omitempty"`
	// WorkloadAPIHostPath mounts the SPIRE agent's socket into the router, which then logs in to
	// Keycloak with its JWT-SVID (no ClientSecretName).
	WorkloadAPI
	// Autoscaling scales the router on CPU instead of a fixed Replicas.
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// Resources of the router's container, over RouterResources' defaults.
	Resources *Resources `json:"resources,omitempty"`
	// Workload is metadata on the platform's objects and the router pod's own settings. Args
	// are added after the router's own flags.
	Workload
	// AdoptNamespace uses a namespace that exists (an OpenShift project, one managed by policy)
	// instead of creating one: the platform then neither renders nor deletes it.
	AdoptNamespace bool `json:"adopt_namespace,omitempty"`
	// Router holds the router's own settings; zero values keep its defaults.
	Router *RouterSettings `json:"router,omitempty"`
	// Patches change composed objects after rendering, by key (deployment, service, ...).
	Patches []Patch `json:"patches,omitempty"`
}

// RouterSettings are kagenti-router's tunables that a platform team sets.
type RouterSettings struct {
	// MaxHeaderBytes bounds a request's line and headers (each open connection holds a buffer
	// of this size).
	MaxHeaderBytes int64 `json:"max_header_bytes,omitempty"`
	// UpstreamTimeout bounds a non-streaming call to an agent ("2m").
	UpstreamTimeout string `json:"upstream_timeout,omitempty"`
	// Drain is how long in-flight requests may finish on SIGTERM ("20s").
	Drain string `json:"drain,omitempty"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level,omitempty"`
	// CardVerification is off, permissive or strict (the router's -card-verification).
	CardVerification string `json:"card_verification,omitempty"`
}

// RouterLogLevels are the router's log levels.
var RouterLogLevels = []string{"debug", "info", "warn", "error"}

// args are the router flags of the settings that are set.
func (s *RouterSettings) args() []string {
	var args []string
	if s == nil {
		return nil
	}
	if s.MaxHeaderBytes != 0 {
		args = append(args, fmt.Sprintf("-max-header-bytes=%d", s.MaxHeaderBytes))
	}
	if s.UpstreamTimeout != "" {
		args = append(args, "-upstream-timeout="+s.UpstreamTimeout)
	}
	if s.Drain != "" {
		args = append(args, "-drain="+s.Drain)
	}
	if s.LogLevel != "" {
		args = append(args, "-log-level="+s.LogLevel)
	}
	if s.CardVerification != "" {
		args = append(args, "-card-verification="+s.CardVerification)
	}
	return args
}

func validateRouterSettings(p *field.Path, s *RouterSettings) field.ErrorList {
	var errs field.ErrorList
	if s == nil {
		return nil
	}
	if s.MaxHeaderBytes != 0 && (s.MaxHeaderBytes < 1<<10 || s.MaxHeaderBytes > 1<<20) {
		errs = append(errs, field.Invalid(p.Child("max_header_bytes"), s.MaxHeaderBytes, "must be between 1024 (1 KiB) and 1048576 (1 MiB)"))
	}
	for name, v := range map[string]string{"upstream_timeout": s.UpstreamTimeout, "drain": s.Drain} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be a positive duration such as 30s or 2m"))
		}
	}
	if s.LogLevel != "" && !slices.Contains(RouterLogLevels, s.LogLevel) {
		errs = append(errs, field.NotSupported(p.Child("log_level"), s.LogLevel, RouterLogLevels))
	}
	if s.CardVerification != "" && !slices.Contains(contract.CardVerificationModes, s.CardVerification) {
		errs = append(errs, field.NotSupported(p.Child("card_verification"), s.CardVerification, contract.CardVerificationModes))
	}
	return errs
}

// RouterResources are the router container's resources where the platform sets none: it needs
// about 30 MiB idle and 60 MiB with 1,000 open streams (make bench-router), and the memory limit
// also bounds its Go heap (90% of it).
func RouterResources() Resources {
	return Resources{
		Requests: map[string]string{"cpu": "100m", "memory": "64Mi"},
		Limits:   map[string]string{"memory": "256Mi"},
	}
}

// GatewayRef is the Gateway the router's HTTPRoute attaches to.
type GatewayRef struct {
	ParentName      string   `json:"parent_name"`
	ParentNamespace string   `json:"parent_namespace,omitempty"`
	SectionName     string   `json:"section_name,omitempty"`
	Hostnames       []string `json:"hostnames,omitempty"`
	PathPrefix      string   `json:"path_prefix,omitempty"`
}

// MeshIstioAmbient is the mesh option that enrols agent namespaces in Istio's ambient mode.
const MeshIstioAmbient = "istio-ambient"

// The mesh's objects: the NetworkPolicy a platform with a mesh puts in each agent namespace, and
// the waypoint (a Gateway), whose pods Istio labels with the Gateway API's gateway-name label.
const (
	MeshPolicyName   = "kagenti.mesh"
	WaypointName     = "waypoint"
	WaypointPodLabel = "gateway.networking.k8s.io/gateway-name"
)

// PlatformKinds are every kind a platform may own, for pruning and deletion.
func PlatformKinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{
		{Version: "v1", Kind: "Namespace"},
		{Version: "v1", Kind: "ServiceAccount"},
		{Version: "v1", Kind: "ConfigMap"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Version: "v1", Kind: "Service"},
		{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
		{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
		{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
		{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"},
		{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"},
	}
}

// ValidatePlatform checks a platform input.
func ValidatePlatform(in PlatformInput) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateWorkload(in.Workload, field.NewPath("router_pod"), contract.NewKeys(in.LabelDomain))...)
	errs = append(errs, validateRouterSettings(field.NewPath("router_settings"), in.Router)...)
	if r := in.Router; r != nil && r.CardVerification != "" && r.CardVerification != contract.CardVerificationOff && !in.Mounted() {
		errs = append(errs, field.Invalid(field.NewPath("router_settings", "card_verification"), r.CardVerification,
			"the router verifies cards against the SPIRE trust bundle from the Workload API: set the provider's "+
				"spire.workload_api_csi_driver or spire.workload_api_host_path, or card_verification = \"off\""))
	}
	for i, patch := range in.Patches {
		p := field.NewPath("composition", "patches").Index(i)
		if !slices.Contains(PlatformPatchTargets, patch.Target) && !strings.HasPrefix(patch.Target, "role/") && !strings.HasPrefix(patch.Target, "rolebinding/") && !strings.HasPrefix(patch.Target, "meshpolicy/") {
			errs = append(errs, field.NotSupported(p.Child("target"), patch.Target, append(PlatformPatchTargets, "role/<namespace>", "rolebinding/<namespace>", "meshpolicy/<namespace>")))
		}
		if !slices.Contains(PatchTypes, patch.Type) {
			errs = append(errs, field.NotSupported(p.Child("type"), patch.Type, PatchTypes))
		}
	}
	// Checked with the defaults filled in: a request above a default limit is an error too.
	errs = append(errs, validateResources(field.NewPath("router_resources"), in.Resources, in.Resources.withDefaults(RouterResources()))...)
	for _, msg := range validation.IsDNS1123Label(in.Namespace) {
		errs = append(errs, field.Invalid(field.NewPath("namespace"), in.Namespace, msg))
	}
	for i, ns := range in.AgentNamespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(field.NewPath("agent_namespaces").Index(i), ns, msg))
		}
	}
	if !imageRef.MatchString(in.Image) {
		errs = append(errs, field.Invalid(field.NewPath("router_image"), in.Image, "must be an image reference such as ghcr.io/kagenti/kagenti-router:0.1.0"))
	}
	if in.Replicas < 1 || in.Replicas > 100 {
		errs = append(errs, field.Invalid(field.NewPath("router_replicas"), in.Replicas, "must be between 1 and 100"))
	}
	if in.PublicURL != "" {
		if u, err := url.Parse(in.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(field.NewPath("public_url"), in.PublicURL, "must be an http(s) URL such as https://agents.example.com"))
		}
	}
	if g := in.Gateway; g != nil {
		p := field.NewPath("gateway")
		for _, msg := range validation.IsDNS1123Subdomain(g.ParentName) {
			errs = append(errs, field.Invalid(p.Child("parent_name"), g.ParentName, msg))
		}
		for i, h := range g.Hostnames {
			for _, msg := range validation.IsDNS1123Subdomain(strings.TrimPrefix(h, "*.")) {
				errs = append(errs, field.Invalid(p.Child("hostnames").Index(i), h, msg))
			}
		}
		if g.PathPrefix != "" && !strings.HasPrefix(g.PathPrefix, "/") {
			errs = append(errs, field.Invalid(p.Child("path_prefix"), g.PathPrefix, "must start with /"))
		}
	}
	if a := in.Autoscaling; a != nil {
		errs = append(errs, validateAutoscaling(field.NewPath("router_autoscaling"), a)...)
	}
	switch in.Mesh {
	case "":
		if in.Waypoint {
			errs = append(errs, field.Invalid(field.NewPath("waypoint"), true, "a waypoint needs mesh = \"istio-ambient\""))
		}
	case MeshIstioAmbient:
		if len(in.AgentNamespaces) == 0 {
			errs = append(errs, field.Required(field.NewPath("agent_namespaces"), "mesh = \"istio-ambient\" enrols the agent namespaces: list them"))
		}
	default:
		errs = append(errs, field.NotSupported(field.NewPath("mesh"), in.Mesh, []string{MeshIstioAmbient}))
	}
	return errs
}

// PlatformPatchTargets are the keys of the platform's objects that patches may target (besides
// role/<namespace>, rolebinding/<namespace> and, with a mesh, meshpolicy/<namespace>; "role/" and "rolebinding/" alone are the
// cluster-wide ones).
var PlatformPatchTargets = []string{"namespace", "serviceaccount", "issuer-ca", "deployment", "service", "hpa", "pdb", "httproute", "waypoint"}

// RouterURL is where clients reach the router: the public URL, else its in-cluster Service.
func (in PlatformInput) RouterURL() string {
	if in.PublicURL != "" {
		return in.PublicURL
	}
	if g := in.Gateway; g != nil && len(g.Hostnames) > 0 {
		return "https://" + g.Hostnames[0] + strings.TrimSuffix(g.PathPrefix, "/")
	}
	return fmt.Sprintf("http://%s.%s.svc.cluster.local", RouterName, in.Namespace)
}

// RenderPlatform expands a platform into its objects, in apply order.
func (r *Renderer) RenderPlatform(in PlatformInput) (*Output, error) {
	if errs := ValidatePlatform(in); len(errs) > 0 {
		return nil, &Error{Errs: errs}
	}
	keys := contract.NewKeys(in.LabelDomain)
	out := &Output{Revision: r.Revision(Input{}), URL: in.RouterURL()}
	selector := map[string]string{"app.kubernetes.io/name": RouterName, keys.Type(): "platform"}
	labels := map[string]string{
		"app.kubernetes.io/name":       RouterName,
		"app.kubernetes.io/managed-by": contract.ManagedBy,
		keys.Type():                    "platform",
		keys.Composite():               in.Namespace,
		keys.Revision():                out.Revision[len("sha256:"):][:16],
	}
	spec, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	args := []string{"-listen=:8080", "-public-url=" + in.RouterURL(), "-label-domain=" + keys.Domain}
	if len(in.AgentNamespaces) > 0 {
		ns := append([]string(nil), in.AgentNamespaces...)
		slices.Sort(ns)
		args = append(args, "-namespaces="+strings.Join(ns, ","))
	}
	if in.Issuer != "" {
		args = append(args, "-issuer="+in.Issuer, "-audience="+in.Audience)
		if in.TokenURL != "" {
			args = append(args, "-token-url="+in.TokenURL)
		}
		if in.IssuerCA != "" {
			args = append(args, "-issuer-ca-file=/etc/kagenti/issuer-ca/ca.crt")
		}
		switch {
		case in.Mounted():
			args = append(args, "-client-id="+in.Audience, "-spiffe-socket="+in.SocketPath())
		case in.ClientSecretName != "":
			args = append(args, "-client-id="+in.Audience, "-client-secret-file=/var/run/kagenti/keycloak/client-secret")
		}
	}
	args = append(args, in.Router.args()...)
	args = append(args, in.Args...)
	data := map[string]any{
		"In": in, "Name": RouterName, "Args": args, "SelectorLabels": selector, "PodLabels": podLabels(in.PodLabels, labels, keys),
		"PodAnnotations": in.PodAnnotations, "Pod": in.podSpec(), "ServiceAccountName": in.ServiceAccountName(RouterName),
		"IssuerCAName":       "",
		"Resources":          in.Resources.withDefaults(RouterResources()),
		"ServiceAnnotations": map[string]string{keys.Spec(): string(spec), keys.URL(): out.URL},
		"Target":             "", "RBACName": RouterName + "-" + in.Namespace,
		// The mesh's policy in each agent namespace: a name with a dot, which no agent's or
		// tool's own policy (named after a DNS label) can take.
		"MeshPolicyName": MeshPolicyName, "IsolatedLabels": map[string]string{keys.Isolated(): "true"},
		"RouterNamespaceLabels": map[string]string{keys.RouterNamespace(): "true"},
		"WaypointName":          WaypointName, "WaypointLabels": map[string]string{WaypointPodLabel: WaypointName},
	}
	render := func(key, file string, data map[string]any) error {
		obj, err := r.renderPlatformObject(file, data)
		if err != nil {
			return fmt.Errorf("render platform object %q: %w", key, err)
		}
		out.Objects = append(out.Objects, Object{Key: key, Object: obj})
		return nil
	}
	if !in.AdoptNamespace {
		if err := render("namespace", "namespace", data); err != nil {
			return nil, err
		}
	}
	if in.ServiceAccount == "" {
		if err := render("serviceaccount", "serviceaccount", data); err != nil {
			return nil, err
		}
	}
	if in.IssuerCA != "" {
		data["IssuerCAName"] = RouterName + "-issuer-ca"
		if err := render("issuer-ca", "issuerca", data); err != nil {
			return nil, err
		}
	}
	targets := append([]string(nil), in.AgentNamespaces...)
	slices.Sort(targets)
	if len(targets) == 0 {
		targets = []string{""}
	}
	for _, ns := range targets {
		d := map[string]any{}
		for k, v := range data {
			d[k] = v
		}
		d["Target"] = ns
		if ns != "" {
			d["RBACName"] = RouterName
		}
		if err := render("role/"+ns, "role", d); err != nil {
			return nil, err
		}
		if err := render("rolebinding/"+ns, "rolebinding", d); err != nil {
			return nil, err
		}
		if ns != "" && in.Mesh == MeshIstioAmbient {
			if err := render("meshpolicy/"+ns, "meshpolicy", d); err != nil {
				return nil, err
			}
		}
	}
	for _, key := range []string{"deployment", "service"} {
		if err := render(key, key, data); err != nil {
			return nil, err
		}
	}
	minReplicas := in.Replicas
	if a := in.Autoscaling; a != nil {
		minReplicas = a.MinReplicas
		if err := render("hpa", "hpa", data); err != nil {
			return nil, err
		}
	}
	if minReplicas > 1 {
		if err := render("pdb", "pdb", data); err != nil {
			return nil, err
		}
	}
	if g := in.Gateway; g != nil {
		data["GatewayNamespace"] = g.ParentNamespace
		if g.ParentNamespace == "" {
			data["GatewayNamespace"] = in.Namespace
		}
		data["PathPrefix"] = g.PathPrefix
		if g.PathPrefix == "" {
			data["PathPrefix"] = "/"
		}
		if err := render("httproute", "httproute", data); err != nil {
			return nil, err
		}
	}
	if in.Waypoint {
		if err := render("waypoint", "waypoint", data); err != nil {
			return nil, err
		}
	}
	for i, patch := range in.Patches {
		p := field.NewPath("composition", "patches").Index(i)
		found := false
		for _, o := range out.Objects {
			if o.Key != patch.Target {
				continue
			}
			found = true
			if err := applyPatch(o.Object, patch); err != nil {
				return nil, &Error{Errs: field.ErrorList{field.Invalid(p.Child("patch"), patch.Patch, err.Error())}}
			}
		}
		if !found {
			var rendered []string
			for _, o := range out.Objects {
				rendered = append(rendered, o.Key)
			}
			return nil, &Error{Errs: field.ErrorList{field.NotSupported(p.Child("target"), patch.Target, rendered)}}
		}
	}
	// Labels are stamped after patches, so that no patch can drop what discovery, pruning and
	// drift detection depend on.
	stamp(out.Objects, in.Workload, labels, keys)
	return out, nil
}

func (r *Renderer) renderPlatformObject(file string, data map[string]any) (*unstructured.Unstructured, error) {
	raw, err := fs.ReadFile(r.files, "templates/platform/"+file+".yaml.tmpl")
	if err != nil {
		return nil, err
	}
	return executeTemplate(file, string(raw), data)
}
