package router

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestExchanger_CacheBounded: the exchanged-token cache, full of live tokens, sheds half of them
// when one more is exchanged, keeps the new one, and answers a cached token without asking
// Keycloak again.
func TestExchanger_CacheBounded(t *testing.T) {
	var exchanges int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exchanges++
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "exchanged-" + r.FormValue("subject_token"), "expires_in": 300})
	}))
	defer srv.Close()
	x := &Exchanger{TokenURL: srv.URL, ClientID: "kagenti-router", ClientSecret: "s"}
	x.cache = map[exchangeKey]cachedToken{}
	live := time.Now().Add(time.Hour)
	for i := range maxExchanged {
		x.cache[exchangeKey{fmt.Sprintf("caller-%d", i), "agent", ""}] = cachedToken{token: "t", expires: live}
	}

	token, exchanged, err := x.Exchange(context.Background(), "new-caller", "agent", "")
	if err != nil || !exchanged || token != "exchanged-new-caller" {
		t.Fatalf("Exchange = %q, %v, %v; want a new exchange", token, exchanged, err)
	}
	if n := len(x.cache); n > maxExchanged/2+1 {
		t.Fatalf("cache holds %d entries after the exchange that found it full; want at most %d", n, maxExchanged/2+1)
	}
	token, exchanged, err = x.Exchange(context.Background(), "new-caller", "agent", "")
	if err != nil || exchanged || token != "exchanged-new-caller" {
		t.Fatalf("second Exchange = %q, %v, %v; want the cached token", token, exchanged, err)
	}
	if exchanges != 1 {
		t.Fatalf("Keycloak was asked %d times; want 1", exchanges)
	}
}
