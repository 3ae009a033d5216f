package provider

import (
	"context"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

// Ensure kagentiProvider satisfies the framework interfaces.
var (
	_ provider.Provider                   = &kagentiProvider{}
	_ provider.ProviderWithValidateConfig = &kagentiProvider{}
)

// New returns the provider factory; version is "dev" for local builds and "test" in tests.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &kagentiProvider{version: version}
	}
}

// kagentiProvider is the kagenti provider.
type kagentiProvider struct {
	version string
}

// kagentiProviderModel is the provider configuration.
type kagentiProviderModel struct {
	Kubernetes  *kubernetesConfigModel `tfsdk:"kubernetes"`
	Spire       *spireConfigModel      `tfsdk:"spire"`
	Keycloak    *keycloakConfigModel   `tfsdk:"keycloak"`
	LabelDomain types.String           `tfsdk:"label_domain"`
}

type kubernetesConfigModel struct {
	ConfigPath            types.String     `tfsdk:"config_path"`
	ConfigPaths           types.List       `tfsdk:"config_paths"`
	ConfigContext         types.String     `tfsdk:"config_context"`
	ConfigContextAuthInfo types.String     `tfsdk:"config_context_auth_info"`
	ConfigContextCluster  types.String     `tfsdk:"config_context_cluster"`
	Host                  types.String     `tfsdk:"host"`
	Token                 types.String     `tfsdk:"token"`
	ClusterCACertificate  types.String     `tfsdk:"cluster_ca_certificate"`
	ClientCertificate     types.String     `tfsdk:"client_certificate"`
	ClientKey             types.String     `tfsdk:"client_key"`
	Insecure              types.Bool       `tfsdk:"insecure"`
	TLSServerName         types.String     `tfsdk:"tls_server_name"`
	ProxyURL              types.String     `tfsdk:"proxy_url"`
	Exec                  *execConfigModel `tfsdk:"exec"`
}

type execConfigModel struct {
	APIVersion types.String `tfsdk:"api_version"`
	Command    types.String `tfsdk:"command"`
	Args       types.List   `tfsdk:"args"`
	Env        types.Map    `tfsdk:"env"`
}

type spireConfigModel struct {
	Registration        types.String `tfsdk:"registration"`
	Address             types.String `tfsdk:"address"`
	X509SVIDFile        types.String `tfsdk:"x509_svid_file"`
	X509SVIDKeyFile     types.String `tfsdk:"x509_svid_key_file"`
	BundleFile          types.String `tfsdk:"bundle_file"`
	X509SVIDWorkloadAPI types.String `tfsdk:"x509_svid_workload_api"`
	ServerID            types.String `tfsdk:"server_id"`
	ClassName           types.String `tfsdk:"class_name"`
	TrustDomain         types.String `tfsdk:"trust_domain"`
	DefaultParentID     types.String `tfsdk:"default_parent_id"`
	BundleEndpointURL   types.String `tfsdk:"bundle_endpoint_url"`
	WorkloadAPIPath     types.String `tfsdk:"workload_api_host_path"`
	WorkloadAPICSI      types.String `tfsdk:"workload_api_csi_driver"`
	WorkloadAPISocket   types.String `tfsdk:"workload_api_socket_name"`
}

type keycloakConfigModel struct {
	URL                   types.String `tfsdk:"url"`
	BasePath              types.String `tfsdk:"base_path"`
	ManagedRealm          types.String `tfsdk:"managed_realm"`
	Realm                 types.String `tfsdk:"realm"`
	AuthRealm             types.String `tfsdk:"auth_realm"`
	ClientID              types.String `tfsdk:"client_id"`
	ClientSecret          types.String `tfsdk:"client_secret"`
	Username              types.String `tfsdk:"username"`
	Password              types.String `tfsdk:"password"`
	RootCACertificate     types.String `tfsdk:"root_ca_certificate"`
	TLSInsecureSkipVerify types.Bool   `tfsdk:"tls_insecure_skip_verify"`
	ClientTimeout         types.Int64  `tfsdk:"client_timeout"`
}

// DefaultLabelDomain prefixes every label and annotation the provider writes.
const DefaultLabelDomain = "kagenti.io"

var (
	dnsSubdomain   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	httpURL        = regexp.MustCompile(`^https?://[^\s/]+(/\S*)?$`)
	basePathRe     = regexp.MustCompile(`^/[^\s?#]*$`)
	pemCertRe      = regexp.MustCompile(`-----BEGIN CERTIFICATE-----`)
	proxyURL       = regexp.MustCompile(`^(https?|socks5)://[^\s/]+/?$`)
	spireAddress   = regexp.MustCompile(`^(unix:///\S+|(dns:///)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})$`)
	unixAddress    = regexp.MustCompile(`^unix:///\S+$`)
	trustDomainRe  = regexp.MustCompile(`^[a-z0-9._-]+$`)
	spiffeIDPrefix = regexp.MustCompile(`^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
)

func (p *kagentiProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "kagenti"
	resp.Version = p.version
}

func (p *kagentiProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Deploys and secures AI agents and their MCP tools on Kubernetes with Kagenti. " +
			"Every setting is optional and falls back to an environment variable; each backend (Kubernetes, SPIRE, " +
			"Keycloak) is connected on first use, so a configuration that touches only Kubernetes needs no SPIRE or Keycloak.",
		Attributes: map[string]schema.Attribute{
			"label_domain": schema.StringAttribute{
				MarkdownDescription: "Domain of the labels and annotations the provider writes and the router reads " +
					"(`<label_domain>/type`, ...). Defaults to `" + DefaultLabelDomain + "`, or `KAGENTI_LABEL_DOMAIN`. " +
					"Change it only together with the router's configuration.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.RegexMatches(dnsSubdomain, "must be a DNS subdomain such as kagenti.io")},
			},
		},
		Blocks: map[string]schema.Block{
			"kubernetes": schema.SingleNestedBlock{
				MarkdownDescription: "How to reach the Kubernetes API; the fields and their environment variables mean what they mean " +
					"in the hashicorp/kubernetes provider. The kubeconfig files of `config_path` or `config_paths` are read with the " +
					"other fields as overrides; else `host` and the credential fields are used alone; else the files in `$KUBECONFIG` " +
					"are read as kubectl reads them; else the in-cluster service account. Reading `$KUBECONFIG` is a deliberate " +
					"difference from hashicorp/kubernetes (which ignores it): a runner that already works with kubectl needs no settings. " +
					"To keep a stray `$KUBECONFIG` out of a run, set `config_path` or `host`.",
				Attributes: map[string]schema.Attribute{
					"config_path": schema.StringAttribute{
						MarkdownDescription: "Path to a kubeconfig file (`~/` is expanded). Env: `KUBE_CONFIG_PATH`.",
						Optional:            true,
						Validators: []validator.String{stringvalidator.ConflictsWith(
							path.MatchRelative().AtParent().AtName("config_paths"))},
					},
					"config_paths": schema.ListAttribute{
						MarkdownDescription: "Paths of kubeconfig files merged as kubectl merges `$KUBECONFIG` (the first file " +
							"to set a value wins). Env: `KUBE_CONFIG_PATHS`, a list separated like `$PATH` (`:`; `;` on Windows). " +
							"`KUBE_CONFIG_PATH` wins over `KUBE_CONFIG_PATHS`.",
						Optional:    true,
						ElementType: types.StringType,
						Validators:  []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(stringvalidator.LengthAtLeast(1))},
					},
					"config_context": schema.StringAttribute{
						MarkdownDescription: "Context of the kubeconfig to use instead of its current context. Env: `KUBE_CTX`.",
						Optional:            true,
					},
					"config_context_auth_info": schema.StringAttribute{
						MarkdownDescription: "User of the kubeconfig to use instead of the context's (kubectl's `--user`). Env: `KUBE_CTX_AUTH_INFO`.",
						Optional:            true,
					},
					"config_context_cluster": schema.StringAttribute{
						MarkdownDescription: "Cluster of the kubeconfig to use instead of the context's (kubectl's `--cluster`). Env: `KUBE_CTX_CLUSTER`.",
						Optional:            true,
					},
					"host": schema.StringAttribute{
						MarkdownDescription: "API server URL, e.g. `https://127.0.0.1:6443`. Env: `KUBE_HOST`.",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http(s) URL such as https://127.0.0.1:6443")},
					},
					"token": schema.StringAttribute{
						MarkdownDescription: "Bearer token. Env: `KUBE_TOKEN`.",
						Optional:            true,
						Sensitive:           true,
					},
					"cluster_ca_certificate": schema.StringAttribute{
						MarkdownDescription: "PEM-encoded CA certificate of the API server. Env: `KUBE_CLUSTER_CA_CERT_DATA`.",
						Optional:            true,
					},
					"client_certificate": schema.StringAttribute{
						MarkdownDescription: "PEM-encoded client certificate. Env: `KUBE_CLIENT_CERT_DATA`.",
						Optional:            true,
						Validators: []validator.String{stringvalidator.AlsoRequires(
							path.MatchRelative().AtParent().AtName("client_key"))},
					},
					"client_key": schema.StringAttribute{
						MarkdownDescription: "PEM-encoded key of `client_certificate`. Env: `KUBE_CLIENT_KEY_DATA`.",
						Optional:            true,
						Sensitive:           true,
						Validators: []validator.String{stringvalidator.AlsoRequires(
							path.MatchRelative().AtParent().AtName("client_certificate"))},
					},
					"insecure": schema.BoolAttribute{
						MarkdownDescription: "Skip verification of the API server's certificate. Env: `KUBE_INSECURE`.",
						Optional:            true,
					},
					"tls_server_name": schema.StringAttribute{
						MarkdownDescription: "Name to check the API server's certificate against (and to send as SNI) instead of " +
							"the host's, e.g. `kubernetes.default.svc` through a tunnel. Env: `KUBE_TLS_SERVER_NAME`.",
						Optional: true,
					},
					"proxy_url": schema.StringAttribute{
						MarkdownDescription: "Proxy for every request to the API server: `http://`, `https://` or `socks5://`. " +
							"Env: `KUBE_PROXY_URL`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(proxyURL, "must be an http, https or socks5 URL such as socks5://127.0.0.1:1080")},
					},
				},
				Blocks: map[string]schema.Block{
					"exec": schema.SingleNestedBlock{
						MarkdownDescription: "A credential plugin that prints an ExecCredential, e.g. a cloud CLI. Each field falls back " +
							"to an environment variable, so a runner can set the plugin without a block: `KUBE_EXEC_COMMAND`, " +
							"`KUBE_EXEC_API_VERSION`, `KUBE_EXEC_ARGS` (a JSON list of strings) and `KUBE_EXEC_ENV` (a JSON object of " +
							"strings). hashicorp/kubernetes reads no variables for `exec`; these follow its `KUBE_` names.",
						Attributes: map[string]schema.Attribute{
							"api_version": schema.StringAttribute{
								MarkdownDescription: "ExecCredential API version. Defaults to `client.authentication.k8s.io/v1`. Env: `KUBE_EXEC_API_VERSION`.",
								Optional:            true,
								Validators: []validator.String{stringvalidator.OneOf(
									"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")},
							},
							"command": schema.StringAttribute{
								MarkdownDescription: "Command to run. Env: `KUBE_EXEC_COMMAND`.",
								Optional:            true,
							},
							"args": schema.ListAttribute{
								MarkdownDescription: "Arguments of the command. Env: `KUBE_EXEC_ARGS`, a JSON list such as `[\"eks\", \"get-token\"]`.",
								Optional:            true,
								ElementType:         types.StringType,
								Validators:          []validator.List{listvalidator.SizeAtMost(64)},
							},
							"env": schema.MapAttribute{
								MarkdownDescription: "Environment variables of the command. Env: `KUBE_EXEC_ENV`, a JSON object such as `{\"AWS_PROFILE\": \"ci\"}`.",
								Optional:            true,
								ElementType:         types.StringType,
							},
						},
					},
				},
			},
			"spire": schema.SingleNestedBlock{
				MarkdownDescription: "The SPIRE deployment that issues workload identities, and how the provider registers them: " +
					"through the SPIRE server API (its unix socket on the server's host, or TCP with mutual TLS from a CI runner) or " +
					"through `ClusterSPIFFEID` objects for the SPIRE Controller Manager (`registration`). Plans need no SPIRE when " +
					"`trust_domain` is set: they check SPIFFE IDs against it and contact a backend only to read existing state.",
				Attributes: map[string]schema.Attribute{
					"registration": schema.StringAttribute{
						MarkdownDescription: "How identities are registered. `server_api` (default): registration entries through the SPIRE " +
							"server API at `address`, its unix socket on the server's host or TCP with mutual TLS from anywhere else. " +
							"`kubernetes`: `ClusterSPIFFEID` objects (`spire.spiffe.io/v1alpha1`) through the provider's Kubernetes API, " +
							"from which the [SPIRE Controller Manager](https://github.com/spiffe/spire-controller-manager) creates an entry " +
							"per matching pod, parented to the agent of the pod's node; it needs `trust_domain` and no access to the SPIRE " +
							"server. Env: `KAGENTI_SPIRE_REGISTRATION`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.OneOf(spireRegistrationServerAPI, spireRegistrationKubernetes)},
					},
					"address": schema.StringAttribute{
						MarkdownDescription: "SPIRE server API: its admin unix socket, `unix:///run/spire/server/private/api.sock`, on the " +
							"server's host; or its TCP endpoint, `spire-server.example.com:8081`, from anywhere else, where the provider " +
							"authenticates with an X509-SVID whose SPIFFE ID is in the server's `admin_ids` (`x509_svid_file` and " +
							"`x509_svid_key_file` with `bundle_file`, or `x509_svid_workload_api`). Env: `KAGENTI_SPIRE_ADDRESS`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(spireAddress, "must be a unix socket address such as unix:///run/spire/server.sock or host:port such as spire-server.example.com:8081")},
					},
					"x509_svid_file": schema.StringAttribute{
						MarkdownDescription: "PEM file of the provider's X509-SVID (leaf first, then its intermediates) for the server API " +
							"over TCP; its SPIFFE ID must be one of the server's `admin_ids`, e.g. minted with `spire-server x509 mint`. " +
							"Env: `KAGENTI_SPIRE_X509_SVID_FILE`.",
						Optional: true,
						Validators: []validator.String{
							stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("x509_svid_key_file"), path.MatchRelative().AtParent().AtName("bundle_file")),
							stringvalidator.ConflictsWith(path.MatchRelative().AtParent().AtName("x509_svid_workload_api")),
						},
					},
					"x509_svid_key_file": schema.StringAttribute{
						MarkdownDescription: "PEM file of the private key of `x509_svid_file`. Env: `KAGENTI_SPIRE_X509_SVID_KEY_FILE`.",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("x509_svid_file"))},
					},
					"bundle_file": schema.StringAttribute{
						MarkdownDescription: "PEM file of the trust bundle (X.509 authorities) that verifies the SPIRE server over TCP, e.g. " +
							"from `spire-server bundle show`. Env: `KAGENTI_SPIRE_BUNDLE_FILE`.",
						Optional: true,
					},
					"x509_svid_workload_api": schema.StringAttribute{
						MarkdownDescription: "SPIFFE Workload API socket, `unix:///run/spire/agent-sockets/agent.sock`, that serves the " +
							"provider (e.g. a CI runner with a SPIRE agent) an X509-SVID and the trust bundle for the server API over TCP; " +
							"the SVID's SPIFFE ID must be an admin (in `admin_ids`, or an entry with `admin = true`). Not the socket of " +
							"the workloads (`workload_api_*`). Env: `KAGENTI_SPIRE_X509_SVID_WORKLOAD_API`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(unixAddress, "must be a unix socket address such as unix:///run/spire/agent-sockets/agent.sock")},
					},
					"server_id": schema.StringAttribute{
						MarkdownDescription: "SPIFFE ID the SPIRE server must present over TCP. Defaults to `spiffe://<trust domain>/spire/server`. " +
							"Env: `KAGENTI_SPIRE_SERVER_ID`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(spiffeIDPrefix, "must be a SPIFFE ID such as spiffe://example.org/spire/server")},
					},
					"class_name": schema.StringAttribute{
						MarkdownDescription: "`spec.className` of the `ClusterSPIFFEID` objects with `registration = \"kubernetes\"`, for a SPIRE " +
							"Controller Manager that serves only its class (`className` in its configuration). Env: `KAGENTI_SPIRE_CLASS_NAME`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.LengthBetween(1, 253)},
					},
					"trust_domain": schema.StringAttribute{
						MarkdownDescription: "Trust domain of the identities, e.g. `example.org`. Plans check SPIFFE IDs against it without " +
							"contacting SPIRE, and the provider refuses a SPIRE server of another trust domain. Required with " +
							"`registration = \"kubernetes\"`; without it, the trust domain is asked of the server. Env: `KAGENTI_SPIRE_TRUST_DOMAIN`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(trustDomainRe, "must be a trust domain name such as example.org (lower-case letters, digits, '.', '-', '_'; no spiffe:// prefix)")},
					},
					"default_parent_id": schema.StringAttribute{
						MarkdownDescription: "Parent SPIFFE ID of registration entries that set none, e.g. the node alias " +
							"`spiffe://example.org/k8s-cluster/prod`. Env: `KAGENTI_SPIRE_DEFAULT_PARENT_ID`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(spiffeIDPrefix, "must be a SPIFFE ID such as spiffe://example.org/k8s-cluster/prod")},
					},
					"bundle_endpoint_url": schema.StringAttribute{
						MarkdownDescription: "URL where Keycloak fetches the trust bundle's JWT keys (a JWKS, e.g. SPIRE's OIDC discovery " +
							"provider `/keys`). Needed by identities whose Keycloak client authenticates with its JWT-SVID. " +
							"Env: `KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http(s) URL such as https://spire-oidc.example.com/keys")},
					},
					"workload_api_host_path": schema.StringAttribute{
						MarkdownDescription: "Directory on the nodes holding the SPIRE agents' Workload API socket (`agent.sock`), e.g. " +
							"`/run/spire/agent-sockets`. When set, workloads with an identity (and the router) get it mounted at " +
							"`/spiffe-workload-api` with `SPIFFE_ENDPOINT_SOCKET`, and the router authenticates to Keycloak with its JWT-SVID " +
							"instead of a secret. A hostPath volume is refused by Pod Security's `baseline` and `restricted` profiles: in " +
							"namespaces that enforce them, use `workload_api_csi_driver`. Env: `KAGENTI_SPIRE_WORKLOAD_API_HOST_PATH`.",
						Optional: true,
						Validators: []validator.String{
							stringvalidator.RegexMatches(regexp.MustCompile(`^/\S+$`), "must be an absolute path"),
							stringvalidator.ConflictsWith(path.MatchRoot("spire").AtName("workload_api_csi_driver")),
						},
					},
					"workload_api_csi_driver": schema.StringAttribute{
						MarkdownDescription: "Name of the CSI driver that serves the SPIRE agents' Workload API socket directory, usually " +
							"the SPIFFE CSI driver `csi.spiffe.io`. Workloads with an identity (and the router) get a read-only `csi` " +
							"volume of it at `/spiffe-workload-api`, which Pod Security's `restricted` profile allows, and the router " +
							"authenticates to Keycloak with its JWT-SVID. Env: `KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`), "must be a CSI driver name such as csi.spiffe.io")},
					},
					"workload_api_socket_name": schema.StringAttribute{
						MarkdownDescription: "File name of the Workload API socket in that directory. Defaults to `agent.sock` " +
							"(SPIRE's Helm charts with the SPIFFE CSI driver use `spire-agent.sock`). Env: `KAGENTI_SPIRE_WORKLOAD_API_SOCKET_NAME`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[^/\s]+$`), "must be a file name, without a directory")},
					},
				},
			},
			"keycloak": schema.SingleNestedBlock{
				MarkdownDescription: "The Keycloak that controls access. Log in either as an admin user (`username`, `password`) " +
					"or as a service-account client (`client_id`, `client_secret`). The login settings mean what they mean in the " +
					"keycloak/keycloak provider, with one exception: the realm. There `realm` is the realm to log in to; here the " +
					"realm to log in to is `auth_realm` and the realm that holds agent and tool clients is `managed_realm`. `realm` " +
					"is accepted only as the deprecated name of `managed_realm` next to an explicit `auth_realm`; alone it is an " +
					"error, so that a block copied from keycloak/keycloak never manages its login realm by mistake.",
				Attributes: map[string]schema.Attribute{
					"url": schema.StringAttribute{
						MarkdownDescription: "Base URL, e.g. `https://keycloak.example.com`. Env: `KAGENTI_KEYCLOAK_URL`.",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http(s) URL such as https://keycloak.example.com")},
					},
					"base_path": schema.StringAttribute{
						MarkdownDescription: "Context path Keycloak is served under, appended to `url`: `/auth` for Keycloak before " +
							"version 17 or a server started with `--http-relative-path=/auth`. Defaults to none. Env: `KAGENTI_KEYCLOAK_BASE_PATH`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(basePathRe, "must be a path such as /auth")},
					},
					"managed_realm": schema.StringAttribute{
						MarkdownDescription: "Realm that holds agent and tool clients: the realm this provider manages. Defaults to " +
							"`kagenti`. Env: `KAGENTI_KEYCLOAK_MANAGED_REALM` (or the older `KAGENTI_KEYCLOAK_REALM`).",
						Optional: true,
						Validators: []validator.String{stringvalidator.LengthBetween(1, 255),
							stringvalidator.ConflictsWith(path.MatchRelative().AtParent().AtName("realm"))},
					},
					"realm": schema.StringAttribute{
						MarkdownDescription: "Deprecated name of `managed_realm`, accepted only together with `auth_realm`. In the " +
							"keycloak/keycloak provider `realm` is the realm to log in to, which is `auth_realm` here.",
						DeprecationMessage: "Use managed_realm for the realm that holds agent and tool clients (auth_realm is the realm to log in to). " +
							"realm means the login realm in keycloak/keycloak's provider, so it is being retired here.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.LengthBetween(1, 255)},
					},
					"auth_realm": schema.StringAttribute{
						MarkdownDescription: "Realm to log in to (`realm` in the keycloak/keycloak provider). Defaults to `master`. " +
							"Env: `KAGENTI_KEYCLOAK_AUTH_REALM`.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.LengthBetween(1, 255)},
					},
					"root_ca_certificate": schema.StringAttribute{
						MarkdownDescription: "PEM-encoded CA certificates that sign Keycloak's certificate, trusted in addition to the " +
							"system's, e.g. `file(\"keycloak-ca.pem\")`. Env: `KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE` (the PEM) or " +
							"`KAGENTI_KEYCLOAK_ROOT_CA_FILE` (a path to it).",
						Optional:   true,
						Validators: []validator.String{stringvalidator.RegexMatches(pemCertRe, "must be a PEM certificate (-----BEGIN CERTIFICATE-----)")},
					},
					"tls_insecure_skip_verify": schema.BoolAttribute{
						MarkdownDescription: "Skip verification of Keycloak's certificate. For tests only: prefer `root_ca_certificate`. " +
							"Env: `KAGENTI_KEYCLOAK_TLS_INSECURE_SKIP_VERIFY`.",
						Optional: true,
					},
					"client_timeout": schema.Int64Attribute{
						MarkdownDescription: "Timeout of each request to Keycloak, in seconds. Defaults to `30`. Env: `KAGENTI_KEYCLOAK_CLIENT_TIMEOUT`.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(1, 3600)},
					},
					"client_id": schema.StringAttribute{
						MarkdownDescription: "Client to log in with. Defaults to `admin-cli`. Env: `KAGENTI_KEYCLOAK_CLIENT_ID`.",
						Optional:            true,
					},
					"client_secret": schema.StringAttribute{
						MarkdownDescription: "Secret of `client_id`. Env: `KAGENTI_KEYCLOAK_CLIENT_SECRET`.",
						Optional:            true,
						Sensitive:           true,
					},
					"username": schema.StringAttribute{
						MarkdownDescription: "Admin user. Env: `KAGENTI_KEYCLOAK_USERNAME`.",
						Optional:            true,
						Validators: []validator.String{stringvalidator.AlsoRequires(
							path.MatchRelative().AtParent().AtName("password"))},
					},
					"password": schema.StringAttribute{
						MarkdownDescription: "Password of `username`. Env: `KAGENTI_KEYCLOAK_PASSWORD`.",
						Optional:            true,
						Sensitive:           true,
						Validators: []validator.String{stringvalidator.AlsoRequires(
							path.MatchRelative().AtParent().AtName("username"))},
					},
				},
			},
		},
	}
}

// ValidateConfig checks combinations that single-attribute validators cannot see.
func (p *kagentiProvider) ValidateConfig(ctx context.Context, req provider.ValidateConfigRequest, resp *provider.ValidateConfigResponse) {
	var cfg kagentiProviderModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(validateKeycloakRealms(cfg.Keycloak)...)
	if k := cfg.Kubernetes; k != nil && k.Exec != nil && !k.Exec.Command.IsUnknown() && k.Exec.Command.ValueString() == "" &&
		os.Getenv("KUBE_EXEC_COMMAND") == "" {
		resp.Diagnostics.AddAttributeError(path.Root("kubernetes").AtName("exec").AtName("command"),
			"Missing Exec Command", "kubernetes.exec needs a command that prints an ExecCredential, e.g. command = \"aws\" (or KUBE_EXEC_COMMAND).")
	}
}

func (p *kagentiProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg kagentiProviderModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// The provider runs its collector under a soft memory limit (main.go); a state of a
	// thousand agents plans faster without it, at about three times the memory.
	if limit, set, err := memoryLimit(); err != nil {
		resp.Diagnostics.AddError("Invalid "+memoryLimitEnv, err.Error())
		return
	} else if set {
		debug.SetMemoryLimit(limit)
	}
	renderer, err := composition.NewRenderer()
	if err != nil {
		resp.Diagnostics.AddError("Composition Templates Unreadable", "The provider's embedded templates could not be read. "+
			"Please report this issue to the provider developers.\n\nOriginal Error: "+err.Error())
		return
	}
	data := &providerData{
		version:     p.version,
		labelDomain: stringOr(cfg.LabelDomain, "KAGENTI_LABEL_DOMAIN", DefaultLabelDomain),
		renderer:    renderer,
	}
	if !dnsSubdomain.MatchString(data.labelDomain) {
		resp.Diagnostics.AddAttributeError(path.Root("label_domain"), "Invalid Label Domain",
			"KAGENTI_LABEL_DOMAIN must be a DNS subdomain such as kagenti.io, got "+strconv.Quote(data.labelDomain)+".")
		return
	}

	var diags diag.Diagnostics
	data.kubeConfig, diags = resolveKubernetes(ctx, cfg.Kubernetes)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}

	sc := cfg.Spire
	if sc == nil {
		sc = &spireConfigModel{}
	}
	data.spireConfig = spireConfig{
		Config: spire.Config{
			Address:             stringOr(sc.Address, "KAGENTI_SPIRE_ADDRESS", ""),
			TrustDomain:         stringOr(sc.TrustDomain, "KAGENTI_SPIRE_TRUST_DOMAIN", ""),
			DefaultParentID:     stringOr(sc.DefaultParentID, "KAGENTI_SPIRE_DEFAULT_PARENT_ID", ""),
			BundleEndpointURL:   stringOr(sc.BundleEndpointURL, "KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL", ""),
			X509SVIDFile:        stringOr(sc.X509SVIDFile, "KAGENTI_SPIRE_X509_SVID_FILE", ""),
			X509SVIDKeyFile:     stringOr(sc.X509SVIDKeyFile, "KAGENTI_SPIRE_X509_SVID_KEY_FILE", ""),
			BundleFile:          stringOr(sc.BundleFile, "KAGENTI_SPIRE_BUNDLE_FILE", ""),
			X509SVIDWorkloadAPI: stringOr(sc.X509SVIDWorkloadAPI, "KAGENTI_SPIRE_X509_SVID_WORKLOAD_API", ""),
			ServerID:            stringOr(sc.ServerID, "KAGENTI_SPIRE_SERVER_ID", ""),
		},
		Registration: stringOr(sc.Registration, "KAGENTI_SPIRE_REGISTRATION", spireRegistrationServerAPI),
		ClassName:    stringOr(sc.ClassName, "KAGENTI_SPIRE_CLASS_NAME", ""),
	}
	data.workloadAPI = composition.WorkloadAPI{
		HostPath:   stringOr(sc.WorkloadAPIPath, "KAGENTI_SPIRE_WORKLOAD_API_HOST_PATH", ""),
		CSIDriver:  stringOr(sc.WorkloadAPICSI, "KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER", ""),
		SocketName: stringOr(sc.WorkloadAPISocket, "KAGENTI_SPIRE_WORKLOAD_API_SOCKET_NAME", ""),
	}
	if data.workloadAPI.HostPath != "" && data.workloadAPI.CSIDriver != "" {
		resp.Diagnostics.AddAttributeError(path.Root("spire").AtName("workload_api_csi_driver"), "Conflicting Workload API Sources",
			"The Workload API socket comes either from a node directory (workload_api_host_path, KAGENTI_SPIRE_WORKLOAD_API_HOST_PATH) "+
				"or from a CSI driver (workload_api_csi_driver, KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER), not both: unset one of them.")
		return
	}

	data.keycloakConfig, diags = resolveKeycloak(cfg.Keycloak)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Values from the environment get the same checks as configured ones; the error names the
	// attribute the value stands for.
	resp.Diagnostics.Append(validateResolved(data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.DataSourceData = data
	resp.ResourceData = data
}

func (p *kagentiProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewAgentResource,
		NewToolResource,
		NewIdentityResource,
		NewPlatformResource,
	}
}

func (p *kagentiProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewEnvironmentDataSource,
		NewAgentsDataSource,
		NewToolsDataSource,
		NewAgentCardDataSource,
	}
}

// stringOr returns the configured value, else the environment variable, else the default.
// Unknown values (computed from resources not yet created) count as unset here; they cannot be
// used to connect during plan anyway.
func stringOr(v types.String, env, def string) string {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueString()
	}
	if env != "" {
		if e := os.Getenv(env); e != "" {
			return e
		}
	}
	return def
}

func boolOr(v types.Bool, env string) bool {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueBool()
	}
	b, _ := strconv.ParseBool(os.Getenv(env))
	return b
}
