package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// BenchmarkJSONRPCSend: one authenticated message/send through the router to a loopback
// backend, over keep-alive connections (go test -bench . ./internal/router).
func BenchmarkJSONRPCSend(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":7,"result":{"kind":"message","parts":[{"kind":"text","text":"ok"}]}}`)
	}))
	defer backend.Close()
	t := &testing.T{}
	ti := newTestIssuer(t)
	reg := NewRegistry()
	up, _ := url.Parse(backend.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(b, Config{Registry: reg,
		Verifier: &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: ti.srv.URL, Audiences: []string{testAudience}}}}})
	token := "Bearer " + ti.sign(t, ti.claims(nil), ti.kid)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srvURL+"/a2a/ns/a", strings.NewReader(sendBody))
			req.Header.Set("Authorization", token)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkBareReverseProxy is the floor: httputil.ReverseProxy alone, same backend and client.
func BenchmarkBareReverseProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":7,"result":{"kind":"message","parts":[{"kind":"text","text":"ok"}]}}`)
	}))
	defer backend.Close()
	up, _ := url.Parse(backend.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(up) }, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL+"/", "application/json", strings.NewReader(sendBody))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkParseEnvelope: the JSON-RPC envelope every A2A call is read through.
func BenchmarkParseEnvelope(b *testing.B) {
	body := []byte(sendBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, e := parseEnvelope(body); e != nil {
			b.Fatal(e.Message)
		}
	}
}
