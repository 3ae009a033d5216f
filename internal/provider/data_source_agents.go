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
	"github.com/hashicorp/terraform-plugin-framework/path"
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

// discoveryFilter is a filter attribute of a discovery data source: the label it matches and
// the values that label can hold for the data source's kind.
type discoveryFilter struct {
	name, description string
	label             func(contract.Keys) string
	values            []string
}

// filters are the filters of a kind: each matches a label that kind's Services carry, so that a
// filter never silently matches nothing (tools have no framework or skills; agents no
// transport).
func (d *discoveryDataSource) filters() []discoveryFilter {
	if d.kind == contract.TypeTool {
		return []discoveryFilter{
			{name: "protocol", label: contract.Keys.Protocol, values: []string{composition.ToolProtocol},
				description: "Only tools speaking this protocol: `" + composition.ToolProtocol + "`, which every tool speaks."},
			{name: "transport", label: contract.Keys.Transport, values: composition.Transports,
				description: "Only tools serving MCP over this transport: `streamable-http` or `sse`."},
		}
	}
	return []discoveryFilter{
		{name: "framework", label: contract.Keys.Framework, values: composition.Frameworks,
			description: "Only agents of this framework: " + codeList(composition.Frameworks) + "."},
		{name: "protocol", label: contract.Keys.Protocol, values: composition.Protocols,
			description: "Only agents speaking this protocol: " + codeList(composition.Protocols) + "."},
	}
}

func codeList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "`" + v + "`"
	}
	return strings.Join(quoted, ", ")
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
	attrs := map[string]schema.Attribute{
		"namespace": schema.StringAttribute{MarkdownDescription: "Only this namespace (default: all).", Optional: true},
		"items":     itemsAttribute(noun),
	}
	for _, f := range d.filters() {
		attrs[f.name] = schema.StringAttribute{MarkdownDescription: f.description, Optional: true,
			Validators: []validator.String{stringvalidator.OneOf(f.values...)}}
	}
	if d.kind == contract.TypeAgent {
		attrs["skill_tag"] = schema.StringAttribute{MarkdownDescription: "Only agents with a skill of this id or tag.", Optional: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the Kagenti " + noun + " in the cluster — whoever created them — from the labels and cards the " +
			"provider writes. Filters combine; an empty result is not an error.",
		Attributes: attrs,
	}
}

// itemsAttribute is the computed list of what a discovery data source found.
func itemsAttribute(noun string) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		MarkdownDescription: "The " + noun + ", sorted by namespace and name.",
		Computed:            true,
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"id":          schema.StringAttribute{MarkdownDescription: "`<namespace>/<name>` (the resource id).", Computed: true},
			"namespace":   schema.StringAttribute{MarkdownDescription: "Namespace.", Computed: true},
			"name":        schema.StringAttribute{MarkdownDescription: "Name.", Computed: true},
			"framework":   schema.StringAttribute{MarkdownDescription: "Framework of an agent; null for tools.", Computed: true},
			"protocol":    schema.StringAttribute{MarkdownDescription: "`a2a` or `acp` for agents, `mcp` for tools.", Computed: true},
			"transport":   schema.StringAttribute{MarkdownDescription: "MCP transport of a tool; null for agents.", Computed: true},
			"url":         schema.StringAttribute{MarkdownDescription: "In-cluster URL (or endpoint).", Computed: true},
			"description": schema.StringAttribute{MarkdownDescription: "Description.", Computed: true},
			"skills":      schema.ListAttribute{MarkdownDescription: "Skill ids of an agent (empty for tools).", Computed: true, ElementType: types.StringType},
			"tags":        schema.ListAttribute{MarkdownDescription: "Skill tags of an agent (empty for tools).", Computed: true, ElementType: types.StringType},
			"spiffe_id":   schema.StringAttribute{MarkdownDescription: "SPIFFE ID, when it has an identity with a client.", Computed: true},
			"card":        schema.StringAttribute{MarkdownDescription: "The agent card or ACP manifest (JSON); null for tools.", Computed: true},
		}},
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
	var namespace, skillTag types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("namespace"), &namespace)...)
	if d.kind == contract.TypeAgent {
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("skill_tag"), &skillTag)...)
	}
	filters := d.filters()
	want := make([]types.String, len(filters))
	for i, f := range filters {
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root(f.name), &want[i])...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	applier, err := d.data.Applier()
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("listing "+d.kind+"s", err))
		return
	}
	keys := contract.NewKeys(d.data.labelDomain)
	ns := namespace.ValueString()
	sel := map[string]string{keys.Type(): d.kind}
	services, err := applier.List(ctx, k8sschema.GroupVersionKind{Version: "v1", Kind: "Service"}, ns, sel)
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("listing "+d.kind+"s", err))
		return
	}
	cards := map[string]string{}
	if d.kind == contract.TypeAgent {
		cms, err := applier.List(ctx, k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, ns, sel)
		if err != nil {
			resp.Diagnostics.Append(kubernetesAPIError("listing agent cards", err))
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
		if !matchesFilters(filters, want, keys, l) {
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
		if tag := skillTag.ValueString(); tag != "" && !containsString(skills, tag) && !containsString(tags, tag) {
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
	// The state is the configuration (filters as given) plus what was found.
	resp.State.Raw = req.Config.Raw.Copy()
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("items"), list)...)
}

// matchesFilters reports whether a Service's labels match every filter that is set (want[i] is
// the value of filters[i]).
func matchesFilters(filters []discoveryFilter, want []types.String, keys contract.Keys, labels map[string]string) bool {
	for i, f := range filters {
		if v := want[i].ValueString(); v != "" && labels[f.label(keys)] != v {
			return false
		}
	}
	return true
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
