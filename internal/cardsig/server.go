package cardsig

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

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

// errNoSVIDYet is a signer's answer before the Workload API has issued an SVID.
var errNoSVIDYet = errors.New("no X509-SVID from the Workload API yet")

// NewServer serves file; mustSign refuses to serve it unsigned.
func NewServer(file string, mustSign bool) *Server {
	return &Server{file: file, mustSign: mustSign}
}

// SetSource sets where the SVID to sign with comes from (a workloadapi.X509Source).
func (s *Server) SetSource(src x509svid.Source) { s.svids.Store(&src) }

// Ready reports whether the server can serve the card as it must: it need not sign, or its
// source holds an SVID that is valid at now.
func (s *Server) Ready(now time.Time) error {
	if !s.mustSign {
		return nil
	}
	src := s.svids.Load()
	if src == nil {
		return errNoSVIDYet
	}
	svid, err := (*src).GetX509SVID()
	if err != nil {
		return fmt.Errorf("no X509-SVID: %w", err)
	}
	if len(svid.Certificates) == 0 || now.After(svid.Certificates[0].NotAfter) {
		return errors.New("the X509-SVID has expired: the Workload API has not renewed it")
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	card, err := os.ReadFile(s.file)
	if err == nil {
		err = isCard(card)
	}
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
		http.Error(w, "card not signed: "+errNoSVIDYet.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(card)
}

// isCard refuses to sign a file that is not an A2A agent card (a JSON object with a name): the
// SVID's key signs cards, not whatever lands in the file.
func isCard(data []byte) error {
	var card struct {
		Name *string `json:"name"`
	}
	if err := json.Unmarshal(data, &card); err != nil {
		return fmt.Errorf("the card file is not a JSON object: %w", err)
	}
	if card.Name == nil || *card.Name == "" {
		return errors.New("the card file is no A2A agent card (it has no name)")
	}
	return nil
}
