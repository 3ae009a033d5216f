package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/singleflight"
)

// allowedAlgorithms are the asymmetric algorithms tokens may be signed with. "none" and every
// HMAC algorithm are refused before any key is looked at: a token signed with HS256 using the
// issuer's public key as the secret is rejected by construction.
var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// TrustedIssuer is one source of caller tokens.
type TrustedIssuer struct {
	// Issuer is the exact iss of its tokens (a Keycloak realm URL). Empty for SPIFFE JWT-SVIDs,
	// which SPIRE signs without iss by default.
	Issuer string
	// TrustDomain, for JWT-SVIDs: sub must be a SPIFFE ID in it.
	TrustDomain string
	// JWKSURL serves the signing keys (Keycloak's certs endpoint; SPIRE's bundle as JWKS).
	JWKSURL string
	// Audiences: a token must name at least one of them in aud (the router's own client id,
	// or its SPIFFE ID).
	Audiences []string
}

// Caller is an authenticated caller.
type Caller struct {
	Subject string
	// ClientID is the Keycloak client that obtained the token (azp); for a JWT-SVID, its
	// SPIFFE ID.
	ClientID string
	Issuer   string
	Scopes   []string
	// Token is the raw bearer token, used only as the subject of a token exchange; it is never
	// forwarded.
	Token  string
	Expiry time.Time
}

// Verifier validates bearer tokens against trusted issuers' key sets, fetched and cached; an
// unknown key id refreshes the set (at most every MinRefresh) so that key rotation works.
type Verifier struct {
	Issuers    []TrustedIssuer
	HTTP       *http.Client
	MinRefresh time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat: 5 s when zero, and never more.
	Leeway time.Duration
	Now    func() time.Time

	// mu guards keys and fetched; it is never held across a fetch.
	mu      sync.RWMutex
	keys    map[string]*jose.JSONWebKeySet
	fetched map[string]time.Time
	// flight makes the tokens that need the same key set fetched wait for one fetch.
	flight singleflight.Group

	// verified caches callers by token until the token expires: a client reuses its token for
	// many calls, and an RSA verification per call is most of the router's CPU.
	cacheMu  sync.RWMutex
	verified map[string]*Caller
}

// maxLeeway is the most clock skew a token's exp, nbf and iat are given: an expired token is
// refused at most this long after it expired, whatever Leeway says.
const maxLeeway = 5 * time.Second

// maxVerified bounds the verified-token cache; when full it is cleared of expired tokens, then
// emptied.
const maxVerified = 10000

// AuthError is a refused token; Reason is safe to show the caller.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return "unauthorized: " + e.Reason }

func refuse(format string, args ...any) error {
	return &AuthError{Reason: fmt.Sprintf(format, args...)}
}

// BearerToken extracts the token of an Authorization: Bearer header.
func BearerToken(r *http.Request) (string, error) {
	return bearerToken(r.Header.Get("Authorization"))
}

// bearerToken extracts the token of an Authorization header's value.
func bearerToken(h string) (string, error) {
	if h == "" {
		return "", refuse("no bearer token")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", refuse("the Authorization header is not a bearer token")
	}
	return strings.TrimSpace(tok), nil
}

type tokenClaims struct {
	jwt.Claims
	AuthorizedParty string `json:"azp"`
	Scope           string `json:"scope"`
}

// Verify validates a token: signature by a trusted key with an allowed algorithm, issuer,
// audience, expiry and not-before. A token verified before is served from the cache until it
// expires.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Caller, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if c, ok := v.cached(raw, now()); ok {
		return c, nil
	}
	c, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	v.cacheMu.Lock()
	if v.verified == nil || len(v.verified) >= maxVerified {
		kept := map[string]*Caller{}
		for k, x := range v.verified {
			if now().Before(x.Expiry) && len(kept) < maxVerified/2 {
				kept[k] = x
			}
		}
		v.verified = kept
	}
	v.verified[raw] = c
	v.cacheMu.Unlock()
	return c, nil
}

// cached returns the caller of a token verified before and not yet expired at now.
func (v *Verifier) cached(raw string, now time.Time) (*Caller, bool) {
	v.cacheMu.RLock()
	c, ok := v.verified[raw]
	v.cacheMu.RUnlock()
	return c, ok && now.Before(c.Expiry)
}

func (v *Verifier) verify(ctx context.Context, raw string, now func() time.Time) (*Caller, error) {
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		return nil, refuse("malformed token or disallowed algorithm")
	}
	if len(tok.Headers) != 1 {
		return nil, refuse("token must have exactly one signature")
	}
	var unverified tokenClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, refuse("malformed claims")
	}
	iss, err := v.issuerFor(unverified)
	if err != nil {
		return nil, err
	}
	key, err := v.key(ctx, iss, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var claims tokenClaims
	if err := tok.Claims(key, &claims); err != nil {
		return nil, refuse("bad signature")
	}
	leeway := min(v.Leeway, maxLeeway)
	if v.Leeway == 0 {
		leeway = maxLeeway
	}
	if claims.Expiry == nil {
		return nil, refuse("token has no expiry")
	}
	expected := jwt.Expected{Issuer: iss.Issuer, Time: now()}
	if err := claims.ValidateWithLeeway(expected, leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, refuse("token expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, refuse("token not valid yet")
		case errors.Is(err, jwt.ErrInvalidIssuer):
			return nil, refuse("untrusted issuer")
		}
		return nil, refuse("invalid claims")
	}
	if !slices.ContainsFunc(iss.Audiences, func(a string) bool { return slices.Contains(claims.Audience, a) }) {
		return nil, refuse("token is not addressed to this router (aud)")
	}
	c := &Caller{Subject: claims.Subject, ClientID: claims.AuthorizedParty, Issuer: claims.Issuer, Token: raw, Expiry: claims.Expiry.Time()}
	if iss.TrustDomain != "" {
		c.ClientID = claims.Subject
	}
	if claims.Scope != "" {
		c.Scopes = strings.Fields(claims.Scope)
	}
	return c, nil
}

// issuerFor picks the trusted issuer a token claims to come from.
func (v *Verifier) issuerFor(c tokenClaims) (*TrustedIssuer, error) {
	for i := range v.Issuers {
		iss := &v.Issuers[i]
		switch {
		case iss.TrustDomain != "":
			if (c.Issuer == "" || c.Issuer == iss.Issuer) && strings.HasPrefix(c.Subject, "spiffe://"+iss.TrustDomain+"/") {
				return iss, nil
			}
		case c.Issuer == iss.Issuer:
			return iss, nil
		}
	}
	return nil, refuse("untrusted issuer")
}

// key returns the key a token names. A key set the router holds answers at once: the lock is
// held only to read the map, never across a fetch, so a slow key endpoint delays only the
// tokens that need it. An unknown key id fetches the issuer's set again, at most every
// MinRefresh, and one fetch at a time per set: tokens that arrive during a fetch wait for
// that one (or for their own context to end).
func (v *Verifier) key(ctx context.Context, iss *TrustedIssuer, kid string) (any, error) {
	if k := v.findKey(iss.JWKSURL, kid); k != nil {
		return k, nil
	}
	done := v.flight.DoChan(iss.JWKSURL, func() (any, error) {
		return nil, v.refresh(ctx, iss.JWKSURL)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-done:
		if res.Err != nil {
			return nil, fmt.Errorf("fetch signing keys from %s: %w", iss.JWKSURL, res.Err)
		}
	}
	if k := v.findKey(iss.JWKSURL, kid); k != nil {
		return k, nil
	}
	return nil, refuse("unknown signing key")
}

// findKey looks kid up in the set fetched from url.
func (v *Verifier) findKey(url, kid string) any {
	v.mu.RLock()
	set := v.keys[url]
	v.mu.RUnlock()
	if set == nil {
		return nil
	}
	for _, k := range set.Key(kid) {
		if k.Use == "" || k.Use == "sig" || k.Use == "jwt-svid" {
			return k.Key
		}
	}
	return nil
}

// refresh fetches the set at url again unless it was fetched less than MinRefresh ago (a
// token with a made-up kid must not make the router hammer the key endpoint). The fetch does
// not end with the context of the request that started it, as others may be waiting for it;
// it has a deadline of its own.
func (v *Verifier) refresh(ctx context.Context, url string) error {
	minRefresh := v.MinRefresh
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	v.mu.Lock()
	if v.keys == nil {
		v.keys, v.fetched = map[string]*jose.JSONWebKeySet{}, map[string]time.Time{}
	}
	last, ok := v.fetched[url]
	if ok && time.Since(last) < minRefresh {
		v.mu.Unlock()
		return nil
	}
	v.fetched[url] = time.Now()
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	set, err := v.fetchKeys(ctx, url)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.keys[url] = set
	v.mu.Unlock()
	return nil
}

func (v *Verifier) fetchKeys(ctx context.Context, url string) (*jose.JSONWebKeySet, error) {
	client := v.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, err
	}
	return &set, nil
}
