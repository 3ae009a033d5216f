package provider

// The pod settings every Deployment user reaches for (composition.Workload), shared by
// kagenti_agent, kagenti_tool (`labels`, `annotations`, `pod`) and kagenti_platform (`labels`,
// `annotations`, `router_pod`): schema, and conversion to and from the model.

import (
	"context"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

type podModel struct {
	Labels                    types.Map    `tfsdk:"labels"`
	Annotations               types.Map    `tfsdk:"annotations"`
	NodeSelector              types.Map    `tfsdk:"node_selector"`
	Tolerations               types.List   `tfsdk:"tolerations"`
	ImagePullSecrets          types.List   `tfsdk:"image_pull_secrets"`
	Command                   types.List   `tfsdk:"command"`
	Args                      types.List   `tfsdk:"args"`
	EnvFrom                   types.List   `tfsdk:"env_from"`
	ServiceAccount            types.String `tfsdk:"service_account"`
	ServiceAccountAnnotations types.Map    `tfsdk:"service_account_annotations"`
}

type tolerationModel struct {
	Key               types.String `tfsdk:"key"`
	Operator          types.String `tfsdk:"operator"`
	Value             types.String `tfsdk:"value"`
	Effect            types.String `tfsdk:"effect"`
	TolerationSeconds types.Int64  `tfsdk:"toleration_seconds"`
}

type envFromModel struct {
	ConfigMap types.String `tfsdk:"config_map"`
	Secret    types.String `tfsdk:"secret"`
	Prefix    types.String `tfsdk:"prefix"`
}

var (
	tolerationAttrTypes = map[string]attr.Type{
		"key": types.StringType, "operator": types.StringType, "value": types.StringType, "effect": types.StringType,
		"toleration_seconds": types.Int64Type,
	}
	envFromAttrTypes = map[string]attr.Type{"config_map": types.StringType, "secret": types.StringType, "prefix": types.StringType}
	stringMap        = types.MapType{ElemType: types.StringType}
	stringList       = types.ListType{ElemType: types.StringType}
	podAttrTypes     = map[string]attr.Type{
		"labels": stringMap, "annotations": stringMap, "node_selector": stringMap,
		"tolerations":        types.ListType{ElemType: types.ObjectType{AttrTypes: tolerationAttrTypes}},
		"image_pull_secrets": stringList, "command": stringList, "args": stringList,
		"env_from":                    types.ListType{ElemType: types.ObjectType{AttrTypes: envFromAttrTypes}},
		"service_account":             types.StringType,
		"service_account_annotations": stringMap,
	}
	objectName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// workloadAttributes are `labels`, `annotations` and the pod block (named podAttr) of a
// resource; what is the workload's name in the descriptions ("agent", "tool", "router").
func workloadAttributes(podAttr, what string) map[string]rschema.Attribute {
	argsDescription := "Arguments, replacing the image's `CMD`."
	if what == "router" {
		argsDescription = "Arguments added after the router's own flags, e.g. `[\"-log-level=debug\"]`."
	}
	return map[string]rschema.Attribute{
		"labels": rschema.MapAttribute{
			MarkdownDescription: "Labels on every object the provider composes for the " + what + ". The provider's own labels " +
				"(`app.kubernetes.io/name`, `app.kubernetes.io/managed-by` and those under its label domain) cannot be set here: " +
				"discovery, pruning and selectors depend on them.",
			ElementType: types.StringType,
			Optional:    true,
		},
		"annotations": rschema.MapAttribute{
			MarkdownDescription: "Annotations on every object the provider composes for the " + what + " (not under the provider's label domain).",
			ElementType:         types.StringType,
			Optional:            true,
		},
		podAttr: rschema.SingleNestedAttribute{
			MarkdownDescription: "Settings of the " + what + "'s pods, for what Deployments are usually given: the pod's own metadata, " +
				"scheduling, image pull secrets, command, env sources and service account. Anything else is reachable with " +
				"`composition.patches`.",
			Optional: true,
			Attributes: map[string]rschema.Attribute{
				"labels": rschema.MapAttribute{
					MarkdownDescription: "Labels on the pod template only (the provider's own labels cannot be set).",
					ElementType:         types.StringType,
					Optional:            true,
				},
				"annotations": rschema.MapAttribute{
					MarkdownDescription: "Annotations on the pod template only, e.g. `{ \"prometheus.io/scrape\" = \"true\" }`.",
					ElementType:         types.StringType,
					Optional:            true,
				},
				"node_selector": rschema.MapAttribute{
					MarkdownDescription: "Node labels the pods must run on, e.g. `{ \"kubernetes.io/arch\" = \"arm64\" }`.",
					ElementType:         types.StringType,
					Optional:            true,
				},
				"tolerations": rschema.ListNestedAttribute{
					MarkdownDescription: "Taints the pods tolerate.",
					Optional:            true,
					NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
						"key": rschema.StringAttribute{MarkdownDescription: "Taint key; empty with `operator = \"Exists\"` tolerates every taint.", Optional: true},
						"operator": rschema.StringAttribute{
							MarkdownDescription: "`Equal` (the default) or `Exists`.",
							Optional:            true,
							Validators:          []validator.String{stringvalidator.OneOf("Equal", "Exists")},
						},
						"value": rschema.StringAttribute{MarkdownDescription: "Taint value, with `Equal`.", Optional: true},
						"effect": rschema.StringAttribute{
							MarkdownDescription: "`NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches every effect.",
							Optional:            true,
							Validators:          []validator.String{stringvalidator.OneOf("NoSchedule", "PreferNoSchedule", "NoExecute")},
						},
						"toleration_seconds": rschema.Int64Attribute{MarkdownDescription: "How long a pod stays bound after a `NoExecute` taint appears.", Optional: true},
					}},
				},
				"image_pull_secrets": rschema.ListAttribute{
					MarkdownDescription: "Names of `kubernetes.io/dockerconfigjson` Secrets in the namespace, for private registries.",
					ElementType:         types.StringType,
					Optional:            true,
					Validators:          []validator.List{listvalidator.ValueStringsAre(stringvalidator.RegexMatches(objectName, "must be a Secret name"))},
				},
				"command": rschema.ListAttribute{
					MarkdownDescription: "Command, replacing the image's `ENTRYPOINT`.",
					ElementType:         types.StringType,
					Optional:            true,
				},
				"args": rschema.ListAttribute{
					MarkdownDescription: argsDescription,
					ElementType:         types.StringType,
					Optional:            true,
				},
				"env_from": rschema.ListNestedAttribute{
					MarkdownDescription: "ConfigMaps and Secrets whose every key becomes an environment variable (values the provider never reads).",
					Optional:            true,
					NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
						"config_map": rschema.StringAttribute{
							MarkdownDescription: "Name of a ConfigMap in the namespace. Exactly one of `config_map` and `secret`.",
							Optional:            true,
							Validators: []validator.String{stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("config_map"),
								path.MatchRelative().AtParent().AtName("secret"))},
						},
						"secret": rschema.StringAttribute{MarkdownDescription: "Name of a Secret in the namespace.", Optional: true},
						"prefix": rschema.StringAttribute{MarkdownDescription: "Prefix added to every variable's name.", Optional: true},
					}},
				},
				"service_account": rschema.StringAttribute{
					MarkdownDescription: "An existing service account to run as; the provider then creates none. With an identity, " +
						"the SPIFFE ID and SPIRE selectors name this account.",
					Optional:   true,
					Validators: []validator.String{stringvalidator.RegexMatches(objectName, "must be a ServiceAccount name")},
				},
				"service_account_annotations": rschema.MapAttribute{
					MarkdownDescription: "Annotations on the service account the provider creates, e.g. for a cloud's workload identity " +
						"(`iam.gke.io/gcp-service-account`, `eks.amazonaws.com/role-arn`). Not with `service_account`.",
					ElementType: types.StringType,
					Optional:    true,
				},
			},
		},
	}
}

// fullyKnown reports a value with nothing unknown inside.
func fullyKnown(ctx context.Context, v attr.Value) bool {
	if v.IsNull() {
		return true
	}
	if v.IsUnknown() {
		return false
	}
	tv, err := v.ToTerraformValue(ctx)
	return err == nil && tv.IsFullyKnown()
}

// workloadFromModel converts the attributes; known is false while any of them is unknown.
func workloadFromModel(ctx context.Context, labels, annotations types.Map, pod types.Object) (w composition.Workload, known bool, diags diag.Diagnostics) {
	if !fullyKnown(ctx, labels) || !fullyKnown(ctx, annotations) || !fullyKnown(ctx, pod) {
		return w, false, diags
	}
	if !labels.IsNull() {
		diags.Append(labels.ElementsAs(ctx, &w.Labels, false)...)
	}
	if !annotations.IsNull() {
		diags.Append(annotations.ElementsAs(ctx, &w.Annotations, false)...)
	}
	if pod.IsNull() {
		return w, true, diags
	}
	var m podModel
	diags.Append(pod.As(ctx, &m, basetypes.ObjectAsOptions{})...)
	diags.Append(m.Labels.ElementsAs(ctx, &w.PodLabels, false)...)
	diags.Append(m.Annotations.ElementsAs(ctx, &w.PodAnnotations, false)...)
	diags.Append(m.NodeSelector.ElementsAs(ctx, &w.NodeSelector, false)...)
	diags.Append(m.ImagePullSecrets.ElementsAs(ctx, &w.ImagePullSecrets, false)...)
	diags.Append(m.Command.ElementsAs(ctx, &w.Command, false)...)
	diags.Append(m.Args.ElementsAs(ctx, &w.Args, false)...)
	diags.Append(m.ServiceAccountAnnotations.ElementsAs(ctx, &w.ServiceAccountAnnotations, false)...)
	w.ServiceAccount = m.ServiceAccount.ValueString()
	var tolerations []tolerationModel
	diags.Append(m.Tolerations.ElementsAs(ctx, &tolerations, false)...)
	for _, t := range tolerations {
		ct := composition.Toleration{Key: t.Key.ValueString(), Operator: t.Operator.ValueString(), Value: t.Value.ValueString(), Effect: t.Effect.ValueString()}
		if !t.TolerationSeconds.IsNull() {
			s := t.TolerationSeconds.ValueInt64()
			ct.TolerationSeconds = &s
		}
		w.Tolerations = append(w.Tolerations, ct)
	}
	var envFrom []envFromModel
	diags.Append(m.EnvFrom.ElementsAs(ctx, &envFrom, false)...)
	for _, e := range envFrom {
		w.EnvFrom = append(w.EnvFrom, composition.EnvFrom{ConfigMap: e.ConfigMap.ValueString(), Secret: e.Secret.ValueString(), Prefix: e.Prefix.ValueString()})
	}
	return w, true, diags
}

// workloadToModel is the reverse, for import: empty settings are null attributes.
func workloadToModel(ctx context.Context, w composition.Workload) (labels, annotations types.Map, pod types.Object, diags diag.Diagnostics) {
	optMap := func(m map[string]string) types.Map {
		if len(m) == 0 {
			return types.MapNull(types.StringType)
		}
		v, d := types.MapValueFrom(ctx, types.StringType, m)
		diags.Append(d...)
		return v
	}
	optList := func(l []string) types.List {
		if len(l) == 0 {
			return types.ListNull(types.StringType)
		}
		v, d := types.ListValueFrom(ctx, types.StringType, l)
		diags.Append(d...)
		return v
	}
	labels, annotations = optMap(w.Labels), optMap(w.Annotations)
	empty := len(w.PodLabels) == 0 && len(w.PodAnnotations) == 0 && len(w.NodeSelector) == 0 && len(w.Tolerations) == 0 &&
		len(w.ImagePullSecrets) == 0 && len(w.Command) == 0 && len(w.Args) == 0 && len(w.EnvFrom) == 0 &&
		w.ServiceAccount == "" && len(w.ServiceAccountAnnotations) == 0
	if empty {
		return labels, annotations, types.ObjectNull(podAttrTypes), diags
	}
	opt := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	m := podModel{
		Labels: optMap(w.PodLabels), Annotations: optMap(w.PodAnnotations), NodeSelector: optMap(w.NodeSelector),
		ImagePullSecrets: optList(w.ImagePullSecrets), Command: optList(w.Command), Args: optList(w.Args),
		ServiceAccount: opt(w.ServiceAccount), ServiceAccountAnnotations: optMap(w.ServiceAccountAnnotations),
		Tolerations: types.ListNull(types.ObjectType{AttrTypes: tolerationAttrTypes}),
		EnvFrom:     types.ListNull(types.ObjectType{AttrTypes: envFromAttrTypes}),
	}
	if len(w.Tolerations) > 0 {
		var ts []tolerationModel
		for _, t := range w.Tolerations {
			secs := types.Int64Null()
			if t.TolerationSeconds != nil {
				secs = types.Int64Value(*t.TolerationSeconds)
			}
			ts = append(ts, tolerationModel{Key: opt(t.Key), Operator: opt(t.Operator), Value: opt(t.Value), Effect: opt(t.Effect), TolerationSeconds: secs})
		}
		var d diag.Diagnostics
		m.Tolerations, d = types.ListValueFrom(ctx, types.ObjectType{AttrTypes: tolerationAttrTypes}, ts)
		diags.Append(d...)
	}
	if len(w.EnvFrom) > 0 {
		var es []envFromModel
		for _, e := range w.EnvFrom {
			es = append(es, envFromModel{ConfigMap: opt(e.ConfigMap), Secret: opt(e.Secret), Prefix: opt(e.Prefix)})
		}
		var d diag.Diagnostics
		m.EnvFrom, d = types.ListValueFrom(ctx, types.ObjectType{AttrTypes: envFromAttrTypes}, es)
		diags.Append(d...)
	}
	pod, d := types.ObjectValueFrom(ctx, podAttrTypes, m)
	diags.Append(d...)
	return labels, annotations, pod, diags
}
