package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

var (
	_ datasource.DataSource              = &environmentDataSource{}
	_ datasource.DataSourceWithConfigure = &environmentDataSource{}
)

// NewEnvironmentDataSource returns the kagenti_environment data source.
func NewEnvironmentDataSource() datasource.DataSource {
	return &environmentDataSource{}
}

// environmentDataSource reads what the provider is connected to: it proves each backend
// connection end to end.
type environmentDataSource struct {
	data *providerData
}

type environmentDataSourceModel struct {
	LabelDomain types.String `tfsdk:"label_domain"`
	Kubernetes  types.Object `tfsdk:"kubernetes"`
	Spire       types.Object `tfsdk:"spire"`
	Keycloak    types.Object `tfsdk:"keycloak"`
}

var (
	environmentKubernetesTypes = map[string]attr.Type{"host": types.StringType, "version": types.StringType}
	environmentSpireTypes      = map[string]attr.Type{"trust_domain": types.StringType, "bundle_jwks": types.StringType}
	environmentKeycloakTypes   = map[string]attr.Type{
		"realm": types.StringType, "issuer": types.StringType, "token_url": types.StringType, "jwks_uri": types.StringType,
	}
)

func (d *environmentDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_environment"
}

func (d *environmentDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads the systems the provider is connected to: the Kubernetes server version, the SPIRE trust " +
			"domain and bundle, and the Keycloak realm's issuer. A backend the provider has no settings for reads as null; " +
			"one that is configured but unreachable is an error.",
		Attributes: map[string]schema.Attribute{
			"label_domain": schema.StringAttribute{
				MarkdownDescription: "Domain of the labels and annotations the provider writes.",
				Computed:            true,
			},
			"kubernetes": schema.SingleNestedAttribute{
				MarkdownDescription: "The Kubernetes API server.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"host":    schema.StringAttribute{MarkdownDescription: "API server URL.", Computed: true},
					"version": schema.StringAttribute{MarkdownDescription: "Server version, e.g. `v1.37.2`.", Computed: true},
				},
			},
			"spire": schema.SingleNestedAttribute{
				MarkdownDescription: "The SPIRE server; null when `spire.address` is not set.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"trust_domain": schema.StringAttribute{MarkdownDescription: "Trust domain the server serves.", Computed: true},
					"bundle_jwks": schema.StringAttribute{
						MarkdownDescription: "The trust bundle in SPIFFE bundle (JWKS) format: X.509 authorities (`use` = `x509-svid`) " +
							"and JWT authorities (`use` = `jwt-svid`).",
						Computed: true,
					},
				},
			},
			"keycloak": schema.SingleNestedAttribute{
				MarkdownDescription: "The Keycloak realm; null when `keycloak.url` is not set.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"realm":     schema.StringAttribute{MarkdownDescription: "Realm name.", Computed: true},
					"issuer":    schema.StringAttribute{MarkdownDescription: "Issuer URL tokens of the realm carry in `iss`.", Computed: true},
					"token_url": schema.StringAttribute{MarkdownDescription: "Token endpoint of the realm.", Computed: true},
					"jwks_uri":  schema.StringAttribute{MarkdownDescription: "JWKS URL of the realm's signing keys.", Computed: true},
				},
			},
		},
	}
}

func (d *environmentDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	pd := providerDataFrom(req.ProviderData, &resp.Diagnostics)
	if pd == nil {
		return
	}
	d.data = pd
}

func (d *environmentDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	state := environmentDataSourceModel{
		LabelDomain: types.StringValue(d.data.labelDomain),
		Spire:       types.ObjectNull(environmentSpireTypes),
		Keycloak:    types.ObjectNull(environmentKeycloakTypes),
	}

	restCfg, err := d.data.Kubernetes()
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("reading kagenti_environment", err))
		return
	}
	version, err := kube.ServerVersion(ctx, restCfg)
	if err != nil {
		resp.Diagnostics.Append(kubernetesAPIError("reading kagenti_environment", err))
		return
	}
	tflog.Debug(ctx, "kubernetes reached", map[string]any{"host": restCfg.Host, "version": version})
	k8s, diags := types.ObjectValue(environmentKubernetesTypes, map[string]attr.Value{
		"host": types.StringValue(restCfg.Host), "version": types.StringValue(version),
	})
	resp.Diagnostics.Append(diags...)
	state.Kubernetes = k8s

	spireClient, _, err := d.data.Spire(ctx)
	switch {
	case errors.Is(err, errBackendNotConfigured):
	case err != nil:
		resp.Diagnostics.Append(spireUnreachable("reading kagenti_environment", err))
		return
	default:
		bundle, err := spireClient.Bundle(ctx)
		if err != nil {
			resp.Diagnostics.Append(spireUnreachable("reading kagenti_environment", err))
			return
		}
		jwks, err := bundle.Marshal()
		if err != nil {
			resp.Diagnostics.Append(spireUnreachable("encoding the trust bundle", err))
			return
		}
		obj, diags := types.ObjectValue(environmentSpireTypes, map[string]attr.Value{
			"trust_domain": types.StringValue(bundle.TrustDomain().Name()), "bundle_jwks": types.StringValue(string(jwks)),
		})
		resp.Diagnostics.Append(diags...)
		state.Spire = obj
	}

	kc, err := d.data.Keycloak(ctx)
	switch {
	case errors.Is(err, errBackendNotConfigured):
	case err != nil:
		resp.Diagnostics.Append(keycloakUnreachable("reading kagenti_environment", err))
		return
	default:
		info, err := kc.RealmInfo(ctx)
		if err != nil {
			resp.Diagnostics.Append(keycloakUnreachable("reading kagenti_environment", err))
			return
		}
		obj, diags := types.ObjectValue(environmentKeycloakTypes, map[string]attr.Value{
			"realm": types.StringValue(info.Realm), "issuer": types.StringValue(info.Issuer),
			"token_url": types.StringValue(info.TokenEndpoint), "jwks_uri": types.StringValue(info.JWKSURI),
		})
		resp.Diagnostics.Append(diags...)
		state.Keycloak = obj
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}
