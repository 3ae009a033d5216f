package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestVerifier_KeyFetchOutsideLock pins that a slow key endpoint, asked for the set again by
// tokens with an unknown kid, holds up only those tokens: a new valid token whose key the
// router holds is verified at once, and the key set is fetched once at a time. Before, the fetch
// ran under the verifier's lock and every new token waited for it.
func TestVerifier_KeyFetchOutsideLock(t *testing.T) {
	ti := newTestIssuer(t)
	var slow atomic.Bool
	var inFlight, maxInFlight atomic.Int32
	blocked, release := make(chan struct{}, 16), make(chan struct{})
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		if slow.Load() {
			blocked <- struct{}{}
			<-release
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ti.key.PublicKey, KeyID: ti.kid, Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	v := &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: jwks.URL, Audiences: []string{testAudience}}}, MinRefresh: time.Millisecond}
	ctx := context.Background()
	if _, err := v.Verify(ctx, ti.token(t)); err != nil {
		t.Fatalf("a valid token (first key fetch): %v", err)
	}
	time.Sleep(5 * time.Millisecond) // past MinRefresh: an unknown kid fetches again
	slow.Store(true)
	var unknown sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		unknown.Go(func() {
			_, err := v.Verify(ctx, ti.sign(t, ti.claims(func(c map[string]any) { c["jti"] = fmt.Sprint(i) }), "k-unknown"))
			errs <- err
		})
	}
	<-blocked // a fetch for the unknown kid is hanging at the key endpoint
	fresh := ti.sign(t, ti.claims(func(c map[string]any) { c["sub"] = "another-user" }), ti.kid)
	verified := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, fresh); verified <- err }()
	select {
	case err := <-verified:
		if err != nil {
			t.Errorf("a new valid token while the key endpoint hangs: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("a new valid token with a known kid waited for the key fetch of an unknown kid")
	}
	unblock()
	unknown.Wait()
	close(errs)
	for err := range errs {
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Reason != "unknown signing key" {
			t.Errorf("a token with an unknown kid: %v, want refused for an unknown signing key", err)
		}
	}
	if got := maxInFlight.Load(); got != 1 {
		t.Errorf("key fetches in flight at once: %d, want 1", got)
	}
}

// TestVerifier_Leeway pins how long after it expired a token is still taken: at most 5 s,
// whatever Leeway is configured to. Before, the default leeway was 30 s and any configured
// value was used as is.
func TestVerifier_Leeway(t *testing.T) {
	ti := newTestIssuer(t)
	cases := map[string]struct {
		reason  string
		leeway  time.Duration
		expired time.Duration // how long ago the token expired (negative: it expires later)
		ok      bool
	}{
		"valid":                      {"a live token passes", 0, -time.Minute, true},
		"just expired":               {"clock skew of a second or two is tolerated", 0, 2 * time.Second, true},
		"expired beyond the default": {"the default leeway is a few seconds, not 30", 0, 10 * time.Second, false},
		"configured too long":        {"a configured leeway is capped at 5 s", time.Hour, 10 * time.Second, false},
		"configured shorter":         {"a shorter configured leeway is kept", time.Second, 3 * time.Second, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: ti.srv.URL, Audiences: []string{testAudience}}}, Leeway: tc.leeway}
			tok := ti.sign(t, ti.claims(func(c map[string]any) {
				c["exp"] = time.Now().Add(-tc.expired).Unix()
				c["iat"] = time.Now().Add(-tc.expired - time.Minute).Unix()
			}), ti.kid)
			_, err := v.Verify(context.Background(), tok)
			if got := err == nil; got != tc.ok {
				t.Errorf("%s\naccepted: %v (%v), want %v", tc.reason, got, err, tc.ok)
			}
		})
	}
}
