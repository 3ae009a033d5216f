// Package keycloak manages the Keycloak side of Kagenti identities (clients, client scopes, the
// SPIFFE identity provider) through gocloak. It knows nothing of Terraform.
package keycloak

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v14"
)

// Config says how to reach and log in to Keycloak. Either ClientSecret (client credentials of a
// service account with realm-management roles) or Username/Password (an admin user, through
// ClientID, by default admin-cli) must be set.
type Config struct {
	URL string
	// BasePath is the context path Keycloak is served under, e.g. "/auth" for Keycloak before
	// version 17 or a server started with --http-relative-path=/auth.
	BasePath string
	// Realm is the realm this client manages (agent and tool clients); AuthRealm the realm it
	// logs in to.
	Realm        string
	AuthRealm    string
	ClientID     string
	ClientSecret string
	Username     string
	Password     string
	// RootCACertificate is PEM: the CAs that sign Keycloak's certificate, trusted in addition
	// to the system's.
	RootCACertificate     string
	TLSInsecureSkipVerify bool
	// ClientTimeout bounds each HTTP request (30 s when zero).
	ClientTimeout time.Duration
}

// Client is a logged-in admin client for one realm. It refreshes its token before expiry: admin
// tokens of the master realm live for 60 s by default, shorter than many applies.
type Client struct {
	gc  *gocloak.GoCloak
	cfg Config

	mu      sync.Mutex
	token   string
	expires time.Time
}

// New checks the configuration and logs in once, so that bad credentials fail here with a clear
// error rather than on the first resource.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("keycloak url is not set")
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if bp := strings.Trim(cfg.BasePath, "/"); bp != "" {
		cfg.URL += "/" + bp
	}
	if cfg.AuthRealm == "" {
		cfg.AuthRealm = "master"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "admin-cli"
	}
	if cfg.Realm == "" {
		return nil, errors.New("keycloak realm is not set")
	}
	tlsConfig, err := TLSConfig(cfg.RootCACertificate, cfg.TLSInsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	timeout := cfg.ClientTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c := &Client{gc: gocloak.NewClient(cfg.URL), cfg: cfg}
	c.gc.RestyClient().SetTimeout(timeout)
	if tlsConfig != nil {
		c.gc.RestyClient().SetTLSClientConfig(tlsConfig)
	}
	if _, err := c.Token(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// HTTPClientTrustingCAFile is an HTTP client for a Keycloak behind the private CA in caFile (a
// PEM file) besides the system's; nil (the default client) when caFile is empty. Workloads use
// it to reach the token endpoint and the realm's keys.
func HTTPClientTrustingCAFile(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	client, err := HTTPClientTrustingCA(string(pem))
	if err == nil && client == nil {
		err = errors.New("the file is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caFile, err)
	}
	return client, nil
}

// HTTPClientTrustingCA is HTTPClientTrustingCAFile with the CA's PEM given; nil when empty.
func HTTPClientTrustingCA(caPEM string) (*http.Client, error) {
	tlsConfig, err := TLSConfig(caPEM, false)
	if err != nil || tlsConfig == nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return &http.Client{Timeout: 10 * time.Second, Transport: transport}, nil
}

// TLSConfig returns the client TLS configuration for a Keycloak behind a private CA (rootCAPEM is
// added to the system pool) or with verification off; nil when neither is asked for.
func TLSConfig(rootCAPEM string, insecureSkipVerify bool) (*tls.Config, error) {
	if rootCAPEM == "" && !insecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // only when the user asks for it
	if rootCAPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(rootCAPEM)) {
			return nil, errors.New("keycloak root_ca_certificate holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Realm is the realm this client manages.
func (c *Client) Realm() string { return c.cfg.Realm }

// GoCloak exposes the underlying client for the calls that build on it.
func (c *Client) GoCloak() *gocloak.GoCloak { return c.gc }

// Token returns a valid admin access token, logging in again when the current one is about to
// expire.
func (c *Client) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.expires) > 10*time.Second {
		return c.token, nil
	}
	var jwt *gocloak.JWT
	var err error
	switch {
	case c.cfg.Username != "":
		jwt, err = c.gc.Login(ctx, c.cfg.ClientID, c.cfg.ClientSecret, c.cfg.AuthRealm, c.cfg.Username, c.cfg.Password)
	case c.cfg.ClientSecret != "":
		jwt, err = c.gc.LoginClient(ctx, c.cfg.ClientID, c.cfg.ClientSecret, c.cfg.AuthRealm)
	default:
		return "", errors.New("keycloak credentials are not set: set username and password, or client_id and client_secret")
	}
	if err != nil {
		// gocloak's error carries the HTTP status and Keycloak's message, never the credentials.
		return "", fmt.Errorf("log in to Keycloak at %s (realm %s, client %s): %w", c.cfg.URL, c.cfg.AuthRealm, c.cfg.ClientID, err)
	}
	c.token = jwt.AccessToken
	c.expires = time.Now().Add(time.Duration(jwt.ExpiresIn) * time.Second)
	return c.token, nil
}

// RealmInfo is what the realm's OpenID discovery document says.
type RealmInfo struct {
	Realm         string `json:"-"`
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	JWKSURI       string `json:"jwks_uri"`
}

// RealmInfo reads the realm's discovery document (the issuer as Keycloak sees it, which is what
// tokens carry in `iss`).
func (c *Client) RealmInfo(ctx context.Context) (RealmInfo, error) {
	var info RealmInfo
	url := c.cfg.URL + "/realms/" + c.cfg.Realm + "/.well-known/openid-configuration"
	resp, err := c.gc.RestyClient().R().SetContext(ctx).SetResult(&info).Get(url)
	if err != nil {
		return info, fmt.Errorf("read realm %s from %s: %w", c.cfg.Realm, c.cfg.URL, err)
	}
	if resp.IsError() {
		return info, fmt.Errorf("read realm %s from %s: %s (does the realm exist?)", c.cfg.Realm, c.cfg.URL, resp.Status())
	}
	info.Realm = c.cfg.Realm
	return info, nil
}
