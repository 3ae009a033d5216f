package provider

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/rest"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

type spireConfig = spire.Config

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

	mu       sync.Mutex
	rest     *rest.Config
	applier  *kube.Applier
	spire    *spire.Client
	spireTD  spiffeid.TrustDomain
	keycloak *keycloak.Client
}

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
	}
	return d.applier, nil
}

// Spire returns a connected SPIRE client and the server's trust domain.
func (d *providerData) Spire(ctx context.Context) (*spire.Client, spiffeid.TrustDomain, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.spire != nil {
		return d.spire, d.spireTD, nil
	}
	if d.spireConfig.Address == "" {
		return nil, spiffeid.TrustDomain{}, errBackendNotConfigured
	}
	c, td, err := spire.Connect(ctx, d.spireConfig)
	if err != nil {
		return nil, td, err
	}
	d.spire, d.spireTD = c, td
	return c, td, nil
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
	check(s.Address, spireAddress.MatchString(s.Address), path.Root("spire").AtName("address"), "KAGENTI_SPIRE_ADDRESS", "it must be a unix socket address such as unix:///run/spire/server.sock")
	check(s.TrustDomain, trustDomainRe.MatchString(s.TrustDomain), path.Root("spire").AtName("trust_domain"), "KAGENTI_SPIRE_TRUST_DOMAIN", "it must be a trust domain name such as example.org")
	check(s.DefaultParentID, spiffeIDPrefix.MatchString(s.DefaultParentID), path.Root("spire").AtName("default_parent_id"), "KAGENTI_SPIRE_DEFAULT_PARENT_ID", "it must be a SPIFFE ID such as spiffe://example.org/k8s-cluster/prod")
	c := d.keycloakConfig
	check(c.URL, httpURL.MatchString(c.URL), path.Root("keycloak").AtName("url"), "KAGENTI_KEYCLOAK_URL", "it must be an http(s) URL such as https://keycloak.example.com")
	if c.URL != "" && c.Username == "" && c.ClientSecret == "" {
		diags.AddAttributeError(path.Root("keycloak"), "Missing Keycloak Credentials",
			"keycloak.url is set but no credentials are: set keycloak.username and keycloak.password (or KAGENTI_KEYCLOAK_USERNAME/"+
				"KAGENTI_KEYCLOAK_PASSWORD), or keycloak.client_id and keycloak.client_secret for a service-account client.")
	}
	return diags
}
