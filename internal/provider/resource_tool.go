package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

var (
	_ resource.Resource                = &toolResource{}
	_ resource.ResourceWithConfigure   = &toolResource{}
	_ resource.ResourceWithImportState = &toolResource{}
	_ resource.ResourceWithModifyPlan  = &toolResource{}
)

// NewToolResource returns the kagenti_tool resource.
func NewToolResource() resource.Resource {
	return &toolResource{}
}

// toolResource deploys an MCP tool server: a ServiceAccount, Deployment and Service (plus
// HorizontalPodAutoscaler and PodDisruptionBudget as asked), labelled for discovery.
type toolResource struct {
	engine *compositeEngine
}

type toolResourceModel struct {
	compositeModel
	Transport types.String `tfsdk:"transport"`
}

func (r *toolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_tool"
}

func (r *toolResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs := compositeAttributes(ctx, "tool")
	attrs["transport"] = rschema.StringAttribute{
		MarkdownDescription: "MCP transport the server speaks: `streamable-http` (default; endpoint `/mcp`) or `sse` (endpoint `/sse`).",
		Optional:            true,
		Computed:            true,
		Default:             stringdefault.StaticString("streamable-http"),
		Validators:          []validator.String{stringvalidator.OneOf(composition.Transports...)},
	}
	resp.Schema = rschema.Schema{
		MarkdownDescription: "An MCP tool server on Kubernetes. Agents wire it in with `tools = [kagenti_tool.x.id]`. It expands into a " +
			"ServiceAccount, a Deployment and a Service (plus a HorizontalPodAutoscaler and PodDisruptionBudget as asked), all " +
			"labelled for discovery; drift shows in the plan and is repaired by the next apply.",
		Attributes: attrs,
	}
}

func (r *toolResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.Append(unexpectedConfigureType(req.ProviderData))
		return
	}
	r.engine = &compositeEngine{data: data, kind: composition.KindTool}
}

func (r *toolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil {
		return
	}
	r.engine.modifyPlan(ctx, req, resp, &toolResourceModel{})
}

func (r *toolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan toolResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.applyAndRecord(ctx, &plan, createTimeout(ctx), nil, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *toolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state toolResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.read(ctx, &state, req.Private, resp)
}

func (r *toolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan toolResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.applyAndRecord(ctx, &plan, updateTimeout(ctx), req.Private, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *toolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state toolResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.deleteComposite(ctx, &state, &resp.Diagnostics)
}

func (r *toolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	importComposite(ctx, req, resp)
}

func (m *toolResourceModel) common() *compositeModel { return &m.compositeModel }

func (m *toolResourceModel) input(ctx context.Context) (composition.Input, bool, diag.Diagnostics) {
	in := composition.Input{Kind: composition.KindTool}
	known, diags := compositeInput(ctx, &m.compositeModel, &in)
	if m.Transport.IsUnknown() {
		known = false
	}
	in.Transport = m.Transport.ValueString()
	return in, known, diags
}

func (m *toolResourceModel) fromInput(ctx context.Context, in composition.Input) diag.Diagnostics {
	m.Transport = types.StringValue(in.Transport)
	return compositeModelFromInput(ctx, in, &m.compositeModel)
}

func (m *toolResourceModel) setOutput(*composition.Output) {}

func (m *toolResourceModel) setOutputUnknown() {}

func (m *toolResourceModel) setOutputUnknownAsNull() {}
