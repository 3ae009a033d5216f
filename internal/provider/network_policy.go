package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

type networkPolicyModel struct {
	Enabled types.Bool `tfsdk:"enabled"`
	Egress  types.List `tfsdk:"egress"`
}

type egressRuleModel struct {
	CIDR     types.String `tfsdk:"cidr"`
	Port     types.Int64  `tfsdk:"port"`
	Protocol types.String `tfsdk:"protocol"`
}

var egressRuleAttrTypes = map[string]attr.Type{"cidr": types.StringType, "port": types.Int64Type, "protocol": types.StringType}

var networkPolicyAttrTypes = map[string]attr.Type{
	"enabled": types.BoolType,
	"egress":  types.ListType{ElemType: types.ObjectType{AttrTypes: egressRuleAttrTypes}},
}

// networkPolicyAttribute is the workload's NetworkPolicy: on unless enabled = false.
func networkPolicyAttribute(noun string) rschema.SingleNestedAttribute {
	return rschema.SingleNestedAttribute{
		MarkdownDescription: "The " + noun + "'s NetworkPolicy, on by default (`enabled = false` opts out). Its pods accept connections " +
			"only from kagenti-router's pods in the namespaces a `kagenti_platform` runs it in (which it labels " +
			"`<label_domain>/router-namespace=true`), so nothing in the cluster calls the " + noun + " around the router's " +
			"authentication and policy; they open connections only to the router, DNS (port 53), the endpoints the " + noun + "'s settings name " +
			"(`llm.base_url`, `otel_endpoint`, and Keycloak with `identity.keycloak_client`) and `egress`. A NetworkPolicy cannot " +
			"name a host: an endpoint given by host name opens its port to any destination, one given by IP address that address " +
			"only. It needs a network plugin that enforces NetworkPolicies; an endpoint-only " + noun + " gets none.",
		Optional: true,
		Attributes: map[string]rschema.Attribute{
			"enabled": rschema.BoolAttribute{
				MarkdownDescription: "Whether the NetworkPolicy is rendered (default `true`).",
				Optional:            true,
			},
			"egress": rschema.ListNestedAttribute{
				MarkdownDescription: "More destinations the pods may open connections to.",
				Optional:            true,
				NestedObject: rschema.NestedAttributeObject{Attributes: map[string]rschema.Attribute{
					"cidr": rschema.StringAttribute{
						MarkdownDescription: "Destination addresses, e.g. `10.20.0.0/16`; any destination when unset.",
						Optional:            true,
					},
					"port": rschema.Int64Attribute{
						MarkdownDescription: "Destination port.", Required: true,
						Validators: []validator.Int64{int64validator.Between(1, 65535)},
					},
					"protocol": rschema.StringAttribute{
						MarkdownDescription: "`TCP` (default), `UDP` or `SCTP`.", Optional: true,
						Validators: []validator.String{stringvalidator.OneOf(composition.EgressProtocols...)},
					},
				}},
			},
		},
	}
}

// networkPolicyInput reads the attribute into the input; known is false while part of it is.
func networkPolicyInput(ctx context.Context, v types.Object, in *composition.Input) (known bool, diags diag.Diagnostics) {
	if v.IsNull() {
		return true, nil
	}
	if !fullyKnown(ctx, v) {
		return false, nil
	}
	var np networkPolicyModel
	diags.Append(v.As(ctx, &np, basetypes.ObjectAsOptions{})...)
	in.NoNetworkPolicy = !np.Enabled.IsNull() && !np.Enabled.ValueBool()
	var rules []egressRuleModel
	diags.Append(np.Egress.ElementsAs(ctx, &rules, false)...)
	for _, r := range rules {
		in.Egress = append(in.Egress, composition.EgressRule{CIDR: r.CIDR.ValueString(), Port: r.Port.ValueInt64(), Protocol: r.Protocol.ValueString()})
	}
	return true, diags
}

// networkPolicyValue is the attribute of an imported input (null when it is the default).
func networkPolicyValue(ctx context.Context, in composition.Input) (types.Object, diag.Diagnostics) {
	if !in.NoNetworkPolicy && len(in.Egress) == 0 {
		return types.ObjectNull(networkPolicyAttrTypes), nil
	}
	egress := types.ListNull(types.ObjectType{AttrTypes: egressRuleAttrTypes})
	var diags diag.Diagnostics
	if len(in.Egress) > 0 {
		rules := make([]egressRuleModel, len(in.Egress))
		for i, r := range in.Egress {
			rules[i] = egressRuleModel{CIDR: types.StringNull(), Port: types.Int64Value(r.Port), Protocol: types.StringNull()}
			if r.CIDR != "" {
				rules[i].CIDR = types.StringValue(r.CIDR)
			}
			if r.Protocol != "" {
				rules[i].Protocol = types.StringValue(r.Protocol)
			}
		}
		var d diag.Diagnostics
		egress, d = types.ListValueFrom(ctx, types.ObjectType{AttrTypes: egressRuleAttrTypes}, rules)
		diags.Append(d...)
	}
	enabled := types.BoolNull()
	if in.NoNetworkPolicy {
		enabled = types.BoolValue(false)
	}
	v, d := types.ObjectValueFrom(ctx, networkPolicyAttrTypes, networkPolicyModel{Enabled: enabled, Egress: egress})
	diags.Append(d...)
	return v, diags
}
