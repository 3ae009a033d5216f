package router

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig/cardsigtest"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

const verifiedCard = `{"name":"writer","description":"Writes","url":"http://writer.research:8080","version":"1.0.0","capabilities":{},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[]}`

// cardAgent serves a card at /.well-known/agent-card.json, signed by svid when it is set.
func cardAgent(t *testing.T, card string, svid *x509svid.SVID) *url.URL {
	t.Helper()
	body := []byte(card)
	if svid != nil {
		var err error
		if body, err = cardsig.Sign(body, svid); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/agent-card.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

// TestCardVerification: in strict mode the router serves (and routes to) an agent only when
// the card the agent serves is signed by the X509-SVID of the identity registered for the route
// and is the card registered; in permissive mode it serves anyway; failures are counted by
// reason either way.
func TestCardVerification(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	planner := ca.SVID(t, "/ns/research/sa/planner")
	foreign := cardsigtest.NewAuthority(t, "example.org").SVID(t, "/ns/research/sa/writer")
	other := strings.Replace(verifiedCard, "Writes", "Writes anything", 1)
	// The registered card as an A2A SDK's server writes it anew: members reordered, empty ones
	// left out. Its signature (over the 1.0 reading) is of the registered card too.
	rewritten := `{"version":"1.0.0","name":"writer","url":"http://writer.research:8080","description":"Writes","defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"]}`
	// 0.3's url is outside the 1.0 reading, so not signed; the router serves the registered card,
	// with its own URL in the place of the agent's, whatever the agent's says.
	moved := strings.Replace(verifiedCard, "http://writer.research:8080", "http://elsewhere.example.com", 1)
	for _, tc := range []struct {
		name     string
		served   *url.URL
		audience string
		reason   string // "" when it verifies
	}{
		{"signed by its identity", cardAgent(t, verifiedCard, writer), writer.ID.String(), ""},
		{"unsigned", cardAgent(t, verifiedCard, nil), writer.ID.String(), "unsigned"},
		{"signed by another identity", cardAgent(t, verifiedCard, planner), writer.ID.String(), "wrong_identity"},
		{"signed under another CA", cardAgent(t, verifiedCard, foreign), writer.ID.String(), "bad_signature"},
		{"another card, signed", cardAgent(t, other, writer), writer.ID.String(), "mismatch"},
		{"the card written anew, signed", cardAgent(t, rewritten, writer), writer.ID.String(), ""},
		{"another 0.3 url, signed", cardAgent(t, moved, writer), writer.ID.String(), ""},
		{"no identity to bind to", cardAgent(t, verifiedCard, writer), "", "no_identity"},
	} {
		for _, mode := range []string{contract.CardVerificationStrict, contract.CardVerificationPermissive} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				reg := NewRegistry()
				reg.SetService(Route{Namespace: "research", Name: "writer", Type: contract.TypeAgent, Protocol: "a2a", Upstream: tc.served,
					Policy: contract.Policy{Audience: tc.audience}})
				reg.SetCard("research", "writer", json.RawMessage(verifiedCard))
				rt, base := startRouter(t, Config{Registry: reg, CardVerification: mode, TrustBundles: ca.Bundle()})
				resp, err := http.Get(base + "/a2a/research/writer/.well-known/agent-card.json")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					want := "verified"
					if tc.reason != "" {
						want = "failed: "
					}
					if got := resp.Header.Get(contract.CardVerificationHeader); !strings.HasPrefix(got, want) {
						t.Fatalf("%s: %q, want %q...", contract.CardVerificationHeader, got, want)
					}
				}
				refused := tc.reason != "" && mode == contract.CardVerificationStrict
				if got := resp.StatusCode != http.StatusOK; got != refused {
					t.Fatalf("card answered %d; refused %v, want %v", resp.StatusCode, got, refused)
				}
				if tc.reason != "" {
					if n := testutil.ToFloat64(rt.metrics.cardFailures.WithLabelValues(tc.reason)); n != 1 {
						t.Fatalf("failures counted as %s: %v, want 1", tc.reason, n)
					}
				}
			})
		}
	}
}

// TestCardVerification_FromTheSigner: an agent whose Service has the card signer's port has its
// card fetched there, not from the agent: the agent's own unsigned card does not count, the
// signer's signed one does.
func TestCardVerification_FromTheSigner(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	agent := cardAgent(t, verifiedCard, nil)
	signer := cardAgent(t, verifiedCard, writer)
	_, signerPort, _ := strings.Cut(signer.Host, ":")
	port, _ := strconv.Atoi(signerPort)
	reg := NewRegistry()
	reg.SetCard("research", "writer", json.RawMessage(verifiedCard))
	_, base := startRouter(t, Config{Registry: reg, CardVerification: contract.CardVerificationPermissive, TrustBundles: ca.Bundle()})
	// In this order on one router: a result stands for where the card was fetched, so the
	// signer coming (and going) is seen at once, though the card stays the same.
	// A signer without an SVID yet answers 503; a port nobody serves refuses connections.
	noSVID := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "card not signed: no X509-SVID from the Workload API yet", http.StatusServiceUnavailable)
	}))
	t.Cleanup(noSVID.Close)
	_, noSVIDPort, _ := strings.Cut(strings.TrimPrefix(noSVID.URL, "http://"), ":")
	unsvidPort, _ := strconv.Atoi(noSVIDPort)
	closed := httptest.NewServer(http.NotFoundHandler())
	_, closedPort, _ := strings.Cut(strings.TrimPrefix(closed.URL, "http://"), ":")
	deadPort, _ := strconv.Atoi(closedPort)
	closed.Close()
	selfSigning := cardAgent(t, verifiedCard, writer)
	for _, step := range []struct {
		name     string
		upstream *url.URL
		cardPort int32
		want     string
	}{
		{"the agent's own card, unsigned", agent, 0, "failed: the card is not signed"},
		{"the signer's", agent, int32(port), "verified"},
		{"the signer gone", agent, 0, "failed: the card is not signed"},
		{"a signer without an SVID", agent, int32(unsvidPort), `failed: the agent serves no card: the card signer (Service port kagenti-card) answered HTTP 503 "card not signed: no X509-SVID from the Workload API yet"`},
		// A rollout adding the signer: the Service has its port before any pod runs it. (Each
		// on its own route: a failure stands for a few seconds.)
		{"no signer yet, the agent does not sign", agent, int32(deadPort), "failed: fetch the card from the card signer (Service port kagenti-card): "},
		{"no signer yet, the agent signs", selfSigning, int32(deadPort), "verified"},
	} {
		if strings.HasPrefix(step.name, "no signer yet") {
			reg = NewRegistry()
			reg.SetCard("research", "writer", json.RawMessage(verifiedCard))
			_, base = startRouter(t, Config{Registry: reg, CardVerification: contract.CardVerificationPermissive, TrustBundles: ca.Bundle()})
		}
		reg.SetService(Route{Namespace: "research", Name: "writer", Type: contract.TypeAgent, Protocol: "a2a", Upstream: step.upstream,
			CardPort: step.cardPort, Policy: contract.Policy{Audience: writer.ID.String()}})
		resp, err := http.Get(base + "/a2a/research/writer/.well-known/agent-card.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get(contract.CardVerificationHeader); !strings.HasPrefix(got, step.want) {
			t.Fatalf("%s: %s %q, want %q...", step.name, contract.CardVerificationHeader, got, step.want)
		}
	}
}

// TestCardVerification_NeedsBundle: a verifying mode without a trust bundle, or an unknown
// mode, is refused at start.
func TestCardVerification_NeedsBundle(t *testing.T) {
	for mode, want := range map[string]string{
		contract.CardVerificationStrict: "needs the SPIRE trust bundle",
		"sometimes":                     `card verification "sometimes" is none of off, permissive, strict`,
	} {
		_, err := New(Config{Registry: NewRegistry(), PublicURL: "http://router", CardVerification: mode})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mode %s: %v, want %q", mode, err, want)
		}
	}
}

// TestCardVerification_OneFetchAtATime: calls that find a route's card unverified at the same
// time share one fetch of the card, instead of each fetching it from the agent.
func TestCardVerification_OneFetchAtATime(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	body, err := cardsig.Sign([]byte(verifiedCard), writer)
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-release // every call is waiting on this fetch before it answers
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "research", Name: "writer", Type: contract.TypeAgent, Protocol: "a2a", Upstream: u,
		Policy: contract.Policy{Audience: writer.ID.String()}})
	reg.SetCard("research", "writer", json.RawMessage(verifiedCard))
	_, base := startRouter(t, Config{Registry: reg, CardVerification: contract.CardVerificationStrict, TrustBundles: ca.Bundle()})
	const calls = 8
	var wg sync.WaitGroup
	codes := make(chan int, calls)
	for range calls {
		wg.Go(func() {
			resp, err := http.Get(base + "/a2a/research/writer/.well-known/agent-card.json")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	// Let the calls reach the verifier, then answer the fetch.
	for deadline := time.Now().Add(5 * time.Second); fetches.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("a call got %d, want 200", c)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("the card was fetched %d times for %d concurrent calls, want once", n, calls)
	}
}
