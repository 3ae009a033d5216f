package provider

// Conversion between the composite resources' models and composition.Input, and the helpers
// of the attributes they share.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
)

// secretRefValue is a Secret reference as an object value (null for nil).
func secretRefValue(ctx context.Context, ref *composition.SecretRef) (types.Object, diag.Diagnostics) {
	if ref == nil {
		return types.ObjectNull(secretRefAttrTypes), nil
	}
	return types.ObjectValueFrom(ctx, secretRefAttrTypes, secretRefModel{Secret: types.StringValue(ref.Secret), Key: types.StringValue(ref.Key)})
}

// compositeInput fills the shared part of a composition input from a model. known is false when
// a value the rendering depends on is not known yet (planning against resources not created).
func compositeInput(ctx context.Context, m *compositeModel, in *composition.Input) (known bool, diags diag.Diagnostics) {
	known = true
	str := func(v types.String) string {
		if v.IsUnknown() {
			known = false
		}
		return v.ValueString()
	}
	num := func(v types.Int64) int64 {
		if v.IsUnknown() {
			known = false
		}
		return v.ValueInt64()
	}
	in.Name, in.Namespace = str(m.Name), str(m.Namespace)
	in.Image, in.Endpoint = str(m.Image), str(m.Endpoint)
	in.Port, in.Replicas = num(m.Port), num(m.Replicas)
	in.Description, in.OTELEndpoint = str(m.Description), str(m.OTELEndpoint)

	if m.Autoscaling.IsUnknown() {
		known = false
	} else if !m.Autoscaling.IsNull() {
		var a autoscalingModel
		diags.Append(m.Autoscaling.As(ctx, &a, basetypes.ObjectAsOptions{})...)
		in.Autoscaling = &composition.Autoscaling{MinReplicas: num(a.MinReplicas), MaxReplicas: num(a.MaxReplicas), TargetCPUUtilization: num(a.TargetCPUUtilization)}
	}
	if r, ok, d := resourcesFromModel(ctx, m.Resources); !ok {
		known = false
	} else {
		diags.Append(d...)
		in.Resources = r
	}
	if !m.Env.IsNull() {
		if m.Env.IsUnknown() {
			known = false
		} else {
			in.Env = map[string]string{}
			for k, v := range m.Env.Elements() {
				s := v.(types.String)
				in.Env[k] = str(s)
			}
		}
	}
	if !m.SecretEnv.IsNull() {
		if m.SecretEnv.IsUnknown() {
			known = false
		} else {
			var refs map[string]secretRefModel
			diags.Append(m.SecretEnv.ElementsAs(ctx, &refs, false)...)
			in.SecretEnv = map[string]composition.SecretRef{}
			for k, r := range refs {
				in.SecretEnv[k] = composition.SecretRef{Secret: str(r.Secret), Key: str(r.Key)}
			}
		}
	}
	if m.Composition.IsUnknown() {
		known = false
	} else if !m.Composition.IsNull() {
		var c compositionModel
		diags.Append(m.Composition.As(ctx, &c, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: false})...)
		for _, p := range c.Patches {
			in.Patches = append(in.Patches, composition.Patch{Target: str(p.Target), Type: str(p.Type), Patch: str(p.Patch)})
		}
		if c.Templates.IsUnknown() {
			known = false
		} else if !c.Templates.IsNull() {
			in.Templates = map[string]string{}
			for k, v := range c.Templates.Elements() {
				in.Templates[k] = str(v.(types.String))
			}
		}
	}
	npKnown, d := networkPolicyInput(ctx, m.NetworkPolicy, in)
	diags.Append(d...)
	known = known && npKnown
	w, wknown, d := workloadFromModel(ctx, m.Labels, m.Annotations, m.Pod)
	diags.Append(d...)
	known = known && wknown
	in.Workload = w
	if m.Identity.IsUnknown() {
		known = false
	} else if !m.Identity.IsNull() {
		shared, signer, d := splitIdentity(m.Identity)
		diags.Append(d...)
		var id compositeIdentityModel
		diags.Append(shared.As(ctx, &id, basetypes.ObjectAsOptions{})...)
		in.Identity = &composition.Identity{X509SVIDTTL: str(id.X509SVIDTTL), JWTSVIDTTL: str(id.JWTSVIDTTL)}
		if id.KeycloakClient.IsUnknown() {
			known = false
		} else if !id.KeycloakClient.IsNull() {
			var kc keycloakClientModel
			diags.Append(id.KeycloakClient.As(ctx, &kc, basetypes.ObjectAsOptions{})...)
			authentication := kc.Authentication.ValueString()
			if authentication == "" {
				authentication = keycloak.AuthFederatedJWT
			}
			in.Identity.Client = &composition.IdentityClient{
				Authentication: authentication, TokenExchange: kc.TokenExchange.ValueBool(),
				Audiences: knownStrings(kc.Audiences), AllowedCallers: knownStrings(kc.AllowedCallers),
			}
		}
		if signer.IsUnknown() {
			known = false
		} else if !signer.IsNull() {
			var cs cardSignerModel
			diags.Append(signer.As(ctx, &cs, basetypes.ObjectAsOptions{})...)
			// The default is in the plan by now (fillCardSignerImage): unknown here is an image
			// from a resource not created yet.
			in.Identity.CardSigner = &composition.CardSigner{Image: str(cs.Image)}
		}
	}
	return known, diags
}

// compositeModelFromInput sets the shared user attributes from an input (import).
func compositeModelFromInput(ctx context.Context, in composition.Input, m *compositeModel) diag.Diagnostics {
	var diags diag.Diagnostics
	optString := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	optInt := func(n int64) types.Int64 {
		if n == 0 {
			return types.Int64Null()
		}
		return types.Int64Value(n)
	}
	m.ID = types.StringValue(in.Namespace + "/" + in.Name)
	m.Name, m.Namespace = types.StringValue(in.Name), types.StringValue(in.Namespace)
	m.Image, m.Endpoint = optString(in.Image), optString(in.Endpoint)
	m.Port, m.Replicas = optInt(in.Port), optInt(in.Replicas)
	m.Description, m.OTELEndpoint = optString(in.Description), optString(in.OTELEndpoint)
	var d diag.Diagnostics
	m.Autoscaling, d = autoscalingToModel(ctx, in.Autoscaling)
	diags.Append(d...)
	m.Resources, d = resourcesToModel(ctx, in.Resources)
	diags.Append(d...)
	m.Env = types.MapNull(types.StringType)
	if len(in.Env) > 0 {
		var d diag.Diagnostics
		m.Env, d = types.MapValueFrom(ctx, types.StringType, in.Env)
		diags.Append(d...)
	}
	m.SecretEnv = types.MapNull(types.ObjectType{AttrTypes: secretRefAttrTypes})
	if len(in.SecretEnv) > 0 {
		refs := map[string]attr.Value{}
		for k, r := range in.SecretEnv {
			v, d := secretRefValue(ctx, &r)
			diags.Append(d...)
			refs[k] = v
		}
		var d diag.Diagnostics
		m.SecretEnv, d = types.MapValue(types.ObjectType{AttrTypes: secretRefAttrTypes}, refs)
		diags.Append(d...)
	}
	m.Composition = types.ObjectNull(compositionAttrTypes)
	if len(in.Patches) > 0 || len(in.Templates) > 0 {
		c := compositionModel{Templates: types.MapNull(types.StringType)}
		for _, p := range in.Patches {
			c.Patches = append(c.Patches, patchModel{Target: types.StringValue(p.Target), Type: types.StringValue(p.Type), Patch: types.StringValue(p.Patch)})
		}
		if len(in.Templates) > 0 {
			var d diag.Diagnostics
			c.Templates, d = types.MapValueFrom(ctx, types.StringType, in.Templates)
			diags.Append(d...)
		}
		var d diag.Diagnostics
		m.Composition, d = types.ObjectValueFrom(ctx, compositionAttrTypes, c)
		diags.Append(d...)
	}
	m.NetworkPolicy, d = networkPolicyValue(ctx, in)
	diags.Append(d...)
	m.Labels, m.Annotations, m.Pod, d = workloadToModel(ctx, in.Workload)
	diags.Append(d...)
	m.Identity = types.ObjectNull(identityAttrTypes(in.Kind))
	if id := in.Identity; id != nil {
		kc := types.ObjectNull(keycloakClientAttrTypes)
		if c := id.Client; c != nil {
			aud, d := optStringList(ctx, c.Audiences)
			diags.Append(d...)
			callers, d := optStringList(ctx, c.AllowedCallers)
			diags.Append(d...)
			kc, d = types.ObjectValueFrom(ctx, keycloakClientAttrTypes, keycloakClientModel{
				Authentication: types.StringValue(c.Authentication), TokenExchange: types.BoolValue(c.TokenExchange),
				Audiences: aud, AllowedCallers: callers,
			})
			diags.Append(d...)
		}
		opt := func(s string) types.String {
			if s == "" {
				return types.StringNull()
			}
			return types.StringValue(s)
		}
		shared, d := types.ObjectValueFrom(ctx, compositeIdentityAttrTypes, compositeIdentityModel{
			X509SVIDTTL: opt(id.X509SVIDTTL), JWTSVIDTTL: opt(id.JWTSVIDTTL), KeycloakClient: kc,
		})
		diags.Append(d...)
		m.Identity = shared
		if in.Kind == composition.KindAgent {
			signer := types.ObjectNull(cardSignerAttrTypes)
			if cs := id.CardSigner; cs != nil {
				signer = types.ObjectValueMust(cardSignerAttrTypes, map[string]attr.Value{"image": types.StringValue(cs.Image)})
			}
			m.Identity, d = withCardSigner(shared, signer)
			diags.Append(d...)
		}
	}
	if m.WaitForRollout.IsNull() || m.WaitForRollout.IsUnknown() {
		m.WaitForRollout = types.BoolValue(true)
	}
	if m.Timeouts.IsNull() || m.Timeouts.IsUnknown() {
		m.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
			"create": types.StringType, "update": types.StringType, "delete": types.StringType,
		})}
	}
	return diags
}

// renderErrorDiags maps composition errors onto the attributes they are about.
func renderErrorDiags(err error, summary string) diag.Diagnostics {
	var diags diag.Diagnostics
	var rerr *composition.Error
	if errors.As(err, &rerr) {
		for _, e := range rerr.Errs {
			// The path is in the text too: Terraform cannot point at every nested attribute.
			diags.AddAttributeError(fieldToPath(e.Field), summary, e.Field+": "+e.ErrorBody())
		}
		return diags
	}
	diags.AddError(summary, err.Error())
	return diags
}

// resourcesAttribute is the schema of a container's requests and limits. Quantities and requests
// within limits are checked by the composition's validation, at plan time.
func resourcesAttribute(description string) rschema.SingleNestedAttribute {
	names := []validator.Map{mapvalidator.KeysAre(stringvalidator.OneOf(composition.ResourceNames...))}
	return rschema.SingleNestedAttribute{
		MarkdownDescription: description,
		Optional:            true,
		Attributes: map[string]rschema.Attribute{
			"requests": rschema.MapAttribute{
				MarkdownDescription: "Resources reserved for the container: `cpu`, `memory`, `ephemeral-storage`, as Kubernetes " +
					"quantities (`250m`, `128Mi`).",
				Optional: true, ElementType: types.StringType, Validators: names,
			},
			"limits": rschema.MapAttribute{
				MarkdownDescription: "Most the container may use, with the same names and quantities as `requests`.",
				Optional:            true, ElementType: types.StringType, Validators: names,
			},
		},
	}
}

// resourcesFromModel reads a resources attribute; ok is false while it is unknown.
func resourcesFromModel(ctx context.Context, obj types.Object) (*composition.Resources, bool, diag.Diagnostics) {
	if obj.IsNull() {
		return nil, true, nil
	}
	if obj.IsUnknown() {
		return nil, false, nil
	}
	var m resourcesModel
	diags := obj.As(ctx, &m, basetypes.ObjectAsOptions{})
	for _, list := range []types.Map{m.Requests, m.Limits} {
		if list.IsUnknown() {
			return nil, false, diags
		}
		for _, v := range list.Elements() {
			if v.IsUnknown() {
				return nil, false, diags
			}
		}
	}
	r := &composition.Resources{}
	diags.Append(m.Requests.ElementsAs(ctx, &r.Requests, false)...)
	diags.Append(m.Limits.ElementsAs(ctx, &r.Limits, false)...)
	return r, true, diags
}

// resourcesToModel is the attribute value of the resources an object was rendered with (null
// for none).
// describeResources writes resources as the docs show them: requests `cpu = "100m"`, ...
func describeResources(r composition.Resources) string {
	part := func(kind string, m map[string]string) string {
		var keys []string
		for _, k := range composition.ResourceNames {
			if v, ok := m[k]; ok {
				keys = append(keys, fmt.Sprintf("`%s = %q`", k, v))
			}
		}
		return kind + " " + strings.Join(keys, ", ")
	}
	return part("requests", r.Requests) + ", " + part("limits", r.Limits)
}

// autoscalingToModel is the state of an autoscaling block (null when there is none).
func autoscalingToModel(ctx context.Context, a *composition.Autoscaling) (types.Object, diag.Diagnostics) {
	if a == nil {
		return types.ObjectNull(autoscalingAttrTypes), nil
	}
	return types.ObjectValueFrom(ctx, autoscalingAttrTypes, autoscalingModel{MinReplicas: types.Int64Value(a.MinReplicas),
		MaxReplicas: types.Int64Value(a.MaxReplicas), TargetCPUUtilization: types.Int64Value(a.TargetCPUUtilization)})
}

func resourcesToModel(ctx context.Context, r *composition.Resources) (types.Object, diag.Diagnostics) {
	if r == nil {
		return types.ObjectNull(resourcesAttrTypes), nil
	}
	m := resourcesModel{Requests: types.MapNull(types.StringType), Limits: types.MapNull(types.StringType)}
	var diags, d diag.Diagnostics
	if r.Requests != nil {
		m.Requests, d = types.MapValueFrom(ctx, types.StringType, r.Requests)
		diags.Append(d...)
	}
	if r.Limits != nil {
		m.Limits, d = types.MapValueFrom(ctx, types.StringType, r.Limits)
		diags.Append(d...)
	}
	obj, d := types.ObjectValueFrom(ctx, resourcesAttrTypes, m)
	diags.Append(d...)
	return obj, diags
}

// fieldToPath converts a composition field path ("skills[0].id", "env[FOO]") to an attribute
// path. Composition paths use the provider's attribute names, so only the syntax differs.
func fieldToPath(f string) path.Path {
	var p path.Path
	first := true
	for _, part := range strings.Split(f, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if first {
			p = path.Root(name)
			first = false
		} else {
			p = p.AtName(name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			if n, err := strconv.Atoi(idx); err == nil {
				p = p.AtListIndex(n)
			} else {
				p = p.AtMapKey(idx)
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return p
}

// splitIdentity parts an identity object into what agents and tools share and an agent's
// card_signer (null for a tool's).
func splitIdentity(identity types.Object) (shared, signer types.Object, diags diag.Diagnostics) {
	attrs := identity.Attributes()
	signer = types.ObjectNull(cardSignerAttrTypes)
	if o, ok := attrs["card_signer"].(types.Object); ok {
		signer = o
	}
	sharedAttrs := make(map[string]attr.Value, len(compositeIdentityAttrTypes))
	for k := range compositeIdentityAttrTypes {
		sharedAttrs[k] = attrs[k]
	}
	shared, diags = types.ObjectValue(compositeIdentityAttrTypes, sharedAttrs)
	return shared, signer, diags
}

// withCardSigner is an agent's identity object: shared with card_signer.
func withCardSigner(shared, signer types.Object) (types.Object, diag.Diagnostics) {
	attrs := maps.Clone(shared.Attributes())
	attrs["card_signer"] = signer
	return types.ObjectValue(agentIdentityAttrTypes, attrs)
}

// fillCardSignerImage puts image, the default, in a planned identity.card_signer.image that the
// configuration leaves to the provider (null in config, unknown in the plan), so that the plan
// shows the image the signer will run. An image the configuration sets from a value not known
// yet stays unknown: a provider may fill in only what the configuration leaves null.
func fillCardSignerImage(ctx context.Context, config tfsdk.Config, m *compositeModel, image string) diag.Diagnostics {
	var diags diag.Diagnostics
	if m.Identity.IsNull() || m.Identity.IsUnknown() {
		return diags
	}
	shared, signer, d := splitIdentity(m.Identity)
	diags.Append(d...)
	if diags.HasError() || signer.IsNull() || signer.IsUnknown() {
		return diags
	}
	planned, ok := signer.Attributes()["image"].(types.String)
	if !ok || !planned.IsUnknown() {
		return diags
	}
	var configured types.String
	diags.Append(config.GetAttribute(ctx, path.Root("identity").AtName("card_signer").AtName("image"), &configured)...)
	if diags.HasError() || !configured.IsNull() {
		return diags
	}
	signer = types.ObjectValueMust(cardSignerAttrTypes, map[string]attr.Value{"image": types.StringValue(image)})
	obj, d := withCardSigner(shared, signer)
	diags.Append(d...)
	if !diags.HasError() {
		m.Identity = obj
	}
	return diags
}
