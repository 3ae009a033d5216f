package provider

import (
	"context"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

var (
	_ resource.Resource                = &agentResource{}
	_ resource.ResourceWithConfigure   = &agentResource{}
	_ resource.ResourceWithImportState = &agentResource{}
	_ resource.ResourceWithModifyPlan  = &agentResource{}
)

// NewAgentResource returns the kagenti_agent resource.
func NewAgentResource() resource.Resource {
	return &agentResource{compositeResource[agentResourceModel, *agentResourceModel]{kind: composition.KindAgent}}
}

// agentResource deploys an AI agent: a composite of a ServiceAccount, Deployment, Service, card
// ConfigMap and, as asked, HorizontalPodAutoscaler, PodDisruptionBudget and PersistentVolumeClaim.
type agentResource struct {
	compositeResource[agentResourceModel, *agentResourceModel]
}

type agentResourceModel struct {
	compositeModel
	Framework    types.String `tfsdk:"framework"`
	Protocol     types.String `tfsdk:"protocol"`
	Version      types.String `tfsdk:"version"`
	Skills       types.List   `tfsdk:"skills"`
	LLM          types.Object `tfsdk:"llm"`
	Tools        types.List   `tfsdk:"tools"`
	Persistence  types.Object `tfsdk:"persistence"`
	Card         types.String `tfsdk:"card"`
	ExposeAsTool types.Bool   `tfsdk:"expose_as_tool"`
	Streaming    types.Bool   `tfsdk:"streaming"`
	InputModes   types.List   `tfsdk:"input_modes"`
	OutputModes  types.List   `tfsdk:"output_modes"`
	A2AVersions  types.List   `tfsdk:"a2a_versions"`
	A2AREST      types.Bool   `tfsdk:"a2a_rest"`
	A2AJSONRPC   types.Bool   `tfsdk:"a2a_jsonrpc"`
}

type skillModel struct {
	ID          types.String `tfsdk:"id"`
	Name        types.String `tfsdk:"name"`
	Description types.String `tfsdk:"description"`
	Tags        types.List   `tfsdk:"tags"`
	Examples    types.List   `tfsdk:"examples"`
}

type llmModel struct {
	BaseURL types.String `tfsdk:"base_url"`
	Model   types.String `tfsdk:"model"`
	APIKey  types.Object `tfsdk:"api_key"`
}

type persistenceModel struct {
	Size         types.String `tfsdk:"size"`
	StorageClass types.String `tfsdk:"storage_class"`
	MountPath    types.String `tfsdk:"mount_path"`
	Store        types.Object `tfsdk:"store"`
}

var (
	skillAttrTypes = map[string]attr.Type{
		"id": types.StringType, "name": types.StringType, "description": types.StringType,
		"tags": types.ListType{ElemType: types.StringType}, "examples": types.ListType{ElemType: types.StringType},
	}
	llmAttrTypes = map[string]attr.Type{
		"base_url": types.StringType, "model": types.StringType, "api_key": types.ObjectType{AttrTypes: secretRefAttrTypes},
	}
	persistenceAttrTypes = map[string]attr.Type{
		"size": types.StringType, "storage_class": types.StringType, "mount_path": types.StringType,
		"store": types.ObjectType{AttrTypes: secretRefAttrTypes},
	}
)

func (r *agentResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_agent"
}

func (r *agentResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs := compositeAttributes(ctx, "agent")
	attrs["framework"] = rschema.StringAttribute{
		MarkdownDescription: "Agent framework; picks the composition preset (port, probes, env): `langgraph`, `crewai`, `ag2`, " +
			"`llama-stack`, `beeai` or `custom`.",
		Required:   true,
		Validators: []validator.String{stringvalidator.OneOf(composition.Frameworks...)},
	}
	attrs["protocol"] = rschema.StringAttribute{
		MarkdownDescription: "Protocol the agent speaks: `a2a` (default) or `acp`. Decides whether it publishes an A2A agent card or an ACP manifest.",
		Optional:            true,
		Computed:            true,
		Default:             stringdefault.StaticString("a2a"),
		Validators:          []validator.String{stringvalidator.OneOf(composition.Protocols...)},
	}
	attrs["version"] = rschema.StringAttribute{
		MarkdownDescription: "Version published in the card (default `1.0.0`).",
		Optional:            true,
	}
	attrs["streaming"] = rschema.BoolAttribute{
		MarkdownDescription: "Whether the card says the agent streams (`message/stream`; default `true`). Set `false` for an agent that only answers whole.",
		Optional:            true, Computed: true, Default: booldefault.StaticBool(true),
	}
	defaultModes, _ := types.ListValueFrom(context.Background(), types.StringType, composition.DefaultModes)
	for dir, words := range map[string][2]string{"input": {"takes", "defaultInputModes"}, "output": {"answers in", "defaultOutputModes"}} {
		attrs[dir+"_modes"] = rschema.ListAttribute{
			MarkdownDescription: "Media types the agent " + words[0] + ", published in the card (A2A `" + words[1] + "`, " +
				"ACP `" + dir + "_content_types`); default `[\"text/plain\"]`.",
			ElementType: types.StringType,
			Optional:    true, Computed: true, Default: listdefault.StaticValue(defaultModes),
			Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues()},
		}
	}
	defaultVersions, _ := types.ListValueFrom(context.Background(), types.StringType, composition.DefaultA2AVersions)
	attrs["a2a_versions"] = rschema.ListAttribute{
		MarkdownDescription: "A2A protocol versions the agent itself speaks: `0.3` (the default: agents built with an A2A 0.3 SDK) and/or `1.0`. " +
			"Published in its card (0.3's `protocolVersion`/`url`, 1.0's `supportedInterfaces`). kagenti-router serves both versions to " +
			"every client and translates a call whose version the agent does not speak; a 1.0 agent gets the `A2A-Version: 1.0` header " +
			"it needs. Ignored for ACP agents.",
		ElementType: types.StringType,
		Optional:    true, Computed: true, Default: listdefault.StaticValue(defaultVersions),
		Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
			listvalidator.ValueStringsAre(stringvalidator.OneOf(composition.A2AVersions...))},
	}
	attrs["a2a_rest"] = rschema.BoolAttribute{
		MarkdownDescription: "Whether the agent serves A2A's HTTP+JSON (REST) binding at its URL, in each of `a2a_versions` " +
			"(0.3: `/v1/message:send`, ...; 1.0: `/message:send`, ...). The router forwards REST calls in those versions as they are. " +
			"Without it the router still offers REST of both versions for the agent, translated into its JSON-RPC. Default `false`.",
		Optional: true, Computed: true, Default: booldefault.StaticBool(false),
	}
	attrs["a2a_jsonrpc"] = rschema.BoolAttribute{
		MarkdownDescription: "Whether the agent serves A2A's JSON-RPC binding at its URL. Set `false`, with `a2a_rest = true`, for an " +
			"agent that serves only HTTP+JSON: when `a2a_versions` has `1.0`, the router calls it over its 1.0 REST for every client " +
			"(JSON-RPC of both versions, 0.3 REST, the MCP facade), through the A2A project's own Go SDK; an agent that serves 0.3 " +
			"REST alone is reachable only by 0.3 REST clients. Ignored for ACP agents. Default `true`.",
		Optional: true, Computed: true, Default: booldefault.StaticBool(true),
	}
	attrs["skills"] = rschema.ListNestedAttribute{
		MarkdownDescription: "Skills published in the agent card.",
		Optional:            true,
		NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
			"id":          rschema.StringAttribute{MarkdownDescription: "Unique id of the skill.", Required: true, Validators: []validator.String{stringvalidator.LengthAtLeast(1)}},
			"name":        rschema.StringAttribute{MarkdownDescription: "Human-readable name.", Required: true, Validators: []validator.String{stringvalidator.LengthAtLeast(1)}},
			"description": rschema.StringAttribute{MarkdownDescription: "What the skill does.", Optional: true},
			"tags":        rschema.ListAttribute{MarkdownDescription: "Tags for discovery.", Optional: true, ElementType: types.StringType},
			"examples":    rschema.ListAttribute{MarkdownDescription: "Example prompts.", Optional: true, ElementType: types.StringType},
		}},
	}
	attrs["llm"] = rschema.SingleNestedAttribute{
		MarkdownDescription: "The model server the agent uses; sets LLM_API_BASE, LLM_MODEL and (from a Secret) LLM_API_KEY.",
		Optional:            true,
		Attributes: map[string]rschema.Attribute{
			"base_url": rschema.StringAttribute{MarkdownDescription: "OpenAI-compatible API base URL, e.g. `http://ollama:11434/v1`.", Required: true},
			"model":    rschema.StringAttribute{MarkdownDescription: "Model name, e.g. `llama3.2:3b`.", Required: true},
			"api_key": rschema.SingleNestedAttribute{
				MarkdownDescription: "Secret holding the API key.", Optional: true,
				Attributes: secretRefAttributes("the API key"),
			},
		},
	}
	attrs["tools"] = rschema.ListAttribute{
		MarkdownDescription: "Ids of the `kagenti_tool`s the agent uses (`[kagenti_tool.weather.id]`). Sets MCP_URLS and MCP_TRANSPORTS " +
			"(every tool's URL and transport, comma-separated, in the same order), and MCP_URL and MCP_TRANSPORT (the first tool's).",
		Optional:    true,
		ElementType: types.StringType,
		Validators: []validator.List{listvalidator.UniqueValues(), listvalidator.ValueStringsAre(
			stringvalidator.RegexMatches(compositeIDRe, "must be a kagenti_tool id, <namespace>/<name>"))},
	}
	attrs["persistence"] = rschema.SingleNestedAttribute{
		MarkdownDescription: "Checkpoint storage: a volume (`size`, mounted at the preset's path and exported as CHECKPOINT_DIR) or " +
			"an external store whose URL is in a Secret (`store`, exported as CHECKPOINT_STORE_URL).",
		Optional: true,
		Attributes: map[string]rschema.Attribute{
			"size": rschema.StringAttribute{
				MarkdownDescription: "Size of a PersistentVolumeClaim, e.g. `1Gi`.", Optional: true,
				Validators: []validator.String{stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("store"))},
			},
			"storage_class": rschema.StringAttribute{MarkdownDescription: "Storage class of the claim.", Optional: true},
			"mount_path":    rschema.StringAttribute{MarkdownDescription: "Where the volume is mounted (default `/data`).", Optional: true},
			"store": rschema.SingleNestedAttribute{
				MarkdownDescription: "Secret holding the URL of an external checkpoint store (e.g. PostgreSQL, Redis).", Optional: true,
				Attributes: secretRefAttributes("the store URL"),
			},
		},
	}
	attrs["expose_as_tool"] = rschema.BoolAttribute{
		MarkdownDescription: "Offer this A2A agent to other agents as an MCP tool through kagenti-router (`<router>/mcp/<namespace>`): " +
			"one tool named after the agent, described from its card, taking a text input; calls go through the same authentication, " +
			"policy and token exchange as A2A calls.",
		Optional: true, Computed: true, Default: booldefault.StaticBool(false),
	}
	attrs["card"] = rschema.StringAttribute{
		MarkdownDescription: "The rendered A2A agent card (or ACP manifest), JSON.",
		Computed:            true,
	}
	resp.Schema = rschema.Schema{
		MarkdownDescription: "An AI agent of any framework, deployed on Kubernetes and reachable through A2A or ACP. It expands, " +
			"through a versioned composition, into a ServiceAccount, a Deployment, a Service and a ConfigMap with its card " +
			"(plus a HorizontalPodAutoscaler, PodDisruptionBudget and PersistentVolumeClaim as asked), all labelled for discovery. " +
			"Drift in any field the provider sets shows in the plan and is repaired by the next apply.",
		Attributes: attrs,
	}
}

func (m *agentResourceModel) common() *compositeModel { return &m.compositeModel }

func (m *agentResourceModel) input(ctx context.Context) (composition.Input, bool, diag.Diagnostics) {
	in := composition.Input{Kind: composition.KindAgent}
	known, diags := compositeInput(ctx, &m.compositeModel, &in)
	str := func(v types.String) string {
		if v.IsUnknown() {
			known = false
		}
		return v.ValueString()
	}
	in.Framework, in.Protocol, in.Version = str(m.Framework), str(m.Protocol), str(m.Version)
	in.ExposeAsTool = m.ExposeAsTool.ValueBool()
	if m.Streaming.IsUnknown() || m.A2AREST.IsUnknown() || m.A2AJSONRPC.IsUnknown() {
		known = false // all go into the card
	}
	in.NoStreaming = !m.Streaming.IsNull() && !m.Streaming.IsUnknown() && !m.Streaming.ValueBool()
	if !fullyKnown(ctx, m.InputModes) || !fullyKnown(ctx, m.OutputModes) {
		known = false
	} else {
		var inModes, outModes []string
		if !m.InputModes.IsNull() {
			diags.Append(m.InputModes.ElementsAs(ctx, &inModes, false)...)
		}
		if !m.OutputModes.IsNull() {
			diags.Append(m.OutputModes.ElementsAs(ctx, &outModes, false)...)
		}
		// The defaults are not stored, so that an input from before these settings reads the same.
		if !slices.Equal(inModes, composition.DefaultModes) {
			in.InputModes = inModes
		}
		if !slices.Equal(outModes, composition.DefaultModes) {
			in.OutputModes = outModes
		}
	}
	in.A2AREST = m.A2AREST.ValueBool()
	in.NoJSONRPC = !m.A2AJSONRPC.IsNull() && !m.A2AJSONRPC.IsUnknown() && !m.A2AJSONRPC.ValueBool()
	if !fullyKnown(ctx, m.A2AVersions) {
		known = false
	} else if !m.A2AVersions.IsNull() {
		var versions []string
		diags.Append(m.A2AVersions.ElementsAs(ctx, &versions, false)...)
		// The default is not stored, so that an input from before this setting reads the same.
		if !slices.Equal(versions, composition.DefaultA2AVersions) {
			in.A2AVersions = versions
		}
	}
	if m.Skills.IsUnknown() {
		known = false
	} else if !m.Skills.IsNull() {
		var skills []skillModel
		diags.Append(m.Skills.ElementsAs(ctx, &skills, false)...)
		for _, s := range skills {
			skill := composition.Skill{ID: str(s.ID), Name: str(s.Name), Description: str(s.Description)}
			if s.Tags.IsUnknown() || s.Examples.IsUnknown() {
				known = false
			}
			diags.Append(s.Tags.ElementsAs(ctx, &skill.Tags, false)...)
			diags.Append(s.Examples.ElementsAs(ctx, &skill.Examples, false)...)
			in.Skills = append(in.Skills, skill)
		}
	}
	if m.LLM.IsUnknown() {
		known = false
	} else if !m.LLM.IsNull() {
		var l llmModel
		diags.Append(m.LLM.As(ctx, &l, basetypes.ObjectAsOptions{})...)
		in.LLM = &composition.LLM{BaseURL: str(l.BaseURL), Model: str(l.Model)}
		if !l.APIKey.IsNull() && !l.APIKey.IsUnknown() {
			var ref secretRefModel
			diags.Append(l.APIKey.As(ctx, &ref, basetypes.ObjectAsOptions{})...)
			in.LLM.APIKey = &composition.SecretRef{Secret: str(ref.Secret), Key: str(ref.Key)}
		}
	}
	if m.Tools.IsUnknown() {
		known = false
	} else if !m.Tools.IsNull() {
		for _, v := range m.Tools.Elements() {
			s := v.(types.String)
			// An unknown id is a tool created in this apply: it is resolved then.
			in.Tools = append(in.Tools, composition.ToolRef{ID: s.ValueString()})
		}
	}
	if m.Persistence.IsUnknown() {
		known = false
	} else if !m.Persistence.IsNull() {
		var p persistenceModel
		diags.Append(m.Persistence.As(ctx, &p, basetypes.ObjectAsOptions{})...)
		in.Persistence = &composition.Persistence{Size: str(p.Size), StorageClass: str(p.StorageClass), MountPath: str(p.MountPath)}
		if !p.Store.IsNull() && !p.Store.IsUnknown() {
			var ref secretRefModel
			diags.Append(p.Store.As(ctx, &ref, basetypes.ObjectAsOptions{})...)
			in.Persistence.Store = &composition.SecretRef{Secret: str(ref.Secret), Key: str(ref.Key)}
		}
	}
	return in, known, diags
}

func (m *agentResourceModel) fromInput(ctx context.Context, in composition.Input) diag.Diagnostics {
	diags := compositeModelFromInput(ctx, in, &m.compositeModel)
	opt := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	m.Framework, m.Protocol, m.Version = types.StringValue(in.Framework), types.StringValue(in.Protocol), opt(in.Version)
	m.ExposeAsTool = types.BoolValue(in.ExposeAsTool)
	m.Streaming = types.BoolValue(!in.NoStreaming)
	modes := func(l []string) types.List {
		if len(l) == 0 {
			l = composition.DefaultModes
		}
		v, d := types.ListValueFrom(ctx, types.StringType, l)
		diags.Append(d...)
		return v
	}
	m.InputModes, m.OutputModes = modes(in.InputModes), modes(in.OutputModes)
	versions := in.A2AVersions
	if len(versions) == 0 {
		versions = composition.DefaultA2AVersions
	}
	var d diag.Diagnostics
	m.A2AVersions, d = types.ListValueFrom(ctx, types.StringType, versions)
	diags.Append(d...)
	m.A2AREST = types.BoolValue(in.A2AREST)
	m.A2AJSONRPC = types.BoolValue(!in.NoJSONRPC)
	m.Skills = types.ListNull(types.ObjectType{AttrTypes: skillAttrTypes})
	if len(in.Skills) > 0 {
		var skills []skillModel
		for _, s := range in.Skills {
			tags, d := optStringList(ctx, s.Tags)
			diags.Append(d...)
			examples, d := optStringList(ctx, s.Examples)
			diags.Append(d...)
			skills = append(skills, skillModel{ID: types.StringValue(s.ID), Name: types.StringValue(s.Name), Description: opt(s.Description), Tags: tags, Examples: examples})
		}
		var d diag.Diagnostics
		m.Skills, d = types.ListValueFrom(ctx, types.ObjectType{AttrTypes: skillAttrTypes}, skills)
		diags.Append(d...)
	}
	m.LLM = types.ObjectNull(llmAttrTypes)
	if l := in.LLM; l != nil {
		key, d := secretRefValue(ctx, l.APIKey)
		diags.Append(d...)
		m.LLM, d = types.ObjectValueFrom(ctx, llmAttrTypes, llmModel{BaseURL: types.StringValue(l.BaseURL), Model: types.StringValue(l.Model), APIKey: key})
		diags.Append(d...)
	}
	m.Tools = types.ListNull(types.StringType)
	if len(in.Tools) > 0 {
		ids := make([]string, len(in.Tools))
		for i, t := range in.Tools {
			ids[i] = t.ID
		}
		var d diag.Diagnostics
		m.Tools, d = types.ListValueFrom(ctx, types.StringType, ids)
		diags.Append(d...)
	}
	m.Persistence = types.ObjectNull(persistenceAttrTypes)
	if p := in.Persistence; p != nil {
		store, d := secretRefValue(ctx, p.Store)
		diags.Append(d...)
		m.Persistence, d = types.ObjectValueFrom(ctx, persistenceAttrTypes, persistenceModel{
			Size: opt(p.Size), StorageClass: opt(p.StorageClass), MountPath: opt(p.MountPath), Store: store,
		})
		diags.Append(d...)
	}
	return diags
}

func (m *agentResourceModel) setOutput(out *composition.Output) { m.Card = types.StringValue(out.Card) }

func (m *agentResourceModel) setOutputUnknown() { m.Card = types.StringUnknown() }

func (m *agentResourceModel) setOutputUnknownAsNull() { m.Card = types.StringNull() }

func optStringList(ctx context.Context, s []string) (types.List, diag.Diagnostics) {
	if len(s) == 0 {
		return types.ListNull(types.StringType), nil
	}
	return types.ListValueFrom(ctx, types.StringType, s)
}
