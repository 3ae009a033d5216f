package provider

// Shared pieces of the composite resources kagenti_agent and kagenti_tool: the attributes they
// have in common, the conversion between their models and composition.Input, and the
// render → apply → wait → observe cycle. Nothing here speaks YAML or client-go types.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

const (
	defaultCreateTimeout = 10 * time.Minute
	defaultDeleteTimeout = 5 * time.Minute
	// privateInputKey holds, in private state, the input last applied, so that Read can render
	// exactly what was applied and compare it with the cluster.
	privateInputKey = "applied_input"
)

var (
	dns1035Label  = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Label  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envVarName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	compositeIDRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z]([-a-z0-9]*[a-z0-9])?$`)
)

// compositeModel holds the attributes agents and tools share; the resource models embed it.
type compositeModel struct {
	ID             types.String   `tfsdk:"id"`
	Name           types.String   `tfsdk:"name"`
	Namespace      types.String   `tfsdk:"namespace"`
	Image          types.String   `tfsdk:"image"`
	Endpoint       types.String   `tfsdk:"endpoint"`
	Port           types.Int64    `tfsdk:"port"`
	Description    types.String   `tfsdk:"description"`
	Replicas       types.Int64    `tfsdk:"replicas"`
	Autoscaling    types.Object   `tfsdk:"autoscaling"`
	Resources      types.Object   `tfsdk:"resources"`
	Env            types.Map      `tfsdk:"env"`
	SecretEnv      types.Map      `tfsdk:"secret_env"`
	OTELEndpoint   types.String   `tfsdk:"otel_endpoint"`
	Composition    types.Object   `tfsdk:"composition"`
	Labels         types.Map      `tfsdk:"labels"`
	Annotations    types.Map      `tfsdk:"annotations"`
	Pod            types.Object   `tfsdk:"pod"`
	WaitForRollout types.Bool     `tfsdk:"wait_for_rollout"`
	Timeouts       timeouts.Value `tfsdk:"timeouts"`

	URL           types.String `tfsdk:"url"`
	Revision      types.String `tfsdk:"revision"`
	ReadyReplicas types.Int64  `tfsdk:"ready_replicas"`
	Objects       types.List   `tfsdk:"objects"`

	Identity types.Object `tfsdk:"identity"`
	SPIFFEID types.String `tfsdk:"spiffe_id"`
	ClientID types.String `tfsdk:"client_id"`
}

type compositeIdentityModel struct {
	X509SVIDTTL    types.String `tfsdk:"x509_svid_ttl"`
	JWTSVIDTTL     types.String `tfsdk:"jwt_svid_ttl"`
	KeycloakClient types.Object `tfsdk:"keycloak_client"`
}

type resourcesModel struct {
	Requests types.Map `tfsdk:"requests"`
	Limits   types.Map `tfsdk:"limits"`
}

type autoscalingModel struct {
	MinReplicas          types.Int64 `tfsdk:"min_replicas"`
	MaxReplicas          types.Int64 `tfsdk:"max_replicas"`
	TargetCPUUtilization types.Int64 `tfsdk:"target_cpu_utilization"`
}

type secretRefModel struct {
	Secret types.String `tfsdk:"secret"`
	Key    types.String `tfsdk:"key"`
}

type compositionModel struct {
	Patches   []patchModel `tfsdk:"patches"`
	Templates types.Map    `tfsdk:"templates"`
}

type patchModel struct {
	Target types.String `tfsdk:"target"`
	Type   types.String `tfsdk:"type"`
	Patch  types.String `tfsdk:"patch"`
}

type objectModel struct {
	Key        types.String `tfsdk:"key"`
	APIVersion types.String `tfsdk:"api_version"`
	Kind       types.String `tfsdk:"kind"`
	Namespace  types.String `tfsdk:"namespace"`
	Name       types.String `tfsdk:"name"`
	InSync     types.Bool   `tfsdk:"in_sync"`
	Drift      types.List   `tfsdk:"drift"`
}

var (
	secretRefAttrTypes   = map[string]attr.Type{"secret": types.StringType, "key": types.StringType}
	autoscalingAttrTypes = map[string]attr.Type{
		"min_replicas": types.Int64Type, "max_replicas": types.Int64Type, "target_cpu_utilization": types.Int64Type,
	}
	resourcesAttrTypes = map[string]attr.Type{
		"requests": types.MapType{ElemType: types.StringType}, "limits": types.MapType{ElemType: types.StringType},
	}
	patchAttrTypes       = map[string]attr.Type{"target": types.StringType, "type": types.StringType, "patch": types.StringType}
	compositionAttrTypes = map[string]attr.Type{
		"patches":   types.ListType{ElemType: types.ObjectType{AttrTypes: patchAttrTypes}},
		"templates": types.MapType{ElemType: types.StringType},
	}
	objectAttrTypes = map[string]attr.Type{
		"key": types.StringType, "api_version": types.StringType, "kind": types.StringType,
		"namespace": types.StringType, "name": types.StringType, "in_sync": types.BoolType,
		"drift": types.ListType{ElemType: types.StringType},
	}
)

func secretRefAttributes(what string) map[string]rschema.Attribute {
	return map[string]rschema.Attribute{
		"secret": rschema.StringAttribute{
			MarkdownDescription: "Name of the Secret (in the same namespace) that holds " + what + ".",
			Required:            true,
			Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`), "must be a Secret name (lower-case DNS subdomain)")},
		},
		"key": rschema.StringAttribute{
			MarkdownDescription: "Key in the Secret.",
			Required:            true,
			Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[-._a-zA-Z0-9]+$`), "must be a Secret key (letters, digits, '-', '_', '.')")},
		},
	}
}

// compositeAttributes are the schema attributes agents and tools share. noun is "agent" or
// "tool".
func compositeAttributes(ctx context.Context, noun string) map[string]rschema.Attribute {
	attrs := map[string]rschema.Attribute{
		"id": rschema.StringAttribute{
			MarkdownDescription: "`<namespace>/<name>`; also the import ID.",
			Computed:            true,
			PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		},
		"name": rschema.StringAttribute{
			MarkdownDescription: "Name of the " + noun + ", and of its Deployment, Service and ServiceAccount: a DNS-1035 label of at most " +
				strconv.Itoa(composition.MaxNameLength) + " characters. Changing it replaces the " + noun + ".",
			Required:      true,
			PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			Validators: []validator.String{
				stringvalidator.LengthBetween(1, composition.MaxNameLength),
				stringvalidator.RegexMatches(dns1035Label, "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"),
			},
		},
		"namespace": rschema.StringAttribute{
			MarkdownDescription: "Namespace the " + noun + " runs in; it must exist. Changing it replaces the " + noun + ".",
			Required:            true,
			PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			Validators: []validator.String{
				stringvalidator.LengthBetween(1, 63),
				stringvalidator.RegexMatches(dns1123Label, "must be a DNS-1123 label: lower-case letters, digits and '-'"),
			},
		},
		"image": rschema.StringAttribute{
			MarkdownDescription: "Container image to run, e.g. `ghcr.io/example/" + noun + ":1.0.0`. Exactly one of `image` and `endpoint` is set.",
			Optional:            true,
			Validators:          []validator.String{stringvalidator.ExactlyOneOf(path.MatchRoot("image"), path.MatchRoot("endpoint"))},
		},
		"endpoint": rschema.StringAttribute{
			MarkdownDescription: "URL of a " + noun + " that runs elsewhere. It gets a Service, labels" +
				map[bool]string{true: " and a card", false: ""}[noun == "agent"] +
				" so that discovery, identity and the router treat it like any other, but no Deployment.",
			Optional: true,
			Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^https?://[^\s/]+(/\S*)?$`),
				"must be an http(s) URL such as http://10.0.0.5:8000")},
		},
		"port": rschema.Int64Attribute{
			MarkdownDescription: "Container and Service port. Defaults to the preset's.",
			Optional:            true,
			Validators:          []validator.Int64{int64validator.Between(1, 65535)},
		},
		"description": rschema.StringAttribute{
			MarkdownDescription: "What the " + noun + " does" + map[bool]string{true: "; published in its card.", false: "."}[noun == "agent"],
			Optional:            true,
		},
		"replicas": rschema.Int64Attribute{
			MarkdownDescription: "Number of pods (default 1). Conflicts with `autoscaling`. More than one adds a PodDisruptionBudget.",
			Optional:            true,
			Validators: []validator.Int64{
				int64validator.Between(0, 1000),
				int64validator.ConflictsWith(path.MatchRoot("autoscaling")),
			},
		},
		"autoscaling": rschema.SingleNestedAttribute{
			MarkdownDescription: "Scale on CPU with a HorizontalPodAutoscaler instead of a fixed `replicas`.",
			Optional:            true,
			Attributes: map[string]rschema.Attribute{
				"min_replicas": rschema.Int64Attribute{
					MarkdownDescription: "Lower bound (at least 1).", Required: true,
					Validators: []validator.Int64{int64validator.AtLeast(1)},
				},
				"max_replicas": rschema.Int64Attribute{
					MarkdownDescription: "Upper bound (at least `min_replicas`).", Required: true,
					Validators: []validator.Int64{int64validator.AtLeastSumOf(path.MatchRelative().AtParent().AtName("min_replicas"))},
				},
				"target_cpu_utilization": rschema.Int64Attribute{
					MarkdownDescription: "Average CPU utilization to aim for, in percent of requests (1-100).", Required: true,
					Validators: []validator.Int64{int64validator.Between(1, 100)},
				},
			},
		},
		"resources": resourcesAttribute("Compute resources of the container. With `autoscaling` and no `requests.cpu`, " +
			"the CPU request is `100m`: the HorizontalPodAutoscaler's utilization is a percentage of it."),
		"env": rschema.MapAttribute{
			MarkdownDescription: "Environment variables. They are not secret: use `secret_env` for secrets. They override the preset's " +
				"and the platform's (HOST, PORT, LLM_*, MCP_*).",
			Optional:    true,
			ElementType: types.StringType,
			Validators: []validator.Map{mapvalidator.KeysAre(stringvalidator.RegexMatches(envVarName,
				"environment variable names are letters, digits and '_', not starting with a digit"))},
		},
		"secret_env": rschema.MapNestedAttribute{
			MarkdownDescription: "Environment variables read from Secrets at run time: the values never pass through Terraform.",
			Optional:            true,
			NestedObject:        rschema.NestedAttributeObject{Attributes: secretRefAttributes("the value")},
			Validators: []validator.Map{mapvalidator.KeysAre(stringvalidator.RegexMatches(envVarName,
				"environment variable names are letters, digits and '_', not starting with a digit"))},
		},
		"otel_endpoint": rschema.StringAttribute{
			MarkdownDescription: "OTLP endpoint: an absolute `http` or `https` URL with a host (the schemes OpenTelemetry SDKs " +
				"accept for OTLP over HTTP and gRPC alike), e.g. `http://otel-collector.observability:4317`. Sets " +
				"OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME.",
			Optional:   true,
			Validators: []validator.String{absoluteURL("http://otel-collector.observability:4317", "http", "https")},
		},
		"composition": rschema.SingleNestedAttribute{
			MarkdownDescription: "Reach any field of any composed object. Object keys: `serviceaccount`, `deployment`, `service`, " +
				map[bool]string{true: "`card`, ", false: ""}[noun == "agent"] + "`hpa`, `pdb`" + map[bool]string{true: ", `pvc`", false: ""}[noun == "agent"] + ".",
			Optional: true,
			Attributes: map[string]rschema.Attribute{
				"patches": rschema.ListNestedAttribute{
					MarkdownDescription: "Patches applied, in order, to the rendered objects.",
					Optional:            true,
					NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
						"target": rschema.StringAttribute{MarkdownDescription: "Key of the composed object to patch, e.g. `deployment`.", Required: true},
						"type": rschema.StringAttribute{
							MarkdownDescription: "`strategic` (Kubernetes strategic merge patch), `merge` (RFC 7386) or `json` (RFC 6902).",
							Required:            true,
							Validators:          []validator.String{stringvalidator.OneOf(composition.PatchTypes...)},
						},
						"patch": rschema.StringAttribute{MarkdownDescription: "The patch, in YAML or JSON.", Required: true},
					}},
				},
				"templates": rschema.MapAttribute{
					MarkdownDescription: "Replace the template of a composed object (by key) with your own Go template of one Kubernetes " +
						"object. It sees the same data as the built-in ones (`.In`, `.Port`, `.Env`, `.SelectorLabels`, `.PodLabels`, ...) " +
						"and the functions `quote` and `toJSON`; it must keep the object's kind.",
					Optional:    true,
					ElementType: types.StringType,
				},
			},
		},
		"wait_for_rollout": rschema.BoolAttribute{
			MarkdownDescription: "Wait until the Deployment is Available after create and update (default `true`).",
			Optional:            true,
			Computed:            true,
			Default:             booldefault.StaticBool(true),
		},
		"timeouts": timeoutsAttribute(ctx, map[string]time.Duration{"create": defaultCreateTimeout, "update": defaultCreateTimeout, "delete": defaultDeleteTimeout}),
		"url": rschema.StringAttribute{
			MarkdownDescription: "Where clients reach the " + noun + " inside the cluster" + map[bool]string{true: ".", false: " (its MCP endpoint)."}[noun == "agent"],
			Computed:            true,
		},
		"revision": rschema.StringAttribute{
			MarkdownDescription: "`sha256:` of the composition templates that render the objects. A provider upgrade that changes " +
				"templates shows up here in the plan.",
			Computed: true,
		},
		"ready_replicas": rschema.Int64Attribute{
			MarkdownDescription: "Ready pods of the Deployment when last read.",
			Computed:            true,
			PlanModifiers:       []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
		},
		"identity": rschema.SingleNestedAttribute{
			MarkdownDescription: "A workload identity for the " + noun + "'s service account, as `kagenti_identity` makes one: a SPIRE " +
				"entry (`spiffe://<trust domain>/ns/<namespace>/sa/<name>`, selectors `k8s:ns`/`k8s:sa`) and, with `keycloak_client`, a " +
				"Keycloak client named by that SPIFFE ID. The workload gets SPIFFE_ID, and with a client CLIENT_ID, ISSUER, JWKS_URI " +
				"and TOKEN_URL; with `client-secret` authentication also CLIENT_SECRET, read from the Secret `<name>-keycloak` " +
				"(deleted with the " + noun + "). Needs the provider's `spire` (and `keycloak`) settings.",
			Optional: true,
			Attributes: map[string]rschema.Attribute{
				"x509_svid_ttl": rschema.StringAttribute{
					MarkdownDescription: "Lifetime of X509-SVIDs, `1m` to `720h` (default `1h`).", Optional: true,
					Validators: []validator.String{durationBetween(time.Minute, 720*time.Hour)},
				},
				"jwt_svid_ttl": rschema.StringAttribute{
					MarkdownDescription: "Lifetime of JWT-SVIDs, `30s` to `5m` (default `5m`: Keycloak accepts a JWT-SVID assertion only within 300 s).",
					Optional:            true,
					Validators:          []validator.String{durationBetween(30*time.Second, maxFederatedJWTTTL)},
				},
				"keycloak_client": rschema.SingleNestedAttribute{
					MarkdownDescription: "A Keycloak client for the workload; the same settings as `kagenti_identity.keycloak_client`.",
					Optional:            true,
					Attributes:          keycloakClientAttributes(),
				},
			},
		},
		"spiffe_id": rschema.StringAttribute{
			MarkdownDescription: "SPIFFE ID of the workload, with `identity`.",
			Computed:            true,
		},
		"client_id": rschema.StringAttribute{
			MarkdownDescription: "Keycloak client id of the workload (its SPIFFE ID), with `identity.keycloak_client`.",
			Computed:            true,
		},
		"objects": objectsAttribute(),
	}
	maps.Copy(attrs, workloadAttributes("pod", noun))
	return attrs
}

// objectsAttribute is the computed list of composed objects that agents, tools and the platform
// report, with their sync state.
func objectsAttribute() rschema.ListNestedAttribute {
	return rschema.ListNestedAttribute{
		MarkdownDescription: "The composed objects. `in_sync` is false and `drift` lists the fields that differ when the " +
			"cluster no longer matches; the next apply repairs it.",
		Computed: true,
		NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
			"key":         rschema.StringAttribute{MarkdownDescription: "Stable key of the object in the composition.", Computed: true},
			"api_version": rschema.StringAttribute{MarkdownDescription: "API version.", Computed: true},
			"kind":        rschema.StringAttribute{MarkdownDescription: "Kind.", Computed: true},
			"namespace":   rschema.StringAttribute{MarkdownDescription: "Namespace.", Computed: true},
			"name":        rschema.StringAttribute{MarkdownDescription: "Name.", Computed: true},
			"in_sync":     rschema.BoolAttribute{MarkdownDescription: "Whether the object exists and matches.", Computed: true},
			"drift": rschema.ListAttribute{
				MarkdownDescription: "Fields whose live value differs from the applied one.",
				Computed:            true, ElementType: types.StringType,
			},
		}},
	}
}

// secretRefValue is a Secret reference as an object value (null for nil).
func secretRefValue(ctx context.Context, ref *composition.SecretRef) (types.Object, diag.Diagnostics) {
	if ref == nil {
		return types.ObjectNull(secretRefAttrTypes), nil
	}
	return types.ObjectValueFrom(ctx, secretRefAttrTypes, secretRefModel{Secret: types.StringValue(ref.Secret), Key: types.StringValue(ref.Key)})
}

// compositeInput fills the shared part of a composition input from a model. known is false when
// a value the rendering depends on is not known yet (planning against resources not created).
func compositeInput(ctx context.Context, m *compositeModel, in *composition.Input) (known bool, diags diag.Diagnostics) {
	known = true
	str := func(v types.String) string {
		if v.IsUnknown() {
			known = false
		}
		return v.ValueString()
	}
	num := func(v types.Int64) int64 {
		if v.IsUnknown() {
			known = false
		}
		return v.ValueInt64()
	}
	in.Name, in.Namespace = str(m.Name), str(m.Namespace)
	in.Image, in.Endpoint = str(m.Image), str(m.Endpoint)
	in.Port, in.Replicas = num(m.Port), num(m.Replicas)
	in.Description, in.OTELEndpoint = str(m.Description), str(m.OTELEndpoint)

	if m.Autoscaling.IsUnknown() {
		known = false
	} else if !m.Autoscaling.IsNull() {
		var a autoscalingModel
		diags.Append(m.Autoscaling.As(ctx, &a, basetypes.ObjectAsOptions{})...)
		in.Autoscaling = &composition.Autoscaling{MinReplicas: num(a.MinReplicas), MaxReplicas: num(a.MaxReplicas), TargetCPUUtilization: num(a.TargetCPUUtilization)}
	}
	if r, ok, d := resourcesFromModel(ctx, m.Resources); !ok {
		known = false
	} else {
		diags.Append(d...)
		in.Resources = r
	}
	if !m.Env.IsNull() {
		if m.Env.IsUnknown() {
			known = false
		} else {
			in.Env = map[string]string{}
			for k, v := range m.Env.Elements() {
				s := v.(types.String)
				in.Env[k] = str(s)
			}
		}
	}
	if !m.SecretEnv.IsNull() {
		if m.SecretEnv.IsUnknown() {
			known = false
		} else {
			var refs map[string]secretRefModel
			diags.Append(m.SecretEnv.ElementsAs(ctx, &refs, false)...)
			in.SecretEnv = map[string]composition.SecretRef{}
			for k, r := range refs {
				in.SecretEnv[k] = composition.SecretRef{Secret: str(r.Secret), Key: str(r.Key)}
			}
		}
	}
	if m.Composition.IsUnknown() {
		known = false
	} else if !m.Composition.IsNull() {
		var c compositionModel
		diags.Append(m.Composition.As(ctx, &c, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: false})...)
		for _, p := range c.Patches {
			in.Patches = append(in.Patches, composition.Patch{Target: str(p.Target), Type: str(p.Type), Patch: str(p.Patch)})
		}
		if c.Templates.IsUnknown() {
			known = false
		} else if !c.Templates.IsNull() {
			in.Templates = map[string]string{}
			for k, v := range c.Templates.Elements() {
				in.Templates[k] = str(v.(types.String))
			}
		}
	}
	w, wknown, d := workloadFromModel(ctx, m.Labels, m.Annotations, m.Pod)
	diags.Append(d...)
	known = known && wknown
	in.Workload = w
	if m.Identity.IsUnknown() {
		known = false
	} else if !m.Identity.IsNull() {
		var id compositeIdentityModel
		diags.Append(m.Identity.As(ctx, &id, basetypes.ObjectAsOptions{})...)
		in.Identity = &composition.Identity{X509SVIDTTL: str(id.X509SVIDTTL), JWTSVIDTTL: str(id.JWTSVIDTTL)}
		if id.KeycloakClient.IsUnknown() {
			known = false
		} else if !id.KeycloakClient.IsNull() {
			var kc keycloakClientModel
			diags.Append(id.KeycloakClient.As(ctx, &kc, basetypes.ObjectAsOptions{})...)
			authentication := kc.Authentication.ValueString()
			if authentication == "" {
				authentication = keycloak.AuthFederatedJWT
			}
			in.Identity.Client = &composition.IdentityClient{
				Authentication: authentication, TokenExchange: kc.TokenExchange.ValueBool(),
				Audiences: knownStrings(kc.Audiences), AllowedCallers: knownStrings(kc.AllowedCallers),
			}
		}
	}
	return known, diags
}

// compositeModelFromInput sets the shared user attributes from an input (import).
func compositeModelFromInput(ctx context.Context, in composition.Input, m *compositeModel) diag.Diagnostics {
	var diags diag.Diagnostics
	optString := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	optInt := func(n int64) types.Int64 {
		if n == 0 {
			return types.Int64Null()
		}
		return types.Int64Value(n)
	}
	m.ID = types.StringValue(in.Namespace + "/" + in.Name)
	m.Name, m.Namespace = types.StringValue(in.Name), types.StringValue(in.Namespace)
	m.Image, m.Endpoint = optString(in.Image), optString(in.Endpoint)
	m.Port, m.Replicas = optInt(in.Port), optInt(in.Replicas)
	m.Description, m.OTELEndpoint = optString(in.Description), optString(in.OTELEndpoint)
	var d diag.Diagnostics
	m.Autoscaling, d = autoscalingToModel(ctx, in.Autoscaling)
	diags.Append(d...)
	m.Resources, d = resourcesToModel(ctx, in.Resources)
	diags.Append(d...)
	m.Env = types.MapNull(types.StringType)
	if len(in.Env) > 0 {
		var d diag.Diagnostics
		m.Env, d = types.MapValueFrom(ctx, types.StringType, in.Env)
		diags.Append(d...)
	}
	m.SecretEnv = types.MapNull(types.ObjectType{AttrTypes: secretRefAttrTypes})
	if len(in.SecretEnv) > 0 {
		refs := map[string]attr.Value{}
		for k, r := range in.SecretEnv {
			v, d := secretRefValue(ctx, &r)
			diags.Append(d...)
			refs[k] = v
		}
		var d diag.Diagnostics
		m.SecretEnv, d = types.MapValue(types.ObjectType{AttrTypes: secretRefAttrTypes}, refs)
		diags.Append(d...)
	}
	m.Composition = types.ObjectNull(compositionAttrTypes)
	if len(in.Patches) > 0 || len(in.Templates) > 0 {
		c := compositionModel{Templates: types.MapNull(types.StringType)}
		for _, p := range in.Patches {
			c.Patches = append(c.Patches, patchModel{Target: types.StringValue(p.Target), Type: types.StringValue(p.Type), Patch: types.StringValue(p.Patch)})
		}
		if len(in.Templates) > 0 {
			var d diag.Diagnostics
			c.Templates, d = types.MapValueFrom(ctx, types.StringType, in.Templates)
			diags.Append(d...)
		}
		var d diag.Diagnostics
		m.Composition, d = types.ObjectValueFrom(ctx, compositionAttrTypes, c)
		diags.Append(d...)
	}
	m.Labels, m.Annotations, m.Pod, d = workloadToModel(ctx, in.Workload)
	diags.Append(d...)
	m.Identity = types.ObjectNull(compositeIdentityAttrTypes)
	if id := in.Identity; id != nil {
		kc := types.ObjectNull(keycloakClientAttrTypes)
		if c := id.Client; c != nil {
			aud, d := optStringList(ctx, c.Audiences)
			diags.Append(d...)
			callers, d := optStringList(ctx, c.AllowedCallers)
			diags.Append(d...)
			kc, d = types.ObjectValueFrom(ctx, keycloakClientAttrTypes, keycloakClientModel{
				Authentication: types.StringValue(c.Authentication), TokenExchange: types.BoolValue(c.TokenExchange),
				Audiences: aud, AllowedCallers: callers,
			})
			diags.Append(d...)
		}
		opt := func(s string) types.String {
			if s == "" {
				return types.StringNull()
			}
			return types.StringValue(s)
		}
		var d diag.Diagnostics
		m.Identity, d = types.ObjectValueFrom(ctx, compositeIdentityAttrTypes, compositeIdentityModel{
			X509SVIDTTL: opt(id.X509SVIDTTL), JWTSVIDTTL: opt(id.JWTSVIDTTL), KeycloakClient: kc,
		})
		diags.Append(d...)
	}
	if m.WaitForRollout.IsNull() || m.WaitForRollout.IsUnknown() {
		m.WaitForRollout = types.BoolValue(true)
	}
	if m.Timeouts.IsNull() || m.Timeouts.IsUnknown() {
		m.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
			"create": types.StringType, "update": types.StringType, "delete": types.StringType,
		})}
	}
	return diags
}

// renderErrorDiags maps composition errors onto the attributes they are about.
func renderErrorDiags(err error, summary string) diag.Diagnostics {
	var diags diag.Diagnostics
	var rerr *composition.Error
	if errors.As(err, &rerr) {
		for _, e := range rerr.Errs {
			// The path is in the text too: Terraform cannot point at every nested attribute.
			diags.AddAttributeError(fieldToPath(e.Field), summary, e.Field+": "+e.ErrorBody())
		}
		return diags
	}
	diags.AddError(summary, err.Error())
	return diags
}

// resourcesAttribute is the schema of a container's requests and limits. Quantities and requests
// within limits are checked by the composition's validation, at plan time.
func resourcesAttribute(description string) rschema.SingleNestedAttribute {
	names := []validator.Map{mapvalidator.KeysAre(stringvalidator.OneOf(composition.ResourceNames...))}
	return rschema.SingleNestedAttribute{
		MarkdownDescription: description,
		Optional:            true,
		Attributes: map[string]rschema.Attribute{
			"requests": rschema.MapAttribute{
				MarkdownDescription: "Resources reserved for the container: `cpu`, `memory`, `ephemeral-storage`, as Kubernetes " +
					"quantities (`250m`, `128Mi`).",
				Optional: true, ElementType: types.StringType, Validators: names,
			},
			"limits": rschema.MapAttribute{
				MarkdownDescription: "Most the container may use, with the same names and quantities as `requests`.",
				Optional:            true, ElementType: types.StringType, Validators: names,
			},
		},
	}
}

// resourcesFromModel reads a resources attribute; ok is false while it is unknown.
func resourcesFromModel(ctx context.Context, obj types.Object) (*composition.Resources, bool, diag.Diagnostics) {
	if obj.IsNull() {
		return nil, true, nil
	}
	if obj.IsUnknown() {
		return nil, false, nil
	}
	var m resourcesModel
	diags := obj.As(ctx, &m, basetypes.ObjectAsOptions{})
	for _, list := range []types.Map{m.Requests, m.Limits} {
		if list.IsUnknown() {
			return nil, false, diags
		}
		for _, v := range list.Elements() {
			if v.IsUnknown() {
				return nil, false, diags
			}
		}
	}
	r := &composition.Resources{}
	diags.Append(m.Requests.ElementsAs(ctx, &r.Requests, false)...)
	diags.Append(m.Limits.ElementsAs(ctx, &r.Limits, false)...)
	return r, true, diags
}

// resourcesToModel is the attribute value of the resources an object was rendered with (null
// for none).
// describeResources writes resources as the docs show them: requests `cpu = "100m"`, ...
func describeResources(r composition.Resources) string {
	part := func(kind string, m map[string]string) string {
		var keys []string
		for _, k := range composition.ResourceNames {
			if v, ok := m[k]; ok {
				keys = append(keys, fmt.Sprintf("`%s = %q`", k, v))
			}
		}
		return kind + " " + strings.Join(keys, ", ")
	}
	return part("requests", r.Requests) + ", " + part("limits", r.Limits)
}

// autoscalingToModel is the state of an autoscaling block (null when there is none).
func autoscalingToModel(ctx context.Context, a *composition.Autoscaling) (types.Object, diag.Diagnostics) {
	if a == nil {
		return types.ObjectNull(autoscalingAttrTypes), nil
	}
	return types.ObjectValueFrom(ctx, autoscalingAttrTypes, autoscalingModel{MinReplicas: types.Int64Value(a.MinReplicas),
		MaxReplicas: types.Int64Value(a.MaxReplicas), TargetCPUUtilization: types.Int64Value(a.TargetCPUUtilization)})
}

func resourcesToModel(ctx context.Context, r *composition.Resources) (types.Object, diag.Diagnostics) {
	if r == nil {
		return types.ObjectNull(resourcesAttrTypes), nil
	}
	m := resourcesModel{Requests: types.MapNull(types.StringType), Limits: types.MapNull(types.StringType)}
	var diags, d diag.Diagnostics
	if r.Requests != nil {
		m.Requests, d = types.MapValueFrom(ctx, types.StringType, r.Requests)
		diags.Append(d...)
	}
	if r.Limits != nil {
		m.Limits, d = types.MapValueFrom(ctx, types.StringType, r.Limits)
		diags.Append(d...)
	}
	obj, d := types.ObjectValueFrom(ctx, resourcesAttrTypes, m)
	diags.Append(d...)
	return obj, diags
}

// fieldToPath converts a composition field path ("skills[0].id", "env[FOO]") to an attribute
// path. Composition paths use the provider's attribute names, so only the syntax differs.
func fieldToPath(f string) path.Path {
	var p path.Path
	first := true
	for _, part := range strings.Split(f, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if first {
			p = path.Root(name)
			first = false
		} else {
			p = p.AtName(name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			if n, err := strconv.Atoi(idx); err == nil {
				p = p.AtListIndex(n)
			} else {
				p = p.AtMapKey(idx)
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return p
}

// compositeEngine runs the render → apply → wait → observe cycle for one composite kind.
type compositeEngine struct {
	data *providerData
	kind composition.Kind
}

func (e *compositeEngine) selector(in composition.Input) kube.CompositeSelector {
	keys := contract.NewKeys(e.data.labelDomain)
	return kube.CompositeSelector{
		Namespace: in.Namespace,
		Labels:    map[string]string{keys.Type(): string(e.kind), keys.Composite(): in.Name},
		Kinds:     composition.ComposedKinds(),
	}
}

func (e *compositeEngine) render(in composition.Input) (*composition.Output, error) {
	in.Kind = e.kind
	in.LabelDomain = e.data.labelDomain
	return e.data.renderer.Render(in)
}

// planComputed fills the computed attributes a plan can know: id, url, revision and the
// objects, all in sync.
func (e *compositeEngine) planComputed(ctx context.Context, in composition.Input, m *compositeModel) (*composition.Output, diag.Diagnostics) {
	out, err := e.render(in)
	if err != nil {
		return nil, renderErrorDiags(err, "Invalid "+titleKind(e.kind)+" Configuration")
	}
	m.ID = types.StringValue(in.Namespace + "/" + in.Name)
	m.URL = types.StringValue(out.URL)
	m.Revision = types.StringValue(out.Revision)
	var obs []kube.Observation
	for _, o := range out.Objects {
		obs = append(obs, kube.Observation{Ref: kube.RefOf(o.Object), Exists: true})
	}
	var diags diag.Diagnostics
	m.Objects, diags = objectsValue(ctx, out, obs, identityObjects(ctx, in, true, true)...)
	setIdentityIDs(in, m)
	return out, diags
}

// setIdentityIDs sets the computed spiffe_id and client_id from a resolved input.
func setIdentityIDs(in composition.Input, m *compositeModel) {
	m.SPIFFEID, m.ClientID = types.StringNull(), types.StringNull()
	if id := in.Identity; id != nil && id.SPIFFEID != "" {
		m.SPIFFEID = types.StringValue(id.SPIFFEID)
		if id.Client != nil {
			m.ClientID = types.StringValue(id.SPIFFEID)
		}
	}
}

// applied is what an apply learnt about the cluster, so that the state is written without
// reading everything again.
type applied struct {
	objects    map[kube.Ref]*unstructured.Unstructured
	deployment *kube.DeploymentStatus
}

// apply renders, applies and (unless creating) prunes, then waits for the rollout. It returns the
// output even on failure so that the caller can record what exists.
func (e *compositeEngine) apply(ctx context.Context, in composition.Input, wait, creating bool) (*composition.Output, *applied, error) {
	out, err := e.render(in)
	if err != nil {
		return nil, nil, err
	}
	applier, err := e.data.Applier()
	if err != nil {
		return out, nil, err
	}
	objs := make([]*unstructured.Unstructured, len(out.Objects))
	for i, o := range out.Objects {
		objs[i] = o.Object
	}
	tflog.Debug(ctx, "applying composed objects", map[string]any{"composite": in.Namespace + "/" + in.Name, "objects": len(objs), "revision": out.Revision})
	// A composite being created owns nothing yet (a failed earlier create is destroyed before
	// it is created again), so there is nothing to prune.
	live, pruned, err := applier.Sync(ctx, e.selector(in), objs, !creating)
	if err != nil {
		return out, nil, err
	}
	for _, r := range pruned {
		tflog.Info(ctx, "pruned object no longer rendered", map[string]any{"object": r.String()})
	}
	result := &applied{objects: live}
	if wait && in.Image != "" {
		status, err := applier.WaitDeploymentAvailable(ctx, in.Namespace, in.Name, func(s kube.DeploymentStatus) {
			fields := map[string]any{
				"deployment": in.Namespace + "/" + in.Name, "ready": s.ReadyReplicas, "updated": s.UpdatedReplicas,
				"available": s.AvailableReplicas, "waiting_for": s.Reason,
			}
			if s.HeldBy != "" {
				// What holds the rollout back is worth a warning: it is the answer to a long
				// "Still creating...".
				fields["held_by"] = s.HeldBy
				tflog.Warn(ctx, "rollout held back", fields)
				return
			}
			tflog.Info(ctx, "waiting for rollout", fields)
		})
		if err != nil {
			return out, nil, err
		}
		result.deployment = &status
	}
	return out, result, nil
}

// observe reads the live objects of a rendered output into the computed attributes (using what
// an apply already returned, when given). It reports whether any object exists at all, and the
// objects out of sync ("Kind ns/name: field, field").
func (e *compositeEngine) observe(ctx context.Context, in composition.Input, out *composition.Output, m *compositeModel, known *applied) (bool, []string, diag.Diagnostics) {
	var diags diag.Diagnostics
	applier, err := e.data.Applier()
	if err != nil {
		diags.Append(kubernetesUnreachable("reading "+in.Namespace+"/"+in.Name, err))
		return false, nil, diags
	}
	if known == nil {
		known = &applied{}
	}
	objs := make([]*unstructured.Unstructured, len(out.Objects))
	for i, o := range out.Objects {
		objs[i] = o.Object
	}
	obs, err := applier.Observe(ctx, objs, known.objects)
	if err != nil {
		diags.Append(kubernetesUnreachable("reading "+in.Namespace+"/"+in.Name, err))
		return false, nil, diags
	}
	anyExists := false
	var outOfSync []string
	for _, o := range obs {
		anyExists = anyExists || o.Exists
		if !o.InSync() {
			tflog.Info(ctx, "composed object out of sync", map[string]any{"object": o.Ref.String(), "exists": o.Exists, "drift": o.Drift})
			outOfSync = append(outOfSync, o.Ref.String()+": "+strings.Join(o.Drift, ", "))
		}
	}
	var extra []objectModel
	if in.Identity != nil {
		entryOK, clientOK, err := e.identityStatus(ctx, in)
		if err != nil {
			diags.AddError("Identity Unreadable", fmt.Sprintf("Reading the identity of %s/%s from SPIRE and Keycloak failed.\n\nOriginal Error: %v", in.Namespace, in.Name, err))
			return anyExists, outOfSync, diags
		}
		extra = identityObjects(ctx, in, entryOK, clientOK)
	}
	m.Objects, diags = objectsValue(ctx, out, obs, extra...)
	setIdentityIDs(in, m)
	m.ReadyReplicas = types.Int64Value(0)
	if in.Image != "" {
		status := known.deployment
		if status == nil {
			if status, err = applier.ReadDeployment(ctx, in.Namespace, in.Name); err != nil {
				diags.Append(kubernetesUnreachable("reading Deployment "+in.Namespace+"/"+in.Name, err))
				return anyExists, outOfSync, diags
			}
		}
		if status != nil {
			m.ReadyReplicas = types.Int64Value(int64(status.ReadyReplicas))
		}
	}
	return anyExists, outOfSync, diags
}

func (e *compositeEngine) delete(ctx context.Context, in composition.Input) error {
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	return applier.DeleteAll(ctx, e.selector(in))
}

func objectsValue(ctx context.Context, out *composition.Output, obs []kube.Observation, extra ...objectModel) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	objs := make([]objectModel, 0, len(out.Objects))
	for i, o := range out.Objects {
		drift := []string{}
		inSync := true
		if i < len(obs) {
			inSync = obs[i].InSync()
			if !obs[i].Exists {
				drift = []string{"(missing)"}
			} else if obs[i].Drift != nil {
				drift = obs[i].Drift
			}
		}
		dl, d := types.ListValueFrom(ctx, types.StringType, drift)
		diags.Append(d...)
		objs = append(objs, objectModel{
			Key: types.StringValue(o.Key), APIVersion: types.StringValue(o.Object.GetAPIVersion()),
			Kind: types.StringValue(o.Object.GetKind()), Namespace: types.StringValue(o.Object.GetNamespace()),
			Name: types.StringValue(o.Object.GetName()), InSync: types.BoolValue(inSync), Drift: dl,
		})
	}
	objs = append(objs, extra...)
	list, d := types.ListValueFrom(ctx, types.ObjectType{AttrTypes: objectAttrTypes}, objs)
	diags.Append(d...)
	return list, diags
}

// storedSpecError is an input last applied that cannot be read back: private state, or the spec
// annotation of the composite's Service (missing, or not this provider's JSON).
type storedSpecError struct {
	// service is "ns/name" when the spec came from the Service, "" for private state.
	service, annotation string
	err                 error
}

func (e *storedSpecError) Error() string {
	if e.service == "" {
		return "private state: " + e.err.Error()
	}
	return fmt.Sprintf("Service %s annotation %s: %v", e.service, e.annotation, e.err)
}

func (e *storedSpecError) Unwrap() error { return e.err }

// foreignServiceError is a Service, found by import, that is not a composite of the kind
// imported (another kind's, or none of ours).
type foreignServiceError struct {
	service, label, value string
}

func (e *foreignServiceError) Error() string {
	return fmt.Sprintf("Service %s is not ours: label %s=%q", e.service, e.label, e.value)
}

// readAppliedInput finds the input last applied: from private state, else (import) from the
// spec annotation of the composite's Service. nil means the composite is gone. Errors about
// what is stored are *storedSpecError or *foreignServiceError; others come from the API.
func (e *compositeEngine) readAppliedInput(ctx context.Context, private []byte, namespace, name string) (*composition.Input, error) {
	if len(private) > 0 {
		var in composition.Input
		if err := json.Unmarshal(private, &in); err != nil {
			return nil, &storedSpecError{err: err}
		}
		return &in, nil
	}
	applier, err := e.data.Applier()
	if err != nil {
		return nil, err
	}
	svc, err := applier.Get(ctx, kube.Ref{GVK: serviceGVK, Namespace: namespace, Name: name})
	if err != nil || svc == nil {
		return nil, err
	}
	keys := contract.NewKeys(e.data.labelDomain)
	ref := namespace + "/" + name
	if got := svc.GetLabels()[keys.Type()]; got != string(e.kind) {
		return nil, &foreignServiceError{service: ref, label: keys.Type(), value: got}
	}
	spec := svc.GetAnnotations()[keys.Spec()]
	if spec == "" {
		return nil, &storedSpecError{service: ref, annotation: keys.Spec(), err: errors.New("missing")}
	}
	var in composition.Input
	if err := json.Unmarshal([]byte(spec), &in); err != nil {
		return nil, &storedSpecError{service: ref, annotation: keys.Spec(), err: err}
	}
	return &in, nil
}

// readInputFailed is the diagnostic of a readAppliedInput error.
func readInputFailed(kind composition.Kind, namespace, name string, err error) diag.Diagnostic {
	var spec *storedSpecError
	var foreign *foreignServiceError
	switch {
	case errors.As(err, &foreign):
		return foreignService(titleKind(kind), string(kind), foreign.service, foreign.label, foreign.value)
	case errors.As(err, &spec):
		return storedSpecUnreadable(string(kind), namespace+"/"+name, spec)
	default:
		return kubernetesUnreachable("reading "+namespace+"/"+name, err)
	}
}

func titleKind(k composition.Kind) string {
	if k == composition.KindTool {
		return "Tool"
	}
	return "Agent"
}

// parseCompositeID splits an import ID "<namespace>/<name>".
func parseCompositeID(id string) (namespace, name string, err error) {
	if !compositeIDRe.MatchString(id) {
		return "", "", fmt.Errorf("import ID %q must be <namespace>/<name>, e.g. team1/weather-service", id)
	}
	namespace, name, _ = strings.Cut(id, "/")
	return namespace, name, nil
}

var compositeIdentityAttrTypes = map[string]attr.Type{
	"x509_svid_ttl": types.StringType, "jwt_svid_ttl": types.StringType,
	"keycloak_client": types.ObjectType{AttrTypes: keycloakClientAttrTypes},
}

var serviceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
