package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exchanger trades a caller's token for one addressed to the callee (RFC 8693, Keycloak's
// standard token exchange): the callee never sees the caller's original token. Exchanged
// tokens are cached per (subject token, audience, scope) until shortly before they expire.
type Exchanger struct {
	TokenURL string
	ClientID string
	// ClientSecret authenticates the router to Keycloak; Assertion, when set, is used instead:
	// it returns a fresh JWT-SVID of the router (client_assertion_type jwt-spiffe).
	ClientSecret string
	Assertion    func(ctx context.Context) (string, error)
	HTTP         *http.Client

	mu    sync.Mutex
	cache map[exchangeKey]cachedToken
}

// maxExchanged bounds the exchanged-token cache, as maxVerified does the verified one.
const maxExchanged = 10000

type cachedToken struct {
	token   string
	expires time.Time
}

// ExchangeError is a refused exchange: the caller may not reach the callee.
type ExchangeError struct {
	Status int
	Reason string
}

func (e *ExchangeError) Error() string { return "token exchange refused: " + e.Reason }

// exchangeKey is what an exchanged token is cached under. The subject token itself is the key,
// not a digest of it: looking it up then costs a map hash, where a SHA-256 of a JWT cost a
// microsecond on every call, and the token is in memory anyway (Caller.Token).
type exchangeKey struct{ subjectToken, audience, scope string }

// lookup returns the token cached under key if it is good for 10 s more after now.
func (x *Exchanger) lookup(key exchangeKey, now time.Time) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	c, ok := x.cache[key]
	return c.token, ok && c.expires.Sub(now) > 10*time.Second
}

// Exchange returns a token for audience (with scope) standing for the caller's token: from the
// cache, or exchanged at Keycloak.
func (x *Exchanger) Exchange(ctx context.Context, subjectToken, audience, scope string) (token string, exchanged bool, err error) {
	key := exchangeKey{subjectToken, audience, scope}
	if tok, ok := x.lookup(key, time.Now()); ok {
		return tok, false, nil
	}
	token, err = x.exchange(ctx, key)
	return token, true, err
}

// exchange asks Keycloak and caches the answer under key.
func (x *Exchanger) exchange(ctx context.Context, key exchangeKey) (string, error) {
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {key.subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {key.audience},
	}
	if key.scope != "" {
		form.Set("scope", key.scope)
	}
	if x.Assertion != nil {
		a, err := x.Assertion(ctx)
		if err != nil {
			return "", fmt.Errorf("router identity: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe")
		form.Set("client_assertion", a)
	} else {
		form.Set("client_id", x.ClientID)
		form.Set("client_secret", x.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := x.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token exchange at %s: %w", x.TokenURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			return "", &ExchangeError{Status: http.StatusForbidden, Reason: strings.TrimSpace(e.Error + " " + e.Description)}
		}
		return "", fmt.Errorf("token exchange at %s: %s", x.TokenURL, resp.Status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token exchange at %s: no access_token in the answer", x.TokenURL)
	}
	x.mu.Lock()
	if x.cache == nil {
		x.cache = map[exchangeKey]cachedToken{}
	}
	// Expired entries are dropped as new ones come in, and when maxExchanged live ones are held,
	// half of them go (as the map iterates: at random); a dropped token is exchanged again on
	// its next call. Each entry holds its caller's token, so many callers cannot grow it
	// without bound.
	now := time.Now()
	for k, c := range x.cache {
		if now.After(c.expires) {
			delete(x.cache, k)
		}
	}
	if len(x.cache) >= maxExchanged {
		for k := range x.cache {
			if len(x.cache) <= maxExchanged/2 {
				break
			}
			delete(x.cache, k)
		}
	}
	x.cache[key] = cachedToken{token: tok.AccessToken, expires: now.Add(time.Duration(tok.ExpiresIn) * time.Second)}
	x.mu.Unlock()
	return tok.AccessToken, nil
}

// assertionWait is how long SPIFFEAssertion waits for an identity the SPIRE agent has not
// issued yet (more than its sync interval of 5 s).
const assertionWait = 15 * time.Second

// SPIFFEAssertion returns the router's client assertion for Keycloak: a fresh JWT-SVID for the
// realm (audience) from the SPIFFE Workload API at socket — the router holds no secret. subject,
// when it is a SPIFFE ID, picks that identity among the workload's.
func SPIFFEAssertion(socket, audience, subject string) func(ctx context.Context) (string, error) {
	params := jwtsvid.Params{Audience: audience}
	if id, err := spiffeid.FromString(subject); err == nil {
		params.Subject = id
	}
	addr := workloadapi.WithAddr("unix://" + strings.TrimPrefix(socket, "unix://"))
	return func(ctx context.Context) (string, error) {
		// A pod that just started may call before its SPIRE agent has synced the entry that
		// names it (the agent syncs every few seconds): PermissionDenied ("no identity issued")
		// then means "not yet", so it is retried for a while.
		deadline := time.Now().Add(assertionWait)
		for {
			svid, err := workloadapi.FetchJWTSVID(ctx, params, addr)
			if err == nil {
				return svid.Marshal(), nil
			}
			if status.Code(err) != codes.PermissionDenied || time.Now().After(deadline) {
				return "", fmt.Errorf("JWT-SVID from the Workload API at %s: %w", socket, err)
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("JWT-SVID from the Workload API at %s: %w", socket, err)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}
