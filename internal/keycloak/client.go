// Package keycloak manages the Keycloak side of Kagenti identities (clients, client scopes, the
// SPIFFE identity provider) through gocloak. It knows nothing of Terraform.
package keycloak

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v14"
)

// Config says how to reach and log in to Keycloak. Either ClientSecret (client credentials of a
// service account with realm-management roles) or Username/Password (an admin user, through
// ClientID, by default admin-cli) must be set.
type Config struct {
	URL          string
	Realm        string
	AuthRealm    string
	ClientID     string
	ClientSecret string
	Username     string
	Password     string
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
	if cfg.AuthRealm == "" {
		cfg.AuthRealm = "master"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "admin-cli"
	}
	if cfg.Realm == "" {
		return nil, errors.New("keycloak realm is not set")
	}
	c := &Client{gc: gocloak.NewClient(cfg.URL), cfg: cfg}
	c.gc.RestyClient().SetTimeout(30 * time.Second)
	if _, err := c.Token(ctx); err != nil {
		return nil, err
	}
	return c, nil
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
