package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/access"
	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

// compositeResourceModel is what kagenti_agent's and kagenti_tool's models provide to the
// shared CRUD cycle.
type compositeResourceModel interface {
	common() *compositeModel
	// input builds the composition input; known is false while a value is unknown.
	input(ctx context.Context) (in composition.Input, known bool, diags diag.Diagnostics)
	// fromInput sets the user attributes from an applied input (import).
	fromInput(ctx context.Context, in composition.Input) diag.Diagnostics
	// setOutput sets the kind-specific computed attributes of a render (the card).
	setOutput(out *composition.Output)
	// setOutputUnknown marks them unknown.
	setOutputUnknown()
	// setOutputUnknownAsNull clears them (a failed create records no output).
	setOutputUnknownAsNull()
}

type privateGetter interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

func setPrivateInput(ctx context.Context, p privateSetter, in composition.Input) diag.Diagnostics {
	in.LabelDomain = ""
	data, err := json.Marshal(in)
	if err != nil {
		var d diag.Diagnostics
		d.AddError("Internal Error", err.Error())
		return d
	}
	return p.SetKey(ctx, privateInputKey, data)
}

// modifyPlan renders the planned spec: invalid input fails here, at plan time, on its attribute;
// and the plan shows the objects, URL, revision and card the apply will produce. Objects
// observed out of sync in the prior state are planned in sync, so drift shows as a change.
func (e *compositeEngine) modifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, plan compositeResourceModel) {
	if req.Plan.Raw.IsNull() {
		return
	}
	resp.Diagnostics.Append(req.Plan.Get(ctx, plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	m := plan.common()
	resp.Diagnostics.Append(fillCardSignerImage(ctx, req.Config, m, e.data.defaultRouterImage())...)
	in, known, diags := plan.input(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !known {
		m.URL, m.Revision = types.StringUnknown(), types.StringUnknown()
		m.Objects = types.ListUnknown(m.Objects.ElementType(ctx))
		m.ReadyReplicas = types.Int64Unknown()
		plan.setOutputUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
		return
	}
	if err := e.resolveIdentity(ctx, &in, true); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("identity"), "Identity Unavailable", err.Error())
		return
	}
	id := m.ID
	out, diags := e.planComputed(ctx, in, m)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.ID = id // known after create only (see tools: a known id means the tool exists)
	plan.setOutput(out)
	if in.Kind == composition.KindTool {
		e.data.planned.record(in.Namespace+"/"+in.Name, policyOf(in))
	}
	resp.Diagnostics.Append(e.checkTools(ctx, in, true)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(checkPersistenceChange(priorInput(ctx, req.Private), &in)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
	if !req.State.Raw.IsNull() && !resp.Plan.Raw.Equal(req.State.Raw) {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("ready_replicas"), types.Int64Unknown())...)
	}
}

// checkTools resolves the tool ids wired into an agent to their URLs and transports, and fails
// on a tool whose policy would refuse the agent's calls. At plan time (planning) only ids that
// are known are checked, against the tool as this plan leaves it when the plan has it; unknown
// ids belong to tools created in the same apply, which are checked when the agent is applied,
// before anything of it changes.
func (e *compositeEngine) checkTools(ctx context.Context, in composition.Input, planning bool) diag.Diagnostics {
	var diags diag.Diagnostics
	if len(in.Tools) == 0 {
		return diags
	}
	applier, err := e.data.Applier()
	if err != nil {
		diags.Append(kubernetesAPIError("resolving the tools of "+in.Namespace+"/"+in.Name, err))
		return diags
	}
	keys := contract.NewKeys(e.data.labelDomain)
	for i, t := range in.Tools {
		if t.ID == "" {
			continue
		}
		p := path.Root("tools").AtListIndex(i)
		ns, name, err := parseCompositeID(t.ID)
		if err != nil {
			diags.AddAttributeError(p, "Invalid Tool ID", "tools takes kagenti_tool ids, <namespace>/<name>: "+err.Error())
			continue
		}
		svc, err := applier.Get(ctx, kube.Ref{GVK: serviceGVK, Namespace: ns, Name: name})
		if err != nil {
			diags.Append(kubernetesAPIError("resolving tool "+t.ID, err))
			continue
		}
		if svc == nil || svc.GetLabels()[keys.Type()] != contract.TypeTool {
			diags.AddAttributeError(p, "Unknown Tool",
				fmt.Sprintf("No kagenti_tool %q exists. Reference the tool's id (tools = [kagenti_tool.x.id]) so that Terraform creates it first, or fix the id.", t.ID))
			continue
		}
		policy, planned := e.data.planned.lookup(t.ID)
		if !planning || !planned {
			policy = contract.Policy{}
			if raw := svc.GetAnnotations()[keys.Policy()]; raw != "" {
				if err := json.Unmarshal([]byte(raw), &policy); err != nil {
					diags.AddAttributeError(p, "Unreadable Tool Policy", fmt.Sprintf("The policy annotation %s of tool %s is not valid JSON (%v): apply the tool again.", keys.Policy(), t.ID, err))
					continue
				}
			}
		}
		caller := ""
		if in.Identity != nil {
			caller = in.Identity.SPIFFEID
		}
		if why := access.Refusal(policy, caller, composition.RouterName); why != "" {
			diags.AddAttributeError(p, "Tool Refuses This Agent",
				fmt.Sprintf("Agent %s/%s calls tool %s through the router, which would refuse it: %s. Add the agent's client_id to the tool's "+
					"identity.keycloak_client.allowed_callers (with kagenti_platform's router_client_id), or take the tool out of tools.",
					in.Namespace, in.Name, t.ID, why))
			continue
		}
		if !planning {
			in.Tools[i].URL = svc.GetAnnotations()[keys.URL()]
			in.Tools[i].Transport = svc.GetLabels()[keys.Transport()]
		}
	}
	return diags
}

// applyAndRecord applies the input and writes the state. On failure the state records what
// exists with its objects out of sync, so that the next apply finishes the job and destroy
// removes everything (a failed create is also tainted by Terraform).
func (e *compositeEngine) applyAndRecord(ctx context.Context, m compositeResourceModel, timeoutOf func(*compositeModel) (diag.Diagnostics, context.Context, context.CancelFunc), prior privateGetter, state *tfsdk.State, private privateSetter, diags *diag.Diagnostics) {
	c := m.common()
	in, _, d := m.input(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	d, ctx, cancel := timeoutOf(c)
	defer cancel()
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	// The identity is resolved (nothing changes yet) so that the tools are checked against the
	// agent's SPIFFE ID.
	err := e.resolveIdentity(ctx, &in, false)
	if err == nil {
		diags.Append(e.checkTools(ctx, in, false)...)
		if diags.HasError() {
			return
		}
	}
	c.ID = types.StringValue(in.Namespace + "/" + in.Name)
	priorIn := priorInput(ctx, prior)
	var priorIdentity *composition.Identity
	if priorIn != nil {
		priorIdentity = priorIn.Identity
	}
	// The identity comes first: pods that start find their entry registered.
	if err == nil {
		var deferred []string
		deferred, err = e.ensureIdentity(ctx, in, priorIdentity)
		for _, id := range deferred {
			diags.AddAttributeWarning(path.Root("identity").AtName("keycloak_client").AtName("allowed_callers"), "Allowed Caller Not There Yet",
				fmt.Sprintf("%s has no Keycloak client yet, so it could not be granted tokens for %s %s/%s now. It gets the grant when its "+
					"own client is created (an agent and a tool that allow each other cannot both come first). If it is not meant to "+
					"exist, check the id for a typo.", id, e.kind, in.Namespace, in.Name))
		}
	}
	if err != nil {
		diags.AddAttributeError(path.Root("identity"), "Identity Not Reconciled", fmt.Sprintf("Setting up the identity of %s %s/%s "+
			"failed; fix the cause and apply again.\n\nOriginal Error: %v", e.kind, in.Namespace, in.Name, err))
		if state.Raw.IsNull() {
			c.Objects = types.ListNull(types.ObjectType{AttrTypes: objectAttrTypes})
			c.URL, c.Revision, c.ReadyReplicas = types.StringNull(), types.StringNull(), types.Int64Null()
			setIdentityIDs(in, c)
			m.setOutputUnknownAsNull()
			diags.Append(setPrivateInput(ctx, private, in)...)
			diags.Append(state.Set(ctx, m)...)
		}
		return
	}
	setIdentityIDs(in, c)
	if pvc, err := e.releasedClaim(priorIn, &in); err != nil || pvc != nil {
		if err == nil {
			err = e.release(ctx, pvc)
		}
		if err != nil {
			diags.AddAttributeError(path.Root("persistence"), "Checkpoint Volume Not Released", fmt.Sprintf("persistence was removed from "+
				"%s %s/%s, and its claim is kept rather than deleted; releasing it failed, so nothing else was changed. Fix the cause "+
				"and apply again.\n\nOriginal Error: %v", e.kind, in.Namespace, in.Name, err))
			return
		}
	}
	out, result, err := e.apply(ctx, in, c.WaitForRollout.ValueBool(), prior == nil)
	if out != nil {
		c.URL, c.Revision = types.StringValue(out.URL), types.StringValue(out.Revision)
		m.setOutput(out)
	}
	if err != nil {
		diags.Append(applyFailed(e.kind, in, err))
		if out != nil {
			obs := make([]kube.Observation, len(out.Objects)) // none known to be in sync
			var od diag.Diagnostics
			c.Objects, od = objectsValue(ctx, out, obs)
			diags.Append(od...)
			c.ReadyReplicas = types.Int64Value(0)
			diags.Append(setPrivateInput(ctx, private, in)...)
			diags.Append(state.Set(ctx, m)...)
		}
		return
	}
	_, outOfSync, d := e.observe(ctx, in, out, c, result)
	diags.Append(d...)
	if len(outOfSync) > 0 {
		// Only a writer that rewrites our fields as they are applied (an admission webhook, a
		// controller) gets here: the state records what the cluster holds, and the error says
		// who fights over which field, instead of Terraform's "inconsistent result".
		diags.Append(changedOnApply(e.kind, in, outOfSync))
	}
	diags.Append(setPrivateInput(ctx, private, in)...)
	diags.Append(state.Set(ctx, m)...)
}

func applyFailed(kind composition.Kind, in composition.Input, err error) diag.Diagnostic {
	var werr *kube.WaitError
	if errors.As(err, &werr) && werr.Blocked {
		return diag.NewErrorDiagnostic(titleKind(kind)+" Cannot Become Ready",
			fmt.Sprintf("The objects of %s %s/%s were applied, but their rollout cannot complete until this is fixed: %s.\n\n"+
				"The provider stopped waiting at once rather than at the timeout. Fix the cause (the image name, the namespace's "+
				"ResourceQuota, its Pod Security level, ...) and apply again; what was applied is recorded.", kind, in.Namespace, in.Name, werr.Reason))
	}
	if errors.As(err, &werr) {
		return diag.NewErrorDiagnostic(titleKind(kind)+" Not Ready",
			fmt.Sprintf("The objects of %s %s/%s were applied, but %s. Check the image, its probes and the namespace's events; "+
				"the next apply waits again (or set wait_for_rollout = false, or a longer timeouts.create).\n\nOriginal Error: %v",
				kind, in.Namespace, in.Name, werr.Error(), err))
	}
	return diag.NewErrorDiagnostic("Apply Failed",
		fmt.Sprintf("Applying the objects of %s %s/%s failed. What was applied stays and is recorded; fix the cause and apply "+
			"again, or destroy.\n\nOriginal Error: %v", kind, in.Namespace, in.Name, err))
}

// read refreshes the state from the cluster; a composite whose objects are all gone is removed
// from state so that the next plan creates it again.
func (e *compositeEngine) read(ctx context.Context, m compositeResourceModel, private privateGetter, resp *resource.ReadResponse) {
	c := m.common()
	ns, name := c.Namespace.ValueString(), c.Name.ValueString()
	if ns == "" || name == "" {
		var err error
		if ns, name, err = parseCompositeID(c.ID.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid Import ID", err.Error())
			return
		}
	}
	raw, d := private.GetKey(ctx, privateInputKey)
	resp.Diagnostics.Append(d...)
	in, err := e.readAppliedInput(ctx, raw, ns, name)
	if err != nil {
		resp.Diagnostics.Append(readInputFailed(e.kind, ns, name, err))
		return
	}
	if in == nil {
		resp.State.RemoveResource(ctx)
		return
	}
	imported := len(raw) == 0
	if imported {
		if err := e.importEnvValues(ctx, in); err != nil {
			resp.Diagnostics.Append(kubernetesAPIError("reading Deployment "+ns+"/"+name, err))
			return
		}
	}
	out, err := e.render(*in)
	if err != nil {
		resp.Diagnostics.Append(renderErrorDiags(err, "Invalid "+titleKind(e.kind)+" Configuration")...)
		return
	}
	if imported {
		resp.Diagnostics.Append(m.fromInput(ctx, *in)...)
		c.URL, c.Revision = types.StringValue(out.URL), types.StringValue(out.Revision)
		m.setOutput(out)
		resp.Diagnostics.Append(setPrivateInput(ctx, resp.Private, *in)...)
	}
	exists, _, d := e.observe(ctx, *in, out, c, nil)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !exists {
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (e *compositeEngine) deleteComposite(ctx context.Context, m compositeResourceModel, diags *diag.Diagnostics) {
	c := m.common()
	timeout, d := operationTimeout(ctx, c.Timeouts, "delete", defaultDeleteTimeout)
	diags.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, _, d := m.input(ctx)
	diags.Append(d...)
	in.Namespace, in.Name = c.Namespace.ValueString(), c.Name.ValueString()
	if err := e.delete(ctx, in); err != nil {
		diags.AddError("Delete Failed", fmt.Sprintf("Deleting the objects of %s %s/%s failed; destroy again to finish.\n\nOriginal Error: %v",
			e.kind, in.Namespace, in.Name, err))
		return
	}
	// The pods that read it are gone; the Secret carries no composite labels, so it goes here.
	if err := e.deleteClientSecret(ctx, in.Namespace, in.Name, in.Identity); err != nil {
		diags.AddError("Client Secret Not Deleted", fmt.Sprintf("The objects of %s %s/%s are gone, but deleting its Secret %s failed; "+
			"destroy again to finish.\n\nOriginal Error: %v", e.kind, in.Namespace, in.Name, contract.ClientSecretName(in.Name), err))
		return
	}
	if err := e.removeIdentity(ctx, c.SPIFFEID.ValueString(), !c.ClientID.IsNull()); err != nil {
		diags.AddError("Identity Not Deleted", fmt.Sprintf("The objects of %s %s/%s are gone, but removing its SPIRE entry or Keycloak "+
			"client failed; destroy again to finish.\n\nOriginal Error: %v", e.kind, in.Namespace, in.Name, err))
	}
}

func createTimeout(ctx context.Context) func(*compositeModel) (diag.Diagnostics, context.Context, context.CancelFunc) {
	return func(c *compositeModel) (diag.Diagnostics, context.Context, context.CancelFunc) {
		t, d := operationTimeout(ctx, c.Timeouts, "create", defaultCreateTimeout)
		cctx, cancel := context.WithTimeout(ctx, t)
		return d, cctx, cancel
	}
}

func updateTimeout(ctx context.Context) func(*compositeModel) (diag.Diagnostics, context.Context, context.CancelFunc) {
	return func(c *compositeModel) (diag.Diagnostics, context.Context, context.CancelFunc) {
		t, d := operationTimeout(ctx, c.Timeouts, "update", defaultCreateTimeout)
		cctx, cancel := context.WithTimeout(ctx, t)
		return d, cctx, cancel
	}
}

func importComposite(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, name, err := parseCompositeID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid Import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
