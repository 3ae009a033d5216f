package provider

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

var (
	_ datasource.DataSource              = &discoveryDataSource{}
	_ datasource.DataSourceWithConfigure = &discoveryDataSource{}
)

// NewAgentsDataSource returns data.kagenti_agents.
func NewAgentsDataSource() datasource.DataSource {
	return &discoveryDataSource{kind: contract.TypeAgent}
}

// NewToolsDataSource returns data.kagenti_tools.
func NewToolsDataSource() datasource.DataSource { return &discoveryDataSource{kind: contract.TypeTool} }

// discoveryDataSource lists the agents or tools in the cluster from the labels and cards the
// provider writes, so that other configurations can wire to agents they did not create.
type discoveryDataSource struct {
	kind string
	data *providerData
}

type discoveryDataSourceModel struct {
	Namespace types.String `tfsdk:"namespace"`
	Framework types.String `tfsdk:"framework"`
	Protocol  types.String `tfsdk:"protocol"`
	Transport types.String `tfsdk:"transport"`
	SkillTag  types.String `tfsdk:"skill_tag"`
	Items     types.List   `tfsdk:"items"`
}

var discoveredAttrTypes = map[string]attr.Type{
	"id": types.StringType, "namespace": types.StringType, "name": types.StringType, "framework": types.StringType,
	"protocol": types.StringType, "transport": types.StringType, "url": types.StringType, "description": types.StringType,
	"skills": types.ListType{ElemType: types.StringType}, "tags": types.ListType{ElemType: types.StringType},
	"spiffe_id": types.StringType, "card": types.StringType,
}

func (d *discoveryDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + d.kind + "s"
}

func (d *discoveryDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	noun := d.kind + "s"
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the Kagenti " + noun + " in the cluster — whoever created them — from the labels and cards the " +
			"provider writes. Filters combine; an empty result is not an error.",
		Attributes: map[string]schema.Attribute{
			"namespace": schema.StringAttribute{MarkdownDescription: "Only this namespace (default: all).", Optional: true},
			"framework": schema.StringAttribute{MarkdownDescription: "Only agents of this framework.", Optional: true},
			"protocol": schema.StringAttribute{
				MarkdownDescription: "Only agents speaking `a2a` or `acp`.", Optional: true,
				Validators: []validator.String{stringvalidator.OneOf(composition.Protocols...)},
			},
			"transport": schema.StringAttribute{
				MarkdownDescription: "Only tools with this MCP transport.", Optional: true,
				Validators: []validator.String{stringvalidator.OneOf(composition.Transports...)},
			},
			"skill_tag": schema.StringAttribute{MarkdownDescription: "Only agents with a skill of this id or tag.", Optional: true},
			"items": schema.ListNestedAttribute{
				MarkdownDescription: "The " + noun + ", sorted by namespace and name.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"id":          schema.StringAttribute{MarkdownDescription: "`<namespace>/<name>` (the resource id).", Computed: true},
					"namespace":   schema.StringAttribute{MarkdownDescription: "Namespace.", Computed: true},
					"name":        schema.StringAttribute{MarkdownDescription: "Name.", Computed: true},
					"framework":   schema.StringAttribute{MarkdownDescription: "Framework (agents).", Computed: true},
					"protocol":    schema.StringAttribute{MarkdownDescription: "`a2a`, `acp` or `mcp`.", Computed: true},
					"transport":   schema.StringAttribute{MarkdownDescription: "MCP transport (tools).", Computed: true},
					"url":         schema.StringAttribute{MarkdownDescription: "In-cluster URL (or endpoint).", Computed: true},
					"description": schema.StringAttribute{MarkdownDescription: "Description.", Computed: true},
					"skills":      schema.ListAttribute{MarkdownDescription: "Skill ids.", Computed: true, ElementType: types.StringType},
					"tags":        schema.ListAttribute{MarkdownDescription: "Skill tags.", Computed: true, ElementType: types.StringType},
					"spiffe_id":   schema.StringAttribute{MarkdownDescription: "SPIFFE ID, when it has an identity with a client.", Computed: true},
					"card":        schema.StringAttribute{MarkdownDescription: "The agent card or ACP manifest (JSON).", Computed: true},
				}},
			},
		},
	}
}

func (d *discoveryDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	pd := providerDataFrom(req.ProviderData, &resp.Diagnostics)
	if pd == nil {
		return
	}
	d.data = pd
}

func (d *discoveryDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m discoveryDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	applier, err := d.data.Applier()
	if err != nil {
		resp.Diagnostics.Append(kubernetesUnreachable("listing "+d.kind+"s", err))
		return
	}
	keys := contract.NewKeys(d.data.labelDomain)
	ns := m.Namespace.ValueString()
	sel := map[string]string{keys.Type(): d.kind}
	services, err := applier.List(ctx, k8sschema.GroupVersionKind{Version: "v1", Kind: "Service"}, ns, sel)
	if err != nil {
		resp.Diagnostics.Append(kubernetesUnreachable("listing "+d.kind+"s", err))
		return
	}
	cards := map[string]string{}
	if d.kind == contract.TypeAgent {
		cms, err := applier.List(ctx, k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, ns, sel)
		if err != nil {
			resp.Diagnostics.Append(kubernetesUnreachable("listing agent cards", err))
			return
		}
		for _, cm := range cms {
			data, _, _ := unstructuredStringMap(cm.Object, "data")
			card := data[contract.CardKey]
			if card == "" {
				card = data[contract.ManifestKey]
			}
			cards[cm.GetNamespace()+"/"+strings.TrimSuffix(cm.GetName(), "-card")] = card
		}
	}
	var items []attr.Value
	sort.Slice(services, func(i, j int) bool {
		return services[i].GetNamespace()+"/"+services[i].GetName() < services[j].GetNamespace()+"/"+services[j].GetName()
	})
	for _, svc := range services {
		l, a := svc.GetLabels(), svc.GetAnnotations()
		if f := m.Framework.ValueString(); f != "" && l[keys.Framework()] != f {
			continue
		}
		if p := m.Protocol.ValueString(); p != "" && l[keys.Protocol()] != p {
			continue
		}
		if t := m.Transport.ValueString(); t != "" && l[keys.Transport()] != t {
			continue
		}
		id := svc.GetNamespace() + "/" + svc.GetName()
		card := cards[id]
		skills, tags, description := cardSkills(card)
		if description == "" {
			var spec composition.Input
			if json.Unmarshal([]byte(a[keys.Spec()]), &spec) == nil {
				description = spec.Description
			}
		}
		if tag := m.SkillTag.ValueString(); tag != "" && !containsString(skills, tag) && !containsString(tags, tag) {
			continue
		}
		var policy contract.Policy
		_ = json.Unmarshal([]byte(a[keys.Policy()]), &policy)
		sl, _ := types.ListValueFrom(ctx, types.StringType, nonNil(skills))
		tl, _ := types.ListValueFrom(ctx, types.StringType, nonNil(tags))
		obj, diags := types.ObjectValue(discoveredAttrTypes, map[string]attr.Value{
			"id": types.StringValue(id), "namespace": types.StringValue(svc.GetNamespace()), "name": types.StringValue(svc.GetName()),
			"framework": optStr(l[keys.Framework()]), "protocol": optStr(l[keys.Protocol()]), "transport": optStr(l[keys.Transport()]),
			"url": optStr(a[keys.URL()]), "description": optStr(description), "skills": sl, "tags": tl,
			"spiffe_id": optStr(policy.Audience), "card": optStr(card),
		})
		resp.Diagnostics.Append(diags...)
		items = append(items, obj)
	}
	list, diags := types.ListValue(types.ObjectType{AttrTypes: discoveredAttrTypes}, nonNilValues(items))
	resp.Diagnostics.Append(diags...)
	m.Items = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func cardSkills(card string) (skills, tags []string, description string) {
	c, err := contract.ParseCardSummary([]byte(card))
	if err != nil {
		return nil, nil, ""
	}
	for _, s := range c.Skills {
		skills = append(skills, s.ID)
		tags = append(tags, s.Tags...)
	}
	return skills, append(tags, c.Metadata.Tags...), c.Description
}

func optStr(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilValues(v []attr.Value) []attr.Value {
	if v == nil {
		return []attr.Value{}
	}
	return v
}

func unstructuredStringMap(obj map[string]any, key string) (map[string]string, bool, error) {
	out := map[string]string{}
	m, ok := obj[key].(map[string]any)
	if !ok {
		return out, false, nil
	}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, true, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
