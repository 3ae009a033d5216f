package composition

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

//go:embed templates/*.yaml.tmpl templates/platform/*.yaml.tmpl presets/agent/*.yaml presets/tool/*.yaml
var embedded embed.FS

// Object keys: the stable name of each composed object within a composite, in apply order.
const (
	KeyServiceAccount = "serviceaccount"
	KeyPVC            = "pvc"
	KeyCard           = "card"
	KeyDeployment     = "deployment"
	KeyService        = "service"
	KeyHPA            = "hpa"
	KeyPDB            = "pdb"
	KeyNetworkPolicy  = "networkpolicy"
)

var allObjectKeys = []string{KeyServiceAccount, KeyPVC, KeyCard, KeyNetworkPolicy, KeyDeployment, KeyService, KeyHPA, KeyPDB}

// objectGVK is the kind each key renders; a custom template must keep it, since pruning and
// drift detection look objects up by it.
var objectGVK = map[string]schema.GroupVersionKind{
	KeyServiceAccount: {Version: "v1", Kind: "ServiceAccount"},
	KeyPVC:            {Version: "v1", Kind: "PersistentVolumeClaim"},
	KeyCard:           {Version: "v1", Kind: "ConfigMap"},
	KeyDeployment:     {Group: "apps", Version: "v1", Kind: "Deployment"},
	KeyService:        {Version: "v1", Kind: "Service"},
	KeyHPA:            {Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
	KeyPDB:            {Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
	KeyNetworkPolicy:  {Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
}

// ComposedKinds are every kind a composite may own, for pruning and deletion.
func ComposedKinds() []schema.GroupVersionKind {
	kinds := make([]schema.GroupVersionKind, 0, len(allObjectKeys))
	for _, k := range allObjectKeys {
		kinds = append(kinds, objectGVK[k])
	}
	return kinds
}

// PatchTypes are the supported patch types.
var PatchTypes = []string{"strategic", "merge", "json"}

// Object is one composed Kubernetes object and its stable key.
type Object struct {
	Key    string
	Object *unstructured.Unstructured
}

// Output is the result of rendering a composite.
type Output struct {
	Objects []Object
	// Revision is "sha256:<hex>" of the template set that rendered the objects (embedded
	// templates and presets plus any custom templates).
	Revision string
	// URL is where clients reach the composite inside the cluster (for a tool, its MCP URL).
	URL string
	// Card is the A2A agent card or ACP manifest (JSON) of an agent; empty for tools.
	Card string
}

// Error is a render failure about one attribute.
type Error struct{ Errs field.ErrorList }

func (e *Error) Error() string { return e.Errs.ToAggregate().Error() }

// preset is the per-framework or per-transport data a composition starts from.
type preset struct {
	Port           int64             `json:"port"`
	ProbePath      map[string]string `json:"probePath"`
	Path           string            `json:"path"`
	CheckpointPath string            `json:"checkpointPath"`
	Env            []EnvVar          `json:"env"`
}

// EnvVar is one container environment variable, a value or a Secret reference.
type EnvVar struct {
	Name   string     `json:"name"`
	Value  string     `json:"value,omitempty"`
	Secret *SecretRef `json:"secret,omitempty"`
}

// templateData is what templates see.
type templateData struct {
	In             Input
	Preset         struct{ ProbePath string }
	Port           int64
	Replicas       int64
	Container      string
	Env            []EnvVar
	SelectorLabels map[string]string
	PodLabels      map[string]string
	PodAnnotations map[string]string
	// Pod is the Workload's pod fields shaped as the Kubernetes API takes them.
	Pod                podSpec
	ServiceAccountName string
	ServiceAnnotations map[string]string
	CardName           string
	CardKey            string
	Card               string
	PVCName            string
	MountPath          string
	WorkloadAPI        WorkloadAPI
	Resources          *Resources
	// RouterLabels select the router's pods in the namespaces RouterNamespaceLabels select
	// (those where a platform runs it), the only ones that may call the workload; Egress are
	// the workload's other destinations (NetworkPolicy).
	RouterLabels          map[string]string
	RouterNamespaceLabels map[string]string
	Egress                []EgressRule
	// CardMount is where the agent's card ConfigMap is mounted (cardMount).
	CardMount string
	// CardSigner is the container beside the agent that signs its card, when it has one.
	CardSigner *cardSignerData
}

// cardSignerData is what the templates need of the card signer.
type cardSignerData struct {
	Image    string
	Args     []string
	Port     int
	PortName string
}

// Renderer renders composites from a template set. The zero value is not usable; use
// NewRenderer.
type Renderer struct {
	files fs.FS
	// revision of the embedded set, computed once.
	revision [sha256.Size]byte
	hashed   []byte
}

// NewRenderer returns a renderer over the embedded templates and presets.
func NewRenderer() (*Renderer, error) { return newRenderer(embedded) }

func newRenderer(files fs.FS) (*Renderer, error) {
	var paths []string
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var all bytes.Buffer
	for _, p := range paths {
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&all, "%s\x00%d\x00", p, len(data))
		all.Write(data)
	}
	return &Renderer{files: files, hashed: all.Bytes(), revision: sha256.Sum256(all.Bytes())}, nil
}

// Revision is the revision of the template set an input would be rendered with.
func (r *Renderer) Revision(in Input) string {
	if len(in.Templates) == 0 {
		return "sha256:" + hex.EncodeToString(r.revision[:])
	}
	h := sha256.New()
	h.Write(r.hashed)
	for _, k := range sortedKeys(in.Templates) {
		fmt.Fprintf(h, "custom/%s\x00%d\x00%s", k, len(in.Templates[k]), in.Templates[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// objectKeys are the keys an input renders, in apply order.
func objectKeys(in Input) []string {
	inCluster := in.Image != ""
	var keys []string
	if inCluster && in.ServiceAccount == "" {
		keys = append(keys, KeyServiceAccount)
		if in.Persistence != nil && in.Persistence.Size != "" {
			keys = append(keys, KeyPVC)
		}
	}
	if in.Kind == KindAgent {
		keys = append(keys, KeyCard)
	}
	if inCluster && !in.NoNetworkPolicy {
		// Before the Deployment: its pods start isolated.
		keys = append(keys, KeyNetworkPolicy)
	}
	if inCluster {
		keys = append(keys, KeyDeployment)
	}
	keys = append(keys, KeyService)
	if inCluster {
		if in.Autoscaling != nil {
			keys = append(keys, KeyHPA)
		}
		if minReplicas(in) > 1 {
			keys = append(keys, KeyPDB)
		}
	}
	return keys
}

func minReplicas(in Input) int64 {
	if in.Autoscaling != nil {
		return in.Autoscaling.MinReplicas
	}
	return in.Replicas
}

// Render validates an input and expands it into its objects.
func (r *Renderer) Render(in Input) (*Output, error) {
	if errs := Validate(in); len(errs) > 0 {
		return nil, &Error{Errs: errs}
	}
	keys := contract.NewKeys(in.LabelDomain)
	p, err := r.preset(in)
	if err != nil {
		return nil, err
	}
	port := in.Port
	if port == 0 {
		port = p.Port
	}
	if in.Endpoint != "" && in.Port == 0 {
		port = endpointPort(in.Endpoint)
	}

	out := &Output{Revision: r.Revision(in)}
	switch {
	case in.Endpoint != "":
		out.URL = in.Endpoint
	default:
		out.URL = fmt.Sprintf("http://%s.%s.svc.cluster.local:%d%s", in.Name, in.Namespace, port, p.Path)
	}

	protocol := in.Protocol
	if in.Kind == KindTool {
		protocol = ToolProtocol
	}
	selector := map[string]string{
		"app.kubernetes.io/name": in.Name,
		keys.Type():              string(in.Kind),
	}
	labels := map[string]string{
		"app.kubernetes.io/name":       in.Name,
		"app.kubernetes.io/managed-by": contract.ManagedBy,
		keys.Type():                    string(in.Kind),
		keys.Composite():               in.Name,
		keys.Protocol():                protocol,
		keys.Revision():                strings.TrimPrefix(out.Revision, "sha256:")[:16],
	}
	if in.Kind == KindAgent {
		labels[keys.Framework()] = in.Framework
	} else {
		labels[keys.Transport()] = in.Transport
	}
	pod := podLabels(in.PodLabels, labels, keys)
	if slices.Contains(objectKeys(in), KeyNetworkPolicy) {
		pod[keys.Isolated()] = "true"
	}

	data := templateData{
		In:                 in,
		Port:               port,
		Container:          string(in.Kind),
		SelectorLabels:     selector,
		PodLabels:          pod,
		PodAnnotations:     in.PodAnnotations,
		Pod:                in.podSpec(),
		ServiceAccountName: in.ServiceAccountName(in.Name),
		CardName:           contract.CardConfigMapName(in.Name),
		Resources:          containerResources(in.Resources, in.Autoscaling != nil),
	}
	data.Preset.ProbePath = p.ProbePath[in.Protocol]
	if in.Autoscaling == nil {
		data.Replicas = in.Replicas
		if data.Replicas == 0 {
			data.Replicas = 1
		}
	}
	if in.Persistence != nil && in.Persistence.Size != "" {
		data.PVCName = in.Name + "-data"
		data.MountPath = in.Persistence.MountPath
		if data.MountPath == "" {
			data.MountPath = p.CheckpointPath
		}
	}
	if in.Identity != nil {
		data.WorkloadAPI = in.Identity.WorkloadAPI
	}
	data.Env = composeEnv(in, p, port, data.MountPath)
	data.RouterLabels = map[string]string{"app.kubernetes.io/name": RouterName, keys.Type(): "platform"}
	data.RouterNamespaceLabels = map[string]string{keys.RouterNamespace(): "true"}
	data.Egress = workloadEgress(in)
	data.CardMount = cardMount(in)
	if id := in.Identity; id != nil && id.CardSigner != nil {
		data.CardSigner = &cardSignerData{
			Image: id.CardSigner.Image, Port: contract.CardSignerPort, PortName: contract.CardSignerPortName,
			Args: []string{contract.CardSignerCommand, fmt.Sprintf("-listen=:%d", contract.CardSignerPort),
				"-card-file=" + data.CardMount + "/" + contract.CardKey, "-spiffe-socket=unix://" + id.SocketPath()},
		}
	}

	spec, err := json.Marshal(in.Published())
	if err != nil {
		return nil, err
	}
	data.ServiceAnnotations = map[string]string{keys.Spec(): string(spec), keys.URL(): out.URL}
	if in.Endpoint != "" {
		data.ServiceAnnotations[keys.Endpoint()] = in.Endpoint
	}
	if in.ExposeAsTool {
		data.ServiceAnnotations[keys.ExposeAsTool()] = "true"
	}
	if id := in.Identity; id != nil && id.Client != nil {
		policy, err := json.Marshal(contract.Policy{
			Audience: id.SPIFFEID, AudienceScope: audienceScope(id.SPIFFEID), AllowedCallers: id.Client.AllowedCallers,
		})
		if err != nil {
			return nil, err
		}
		data.ServiceAnnotations[keys.Policy()] = string(policy)
	}
	if in.Kind == KindAgent {
		card, key, err := agentCard(in, out.URL)
		if err != nil {
			return nil, err
		}
		out.Card, data.Card, data.CardKey = card, card, key
	}

	for _, key := range objectKeys(in) {
		obj, err := r.renderObject(in, key, data)
		if err != nil {
			return nil, err
		}
		out.Objects = append(out.Objects, Object{Key: key, Object: obj})
	}
	for i, patch := range in.Patches {
		p := field.NewPath("composition", "patches").Index(i)
		for _, o := range out.Objects {
			if o.Key != patch.Target {
				continue
			}
			if err := applyPatch(o.Object, patch); err != nil {
				return nil, &Error{Errs: field.ErrorList{field.Invalid(p.Child("patch"), patch.Patch, err.Error())}}
			}
		}
	}
	for _, o := range out.Objects {
		o.Object.SetNamespace(in.Namespace)
	}
	// Labels and the key are set after templates and patches so that no custom template or patch
	// can drop them: discovery, pruning and drift detection depend on them.
	stamp(out.Objects, in.Workload, labels, keys)
	return out, nil
}

// podLabels are the labels of a pod template: the user's, then the composite's without the
// composition revision, so that a new template set (a provider upgrade) that renders the same
// pods does not restart every workload. The objects themselves carry the revision.
func podLabels(user, labels map[string]string, keys contract.Keys) map[string]string {
	pod := maps.Clone(user)
	if pod == nil {
		pod = map[string]string{}
	}
	maps.Copy(pod, labels)
	delete(pod, keys.Revision())
	return pod
}

// stamp sets the user's labels and annotations on every object, then the composite's labels and
// each object's key annotation, which win.
func stamp(objs []Object, w Workload, labels map[string]string, keys contract.Keys) {
	for _, o := range objs {
		l := o.Object.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, w.Labels)
		maps.Copy(l, labels)
		o.Object.SetLabels(l)
		a := o.Object.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		maps.Copy(a, w.Annotations)
		a[keys.ResourceName()] = o.Key
		o.Object.SetAnnotations(a)
	}
}

// executeTemplate renders one object's Go template (missing keys are errors; only quote and
// toJSON are available) and decodes the YAML.
func executeTemplate(name, text string, data any) (*unstructured.Unstructured, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rendered YAML: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(j); err != nil {
		return nil, fmt.Errorf("rendered object: %w", err)
	}
	return obj, nil
}

func (r *Renderer) preset(in Input) (*preset, error) {
	name := "presets/agent/" + in.Framework + ".yaml"
	if in.Kind == KindTool {
		name = "presets/tool/" + in.Transport + ".yaml"
	}
	raw, err := fs.ReadFile(r.files, name)
	if err != nil {
		return nil, fmt.Errorf("composition preset %s: %w", name, err)
	}
	var p preset
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return nil, fmt.Errorf("composition preset %s: %w", name, err)
	}
	return &p, nil
}

var funcs = template.FuncMap{
	// quote renders a string as a JSON string, which is also a valid YAML scalar: no value can
	// break out of its field.
	"quote": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
	"toJSON": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

func (r *Renderer) renderObject(in Input, key string, data templateData) (*unstructured.Unstructured, error) {
	text, custom := in.Templates[key]
	errPath := field.NewPath("composition", "templates").Key(key)
	if !custom {
		raw, err := fs.ReadFile(r.files, path.Join("templates", key+".yaml.tmpl"))
		if err != nil {
			return nil, fmt.Errorf("composition template %s: %w", key, err)
		}
		text = string(raw)
	}
	fail := func(err error) error {
		if custom {
			return &Error{Errs: field.ErrorList{field.Invalid(errPath, "(template)", err.Error())}}
		}
		return fmt.Errorf("render composed object %q: %w", key, err)
	}
	obj, err := executeTemplate(key, text, data)
	if err != nil {
		return nil, fail(err)
	}
	if gvk := obj.GroupVersionKind(); gvk != objectGVK[key] {
		return nil, fail(fmt.Errorf("renders a %s, want a %s", gvk, objectGVK[key]))
	}
	if obj.GetName() == "" {
		return nil, fail(fmt.Errorf("rendered object has no metadata.name"))
	}
	return obj, nil
}

// composeEnv merges, in increasing precedence: the preset's env, the platform wiring (HOST,
// PORT, LLM, tools, checkpoint store, OTEL), then the user's env and secret env. The result is
// sorted by name so that rendering is deterministic.
// cardMount is where an A2A agent that runs in the cluster finds its own card (from its card
// ConfigMap), to serve it signed with its X509-SVID; "" for other workloads.
func cardMount(in Input) string {
	if in.Kind != KindAgent || in.Image == "" || in.Protocol != "a2a" {
		return ""
	}
	return "/etc/kagenti/card"
}

func composeEnv(in Input, p *preset, port int64, mountPath string) []EnvVar {
	env := map[string]EnvVar{}
	set := func(name, value string) { env[name] = EnvVar{Name: name, Value: value} }
	for _, e := range p.Env {
		env[e.Name] = e
	}
	set("HOST", "0.0.0.0")
	set("PORT", strconv.FormatInt(port, 10))
	if l := in.LLM; l != nil {
		set("LLM_API_BASE", l.BaseURL)
		set("LLM_MODEL", l.Model)
		if l.APIKey != nil {
			ref := *l.APIKey
			env["LLM_API_KEY"] = EnvVar{Name: "LLM_API_KEY", Secret: &ref}
		}
	}
	if len(in.Tools) > 0 {
		// MCP_URL and MCP_TRANSPORT describe one tool, the first; MCP_URLS and MCP_TRANSPORTS
		// every tool, in the same order, so that an agent with tools on different transports
		// speaks each one's.
		urls := make([]string, len(in.Tools))
		transports := make([]string, len(in.Tools))
		for i, t := range in.Tools {
			urls[i], transports[i] = t.URL, t.Transport
		}
		set("MCP_URL", urls[0])
		set("MCP_TRANSPORT", transports[0])
		set("MCP_URLS", strings.Join(urls, ","))
		set("MCP_TRANSPORTS", strings.Join(transports, ","))
	}
	if mountPath != "" {
		set("CHECKPOINT_DIR", mountPath)
	}
	if in.Persistence != nil && in.Persistence.Store != nil {
		ref := *in.Persistence.Store
		env["CHECKPOINT_STORE_URL"] = EnvVar{Name: "CHECKPOINT_STORE_URL", Secret: &ref}
	}
	if id := in.Identity; id != nil {
		set("SPIFFE_ID", id.SPIFFEID)
		if id.Mounted() {
			set("SPIFFE_ENDPOINT_SOCKET", "unix://"+id.SocketPath())
		}
		if c := id.Client; c != nil {
			set("CLIENT_ID", id.SPIFFEID)
			if c.Authentication == AuthClientSecret {
				// From the Secret the provider stores it in: the value never enters the
				// template, the spec annotation or Terraform state.
				env["CLIENT_SECRET"] = EnvVar{Name: "CLIENT_SECRET", Secret: &SecretRef{Secret: contract.ClientSecretName(in.Name), Key: contract.ClientSecretKey}}
			}
			for name, v := range map[string]string{"ISSUER": c.Issuer, "JWKS_URI": c.JWKSURI, "TOKEN_URL": c.TokenURL} {
				if v != "" {
					set(name, v)
				}
			}
		}
	}
	if dir := cardMount(in); dir != "" {
		set("KAGENTI_AGENT_CARD_FILE", dir+"/"+contract.CardKey)
	}
	if in.OTELEndpoint != "" {
		set("OTEL_EXPORTER_OTLP_ENDPOINT", in.OTELEndpoint)
		set("OTEL_SERVICE_NAME", in.Name)
	}
	for k, v := range in.Env {
		set(k, v)
	}
	for k, ref := range in.SecretEnv {
		ref := ref
		env[k] = EnvVar{Name: k, Secret: &ref}
	}
	out := make([]EnvVar, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, env[k])
	}
	return out
}

// audienceScope names the Keycloak client scope that grants tokens for a client id; it must
// match the keycloak package's AudienceScopeName (the composition may not import it: no I/O
// packages here).
func audienceScope(clientID string) string {
	var b strings.Builder
	b.WriteString("kagenti-aud-")
	under := false
	for _, r := range strings.TrimPrefix(clientID, "spiffe://") {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		switch {
		case ok:
			b.WriteRune(r)
			under = false
		case !under:
			b.WriteRune('_')
			under = true
		}
	}
	return b.String()
}

func endpointPort(endpoint string) int64 {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 80
	}
	if _, p, err := net.SplitHostPort(u.Host); err == nil {
		if n, err := strconv.ParseInt(p, 10, 64); err == nil {
			return n
		}
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// applyPatch changes obj in place.
func applyPatch(obj *unstructured.Unstructured, p Patch) error {
	patch, err := yaml.YAMLToJSON([]byte(p.Patch))
	if err != nil {
		return fmt.Errorf("patch is neither YAML nor JSON: %w", err)
	}
	original, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	var patched []byte
	switch p.Type {
	case "strategic":
		typed, err := scheme.Scheme.New(obj.GroupVersionKind())
		if err != nil {
			return fmt.Errorf("strategic merge patch of a %s: %w", obj.GetKind(), err)
		}
		patched, err = strategicpatch.StrategicMergePatch(original, patch, typed)
		if err != nil {
			return fmt.Errorf("strategic merge patch: %w", err)
		}
	case "merge":
		patched, err = jsonpatch.MergePatch(original, patch)
		if err != nil {
			return fmt.Errorf("merge patch: %w", err)
		}
	case "json":
		ops, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return fmt.Errorf("json patch: %w", err)
		}
		patched, err = ops.Apply(original)
		if err != nil {
			return fmt.Errorf("json patch: %w", err)
		}
	default:
		return fmt.Errorf("unknown patch type %q", p.Type)
	}
	result := &unstructured.Unstructured{}
	if err := result.UnmarshalJSON(patched); err != nil {
		return fmt.Errorf("patched object: %w", err)
	}
	if result.GroupVersionKind() != obj.GroupVersionKind() || result.GetName() != obj.GetName() {
		return fmt.Errorf("a patch may not change the object's apiVersion, kind or name")
	}
	obj.Object = result.Object
	return nil
}
