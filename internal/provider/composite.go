package provider

// Shared pieces of the composite resources kagenti_agent and kagenti_tool: their models and the
// attributes they have in common. The conversion to composition.Input is in composite_model.go,
// the render → apply → wait → observe cycle in composite_engine.go, CRUD in composite_crud.go,
// identities in composite_identity.go. Nothing here speaks YAML or client-go types.

import (
	"context"
	"maps"
	"regexp"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
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
	NetworkPolicy  types.Object   `tfsdk:"network_policy"`
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
	Access   types.List   `tfsdk:"access"`
}

type compositeIdentityModel struct {
	X509SVIDTTL    types.String `tfsdk:"x509_svid_ttl"`
	JWTSVIDTTL     types.String `tfsdk:"jwt_svid_ttl"`
	KeycloakClient types.Object `tfsdk:"keycloak_client"`
}

// cardSignerModel is identity.card_signer, which only agents' identity has (identityAttrTypes).
type cardSignerModel struct {
	Image types.String `tfsdk:"image"`
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
		"network_policy": networkPolicyAttribute(noun),
		"composition": rschema.SingleNestedAttribute{
			MarkdownDescription: "Reach any field of any composed object. Object keys: `serviceaccount`, `networkpolicy`, `deployment`, `service`, " +
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
		"access":  accessAttribute(noun),
		"objects": objectsAttribute(),
	}
	maps.Copy(attrs, workloadAttributes("pod", noun))
	if noun == "agent" {
		identity := attrs["identity"].(rschema.SingleNestedAttribute)
		identity.Attributes["card_signer"] = cardSignerAttribute()
		attrs["identity"] = identity
	}
	return attrs
}

// cardSignerAttribute is an agent's identity.card_signer.
func cardSignerAttribute() rschema.SingleNestedAttribute {
	return rschema.SingleNestedAttribute{
		MarkdownDescription: "A2A agents only: run the platform's card signer beside the agent, for an agent whose code does not " +
			"sign its card. The signer (`kagenti-router card-signer`, a second container in the pod) serves the agent's card " +
			"signed with the pod's X509-SVID on the Service port `kagenti-card`, where the router fetches the card it verifies " +
			"(`kagenti_platform.router_settings.card_verification`). `card_signer = {}` runs the default image. Needs " +
			"`keycloak_client` (the router binds the card to the identity it knows from it) and the provider's " +
			"`spire.workload_api_csi_driver` (or `workload_api_host_path`). An agent that signs its own card (serving " +
			"`KAGENTI_AGENT_CARD_FILE` signed) needs none.",
		Optional: true,
		Attributes: map[string]rschema.Attribute{
			"image": rschema.StringAttribute{
				MarkdownDescription: "kagenti-router image to run the signer from. Default: the one built with the provider's " +
					"version when the signer is added; like `kagenti_platform.router_image`, it then stays until set here (set it " +
					"to follow an upgrade or to use a mirror).",
				Optional: true, Computed: true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
	}
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

var (
	cardSignerAttrTypes = map[string]attr.Type{"image": types.StringType}
	// compositeIdentityAttrTypes are the attributes of identity that agents and tools share.
	compositeIdentityAttrTypes = map[string]attr.Type{
		"x509_svid_ttl": types.StringType, "jwt_svid_ttl": types.StringType,
		"keycloak_client": types.ObjectType{AttrTypes: keycloakClientAttrTypes},
	}
	agentIdentityAttrTypes = func() map[string]attr.Type {
		t := maps.Clone(compositeIdentityAttrTypes)
		t["card_signer"] = types.ObjectType{AttrTypes: cardSignerAttrTypes}
		return t
	}()
)

// identityAttrTypes are the attribute types of a kind's identity: an agent's has card_signer.
func identityAttrTypes(kind composition.Kind) map[string]attr.Type {
	if kind == composition.KindAgent {
		return agentIdentityAttrTypes
	}
	return compositeIdentityAttrTypes
}

var serviceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
