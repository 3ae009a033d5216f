package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kagenti/terraform-provider-kagenti/internal/access"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

var (
	_ resource.Resource                   = &identityResource{}
	_ resource.ResourceWithConfigure      = &identityResource{}
	_ resource.ResourceWithImportState    = &identityResource{}
	_ resource.ResourceWithModifyPlan     = &identityResource{}
	_ resource.ResourceWithValidateConfig = &identityResource{}
)

const (
	defaultX509SVIDTTL = time.Hour
	defaultJWTSVIDTTL  = 5 * time.Minute
	// Keycloak accepts a JWT-SVID client assertion only within 300 s of its iat.
	maxFederatedJWTTTL = 5 * time.Minute
)

var (
	spiffeIDRe = regexp.MustCompile(`^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$`)
	selectorRe = regexp.MustCompile(`^[a-z0-9_-]+:.+$`)
)

// NewIdentityResource returns the kagenti_identity resource.
func NewIdentityResource() resource.Resource {
	return &identityResource{}
}

// identityResource gives a workload a SPIFFE identity (a SPIRE registration entry) and, when asked,
// a Keycloak client that authenticates with that identity's JWT-SVIDs instead of a secret.
type identityResource struct {
	data *providerData
}

type identityResourceModel struct {
	ID             types.String `tfsdk:"id"`
	Namespace      types.String `tfsdk:"namespace"`
	ServiceAccount types.String `tfsdk:"service_account"`
	SPIFFEID       types.String `tfsdk:"spiffe_id"`
	ParentID       types.String `tfsdk:"parent_id"`
	Selectors      types.List   `tfsdk:"selectors"`
	X509SVIDTTL    types.String `tfsdk:"x509_svid_ttl"`
	JWTSVIDTTL     types.String `tfsdk:"jwt_svid_ttl"`
	KeycloakClient types.Object `tfsdk:"keycloak_client"`

	SpireEntryID       types.String `tfsdk:"spire_entry_id"`
	KeycloakClientID   types.String `tfsdk:"keycloak_client_id"`
	KeycloakClientUUID types.String `tfsdk:"keycloak_client_uuid"`
	AudienceScope      types.String `tfsdk:"audience_scope"`
	TokenURL           types.String `tfsdk:"token_url"`
	Issuer             types.String `tfsdk:"issuer"`
	Access             types.List   `tfsdk:"access"`
}

type keycloakClientModel struct {
	Authentication types.String `tfsdk:"authentication"`
	Audiences      types.List   `tfsdk:"audiences"`
	TokenExchange  types.Bool   `tfsdk:"token_exchange"`
	AllowedCallers types.List   `tfsdk:"allowed_callers"`
}

var keycloakClientAttrTypes = map[string]attr.Type{
	"authentication":  types.StringType,
	"audiences":       types.ListType{ElemType: types.StringType},
	"token_exchange":  types.BoolType,
	"allowed_callers": types.ListType{ElemType: types.StringType},
}

func (r *identityResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_identity"
}

func (r *identityResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = rschema.Schema{
		MarkdownDescription: "A workload identity with no static credentials: a SPIRE registration entry that issues the " +
			"service account's pods short-lived SVIDs, and optionally a Keycloak client (named by the SPIFFE ID) that " +
			"authenticates with the workload's JWT-SVID, may exchange tokens (RFC 8693), and names which callers may obtain " +
			"tokens for it. With `spire.registration = \"kubernetes\"` the registration is a `ClusterSPIFFEID` for the SPIRE " +
			"Controller Manager, which selects the service account's pods in the namespace (`selectors` other than `k8s:ns` " +
			"become its workload selector templates). Plans need no backend when `spire.trust_domain` is set. Import by " +
			"registration id or by client id (the SPIFFE ID).",
		Attributes: map[string]rschema.Attribute{
			"id": rschema.StringAttribute{
				MarkdownDescription: "The registration id, also the import ID: the SPIRE entry id, or with `spire.registration = \"kubernetes\"` " +
					"the name of the `ClusterSPIFFEID`.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"namespace": rschema.StringAttribute{
				MarkdownDescription: "Namespace of the workload. Changing it replaces the identity.",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{stringvalidator.RegexMatches(dns1123Label, "must be a DNS-1123 label")},
			},
			"service_account": rschema.StringAttribute{
				MarkdownDescription: "Service account of the workload's pods. Changing it replaces the identity.",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`), "must be a service account name (DNS subdomain)")},
			},
			"spiffe_id": rschema.StringAttribute{
				MarkdownDescription: "SPIFFE ID; defaults to `spiffe://<trust domain>/ns/<namespace>/sa/<service_account>`. It must be in the " +
					"SPIRE server's trust domain. It is also the Keycloak client id. Changing it replaces the identity.",
				Optional:      true,
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.RegexMatches(spiffeIDRe, "must be a SPIFFE ID such as spiffe://example.org/ns/team1/sa/weather")},
			},
			"parent_id": rschema.StringAttribute{
				MarkdownDescription: "Parent of the entry (the node or node alias whose agent serves it); defaults to the provider's " +
					"`spire.default_parent_id`, else `spiffe://<trust domain>/kagenti/cluster`. With `spire.registration = \"kubernetes\"` " +
					"the SPIRE Controller Manager parents each entry to the agent of the pod's node: it is null and cannot be set.",
				Optional:      true,
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
				Validators:    []validator.String{stringvalidator.RegexMatches(spiffeIDRe, "must be a SPIFFE ID such as spiffe://example.org/k8s-cluster/prod")},
			},
			"selectors": rschema.ListAttribute{
				MarkdownDescription: "Workload selectors, `type:value`; default `k8s:ns:<namespace>` and `k8s:sa:<service_account>`. " +
					"With `spire.registration = \"kubernetes\"` they must include `k8s:ns:<namespace>`.",
				Optional:      true,
				Computed:      true,
				ElementType:   types.StringType,
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(stringvalidator.RegexMatches(selectorRe, "must be type:value, e.g. k8s:ns:team1"))},
			},
			"x509_svid_ttl": rschema.StringAttribute{
				MarkdownDescription: "Lifetime of X509-SVIDs, a duration from `1m` to `720h` (default `1h`).",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("1h"),
				PlanModifiers:       []planmodifier.String{sameDuration{}},
				Validators:          []validator.String{durationBetween(time.Minute, 720*time.Hour)},
			},
			"jwt_svid_ttl": rschema.StringAttribute{
				MarkdownDescription: "Lifetime of JWT-SVIDs, from `30s` to `24h` (default `5m`); at most `5m` with `federated-jwt`, " +
					"since Keycloak accepts an assertion only within 300 s of its issue.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString("5m"),
				PlanModifiers: []planmodifier.String{sameDuration{}},
				Validators:    []validator.String{durationBetween(30*time.Second, 24*time.Hour)},
			},
			"keycloak_client": rschema.SingleNestedAttribute{
				MarkdownDescription: "A Keycloak client for the workload, named by its SPIFFE ID.",
				Optional:            true,
				Attributes:          keycloakClientAttributes(),
			},
			"spire_entry_id": rschema.StringAttribute{
				MarkdownDescription: "Id of the SPIRE registration entry; null with `spire.registration = \"kubernetes\"`, where the " +
					"SPIRE Controller Manager creates an entry per matching pod.", Computed: true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"access": accessAttribute("identity"),
			"keycloak_client_id": rschema.StringAttribute{
				MarkdownDescription: "Client id in Keycloak (the SPIFFE ID); null without `keycloak_client`.", Computed: true,
			},
			"keycloak_client_uuid": rschema.StringAttribute{
				MarkdownDescription: "Internal id of the Keycloak client.", Computed: true,
			},
			"audience_scope": rschema.StringAttribute{
				MarkdownDescription: "Client scope a caller requests (with `audience` = this client id) to get a token for this workload.",
				Computed:            true,
			},
			"token_url": rschema.StringAttribute{MarkdownDescription: "Token endpoint of the realm.", Computed: true},
			"issuer":    rschema.StringAttribute{MarkdownDescription: "Issuer of the realm's tokens.", Computed: true},
		},
	}
}

// keycloakClientAttributes are the settings of a workload's Keycloak client, shared by
// kagenti_identity and the identity block of agents and tools.
func keycloakClientAttributes() map[string]rschema.Attribute {
	clientIDList := []validator.List{listvalidator.UniqueValues(), listvalidator.ValueStringsAre(
		stringvalidator.RegexMatches(spiffeIDRe, "must be a Keycloak client id of a Kagenti identity: its SPIFFE ID, e.g. spiffe://example.org/ns/team1/sa/ui"))}
	return map[string]rschema.Attribute{
		"authentication": rschema.StringAttribute{
			MarkdownDescription: "`federated-jwt` (default): the workload's JWT-SVID is its client assertion, no secret exists. " +
				"`client-secret`: Keycloak generates a secret, which goes to the Kubernetes Secret `<service account>-keycloak` " +
				"(never into state or logs).",
			Optional: true, Computed: true,
			Default:    stringdefault.StaticString(keycloak.AuthFederatedJWT),
			Validators: []validator.String{stringvalidator.OneOf(keycloak.AuthFederatedJWT, keycloak.AuthClientSecret)},
		},
		"audiences": rschema.ListAttribute{
			MarkdownDescription: "Client ids (SPIFFE IDs) this workload may obtain tokens for.",
			Optional:            true, ElementType: types.StringType, Validators: clientIDList,
		},
		"token_exchange": rschema.BoolAttribute{
			MarkdownDescription: "Whether the workload may exchange tokens it received for tokens to its audiences (RFC 8693).",
			Optional:            true, Computed: true, Default: booldefault.StaticBool(false),
		},
		"allowed_callers": rschema.ListAttribute{
			MarkdownDescription: "Client ids (SPIFFE IDs) allowed to obtain tokens for this workload, e.g. by token exchange. " +
				"Everyone else is refused.",
			Optional: true, ElementType: types.StringType, Validators: clientIDList,
		},
	}
}

func (r *identityResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	pd := providerDataFrom(req.ProviderData, &resp.Diagnostics)
	if pd == nil {
		return
	}
	r.data = pd
}

// ValidateConfig checks the rule that ties two attributes: federated-jwt needs JWT-SVIDs that
// Keycloak still accepts.
func (r *identityResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m identityResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.KeycloakClient.IsNull() || m.KeycloakClient.IsUnknown() || m.JWTSVIDTTL.IsNull() || m.JWTSVIDTTL.IsUnknown() {
		return
	}
	var kc keycloakClientModel
	resp.Diagnostics.Append(m.KeycloakClient.As(ctx, &kc, basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true, UnhandledUnknownAsEmpty: true})...)
	if kc.Authentication.ValueString() == keycloak.AuthClientSecret {
		return
	}
	if d, err := time.ParseDuration(m.JWTSVIDTTL.ValueString()); err == nil && d > maxFederatedJWTTTL {
		resp.Diagnostics.AddAttributeError(path.Root("jwt_svid_ttl"), "JWT-SVID Lifetime Too Long",
			fmt.Sprintf("jwt_svid_ttl is %s, but with keycloak_client.authentication = \"federated-jwt\" Keycloak accepts a JWT-SVID only "+
				"within 300 s of its issue. Use 5m or less, or client-secret authentication.", d))
	}
}

// identitySpec is the resolved desired state.
type identitySpec struct {
	entry  spire.EntrySpec
	client *keycloak.ClientSpec
	// audiences and callers are client ids.
	audiences, callers []string
}

// resolve fills defaults that depend on the trust domain into the model and returns the desired
// state. It needs no backend when spire.trust_domain is set; otherwise it asks the SPIRE server.
func (r *identityResource) resolve(ctx context.Context, m *identityResourceModel) (*identitySpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	td, err := r.data.TrustDomain(ctx)
	if err != nil {
		if errors.Is(err, errBackendNotConfigured) {
			diags.Append(spireNotConfigured("kagenti_identity"))
		} else {
			diags.Append(spireUnreachable("planning kagenti_identity", err))
		}
		return nil, diags
	}
	k8s := r.data.spireConfig.kubernetes()
	ns, sa := m.Namespace.ValueString(), m.ServiceAccount.ValueString()
	if m.SPIFFEID.IsNull() || m.SPIFFEID.IsUnknown() {
		m.SPIFFEID = types.StringValue(fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td.Name(), ns, sa))
	} else if want := "spiffe://" + td.Name() + "/"; !strings.HasPrefix(m.SPIFFEID.ValueString(), want) {
		diags.AddAttributeError(path.Root("spiffe_id"), "SPIFFE ID Outside The Trust Domain",
			fmt.Sprintf("spiffe_id %s is not in the trust domain %s (spire.trust_domain, else the SPIRE server's): use spiffe://%s/...",
				m.SPIFFEID.ValueString(), td.Name(), td.Name()))
	}
	if k8s {
		// The SPIRE Controller Manager parents each entry to the agent of the pod's node.
		if !m.ParentID.IsNull() && !m.ParentID.IsUnknown() {
			diags.AddAttributeError(path.Root("parent_id"), "Parent ID Set By The Controller Manager",
				"With spire.registration = \"kubernetes\" the SPIRE Controller Manager parents each entry to the agent of the "+
					"pod's node; parent_id cannot be chosen. Remove parent_id, or register through the SPIRE server API.")
		}
		m.ParentID = types.StringNull()
	} else if m.ParentID.IsNull() || m.ParentID.IsUnknown() {
		parent := r.data.spireConfig.DefaultParentID
		if parent == "" {
			parent = "spiffe://" + td.Name() + "/kagenti/cluster"
		}
		m.ParentID = types.StringValue(parent)
	}
	if m.Selectors.IsNull() || m.Selectors.IsUnknown() {
		m.Selectors, _ = types.ListValueFrom(ctx, types.StringType, []string{"k8s:ns:" + ns, "k8s:sa:" + sa})
	}
	spec := &identitySpec{entry: spire.EntrySpec{SPIFFEID: m.SPIFFEID.ValueString(), ParentID: m.ParentID.ValueString()}}
	diags.Append(m.Selectors.ElementsAs(ctx, &spec.entry.Selectors, false)...)
	if k8s && !slices.ContainsFunc(spec.entry.Selectors, func(s string) bool { return strings.HasPrefix(s, "k8s:ns:") }) {
		diags.AddAttributeError(path.Root("selectors"), "Namespace Selector Required",
			"With spire.registration = \"kubernetes\" an identity is a ClusterSPIFFEID that selects the pods of one namespace: "+
				"selectors must include k8s:ns:<namespace>.")
	}
	spec.entry.X509SVIDTTL, _ = time.ParseDuration(m.X509SVIDTTL.ValueString())
	spec.entry.JWTSVIDTTL, _ = time.ParseDuration(m.JWTSVIDTTL.ValueString())
	if !m.KeycloakClient.IsNull() && !m.KeycloakClient.IsUnknown() {
		var kc keycloakClientModel
		diags.Append(m.KeycloakClient.As(ctx, &kc, basetypes.ObjectAsOptions{})...)
		spec.client = &keycloak.ClientSpec{
			ClientID:       m.SPIFFEID.ValueString(),
			Description:    fmt.Sprintf("Workload %s/%s (managed by Kagenti)", ns, sa),
			Authentication: kc.Authentication.ValueString(),
			TokenExchange:  kc.TokenExchange.ValueBool(),
		}
		spec.audiences = knownStrings(kc.Audiences)
		spec.callers = knownStrings(kc.AllowedCallers)
	}
	return spec, diags
}

func (r *identityResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan identityResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.Namespace.IsUnknown() || plan.ServiceAccount.IsUnknown() {
		return
	}
	spec, diags := r.resolve(ctx, &plan)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if spec.client != nil {
		// The client id is known before the client exists, but another identity that lists it
		// as a caller or audience must not see it as known until then: a known id is checked
		// for existence when the identity that names it is applied.
		if !req.State.Raw.IsNull() {
			plan.KeycloakClientID = types.StringValue(spec.client.ClientID)
			plan.AudienceScope = types.StringValue(keycloak.AudienceScopeName(spec.client.ClientID))
		}
		// Plans contact Keycloak only to read state (Read); what config decides is checked here.
		if r.data.keycloakConfig.URL == "" {
			resp.Diagnostics.AddAttributeError(path.Root("keycloak_client"), "Keycloak Not Configured",
				"keycloak_client needs Keycloak: set keycloak.url and credentials in the provider (or KAGENTI_KEYCLOAK_*).")
			return
		}
		if spec.client.Authentication == keycloak.AuthFederatedJWT && r.data.spireConfig.BundleEndpointURL == "" {
			resp.Diagnostics.AddAttributeError(path.Root("keycloak_client").AtName("authentication"), "SPIRE Bundle Endpoint Not Configured",
				"federated-jwt authentication needs Keycloak to fetch the SPIRE JWT keys: set spire.bundle_endpoint_url in the provider "+
					"(or KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL), or use authentication = \"client-secret\".")
		}
		// The realm's URLs do not change with the identity: keep what was read.
		if !req.State.Raw.IsNull() {
			var state identityResourceModel
			resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
			if !state.TokenURL.IsNull() {
				plan.TokenURL, plan.Issuer = state.TokenURL, state.Issuer
			}
		}
	} else {
		plan.KeycloakClientID, plan.KeycloakClientUUID = types.StringNull(), types.StringNull()
		plan.AudienceScope, plan.TokenURL, plan.Issuer = types.StringNull(), types.StringNull(), types.StringNull()
	}
	plan.Access = identityAccess(ctx, &plan)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// checkClientsExist runs at apply, before anything is created: callers and audiences named by a
// known client id must exist (a reference to another identity is created first).
func (r *identityResource) checkClientsExist(ctx context.Context, spec *identitySpec) diag.Diagnostics {
	var diags diag.Diagnostics
	if spec.client == nil || len(spec.callers)+len(spec.audiences) == 0 {
		return diags
	}
	kc, err := r.data.Keycloak(ctx)
	if err != nil {
		diags.Append(keycloakUnreachable("checking the callers and audiences of "+spec.client.ClientID, err))
		return diags
	}
	check := func(attr string, ids []string) {
		for i, id := range ids {
			if id == "" || id == spec.client.ClientID {
				continue
			}
			if _, err := kc.FindClient(ctx, id); errors.Is(err, keycloak.ErrNotFound) {
				diags.AddAttributeError(path.Root("keycloak_client").AtName(attr).AtListIndex(i), "Unknown Client",
					fmt.Sprintf("keycloak_client.%s[%d]: no Keycloak client %q exists in realm %s. Reference the other identity "+
						"(kagenti_identity.x.keycloak_client_id) so that Terraform creates it first, or fix the id.", attr, i, id, kc.Realm()))
			} else if err != nil {
				diags.Append(keycloakUnreachable("checking "+id, err))
			}
		}
	}
	check("allowed_callers", spec.callers)
	check("audiences", spec.audiences)
	return diags
}

func (r *identityResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan identityResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, diags := r.resolve(ctx, &plan)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.checkClientsExist(ctx, spec)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sc, _, err := r.data.Registrar(ctx)
	if err != nil {
		resp.Diagnostics.Append(spireUnreachable("creating kagenti_identity", err))
		return
	}
	entry, err := sc.CreateEntry(ctx, spec.entry)
	if err != nil {
		resp.Diagnostics.AddError("SPIRE Entry Not Created", fmt.Sprintf("Registering %s failed; nothing was created.\n\nOriginal Error: %v", spec.entry.SPIFFEID, err))
		return
	}
	plan.ID, plan.SpireEntryID = types.StringValue(entry.ID), r.entryID(entry.ID)
	tflog.Info(ctx, "SPIRE entry registered", map[string]any{"spiffe_id": spec.entry.SPIFFEID, "entry_id": entry.ID})
	// From here on the state records what exists, so that a failure below leaves a (tainted)
	// resource that the next apply replaces and destroy removes: nothing is orphaned.
	plan.KeycloakClientUUID = types.StringNull()
	resp.Diagnostics.Append(r.reconcileKeycloak(ctx, &plan, spec, nil)...)
	plan.Access = identityAccess(ctx, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// reconcileKeycloak brings the client, its grants and (for client-secret) its Secret to the spec.
// prior holds the grants recorded before, so that removed ones are revoked.
func (r *identityResource) reconcileKeycloak(ctx context.Context, m *identityResourceModel, spec *identitySpec, prior *identitySpec) diag.Diagnostics {
	var diags diag.Diagnostics
	if spec.client == nil {
		return diags
	}
	kc, err := r.data.Keycloak(ctx)
	if err != nil {
		diags.Append(keycloakUnreachable("creating the client of "+spec.client.ClientID, err))
		return diags
	}
	td, _ := r.data.TrustDomain(ctx)
	w := keycloak.WorkloadClient{Spec: *spec.client, TrustDomain: td.Name(), BundleEndpoint: r.data.spireConfig.BundleEndpointURL,
		Callers: spec.callers, Audiences: spec.audiences}
	if prior != nil {
		w.RevokeCallers, w.RevokeAudiences = minus(prior.callers, spec.callers), minus(prior.audiences, spec.audiences)
	}
	uuid, err := kc.EnsureWorkloadClient(ctx, w)
	if uuid != "" {
		m.KeycloakClientUUID = types.StringValue(uuid)
	}
	m.KeycloakClientID = types.StringValue(spec.client.ClientID)
	m.AudienceScope = types.StringValue(keycloak.AudienceScopeName(spec.client.ClientID))
	if info, err := kc.RealmInfo(ctx); err == nil {
		m.TokenURL, m.Issuer = types.StringValue(info.TokenEndpoint), types.StringValue(info.Issuer)
	}
	if err != nil {
		diags.AddError("Keycloak Client Not Reconciled", fmt.Sprintf("Setting up the Keycloak client of %s failed; the SPIRE entry "+
			"exists and is recorded in state. Fix the cause and apply again (or destroy).\n\nOriginal Error: %v", spec.client.ClientID, err))
		return diags
	}
	if spec.client.Authentication == keycloak.AuthClientSecret {
		diags.Append(storeClientSecret(ctx, r.data, kc, uuid, spec.client.ClientID, m.Namespace.ValueString(), clientSecretName(m))...)
	}
	return diags
}

// storeClientSecret copies a client-secret client's generated secret into a Kubernetes Secret,
// the only place it is kept: never in state or logs.
func storeClientSecret(ctx context.Context, data *providerData, kc *keycloak.Client, uuid, clientID, namespace, name string) diag.Diagnostics {
	var diags diag.Diagnostics
	secret, err := kc.ClientSecret(ctx, uuid)
	if err != nil {
		diags.Append(keycloakUnreachable("reading the generated secret of "+clientID, err))
		return diags
	}
	applier, err := data.Applier()
	if err == nil {
		err = applier.ApplySecret(ctx, namespace, name, map[string]string{"client-id": clientID, contract.ClientSecretKey: secret})
	}
	if err != nil {
		diags.Append(kubernetesAPIError("storing the client secret of "+clientID, err))
	}
	return diags
}

// knownStrings returns a list's strings, with "" for elements not known yet (planning).
func knownStrings(l types.List) []string {
	if l.IsNull() || l.IsUnknown() {
		return nil
	}
	var out []string
	for _, v := range l.Elements() {
		s, _ := v.(types.String)
		out = append(out, s.ValueString())
	}
	return out
}

func clientSecretName(m *identityResourceModel) string {
	return contract.ClientSecretName(m.ServiceAccount.ValueString())
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

func (r *identityResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state identityResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sc, _, err := r.data.Registrar(ctx)
	if err != nil {
		resp.Diagnostics.Append(spireUnreachable("reading kagenti_identity", err))
		return
	}
	entry, err := sc.GetEntry(ctx, state.ID.ValueString())
	if errors.Is(err, spire.ErrNotFound) {
		tflog.Info(ctx, "SPIRE entry gone; the identity will be created again", map[string]any{"entry_id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(spireUnreachable("reading kagenti_identity", err))
		return
	}
	imported := state.Namespace.IsNull()
	state.SpireEntryID = r.entryID(entry.ID)
	state.SPIFFEID, state.ParentID = types.StringValue(entry.SPIFFEID), types.StringValue(entry.ParentID)
	if entry.ParentID == "" { // a ClusterSPIFFEID: the controller manager parents entries
		state.ParentID = types.StringNull()
	}
	state.Selectors = keepListIfSameSet(ctx, state.Selectors, entry.Selectors)
	state.X509SVIDTTL = keepDurationIfEqual(state.X509SVIDTTL, entry.X509SVIDTTL)
	state.JWTSVIDTTL = keepDurationIfEqual(state.JWTSVIDTTL, entry.JWTSVIDTTL)
	if imported {
		// ns and sa from the default selectors (the import ID is only the entry id).
		for _, s := range entry.Selectors {
			if v, ok := strings.CutPrefix(s, "k8s:ns:"); ok {
				state.Namespace = types.StringValue(v)
			}
			if v, ok := strings.CutPrefix(s, "k8s:sa:"); ok {
				state.ServiceAccount = types.StringValue(v)
			}
		}
	}
	resp.Diagnostics.Append(r.readKeycloak(ctx, &state, imported)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.Access = identityAccess(ctx, &state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// readKeycloak refreshes the client's settings and grants. A client deleted out of band reads
// as authentication = null, so the plan shows the change and the next apply re-creates it.
func (r *identityResource) readKeycloak(ctx context.Context, m *identityResourceModel, imported bool) diag.Diagnostics {
	var diags diag.Diagnostics
	if m.KeycloakClient.IsNull() && !imported {
		return diags
	}
	kc, err := r.data.Keycloak(ctx)
	if errors.Is(err, errBackendNotConfigured) && imported {
		return diags
	}
	if err != nil {
		diags.Append(keycloakUnreachable("reading kagenti_identity", err))
		return diags
	}
	clientID := m.SPIFFEID.ValueString()
	uuid := m.KeycloakClientUUID.ValueString()
	if uuid == "" {
		if uuid, err = kc.FindClient(ctx, clientID); errors.Is(err, keycloak.ErrNotFound) {
			uuid = ""
		} else if err != nil {
			diags.Append(keycloakUnreachable("reading kagenti_identity", err))
			return diags
		}
	}
	var prior keycloakClientModel
	if !m.KeycloakClient.IsNull() {
		diags.Append(m.KeycloakClient.As(ctx, &prior, basetypes.ObjectAsOptions{})...)
	} else {
		prior = keycloakClientModel{Audiences: types.ListNull(types.StringType), AllowedCallers: types.ListNull(types.StringType)}
	}
	var st *keycloak.ClientState
	if uuid != "" {
		st, err = kc.GetClient(ctx, uuid)
		if errors.Is(err, keycloak.ErrNotFound) {
			st = nil
		} else if err != nil {
			diags.Append(keycloakUnreachable("reading kagenti_identity", err))
			return diags
		}
	}
	if st == nil {
		if imported {
			return diags
		}
		tflog.Info(ctx, "Keycloak client gone; the next apply re-creates it", map[string]any{"client_id": clientID})
		m.KeycloakClientUUID = types.StringNull()
		prior.Authentication = types.StringNull()
		m.KeycloakClient, _ = types.ObjectValueFrom(ctx, keycloakClientAttrTypes, prior)
		return diags
	}
	m.KeycloakClientUUID = types.StringValue(st.UUID)
	m.KeycloakClientID = types.StringValue(st.ClientID)
	m.AudienceScope = types.StringValue(keycloak.AudienceScopeName(st.ClientID))
	if info, err := kc.RealmInfo(ctx); err == nil {
		m.TokenURL, m.Issuer = types.StringValue(info.TokenEndpoint), types.StringValue(info.Issuer)
	}
	prior.Authentication = types.StringValue(st.Authentication)
	prior.TokenExchange = types.BoolValue(st.TokenExchange)
	// Grants: keep those that still hold, in the configured order; a revoked one drops out and
	// the plan adds it back.
	var audiences, callers []string
	diags.Append(prior.Audiences.ElementsAs(ctx, &audiences, false)...)
	diags.Append(prior.AllowedCallers.ElementsAs(ctx, &callers, false)...)
	var keptAud, keptCallers []string
	for _, aud := range audiences {
		want := keycloak.AudienceScopeName(aud)
		for _, s := range st.OptionalScopes {
			if s == want {
				keptAud = append(keptAud, aud)
			}
		}
	}
	for _, caller := range callers {
		ok, err := kc.HasAudience(ctx, caller, st.ClientID)
		if err != nil {
			diags.Append(keycloakUnreachable("reading the callers of "+st.ClientID, err))
			return diags
		}
		if ok {
			keptCallers = append(keptCallers, caller)
		}
	}
	prior.Audiences = listOrNull(ctx, prior.Audiences, keptAud)
	prior.AllowedCallers = listOrNull(ctx, prior.AllowedCallers, keptCallers)
	var d diag.Diagnostics
	m.KeycloakClient, d = types.ObjectValueFrom(ctx, keycloakClientAttrTypes, prior)
	diags.Append(d...)
	return diags
}

func listOrNull(ctx context.Context, prior types.List, values []string) types.List {
	if prior.IsNull() && len(values) == 0 {
		return prior
	}
	if values == nil {
		values = []string{}
	}
	l, _ := types.ListValueFrom(ctx, types.StringType, values)
	return l
}

// keepListIfSameSet keeps the state's order when the live set is the same.
func keepListIfSameSet(ctx context.Context, state types.List, live []string) types.List {
	var have []string
	if !state.IsNull() && !state.IsUnknown() {
		state.ElementsAs(ctx, &have, false)
	}
	a, b := append([]string(nil), have...), append([]string(nil), live...)
	sort.Strings(a)
	sort.Strings(b)
	if strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(have) > 0 {
		return state
	}
	l, _ := types.ListValueFrom(ctx, types.StringType, live)
	return l
}

// keepDurationIfEqual keeps the configured spelling ("1h") when the live value is the same.
func keepDurationIfEqual(state types.String, live time.Duration) types.String {
	if d, err := time.ParseDuration(state.ValueString()); err == nil && d == live {
		return state
	}
	return types.StringValue(formatDuration(live))
}

// formatDuration spells a duration as people write it: Go's "1h30m0s" without its zero trailing
// units ("1h30m"). Only whole zero units go: "30s" and "5m30s" stay as they are, and the result
// always parses back to d.
func formatDuration(d time.Duration) string {
	s := d.String()
	if m, ok := strings.CutSuffix(s, "m0s"); ok {
		s = m + "m"
	}
	if h, ok := strings.CutSuffix(s, "h0m"); ok {
		s = h + "h"
	}
	return s
}

func (r *identityResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state identityResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, diags := r.resolve(ctx, &plan)
	resp.Diagnostics.Append(diags...)
	prior, diags := r.resolve(ctx, &state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.checkClientsExist(ctx, spec)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sc, _, err := r.data.Registrar(ctx)
	if err != nil {
		resp.Diagnostics.Append(spireUnreachable("updating kagenti_identity", err))
		return
	}
	if err := sc.UpdateEntry(ctx, state.ID.ValueString(), spec.entry); err != nil {
		resp.Diagnostics.AddError("SPIRE Entry Not Updated", fmt.Sprintf("Updating %s failed.\n\nOriginal Error: %v", spec.entry.SPIFFEID, err))
		return
	}
	plan.ID, plan.SpireEntryID = state.ID, r.entryID(state.ID.ValueString())
	if spec.client == nil && prior.client != nil {
		resp.Diagnostics.Append(r.deleteKeycloak(ctx, &state)...)
	}
	resp.Diagnostics.Append(r.reconcileKeycloak(ctx, &plan, spec, prior)...)
	plan.Access = identityAccess(ctx, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *identityResource) deleteKeycloak(ctx context.Context, m *identityResourceModel) diag.Diagnostics {
	var diags diag.Diagnostics
	if m.KeycloakClientID.IsNull() {
		return diags
	}
	kc, err := r.data.Keycloak(ctx)
	if err != nil {
		diags.Append(keycloakUnreachable("deleting the client of "+m.SPIFFEID.ValueString(), err))
		return diags
	}
	if err := kc.RemoveWorkloadClient(ctx, m.KeycloakClientID.ValueString()); err != nil {
		diags.AddError("Keycloak Client Not Deleted", err.Error())
		return diags
	}
	if applier, err := r.data.Applier(); err == nil {
		if err := applier.DeleteSecret(ctx, m.Namespace.ValueString(), clientSecretName(m)); err != nil {
			diags.AddError("Client Secret Not Deleted", err.Error())
		}
	}
	return diags
}

func (r *identityResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state identityResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.deleteKeycloak(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sc, _, err := r.data.Registrar(ctx)
	if err != nil {
		resp.Diagnostics.Append(spireUnreachable("deleting kagenti_identity", err))
		return
	}
	if err := sc.DeleteEntry(ctx, state.ID.ValueString()); err != nil {
		resp.Diagnostics.AddError("SPIRE Entry Not Deleted", err.Error())
	}
}

// entryID is spire_entry_id: the registration id with the server API; null with ClusterSPIFFEIDs,
// whose entries (one per pod) the controller manager creates and names.
func (r *identityResource) entryID(id string) types.String {
	if r.data.spireConfig.kubernetes() {
		return types.StringNull()
	}
	return types.StringValue(id)
}

// ImportState takes the SPIRE entry id (the ClusterSPIFFEID name with Kubernetes registration), or the Keycloak client id (the SPIFFE ID), whose entry
// is then looked up.
func (r *identityResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := req.ID
	if strings.HasPrefix(id, "spiffe://") {
		sc, _, err := r.data.Registrar(ctx)
		if err != nil {
			resp.Diagnostics.Append(spireUnreachable("importing "+id, err))
			return
		}
		entries, err := sc.FindEntries(ctx, id)
		if err != nil {
			resp.Diagnostics.Append(spireUnreachable("importing "+id, err))
			return
		}
		if len(entries) != 1 {
			resp.Diagnostics.AddError("Cannot Import Identity", fmt.Sprintf("%s has %d SPIRE entries; import by entry id instead "+
				"(spire-server entry show -spiffeID %s).", id, len(entries), id))
			return
		}
		id = entries[0].ID
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
}

// sameDuration plans the state's spelling of a duration that the configuration spells
// differently but means the same ("90m" in the configuration, "1h30m" read back from SPIRE on
// import): Terraform accepts the prior value as equivalent, so the plan is empty instead of an
// update that changes nothing.
type sameDuration struct{}

func (sameDuration) Description(context.Context) string {
	return "a duration equal to the one in state keeps the state's spelling"
}

func (m sameDuration) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (sameDuration) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || req.StateValue.IsUnknown() || req.PlanValue.IsNull() || req.PlanValue.IsUnknown() {
		return
	}
	planned, err := time.ParseDuration(req.PlanValue.ValueString())
	if err != nil {
		return
	}
	if prior, err := time.ParseDuration(req.StateValue.ValueString()); err == nil && prior == planned {
		resp.PlanValue = req.StateValue
	}
}

// durationValidator checks a Go duration within bounds.
type durationValidator struct{ min, max time.Duration }

func durationBetween(min, max time.Duration) validator.String { return durationValidator{min, max} }

func (v durationValidator) Description(context.Context) string {
	return fmt.Sprintf("must be a duration between %s and %s, e.g. 5m or 1h", formatDuration(v.min), formatDuration(v.max))
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil || d < v.min || d > v.max {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%s %s, got %q", req.Path, v.Description(ctx), req.ConfigValue.ValueString()))
	}
}

// identityAccess is the access attribute of an identity: who may obtain tokens for it (it is
// not served by the router). Unknown while its callers are.
func identityAccess(ctx context.Context, m *identityResourceModel) types.List {
	c := access.Callee{Namespace: m.Namespace.ValueString(), Name: m.ServiceAccount.ValueString()}
	if !m.KeycloakClient.IsNull() && !m.KeycloakClient.IsUnknown() {
		var kc keycloakClientModel
		if diags := m.KeycloakClient.As(ctx, &kc, basetypes.ObjectAsOptions{}); diags.HasError() {
			return types.ListUnknown(types.StringType)
		}
		if kc.AllowedCallers.IsUnknown() || !fullyKnown(ctx, kc.AllowedCallers) {
			return types.ListUnknown(types.StringType)
		}
		c.Client, c.AllowedCallers = true, knownStrings(kc.AllowedCallers)
	} else if m.KeycloakClient.IsUnknown() {
		return types.ListUnknown(types.StringType)
	}
	return accessValue(c)
}
