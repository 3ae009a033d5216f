package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/rest"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

// How identities are registered (spire.registration).
const (
	spireRegistrationServerAPI  = "server_api"
	spireRegistrationKubernetes = "kubernetes"
)

// spireConfig is the resolved spire block: how to reach the server API, and how to register.
type spireConfig struct {
	spire.Config
	// Registration is spireRegistrationServerAPI or spireRegistrationKubernetes.
	Registration string
	// ClassName is spec.className of ClusterSPIFFEIDs.
	ClassName string
}

// kubernetes says whether identities are ClusterSPIFFEID objects rather than server entries.
func (c spireConfig) kubernetes() bool { return c.Registration == spireRegistrationKubernetes }

// entryRegistrar registers workload identities, keyed by SPIFFE ID: the SPIRE server API
// (*spire.Client, entry ids) or ClusterSPIFFEID objects (*spire.ClusterSPIFFEIDs, object names).
type entryRegistrar interface {
	CreateEntry(ctx context.Context, spec spire.EntrySpec) (spire.Entry, error)
	GetEntry(ctx context.Context, id string) (spire.Entry, error)
	UpdateEntry(ctx context.Context, id string, spec spire.EntrySpec) error
	DeleteEntry(ctx context.Context, id string) error
	FindEntries(ctx context.Context, spiffeID string) ([]spire.Entry, error)
}

// providerData is what Configure hands to resources and data sources: the resolved settings
// and a client per backend, each connected on first use. A configuration that never touches
// SPIRE or Keycloak therefore plans and applies without them.
type providerData struct {
	// version is the provider's, for the default router image built from the same version.
	version     string
	labelDomain string
	kubeConfig  kubeconfig.Config
	spireConfig spireConfig
	// workloadAPI is where workloads with an identity get the SPIRE agent's socket from.
	workloadAPI    composition.WorkloadAPI
	keycloakConfig keycloak.Config

	// renderer is pure and shared by every composite resource.
	renderer *composition.Renderer
	// planned are the tool policies this process has planned (see plannedPolicies).
	planned plannedPolicies

	mu       sync.Mutex
	rest     *rest.Config
	applier  *kube.Applier
	spire    *spire.Client
	spireTD  spiffeid.TrustDomain
	keycloak *keycloak.Client
}

// listReadsTTL is how long a list of composed objects serves a refresh's reads. A refresh of
// 500 agents takes about 10 s; the provider's own writes drop the lists they touch.
const listReadsTTL = 10 * time.Second

// defaultRouterImage is the kagenti-router image built from the same version as the provider.
func (d *providerData) defaultRouterImage() string {
	v := d.version
	if v == "" || v == "dev" || v == "test" {
		v = "dev"
	}
	return "ghcr.io/kagenti/kagenti-router:" + v
}

// errBackendNotConfigured is returned when a resource needs a backend the provider has no
// settings for.
var errBackendNotConfigured = errors.New("not configured")

// Kubernetes returns the REST config of the cluster.
func (d *providerData) Kubernetes() (*rest.Config, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rest != nil {
		return d.rest, nil
	}
	cfg, err := kubeconfig.RESTConfig(d.kubeConfig)
	if err != nil {
		return nil, err
	}
	d.rest = cfg
	return cfg, nil
}

// Applier returns the Kubernetes applier, built on first use.
func (d *providerData) Applier() (*kube.Applier, error) {
	cfg, err := d.Kubernetes()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.applier == nil {
		if d.applier, err = kube.NewApplier(cfg); err != nil {
			return nil, err
		}
		// A refresh reads each composite's objects: from one list per kind and namespace, not
		// one GET per object.
		d.applier.ReadFromLists(listReadsTTL)
	}
	return d.applier, nil
}

// Spire returns a client of the SPIRE server API and the server's trust domain.
func (d *providerData) Spire(ctx context.Context) (*spire.Client, spiffeid.TrustDomain, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.spire != nil {
		return d.spire, d.spireTD, nil
	}
	if d.spireConfig.Address == "" {
		return nil, spiffeid.TrustDomain{}, errBackendNotConfigured
	}
	c, td, err := spire.Connect(ctx, d.spireConfig.Config)
	if err != nil {
		return nil, td, err
	}
	d.spire, d.spireTD = c, td
	return c, td, nil
}

// TrustDomain is the identities' trust domain: spire.trust_domain, which needs no backend (so
// that plans do not), else the SPIRE server's.
func (d *providerData) TrustDomain(ctx context.Context) (spiffeid.TrustDomain, error) {
	if td := d.spireConfig.TrustDomain; td != "" {
		return spiffeid.TrustDomainFromString(td)
	}
	if d.spireConfig.kubernetes() {
		return spiffeid.TrustDomain{}, errBackendNotConfigured
	}
	_, td, err := d.Spire(ctx)
	return td, err
}

// Registrar returns what registers identities (spire.registration) and their trust domain.
func (d *providerData) Registrar(ctx context.Context) (entryRegistrar, spiffeid.TrustDomain, error) {
	if !d.spireConfig.kubernetes() {
		return d.Spire(ctx)
	}
	td, err := d.TrustDomain(ctx)
	if err != nil {
		return nil, td, err
	}
	applier, err := d.Applier()
	if err != nil {
		return nil, td, fmt.Errorf("registering identities as ClusterSPIFFEIDs needs the Kubernetes API: %w", err)
	}
	return &spire.ClusterSPIFFEIDs{Applier: applier, ClassName: d.spireConfig.ClassName,
		Labels: map[string]string{"app.kubernetes.io/managed-by": contract.ManagedBy}}, td, nil
}

// Keycloak returns a logged-in Keycloak admin client.
func (d *providerData) Keycloak(ctx context.Context) (*keycloak.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keycloak != nil {
		return d.keycloak, nil
	}
	if d.keycloakConfig.URL == "" {
		return nil, errBackendNotConfigured
	}
	c, err := keycloak.New(ctx, d.keycloakConfig)
	if err != nil {
		return nil, err
	}
	d.keycloak = c
	return c, nil
}

// validateResolved checks settings that came from the environment with the same rules as the
// schema validators apply to configured values.
func validateResolved(d *providerData) diag.Diagnostics {
	var diags diag.Diagnostics
	check := func(value string, ok bool, p path.Path, env, want string) {
		if value != "" && !ok {
			diags.AddAttributeError(p, "Invalid Provider Setting",
				"The value of "+p.String()+" (or "+env+") is invalid: "+want+".")
		}
	}
	k := d.kubeConfig
	check(k.Host, httpURL.MatchString(k.Host), path.Root("kubernetes").AtName("host"), "KUBE_HOST", "it must be an http(s) URL such as https://127.0.0.1:6443")
	check(k.ProxyURL, proxyURL.MatchString(k.ProxyURL), path.Root("kubernetes").AtName("proxy_url"), "KUBE_PROXY_URL", "it must be an http, https or socks5 URL such as socks5://127.0.0.1:1080")
	s := d.spireConfig
	check(s.Address, spireAddress.MatchString(s.Address), path.Root("spire").AtName("address"), "KAGENTI_SPIRE_ADDRESS", "it must be a unix socket address such as unix:///run/spire/server.sock or host:port such as spire-server.example.com:8081")
	check(s.Registration, s.Registration == spireRegistrationServerAPI || s.Registration == spireRegistrationKubernetes, path.Root("spire").AtName("registration"), "KAGENTI_SPIRE_REGISTRATION", `it must be "server_api" or "kubernetes"`)
	check(s.X509SVIDWorkloadAPI, unixAddress.MatchString(s.X509SVIDWorkloadAPI), path.Root("spire").AtName("x509_svid_workload_api"), "KAGENTI_SPIRE_X509_SVID_WORKLOAD_API", "it must be a unix socket address such as unix:///run/spire/agent-sockets/agent.sock")
	check(s.ServerID, spiffeIDPrefix.MatchString(s.ServerID), path.Root("spire").AtName("server_id"), "KAGENTI_SPIRE_SERVER_ID", "it must be a SPIFFE ID such as spiffe://example.org/spire/server")
	check(s.TrustDomain, trustDomainRe.MatchString(s.TrustDomain), path.Root("spire").AtName("trust_domain"), "KAGENTI_SPIRE_TRUST_DOMAIN", "it must be a trust domain name such as example.org")
	check(s.DefaultParentID, spiffeIDPrefix.MatchString(s.DefaultParentID), path.Root("spire").AtName("default_parent_id"), "KAGENTI_SPIRE_DEFAULT_PARENT_ID", "it must be a SPIFFE ID such as spiffe://example.org/k8s-cluster/prod")
	diags.Append(validateSpireCombination(s)...)
	c := d.keycloakConfig
	check(c.URL, httpURL.MatchString(c.URL), path.Root("keycloak").AtName("url"), "KAGENTI_KEYCLOAK_URL", "it must be an http(s) URL such as https://keycloak.example.com")
	if c.URL != "" && c.Username == "" && c.ClientSecret == "" {
		diags.AddAttributeError(path.Root("keycloak"), "Missing Keycloak Credentials",
			"keycloak.url is set but no credentials are: set keycloak.username and keycloak.password (or KAGENTI_KEYCLOAK_USERNAME/"+
				"KAGENTI_KEYCLOAK_PASSWORD), or keycloak.client_id and keycloak.client_secret for a service-account client.")
	}
	return diags
}

// validateSpireCombination checks, from configuration alone, that the spire settings make a way
// to register identities: the server API over TCP needs the provider's X509-SVID, and the
// Kubernetes registration needs the trust domain it cannot ask a server for.
func validateSpireCombination(s spireConfig) diag.Diagnostics {
	var diags diag.Diagnostics
	spirePath := path.Root("spire")
	if s.kubernetes() && s.TrustDomain == "" {
		diags.AddAttributeError(spirePath.AtName("trust_domain"), "Missing SPIRE Trust Domain",
			`spire.registration = "kubernetes" registers identities as ClusterSPIFFEID objects, with no access to the SPIRE `+
				"server to learn the trust domain from: set spire.trust_domain (or KAGENTI_SPIRE_TRUST_DOMAIN).")
	}
	if s.kubernetes() || s.Address == "" || unixAddress.MatchString(s.Address) {
		return diags
	}
	files := s.X509SVIDFile != "" || s.X509SVIDKeyFile != ""
	switch {
	case files && s.X509SVIDWorkloadAPI != "":
		diags.AddAttributeError(spirePath.AtName("x509_svid_workload_api"), "Conflicting SPIRE Client Credentials",
			"The provider's X509-SVID comes either from files (x509_svid_file, x509_svid_key_file, KAGENTI_SPIRE_X509_SVID_*_FILE) "+
				"or from a Workload API (x509_svid_workload_api, KAGENTI_SPIRE_X509_SVID_WORKLOAD_API), not both: unset one of them.")
	case files && (s.X509SVIDFile == "" || s.X509SVIDKeyFile == "" || s.BundleFile == ""):
		diags.AddAttributeError(spirePath.AtName("x509_svid_file"), "Incomplete SPIRE Client Credentials",
			"An X509-SVID from files needs all three: x509_svid_file, x509_svid_key_file and bundle_file (or "+
				"KAGENTI_SPIRE_X509_SVID_FILE, KAGENTI_SPIRE_X509_SVID_KEY_FILE and KAGENTI_SPIRE_BUNDLE_FILE).")
	case !files && s.X509SVIDWorkloadAPI == "":
		diags.AddAttributeError(spirePath.AtName("address"), "Missing SPIRE Client Credentials",
			"spire.address "+s.Address+" is the SPIRE server API over TCP, where the provider authenticates with an X509-SVID "+
				"whose SPIFFE ID is in the server's admin_ids: set x509_svid_file, x509_svid_key_file and bundle_file, or "+
				"x509_svid_workload_api (or their KAGENTI_SPIRE_* variables). On the server's host, use its unix socket instead.")
	}
	return diags
}
