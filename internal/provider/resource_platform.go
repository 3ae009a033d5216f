package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

var (
	_ resource.Resource                = &platformResource{}
	_ resource.ResourceWithConfigure   = &platformResource{}
	_ resource.ResourceWithImportState = &platformResource{}
	_ resource.ResourceWithModifyPlan  = &platformResource{}
)

// NewPlatformResource returns the kagenti_platform resource.
func NewPlatformResource() resource.Resource { return &platformResource{} }

// platformResource runs kagenti-router in its own namespace, with least-privilege RBAC in the
// namespaces it serves and, with token exchange, its own workload identity.
type platformResource struct {
	data *providerData
}

type platformResourceModel struct {
	ID              types.String   `tfsdk:"id"`
	Namespace       types.String   `tfsdk:"namespace"`
	AgentNamespaces types.List     `tfsdk:"agent_namespaces"`
	RouterImage     types.String   `tfsdk:"router_image"`
	RouterReplicas  types.Int64    `tfsdk:"router_replicas"`
	PublicURL       types.String   `tfsdk:"public_url"`
	TokenExchange   types.Bool     `tfsdk:"token_exchange"`
	Gateway         types.Object   `tfsdk:"gateway"`
	Mesh            types.String   `tfsdk:"mesh"`
	Waypoint        types.Bool     `tfsdk:"waypoint"`
	Autoscaling     types.Object   `tfsdk:"router_autoscaling"`
	Resources       types.Object   `tfsdk:"router_resources"`
	Labels          types.Map      `tfsdk:"labels"`
	Annotations     types.Map      `tfsdk:"annotations"`
	RouterPod       types.Object   `tfsdk:"router_pod"`
	CreateNamespace types.Bool     `tfsdk:"create_namespace"`
	RouterSettings  types.Object   `tfsdk:"router_settings"`
	Composition     types.Object   `tfsdk:"composition"`
	WaitForRollout  types.Bool     `tfsdk:"wait_for_rollout"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`

	RouterURL      types.String `tfsdk:"router_url"`
	RouterClientID types.String `tfsdk:"router_client_id"`
	RouterScope    types.String `tfsdk:"router_audience_scope"`
	Revision       types.String `tfsdk:"revision"`
	Objects        types.List   `tfsdk:"objects"`
}

type routerSettingsModel struct {
	MaxHeaderBytes  types.Int64  `tfsdk:"max_header_bytes"`
	UpstreamTimeout types.String `tfsdk:"upstream_timeout"`
	Drain           types.String `tfsdk:"drain"`
	LogLevel        types.String `tfsdk:"log_level"`
	CardVerify      types.String `tfsdk:"card_verification"`
}

type platformCompositionModel struct {
	Patches []patchModel `tfsdk:"patches"`
}

var (
	routerSettingsAttrTypes = map[string]attr.Type{"max_header_bytes": types.Int64Type, "upstream_timeout": types.StringType,
		"drain": types.StringType, "log_level": types.StringType, "card_verification": types.StringType}
	platformCompositionAttrTypes = map[string]attr.Type{"patches": types.ListType{ElemType: types.ObjectType{AttrTypes: patchAttrTypes}}}
)

func (r *platformResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_platform"
}

func (r *platformResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = rschema.Schema{
		MarkdownDescription: "The Kagenti platform: a namespace running kagenti-router, the A2A/ACP front door every agent is reached " +
			"through. It creates the namespace, the router's ServiceAccount, read-only RBAC (Services and ConfigMaps) in the agent " +
			"namespaces it serves, the Deployment, Service and PodDisruptionBudget, and with `token_exchange` the router's own " +
			"workload identity (SPIRE entry and Keycloak client). Deleting it removes all of it, namespace included.",
		Attributes: map[string]rschema.Attribute{
			"id": rschema.StringAttribute{
				MarkdownDescription: "The platform namespace; also the import ID.", Computed: true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"namespace": rschema.StringAttribute{
				MarkdownDescription: "Namespace of the platform. With `create_namespace` (the default) the platform creates and owns it " +
					"(it must not exist yet) and deletes it on destroy; without, it must exist and is left alone. Changing it replaces the platform.",
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.RegexMatches(dns1123Label, "must be a DNS-1123 label")},
			},
			"create_namespace": rschema.BoolAttribute{
				MarkdownDescription: "Create the namespace and delete it on destroy (default `true`). Set `false` to adopt a namespace " +
					"that exists, such as an OpenShift project or one managed by policy: the platform then only adds its objects to it. " +
					"It cannot change on an existing platform (the namespace would be deleted or left ownerless): replace the platform instead.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
			},
			"router_settings": rschema.SingleNestedAttribute{
				MarkdownDescription: "kagenti-router's own settings; unset ones keep the router's defaults.",
				Optional:            true,
				Attributes: map[string]rschema.Attribute{
					"max_header_bytes": rschema.Int64Attribute{
						MarkdownDescription: "Largest request line and headers accepted, in bytes (default 8192; 431 above). Each open connection holds a buffer of this size.",
						Optional:            true, Validators: []validator.Int64{int64validator.Between(1024, 1<<20)},
					},
					"upstream_timeout": rschema.StringAttribute{
						MarkdownDescription: "Timeout of a non-streaming call to an agent, e.g. `5m` (default `2m`: LLM answers are slow).",
						Optional:            true, Validators: []validator.String{durationBetween(time.Second, time.Hour)},
					},
					"drain": rschema.StringAttribute{
						MarkdownDescription: "How long in-flight requests and streams may finish when a router pod stops, e.g. `45s` (default `20s`). " +
							"Keep it below the pod's termination grace period (30s) or patch that too.",
						Optional: true, Validators: []validator.String{durationBetween(time.Second, 10*time.Minute)},
					},
					"log_level": rschema.StringAttribute{
						MarkdownDescription: "`debug`, `info` (the default), `warn` or `error`.",
						Optional:            true, Validators: []validator.String{stringvalidator.OneOf(composition.RouterLogLevels...)},
					},
					"card_verification": rschema.StringAttribute{
						MarkdownDescription: "Whether the router binds A2A agents' cards to their identities: `off` (the default), `permissive` " +
							"or `strict`. The router fetches the card an agent serves at `/.well-known/agent-card.json` (the agent signs " +
							"the card the composition mounts at `KAGENTI_AGENT_CARD_FILE` with its X509-SVID: a JWS with the SVID's " +
							"chain in `x5c`, A2A's `AgentCardSignature`), and checks the chain against the SPIRE trust bundle, that the " +
							"signer is the SPIFFE ID registered for the agent, and that the signed card is the registered one. " +
							"`permissive` counts and logs failures (`kagenti_router_card_verification_failures_total`); `strict` also " +
							"neither serves nor calls such an agent. Needs the Workload API in the router (provider `spire.workload_api_*`).",
						Optional: true, Validators: []validator.String{stringvalidator.OneOf(contract.CardVerificationModes...)},
					},
				},
			},
			"composition": rschema.SingleNestedAttribute{
				MarkdownDescription: "Changes to the composed objects after rendering, for fields no attribute has.",
				Optional:            true,
				Attributes: map[string]rschema.Attribute{
					"patches": rschema.ListNestedAttribute{
						MarkdownDescription: "Patches applied in order. `target` is an object's key: " + strings.Join(composition.PlatformPatchTargets, ", ") +
							", `role/<agent namespace>`, `rolebinding/<agent namespace>` (`role/` and `rolebinding/` for the cluster-wide ones), and with `mesh` `meshpolicy/<agent namespace>`.",
						Optional: true,
						NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
							"target": rschema.StringAttribute{MarkdownDescription: "Key of the object to patch.", Required: true},
							"type": rschema.StringAttribute{
								MarkdownDescription: "`strategic` (Kubernetes strategic merge), `merge` (RFC 7386) or `json` (RFC 6902).",
								Required:            true, Validators: []validator.String{stringvalidator.OneOf(composition.PatchTypes...)},
							},
							"patch": rschema.StringAttribute{MarkdownDescription: "The patch, in YAML or JSON.", Required: true},
						}},
					},
				},
			},
			"agent_namespaces": rschema.ListAttribute{
				MarkdownDescription: "Namespaces whose agents and tools the router serves (it gets read access there only). Empty: all namespaces, with cluster-wide read access.",
				Optional:            true, ElementType: types.StringType,
				Validators: []validator.List{listvalidator.UniqueValues(), listvalidator.ValueStringsAre(stringvalidator.RegexMatches(dns1123Label, "must be a DNS-1123 label"))},
			},
			"router_image": rschema.StringAttribute{
				MarkdownDescription: "Router image. Defaults to `ghcr.io/kagenti/kagenti-router:<provider version>`, the " +
					"linux/amd64 and linux/arm64 image index each release publishes. To pull from a private registry, copy that " +
					"index there and set this to the copy, pinned by digest: see the router guide.",
				Optional: true, Computed: true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"router_replicas": rschema.Int64Attribute{
				MarkdownDescription: "Router pods (default 2; more than one adds a PodDisruptionBudget). Conflicts with " +
					"`router_autoscaling`, whose HorizontalPodAutoscaler owns the count.",
				Optional: true, Computed: true, Default: int64default.StaticInt64(2),
				Validators: []validator.Int64{int64validator.Between(1, 100),
					int64validator.ConflictsWith(path.MatchRoot("router_autoscaling"))},
			},
			"router_resources": resourcesAttribute("Compute resources of the router's container, over the defaults: " +
				describeResources(composition.RouterResources()) + " (it holds about 60 MiB with 1,000 " +
				"open streams). The router keeps its Go heap under 90% of the memory limit."),
			"router_autoscaling": rschema.SingleNestedAttribute{
				MarkdownDescription: "Scale the router on CPU with a HorizontalPodAutoscaler instead of `router_replicas`.",
				Optional:            true,
				Attributes: map[string]rschema.Attribute{
					"min_replicas":           rschema.Int64Attribute{MarkdownDescription: "Lower bound.", Required: true, Validators: []validator.Int64{int64validator.AtLeast(1)}},
					"max_replicas":           rschema.Int64Attribute{MarkdownDescription: "Upper bound.", Required: true, Validators: []validator.Int64{int64validator.AtLeast(1)}},
					"target_cpu_utilization": rschema.Int64Attribute{MarkdownDescription: "CPU utilization to aim for (1-100).", Required: true, Validators: []validator.Int64{int64validator.Between(1, 100)}},
				},
			},
			"public_url": rschema.StringAttribute{
				MarkdownDescription: "URL clients reach the router at (agent cards are rewritten to it); default its in-cluster Service URL.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http(s) URL such as https://agents.example.com")},
			},
			"token_exchange": rschema.BoolAttribute{
				MarkdownDescription: "Validate callers' Keycloak tokens and exchange them for each callee (needs the provider's `spire` and " +
					"`keycloak`). The router gets its own identity; callers request tokens for `router_client_id`, and each agent lists it in " +
					"its `allowed_callers`.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"gateway": rschema.SingleNestedAttribute{
				MarkdownDescription: "Attach the router to an existing Gateway API Gateway with an HTTPRoute (needs the Gateway API CRDs; " +
					"a cluster without them gives a clear error at apply). Without `public_url`, the router's URL follows from the first hostname.",
				Optional: true,
				Attributes: map[string]rschema.Attribute{
					"parent_name":      rschema.StringAttribute{MarkdownDescription: "Name of the Gateway.", Required: true},
					"parent_namespace": rschema.StringAttribute{MarkdownDescription: "Namespace of the Gateway (default: the platform's).", Optional: true},
					"section_name":     rschema.StringAttribute{MarkdownDescription: "Listener of the Gateway to attach to.", Optional: true},
					"hostnames":        rschema.ListAttribute{MarkdownDescription: "Hostnames the route answers for.", Optional: true, ElementType: types.StringType},
					"path_prefix": rschema.StringAttribute{
						MarkdownDescription: "Path prefix the router is served under (stripped before it reaches the router; default `/`).", Optional: true,
					},
				},
			},
			"mesh": rschema.StringAttribute{
				MarkdownDescription: "`istio-ambient`: enrol the agent namespaces in Istio's ambient mode (label `istio.io/dataplane-mode=ambient`, " +
					"set under its own field manager so that removing the option removes exactly that label), and put in each a NetworkPolicy `kagenti.mesh` " +
					"that admits ambient's kubelet probes (from `169.254.7.127`) and, with `waypoint`, the waypoint's pods to the agents and tools their own NetworkPolicies isolate.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.OneOf(composition.MeshIstioAmbient)},
			},
			"waypoint": rschema.BoolAttribute{
				MarkdownDescription: "With `mesh`, an Istio waypoint (Gateway `waypoint`, class `istio-waypoint`) in the platform namespace, which the router's Service uses (label `istio.io/use-waypoint`).",
				Optional:            true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"wait_for_rollout": rschema.BoolAttribute{
				MarkdownDescription: "Wait until the router Deployment is Available (default `true`).",
				Optional:            true, Computed: true, Default: booldefault.StaticBool(true),
			},
			"timeouts": timeoutsAttribute(ctx, map[string]time.Duration{"create": defaultCreateTimeout, "update": defaultCreateTimeout, "delete": defaultDeleteTimeout}),
			"router_url": rschema.StringAttribute{
				MarkdownDescription: "Where clients reach the router.", Computed: true,
			},
			"router_client_id": rschema.StringAttribute{
				MarkdownDescription: "Keycloak client id of the router (its SPIFFE ID), with `token_exchange`.", Computed: true,
			},
			"router_audience_scope": rschema.StringAttribute{
				MarkdownDescription: "The Keycloak client scope a caller requests (`scope=`) to get a token addressed to the router, " +
					"with `token_exchange`.", Computed: true,
			},
			"revision": rschema.StringAttribute{MarkdownDescription: "`sha256:` of the composition templates.", Computed: true},
			"objects":  objectsAttribute(),
		},
	}
	maps.Copy(resp.Schema.Attributes, workloadAttributes("router_pod", "router"))
}

func (r *platformResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	pd := providerDataFrom(req.ProviderData, &resp.Diagnostics)
	if pd == nil {
		return
	}
	r.data = pd
}

func (r *platformResource) engine() *compositeEngine {
	return &compositeEngine{data: r.data, kind: "platform"}
}

// input builds the platform input; resolve connects to SPIRE and Keycloak for the router's
// identity and the realm's URLs (not while planning).
func (r *platformResource) input(ctx context.Context, m *platformResourceModel, resolve bool) (composition.PlatformInput, *composition.Input, diag.Diagnostics) {
	var diags diag.Diagnostics
	in := composition.PlatformInput{
		Namespace: m.Namespace.ValueString(), LabelDomain: r.data.labelDomain, Image: m.RouterImage.ValueString(),
		Replicas: m.RouterReplicas.ValueInt64(), PublicURL: m.PublicURL.ValueString(),
	}
	if in.Image == "" {
		in.Image = r.data.defaultRouterImage()
	}
	in.AgentNamespaces = knownStrings(m.AgentNamespaces)
	in.Mesh, in.Waypoint = m.Mesh.ValueString(), m.Waypoint.ValueBool()
	if !m.Autoscaling.IsNull() && !m.Autoscaling.IsUnknown() {
		var a autoscalingModel
		diags.Append(m.Autoscaling.As(ctx, &a, basetypes.ObjectAsOptions{})...)
		in.Autoscaling = &composition.Autoscaling{MinReplicas: a.MinReplicas.ValueInt64(), MaxReplicas: a.MaxReplicas.ValueInt64(),
			TargetCPUUtilization: a.TargetCPUUtilization.ValueInt64()}
	}
	if res, ok, d := resourcesFromModel(ctx, m.Resources); ok {
		diags.Append(d...)
		in.Resources = res
	}
	// Unknown settings (from resources created in the same apply) render as empty while
	// planning; the apply has them.
	if w, known, d := workloadFromModel(ctx, m.Labels, m.Annotations, m.RouterPod); known {
		diags.Append(d...)
		in.Workload = w
	}
	in.AdoptNamespace = !m.CreateNamespace.IsNull() && !m.CreateNamespace.IsUnknown() && !m.CreateNamespace.ValueBool()
	if fullyKnown(ctx, m.RouterSettings) && !m.RouterSettings.IsNull() {
		var s routerSettingsModel
		diags.Append(m.RouterSettings.As(ctx, &s, basetypes.ObjectAsOptions{})...)
		in.Router = &composition.RouterSettings{MaxHeaderBytes: s.MaxHeaderBytes.ValueInt64(), UpstreamTimeout: s.UpstreamTimeout.ValueString(),
			Drain: s.Drain.ValueString(), LogLevel: s.LogLevel.ValueString(), CardVerification: s.CardVerify.ValueString()}
	}
	if fullyKnown(ctx, m.Composition) && !m.Composition.IsNull() {
		var c platformCompositionModel
		diags.Append(m.Composition.As(ctx, &c, basetypes.ObjectAsOptions{})...)
		for _, p := range c.Patches {
			in.Patches = append(in.Patches, composition.Patch{Target: p.Target.ValueString(), Type: p.Type.ValueString(), Patch: p.Patch.ValueString()})
		}
	}
	if !m.Gateway.IsNull() && !m.Gateway.IsUnknown() {
		var g struct {
			ParentName      types.String `tfsdk:"parent_name"`
			ParentNamespace types.String `tfsdk:"parent_namespace"`
			SectionName     types.String `tfsdk:"section_name"`
			Hostnames       types.List   `tfsdk:"hostnames"`
			PathPrefix      types.String `tfsdk:"path_prefix"`
		}
		diags.Append(m.Gateway.As(ctx, &g, basetypes.ObjectAsOptions{})...)
		in.Gateway = &composition.GatewayRef{ParentName: g.ParentName.ValueString(), ParentNamespace: g.ParentNamespace.ValueString(),
			SectionName: g.SectionName.ValueString(), Hostnames: knownStrings(g.Hostnames), PathPrefix: g.PathPrefix.ValueString()}
	}
	if !m.TokenExchange.ValueBool() {
		return in, nil, diags
	}
	// With the SPIRE agents' Workload API on the nodes the router logs in with its JWT-SVID;
	// without it, with a generated secret kept in a Kubernetes Secret.
	auth := keycloak.AuthClientSecret
	if r.data.workloadAPI.Mounted() {
		auth = keycloak.AuthFederatedJWT
	}
	identity := &composition.Input{Kind: "platform", Name: composition.RouterName, Namespace: in.Namespace,
		Identity: &composition.Identity{Client: &composition.IdentityClient{Authentication: auth, TokenExchange: true}}}
	if err := r.engine().resolveIdentity(ctx, identity, !resolve); err != nil {
		diags.AddAttributeError(path.Root("token_exchange"), "Router Identity Unavailable", err.Error())
		return in, nil, diags
	}
	in.Audience = identity.Identity.SPIFFEID
	// A Keycloak behind a private CA: the router trusts the CA the provider does (set at plan
	// too, so that the plan lists the ConfigMap that carries it).
	in.IssuerCA = r.data.keycloakConfig.RootCACertificate
	in.WorkloadAPI = identity.Identity.WorkloadAPI
	if resolve {
		in.Issuer, in.TokenURL = identity.Identity.Client.Issuer, identity.Identity.Client.TokenURL
		if auth == keycloak.AuthClientSecret {
			in.ClientSecretName = composition.RouterName + "-keycloak"
		}
	}
	return in, identity, diags
}

func (r *platformResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan platformResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.Namespace.IsUnknown() || plan.AgentNamespaces.IsUnknown() {
		return
	}
	if plan.RouterImage.IsUnknown() || plan.RouterImage.IsNull() {
		plan.RouterImage = types.StringValue(r.data.defaultRouterImage())
	}
	in, identity, diags := r.input(ctx, &plan, false)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if errs := composition.ValidatePlatform(in); len(errs) > 0 {
		resp.Diagnostics.Append(renderErrorDiags(&composition.Error{Errs: errs}, "Invalid Platform Configuration")...)
		return
	}
	if !req.State.Raw.IsNull() {
		var state platformResourceModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if !plan.CreateNamespace.IsUnknown() && !state.CreateNamespace.IsNull() && !plan.CreateNamespace.Equal(state.CreateNamespace) {
			resp.Diagnostics.AddAttributeError(path.Root("create_namespace"), "Namespace Ownership Cannot Change",
				fmt.Sprintf("create_namespace was %s for platform %s and cannot change in place: the platform would delete the namespace "+
					"(with everything in it) or leave one it created without an owner. Keep the old value, or replace the platform "+
					"(terraform apply -replace) after moving what else runs in the namespace.", state.CreateNamespace, in.Namespace))
			return
		}
	}
	// The same plan as agents and tools: the objects the apply will leave, in sync. Drift
	// recorded by the last refresh therefore shows as a change, and the apply repairs it.
	out, err := r.data.renderer.RenderPlatform(in)
	if err != nil {
		resp.Diagnostics.Append(renderErrorDiags(err, "Invalid Platform Configuration")...)
		return
	}
	objects, d := plannedObjects(ctx, out)
	resp.Diagnostics.Append(d...)
	plan.Objects = objects
	plan.Revision = types.StringValue(out.Revision)
	plan.ID = types.StringValue(in.Namespace)
	plan.RouterURL = types.StringValue(in.RouterURL())
	plan.setRouterClientID(types.StringNull())
	if identity != nil {
		plan.setRouterClientID(types.StringValue(identity.Identity.SPIFFEID))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *platformResource) selector(ns string) kube.CompositeSelector {
	keys := contract.NewKeys(r.data.labelDomain)
	// Namespace "": the platform's objects live in its namespace, the agent namespaces and at
	// cluster scope.
	return kube.CompositeSelector{Labels: map[string]string{keys.Type(): "platform", keys.Composite(): ns}, Kinds: composition.PlatformKinds()}
}

// enrolManager is the field manager of the labels the platform puts on agent namespaces.
const enrolManager = "kagenti-platform"

// enrol labels the agent namespaces (<label_domain>/platform = the platform namespace, and for
// the mesh istio.io/dataplane-mode = ambient) and its own (<label_domain>/router-namespace) and
// takes the labels off namespaces that are no longer enrolled (prior are those enrolled before). Only the labels are ours: the namespaces are
// not, so they are never deleted.
func (r *platformResource) enrol(ctx context.Context, applier *kube.Applier, in composition.PlatformInput, prior []string) error {
	keys := contract.NewKeys(r.data.labelDomain)
	want := map[string]map[string]any{}
	for _, ns := range in.AgentNamespaces {
		want[ns] = map[string]any{keys.Platform(): in.Namespace}
		if in.Mesh == composition.MeshIstioAmbient {
			want[ns]["istio.io/dataplane-mode"] = "ambient"
		}
	}
	if in.Namespace != "" {
		// Where the router runs: agents' NetworkPolicies admit its pods from here.
		if want[in.Namespace] == nil {
			want[in.Namespace] = map[string]any{}
		}
		want[in.Namespace][keys.RouterNamespace()] = "true"
	}
	for ns, labels := range want {
		if _, err := applier.ApplyAs(ctx, namespaceLabels(ns, labels), enrolManager); err != nil {
			return err
		}
	}
	for _, ns := range prior {
		if want[ns] != nil {
			continue
		}
		if exists, err := applier.NamespaceExists(ctx, ns); err != nil || !exists {
			continue
		}
		// Applying the namespace without the label releases it: SSA removes what this manager
		// no longer sets.
		if _, err := applier.ApplyAs(ctx, namespaceLabels(ns, nil), enrolManager); err != nil {
			return err
		}
	}
	return nil
}

func namespaceLabels(ns string, labels map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": ns}
	if labels != nil {
		meta["labels"] = labels
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": meta}}
}

// enrolled lists the namespaces a state had labelled: its agent namespaces and its own.
func enrolled(m *platformResourceModel) []string {
	if m == nil {
		return nil
	}
	ns := knownStrings(m.AgentNamespaces)
	if own := m.Namespace.ValueString(); own != "" && !slices.Contains(ns, own) {
		ns = append(ns, own)
	}
	return ns
}

// apply renders and applies the platform. prior lists the namespaces enrolled before; hadIdentity
// says the router had an identity before (only then is one removed: a platform that never
// exchanged tokens needs neither SPIRE nor Keycloak).
func (r *platformResource) apply(ctx context.Context, m *platformResourceModel, creating bool, prior []string, hadIdentity bool, diags *diag.Diagnostics) {
	op := "update"
	if creating {
		op = "create"
	}
	timeout, d := operationTimeout(ctx, m.Timeouts, op, defaultCreateTimeout)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if m.RouterImage.IsUnknown() || m.RouterImage.IsNull() {
		m.RouterImage = types.StringValue(r.data.defaultRouterImage())
	}
	in, identity, d := r.input(ctx, m, true)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	out, err := r.data.renderer.RenderPlatform(in)
	if err != nil {
		diags.Append(renderErrorDiags(err, "Invalid Platform Configuration")...)
		return
	}
	applier, err := r.data.Applier()
	if err != nil {
		diags.Append(kubernetesAPIError("applying the platform", err))
		return
	}
	if in.AdoptNamespace {
		if exists, err := applier.NamespaceExists(ctx, in.Namespace); err != nil {
			diags.Append(kubernetesAPIError("checking namespace "+in.Namespace, err))
			return
		} else if !exists {
			diags.AddAttributeError(path.Root("namespace"), "Namespace Not Found",
				fmt.Sprintf("Namespace %q does not exist. With create_namespace = false the platform adopts a namespace that exists: "+
					"create it first (for example with a kubernetes_namespace resource), or set create_namespace = true.", in.Namespace))
			return
		}
	} else if creating {
		// Refuse to take over a namespace that exists: destroy would delete it with everything in it.
		if exists, err := applier.NamespaceExists(ctx, in.Namespace); err != nil {
			diags.Append(kubernetesAPIError("checking namespace "+in.Namespace, err))
			return
		} else if exists {
			live, _ := applier.Get(ctx, kube.Ref{GVK: out.Objects[0].Object.GroupVersionKind(), Name: in.Namespace})
			if live == nil || live.GetLabels()[contract.NewKeys(r.data.labelDomain).Composite()] != in.Namespace {
				diags.AddAttributeError(path.Root("namespace"), "Namespace Exists",
					fmt.Sprintf("Namespace %q already exists and is not a Kagenti platform's. The platform owns its namespace and deletes it "+
						"on destroy, so choose a namespace that does not exist yet.", in.Namespace))
				return
			}
		}
	}
	m.ID = types.StringValue(in.Namespace)
	m.RouterURL = types.StringValue(out.URL)
	m.Revision = types.StringValue(out.Revision)
	// The namespace first: the router's client secret is stored in it.
	if !in.AdoptNamespace {
		if _, err := applier.Apply(ctx, out.Objects[0].Object); err != nil {
			diags.AddError("Apply Failed", err.Error())
			return
		}
	}
	if identity != nil {
		m.setRouterClientID(types.StringValue(identity.Identity.SPIFFEID))
		if _, err := r.engine().ensureIdentity(ctx, *identity, nil); err != nil {
			diags.AddAttributeError(path.Root("token_exchange"), "Router Identity Not Reconciled", err.Error())
			return
		}
	} else {
		m.setRouterClientID(types.StringNull())
		if hadIdentity {
			// token_exchange was turned off: the router's identity goes.
			if err := r.engine().removeIdentity(ctx, fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", r.spireTrustDomain(ctx), in.Namespace, composition.RouterName), true); err != nil {
				diags.AddAttributeWarning(path.Root("token_exchange"), "Router Identity Not Removed", fmt.Sprintf("token_exchange was turned off, "+
					"but removing the router's SPIRE entry or Keycloak client failed; remove them by hand or apply again with the "+
					"backends reachable.\n\nOriginal Error: %v", err))
			}
		}
	}
	// The same engine as agents and tools: apply and prune, enrol the agent namespaces, wait
	// for the rollout, observe.
	live, err := syncComposed(ctx, applier, r.selector(in.Namespace), out, creating)
	if err != nil {
		diags.AddError("Apply Failed", fmt.Sprintf("Applying the platform %s failed; what was applied is recorded, apply again to finish.\n\nOriginal Error: %v", in.Namespace, err))
	}
	if err == nil {
		if merr := r.enrol(ctx, applier, in, prior); merr != nil {
			diags.AddAttributeError(path.Root("agent_namespaces"), "Namespace Enrolment Failed", merr.Error())
		}
	}
	if err == nil && m.WaitForRollout.ValueBool() {
		if _, werr := waitRollout(ctx, applier, in.Namespace, composition.RouterName); werr != nil {
			diags.Append(applyFailed("platform", composition.Input{Namespace: in.Namespace, Name: composition.RouterName}, werr))
		}
	}
	obs, outOfSync, oerr := observeComposed(ctx, applier, out, live)
	if oerr != nil {
		diags.Append(kubernetesAPIError("reading the platform", oerr))
		return
	}
	if diags.HasError() {
		obs, outOfSync = make([]kube.Observation, len(out.Objects)), nil
	}
	if len(outOfSync) > 0 {
		diags.Append(changedOnApply("platform", composition.Input{Namespace: in.Namespace, Name: composition.RouterName}, outOfSync))
	}
	var od diag.Diagnostics
	m.Objects, od = objectsValue(ctx, out, obs)
	diags.Append(od...)
}

func (r *platformResource) spireTrustDomain(ctx context.Context) string {
	td, err := r.data.TrustDomain(ctx)
	if err != nil {
		return ""
	}
	return td.Name()
}

func (r *platformResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan platformResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, true, nil, false, &resp.Diagnostics)
	if plan.ID.IsUnknown() {
		return
	}
	if plan.Objects.IsUnknown() {
		plan.Objects = types.ListNull(types.ObjectType{AttrTypes: objectAttrTypes})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *platformResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state platformResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, false, enrolled(&state), !state.RouterClientID.IsNull(), &resp.Diagnostics)
	if plan.Objects.IsUnknown() {
		plan.Objects = types.ListNull(types.ObjectType{AttrTypes: objectAttrTypes})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *platformResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state platformResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	applier, err := r.data.Applier()
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("reading the platform", err))
		return
	}
	ns := state.ID.ValueString()
	if state.Namespace.IsNull() {
		// Import: the spec is on the router's Service.
		svc, err := applier.Get(ctx, kube.Ref{GVK: serviceGVK, Namespace: ns, Name: composition.RouterName})
		if err != nil || svc == nil {
			resp.Diagnostics.AddError("Cannot Import Platform", fmt.Sprintf("No kagenti-router Service in namespace %q (%v).", ns, err))
			return
		}
		var in composition.PlatformInput
		if err := json.Unmarshal([]byte(svc.GetAnnotations()[contract.NewKeys(r.data.labelDomain).Spec()]), &in); err != nil {
			resp.Diagnostics.AddError("Cannot Import Platform", err.Error())
			return
		}
		state.Namespace, state.RouterImage, state.RouterReplicas = types.StringValue(in.Namespace), types.StringValue(in.Image), types.Int64Value(in.Replicas)
		state.AgentNamespaces, _ = optStringList(ctx, in.AgentNamespaces)
		if in.PublicURL != "" {
			state.PublicURL = types.StringValue(in.PublicURL)
		} else {
			state.PublicURL = types.StringNull()
		}
		state.TokenExchange = types.BoolValue(in.Audience != "")
		// The router's Keycloak client id is its SPIFFE ID, which its tokens must be addressed to.
		state.setRouterClientID(optStr(in.Audience))
		state.Mesh, state.Waypoint = optStr(in.Mesh), types.BoolValue(in.Waypoint)
		var d diag.Diagnostics
		state.Autoscaling, d = autoscalingToModel(ctx, in.Autoscaling)
		resp.Diagnostics.Append(d...)
		state.Resources, d = resourcesToModel(ctx, in.Resources)
		resp.Diagnostics.Append(d...)
		gatewayAttrTypes := map[string]attr.Type{"parent_name": types.StringType, "parent_namespace": types.StringType,
			"section_name": types.StringType, "hostnames": types.ListType{ElemType: types.StringType}, "path_prefix": types.StringType}
		state.Gateway = types.ObjectNull(gatewayAttrTypes)
		if g := in.Gateway; g != nil {
			hostnames, d := optStringList(ctx, g.Hostnames)
			resp.Diagnostics.Append(d...)
			state.Gateway, d = types.ObjectValue(gatewayAttrTypes, map[string]attr.Value{"parent_name": types.StringValue(g.ParentName),
				"parent_namespace": optStr(g.ParentNamespace), "section_name": optStr(g.SectionName), "hostnames": hostnames, "path_prefix": optStr(g.PathPrefix)})
			resp.Diagnostics.Append(d...)
		}
		state.Labels, state.Annotations, state.RouterPod, d = workloadToModel(ctx, in.Workload)
		resp.Diagnostics.Append(d...)
		state.CreateNamespace = types.BoolValue(!in.AdoptNamespace)
		state.RouterSettings = types.ObjectNull(routerSettingsAttrTypes)
		if s := in.Router; s != nil {
			optInt := types.Int64Null()
			if s.MaxHeaderBytes != 0 {
				optInt = types.Int64Value(s.MaxHeaderBytes)
			}
			state.RouterSettings, d = types.ObjectValue(routerSettingsAttrTypes, map[string]attr.Value{"max_header_bytes": optInt,
				"upstream_timeout": optStr(s.UpstreamTimeout), "drain": optStr(s.Drain), "log_level": optStr(s.LogLevel),
				"card_verification": optStr(s.CardVerification)})
			resp.Diagnostics.Append(d...)
		}
		state.Composition = types.ObjectNull(platformCompositionAttrTypes)
		if len(in.Patches) > 0 {
			var c platformCompositionModel
			for _, p := range in.Patches {
				c.Patches = append(c.Patches, patchModel{Target: types.StringValue(p.Target), Type: types.StringValue(p.Type), Patch: types.StringValue(p.Patch)})
			}
			state.Composition, d = types.ObjectValueFrom(ctx, platformCompositionAttrTypes, c)
			resp.Diagnostics.Append(d...)
		}
		state.WaitForRollout = types.BoolValue(true)
		state.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType})}
	}
	in, _, diags := r.input(ctx, &state, true)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	out, err := r.data.renderer.RenderPlatform(in)
	if err != nil {
		resp.Diagnostics.Append(renderErrorDiags(err, "Invalid Platform Configuration")...)
		return
	}
	obs, _, err := observeComposed(ctx, applier, out, nil)
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("reading the platform", err))
		return
	}
	if !slices.ContainsFunc(obs, func(o kube.Observation) bool { return o.Exists }) {
		// Everything is gone (the namespace with it): the next plan creates the platform again.
		resp.State.RemoveResource(ctx)
		return
	}
	state.RouterURL, state.Revision = types.StringValue(out.URL), types.StringValue(out.Revision)
	state.Objects, diags = objectsValue(ctx, out, obs)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *platformResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state platformResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := operationTimeout(ctx, state.Timeouts, "delete", defaultDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !state.RouterClientID.IsNull() {
		if err := r.engine().removeIdentity(ctx, state.RouterClientID.ValueString(), true); err != nil {
			resp.Diagnostics.AddError("Router Identity Not Deleted", err.Error())
			return
		}
	}
	applier, err := r.data.Applier()
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("deleting the platform", err))
		return
	}
	if len(enrolled(&state)) > 0 {
		in := composition.PlatformInput{}
		if err := r.enrol(ctx, applier, in, enrolled(&state)); err != nil {
			resp.Diagnostics.AddError("Namespace Enrolment Not Removed", err.Error())
			return
		}
	}
	if err := applier.DeleteAll(ctx, r.selector(state.ID.ValueString())); err != nil {
		resp.Diagnostics.AddError("Delete Failed", fmt.Sprintf("Deleting platform %s failed; destroy again to finish.\n\nOriginal Error: %v", state.ID.ValueString(), err))
	}
}

func (r *platformResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}

// setRouterClientID sets the router's client id and the audience scope derived from it.
func (m *platformResourceModel) setRouterClientID(id types.String) {
	m.RouterClientID = id
	switch {
	case id.IsUnknown():
		m.RouterScope = types.StringUnknown()
	case id.IsNull():
		m.RouterScope = types.StringNull()
	default:
		m.RouterScope = types.StringValue(keycloak.AudienceScopeName(id.ValueString()))
	}
}
