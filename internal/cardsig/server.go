package cardsig

import (
	"net/http"
	"os"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Server serves a card file signed with the X509-SVID its source holds at the time of the
// request, so that a rotated SVID or a card the kubelet updated in its ConfigMap volume is
// served at once. It serves at any path; mount it at /.well-known/agent-card.json.
//
// Until a source is set (the Workload API has issued no SVID yet), it answers 503 when it
// must sign, and serves the card unsigned when it need not (an agent told not to sign).
type Server struct {
	file     string
	mustSign bool
	svids    atomic.Pointer[x509svid.Source]
}

// NewServer serves file; mustSign refuses to serve it unsigned.
func NewServer(file string, mustSign bool) *Server {
	return &Server{file: file, mustSign: mustSign}
}

// SetSource sets where the SVID to sign with comes from (a workloadapi.X509Source).
func (s *Server) SetSource(src x509svid.Source) { s.svids.Store(&src) }

// Ready reports whether the server can serve the card as it must: it has a source to sign
// with, or need not sign.
func (s *Server) Ready() bool { return !s.mustSign || s.svids.Load() != nil }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	card, err := os.ReadFile(s.file)
	if err != nil {
		http.Error(w, "no card: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	src := s.svids.Load()
	switch {
	case src != nil:
		svid, err := (*src).GetX509SVID()
		if err == nil {
			card, err = Sign(card, svid)
		}
		if err != nil {
			http.Error(w, "card not signed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	case s.mustSign:
		http.Error(w, "card not signed: no X509-SVID from the Workload API yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(card)
}
