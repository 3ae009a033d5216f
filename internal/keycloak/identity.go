package keycloak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/Nerzal/gocloak/v14"
)

// Authentication methods of a workload's client.
const (
	// AuthFederatedJWT: the workload's JWT-SVID is its client assertion; no secret exists.
	AuthFederatedJWT = "federated-jwt"
	// AuthClientSecret: a generated secret, for workloads that cannot present a JWT-SVID.
	AuthClientSecret = "client-secret"
)

// AudienceScopePrefix prefixes the client scope that lets a caller obtain tokens for one target.
const AudienceScopePrefix = "kagenti-aud-"

// ErrNotFound says a client or scope does not exist.
var ErrNotFound = errors.New("not found")

// ClientSpec is the Keycloak client of one workload identity.
type ClientSpec struct {
	// ClientID is the workload's SPIFFE ID, as Kagenti names clients.
	ClientID       string
	Description    string
	Authentication string
	// IdentityProvider is the alias of the SPIFFE identity provider that vouches for the
	// workload's JWT-SVIDs (federated-jwt only).
	IdentityProvider string
	// TokenExchange lets the client exchange tokens it holds (RFC 8693, standard v2).
	TokenExchange bool
}

// ClientState is a client as Keycloak holds it.
type ClientState struct {
	UUID string
	ClientSpec
	// OptionalScopes are the names of the client's optional client scopes.
	OptionalScopes []string
}

// EnsureSpiffeIdentityProvider creates (or brings up to date) the realm's SPIFFE identity
// provider for a trust domain, whose bundle endpoint serves the SPIRE JWT keys. It is shared by
// every identity of the trust domain; its alias is returned.
func (c *Client) EnsureSpiffeIdentityProvider(ctx context.Context, trustDomain, bundleEndpoint string) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	alias := "spiffe-" + sanitize(trustDomain)
	want := gocloak.IdentityProviderRepresentation{
		Alias:       gocloak.StringP(alias),
		DisplayName: gocloak.StringP("SPIFFE " + trustDomain),
		ProviderID:  gocloak.StringP("spiffe"),
		Enabled:     gocloak.BoolP(true),
		Config: map[string]string{
			"trustDomain":    "spiffe://" + trustDomain,
			"bundleEndpoint": bundleEndpoint,
		},
	}
	existing, err := c.gc.GetIdentityProvider(ctx, tok, c.cfg.Realm, alias)
	switch {
	case isNotFound(err):
		if _, err := c.gc.CreateIdentityProvider(ctx, tok, c.cfg.Realm, want); err != nil && !isConflict(err) {
			return "", fmt.Errorf("create SPIFFE identity provider %s in realm %s: %w", alias, c.cfg.Realm, err)
		}
	case err != nil:
		return "", fmt.Errorf("read identity provider %s: %w", alias, err)
	default:
		cfg := existing.Config
		if cfg["bundleEndpoint"] != bundleEndpoint || cfg["trustDomain"] != "spiffe://"+trustDomain {
			if err := c.gc.UpdateIdentityProvider(ctx, tok, c.cfg.Realm, alias, want); err != nil {
				return "", fmt.Errorf("update SPIFFE identity provider %s: %w", alias, err)
			}
		}
	}
	return alias, nil
}

func (s ClientSpec) toClient() gocloak.Client {
	attrs := map[string]string{
		"standard.token.exchange.enabled": fmt.Sprint(s.TokenExchange),
	}
	authenticator := "client-secret"
	if s.Authentication == AuthFederatedJWT {
		authenticator = "federated-jwt"
		attrs["jwt.credential.issuer"] = s.IdentityProvider
		attrs["jwt.credential.sub"] = s.ClientID
	}
	return gocloak.Client{
		ClientID:                  gocloak.StringP(s.ClientID),
		Name:                      gocloak.StringP(s.ClientID),
		Description:               gocloak.StringP(s.Description),
		Enabled:                   gocloak.BoolP(true),
		Protocol:                  gocloak.StringP("openid-connect"),
		PublicClient:              gocloak.BoolP(false),
		ServiceAccountsEnabled:    gocloak.BoolP(true),
		StandardFlowEnabled:       gocloak.BoolP(false),
		ImplicitFlowEnabled:       gocloak.BoolP(false),
		DirectAccessGrantsEnabled: gocloak.BoolP(false),
		// Least privilege: a token gets only the audiences of scopes granted to the client,
		// never every role the service account might hold.
		FullScopeAllowed:        gocloak.BoolP(false),
		ClientAuthenticatorType: gocloak.StringP(authenticator),
		Attributes:              attrs,
	}
}

// CreateClient creates the client, or adopts an existing one with the same client id and
// updates it to the spec, so that a repeated apply converges. It returns the client's UUID.
func (c *Client) CreateClient(ctx context.Context, spec ClientSpec) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	if existing, err := c.findClient(ctx, spec.ClientID); err == nil {
		return existing, c.UpdateClient(ctx, existing, spec)
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	id, err := c.gc.CreateClient(ctx, tok, c.cfg.Realm, spec.toClient())
	if err != nil {
		return "", fmt.Errorf("create Keycloak client %s in realm %s: %w", spec.ClientID, c.cfg.Realm, err)
	}
	return id, nil
}

func (c *Client) findClient(ctx context.Context, clientID string) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	clients, err := c.gc.GetClients(ctx, tok, c.cfg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
	if err != nil {
		return "", fmt.Errorf("find Keycloak client %s: %w", clientID, err)
	}
	for _, cl := range clients {
		if cl.ClientID != nil && *cl.ClientID == clientID && cl.ID != nil {
			return *cl.ID, nil
		}
	}
	return "", ErrNotFound
}

// FindClient returns the UUID of the client with a client id; ErrNotFound if there is none.
func (c *Client) FindClient(ctx context.Context, clientID string) (string, error) {
	return c.findClient(ctx, clientID)
}

// GetClient reads a client by UUID; ErrNotFound when it is gone.
func (c *Client) GetClient(ctx context.Context, uuid string) (*ClientState, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := c.gc.GetClient(ctx, tok, c.cfg.Realm, uuid)
	if isNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read Keycloak client %s: %w", uuid, err)
	}
	st := &ClientState{UUID: uuid}
	st.ClientID = gocloak.PString(cl.ClientID)
	st.Description = gocloak.PString(cl.Description)
	attrs := cl.Attributes
	st.TokenExchange = attrs["standard.token.exchange.enabled"] == "true"
	st.Authentication = AuthClientSecret
	if gocloak.PString(cl.ClientAuthenticatorType) == "federated-jwt" {
		st.Authentication = AuthFederatedJWT
		st.IdentityProvider = attrs["jwt.credential.issuer"]
	}
	scopes, err := c.gc.GetClientsOptionalScopes(ctx, tok, c.cfg.Realm, uuid)
	if err != nil {
		return nil, fmt.Errorf("read optional scopes of Keycloak client %s: %w", st.ClientID, err)
	}
	for _, s := range scopes {
		st.OptionalScopes = append(st.OptionalScopes, gocloak.PString(s.Name))
	}
	sort.Strings(st.OptionalScopes)
	return st, nil
}

// UpdateClient sets the spec on an existing client.
func (c *Client) UpdateClient(ctx context.Context, uuid string, spec ClientSpec) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	cl := spec.toClient()
	cl.ID = gocloak.StringP(uuid)
	if err := c.gc.UpdateClient(ctx, tok, c.cfg.Realm, cl); err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("update Keycloak client %s: %w", spec.ClientID, err)
	}
	return nil
}

// DeleteClient deletes a client; one already gone counts as deleted.
func (c *Client) DeleteClient(ctx context.Context, uuid string) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	if err := c.gc.DeleteClient(ctx, tok, c.cfg.Realm, uuid); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete Keycloak client %s: %w", uuid, err)
	}
	return nil
}

// ClientSecret reads the generated secret of a client-secret client. The caller must hand it
// straight to where it is stored (a Kubernetes Secret) and never log it.
func (c *Client) ClientSecret(ctx context.Context, uuid string) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	cred, err := c.gc.GetClientSecret(ctx, tok, c.cfg.Realm, uuid)
	if err != nil {
		return "", fmt.Errorf("read secret of Keycloak client %s: %w", uuid, err)
	}
	return gocloak.PString(cred.Value), nil
}

// AudienceScopeName is the client scope a caller requests to get tokens for a target client.
func AudienceScopeName(targetClientID string) string {
	return AudienceScopePrefix + sanitize(strings.TrimPrefix(targetClientID, "spiffe://"))
}

// EnsureAudienceScope creates (if missing) the client scope that adds the target client to a
// token's audience, and returns its id. Only callers that have it as an optional scope can
// obtain a token for the target: that is the allow-list.
func (c *Client) EnsureAudienceScope(ctx context.Context, targetClientID string) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	name := AudienceScopeName(targetClientID)
	if id, err := c.findScope(ctx, name); err == nil {
		return id, nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	id, err := c.gc.CreateClientScope(ctx, tok, c.cfg.Realm, gocloak.ClientScope{
		Name:        gocloak.StringP(name),
		Description: gocloak.StringP("Tokens for " + targetClientID + " (managed by Kagenti)"),
		Protocol:    gocloak.StringP("openid-connect"),
		ClientScopeAttributes: &gocloak.ClientScopeAttributes{
			IncludeInTokenScope:    gocloak.StringP("true"),
			DisplayOnConsentScreen: gocloak.StringP("false"),
		},
	})
	if err != nil && !isConflict(err) {
		return "", fmt.Errorf("create client scope %s: %w", name, err)
	}
	if id == "" {
		if id, err = c.findScope(ctx, name); err != nil {
			return "", err
		}
	}
	_, err = c.gc.CreateClientScopeProtocolMapper(ctx, tok, c.cfg.Realm, id, gocloak.ProtocolMappers{
		Name:           gocloak.StringP("audience"),
		Protocol:       gocloak.StringP("openid-connect"),
		ProtocolMapper: gocloak.StringP("oidc-audience-mapper"),
		ProtocolMappersConfig: &gocloak.ProtocolMappersConfig{
			IncludedClientAudience:  gocloak.StringP(targetClientID),
			AccessTokenClaim:        gocloak.StringP("true"),
			IntrospectionTokenClaim: gocloak.StringP("true"),
		},
	})
	if err != nil && !isConflict(err) {
		return "", fmt.Errorf("add audience mapper to client scope %s: %w", name, err)
	}
	return id, nil
}

func (c *Client) findScope(ctx context.Context, name string) (string, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	scopes, err := c.gc.GetClientScopes(ctx, tok, c.cfg.Realm)
	if err != nil {
		return "", fmt.Errorf("list client scopes: %w", err)
	}
	for _, s := range scopes {
		if gocloak.PString(s.Name) == name {
			return gocloak.PString(s.ID), nil
		}
	}
	return "", ErrNotFound
}

// DeleteAudienceScope deletes the target's audience scope (Keycloak drops its assignments).
func (c *Client) DeleteAudienceScope(ctx context.Context, targetClientID string) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	id, err := c.findScope(ctx, AudienceScopeName(targetClientID))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.gc.DeleteClientScope(ctx, tok, c.cfg.Realm, id); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete client scope %s: %w", AudienceScopeName(targetClientID), err)
	}
	return nil
}

// GrantAudience lets the caller client (by client id) obtain tokens for the target: the
// target's audience scope becomes an optional scope of the caller.
func (c *Client) GrantAudience(ctx context.Context, callerClientID, targetClientID string) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	caller, err := c.findClient(ctx, callerClientID)
	if err != nil {
		return fmt.Errorf("caller %s: %w", callerClientID, err)
	}
	scope, err := c.EnsureAudienceScope(ctx, targetClientID)
	if err != nil {
		return err
	}
	if err := c.gc.AddOptionalScopeToClient(ctx, tok, c.cfg.Realm, caller, scope); err != nil && !isConflict(err) {
		return fmt.Errorf("grant %s the audience %s: %w", callerClientID, targetClientID, err)
	}
	return nil
}

// RevokeAudience undoes GrantAudience; a caller or scope already gone counts as revoked.
func (c *Client) RevokeAudience(ctx context.Context, callerClientID, targetClientID string) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	caller, err := c.findClient(ctx, callerClientID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	scope, err := c.findScope(ctx, AudienceScopeName(targetClientID))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.gc.RemoveOptionalScopeFromClient(ctx, tok, c.cfg.Realm, caller, scope); err != nil && !isNotFound(err) {
		return fmt.Errorf("revoke %s the audience %s: %w", callerClientID, targetClientID, err)
	}
	return nil
}

// HasAudience reports whether the caller holds the target's audience scope.
func (c *Client) HasAudience(ctx context.Context, callerClientID, targetClientID string) (bool, error) {
	caller, err := c.findClient(ctx, callerClientID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, err := c.GetClient(ctx, caller)
	if err != nil {
		return false, err
	}
	want := AudienceScopeName(targetClientID)
	for _, s := range st.OptionalScopes {
		if s == want {
			return true, nil
		}
	}
	return false, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

func isNotFound(err error) bool {
	var apiErr *gocloak.APIError
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusNotFound
}

func isConflict(err error) bool {
	var apiErr *gocloak.APIError
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusConflict
}
