package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// compositeResource is the lifecycle kagenti_agent and kagenti_tool share; each embeds it and
// adds its own Metadata and Schema. M is the resource's model; P its pointer type.
type compositeResource[M any, P interface {
	*M
	compositeResourceModel
}] struct {
	kind   composition.Kind
	engine *compositeEngine
}

func (r *compositeResource[M, P]) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	pd := providerDataFrom(req.ProviderData, &resp.Diagnostics)
	if pd == nil {
		return
	}
	r.engine = &compositeEngine{data: pd, kind: r.kind}
}

func (r *compositeResource[M, P]) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil {
		return
	}
	r.engine.modifyPlan(ctx, req, resp, P(new(M)))
}

func (r *compositeResource[M, P]) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan := P(new(M))
	resp.Diagnostics.Append(req.Plan.Get(ctx, plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.applyAndRecord(ctx, plan, createTimeout(ctx), nil, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *compositeResource[M, P]) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	state := P(new(M))
	resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.read(ctx, state, req.Private, resp)
}

func (r *compositeResource[M, P]) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan := P(new(M))
	resp.Diagnostics.Append(req.Plan.Get(ctx, plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.applyAndRecord(ctx, plan, updateTimeout(ctx), req.Private, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *compositeResource[M, P]) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	state := P(new(M))
	resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.engine.deleteComposite(ctx, state, &resp.Diagnostics)
}

func (r *compositeResource[M, P]) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	importComposite(ctx, req, resp)
}
