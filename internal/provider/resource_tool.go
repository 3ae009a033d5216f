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
	return &toolResource{compositeResource[toolResourceModel, *toolResourceModel]{kind: composition.KindTool}}
}

// toolResource deploys an MCP tool server: a ServiceAccount, Deployment and Service (plus
// HorizontalPodAutoscaler and PodDisruptionBudget as asked), labelled for discovery.
type toolResource struct {
	compositeResource[toolResourceModel, *toolResourceModel]
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
