package cardsig

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig/cardsigtest"
)

// rotatingSource is an x509svid.Source whose SVID a test replaces.
type rotatingSource struct{ svid *x509svid.SVID }

func (r *rotatingSource) GetX509SVID() (*x509svid.SVID, error) {
	if r.svid == nil {
		return nil, errors.New("no SVID")
	}
	return r.svid, nil
}

func serve(t *testing.T, s *Server) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/agent-card.json", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

func TestServer_SignsTheCurrentCardWithTheCurrentSVID(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	file := filepath.Join(t.TempDir(), "agent-card.json")
	if err := os.WriteFile(file, []byte(card), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewServer(file, true)
	if s.Ready(time.Now()) == nil {
		t.Fatal("a signer without an SVID source reports ready")
	}
	if code, body := serve(t, s); code != http.StatusServiceUnavailable {
		t.Fatalf("without an SVID: HTTP %d %s, want 503 (never the card unsigned)", code, body)
	}

	src := &rotatingSource{svid: ca.SVID(t, "/ns/research/sa/writer")}
	s.SetSource(src)
	if err := s.Ready(time.Now()); err != nil {
		t.Fatalf("a signer with an SVID source is not ready: %v", err)
	}
	if s.Ready(src.svid.Certificates[0].NotAfter.Add(time.Second)) == nil {
		t.Fatal("a signer whose SVID has expired reports ready")
	}
	code, body := serve(t, s)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, body)
	}
	if err := Verify(body, ca.Bundle(), src.svid.ID); err != nil {
		t.Fatalf("the served card: %v", err)
	}

	// The SVID rotates to another identity's and the ConfigMap volume changes the card: the
	// next request is signed by the new one over the new card.
	src.svid = ca.SVID(t, "/ns/research/sa/editor")
	changed := `{"name":"writer","description":"Writes better","version":"1.0.1","skills":[]}`
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	_, body = serve(t, s)
	if err := Verify(body, ca.Bundle(), src.svid.ID); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	got, _ := Payload(body)
	want, _ := Payload([]byte(changed))
	if string(got) != string(want) {
		t.Fatalf("served %s, want the changed card %s", got, want)
	}

	// A file that is no card is not signed.
	if err := os.WriteFile(file, []byte(`{"sub":"spiffe://example.org/admin"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := serve(t, s); code != http.StatusServiceUnavailable {
		t.Fatalf("a file that is no card: HTTP %d %s, want 503", code, body)
	}

	// The source fails (the Workload API is gone): 503, not an unsigned card.
	if err := os.WriteFile(file, []byte(card), 0o600); err != nil {
		t.Fatal(err)
	}
	src.svid = nil
	if code, body := serve(t, s); code != http.StatusServiceUnavailable {
		t.Fatalf("with a failing source: HTTP %d %s, want 503", code, body)
	}
	if s.Ready(time.Now()) == nil {
		t.Fatal("a signer whose source fails reports ready")
	}
}

func TestServer_UnsignedWhenNotRequired(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent-card.json")
	if err := os.WriteFile(file, []byte(card), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewServer(file, false)
	code, body := serve(t, s)
	if code != http.StatusOK || string(body) != card {
		t.Fatalf("HTTP %d %s, want the card as it is", code, body)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: HTTP %d, want 405", rec.Code)
	}
}
