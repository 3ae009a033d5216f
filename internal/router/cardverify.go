package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/singleflight"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

var (
	errCardMismatch  = errors.New("the card the agent signed is not the card registered for it")
	errCardNoID      = errors.New("the agent has no identity to bind its card to (identity.keycloak_client)")
	errCardNoService = errors.New("the agent serves no card")
)

// cardRetry is how long a failed verification stands before the next use of the route tries
// again (an agent starting, an SVID not issued yet).
const cardRetry = 5 * time.Second

// cardVerifier binds each A2A agent's card to the workload identity registered for it: it
// fetches the card the agent serves (signed by the agent with its X509-SVID), checks the
// signature against the trust bundle, that the signer is the SPIFFE ID of the route's policy,
// and that the signed card is the one the composition registered. Results are kept per route
// until the registered card or where it is fetched changes (failures for cardRetry).
type cardVerifier struct {
	mode     string
	bundles  x509bundle.Source
	client   *http.Client
	failures func(reason string)
	log      func(route string, err error)

	mu      sync.Mutex
	results map[string]cardResult
	// flight fetches a route's card once however many calls find it unverified at the same
	// time (the first calls after a start, or after the card changed).
	flight singleflight.Group
}

type cardResult struct {
	card json.RawMessage
	// cardPort is the route's CardPort when verified: a result stands for the source the
	// card was fetched from (the signer, or the agent) only.
	cardPort int32
	err      error
	at       time.Time
}

// check verifies the route's card; in strict mode its error refuses the route.
func (v *cardVerifier) check(ctx context.Context, route *Route) error {
	if v == nil || v.mode == contract.CardVerificationOff || route.Type != contract.TypeAgent || route.Protocol != "a2a" {
		return nil
	}
	key := route.Key()
	v.mu.Lock()
	res, ok := v.results[key]
	v.mu.Unlock()
	if !ok || !bytes.Equal(res.card, route.Card) || res.cardPort != route.CardPort || (res.err != nil && time.Since(res.at) > cardRetry) {
		// The flight is keyed by the card and where it is fetched too: a call carrying a newer
		// card, or a route whose signer came or went, does not take the result of the older
		// one's fetch.
		flight := key + "\x00" + strconv.Itoa(int(route.CardPort)) + "\x00" + string(route.Card)
		got, _, _ := v.flight.Do(flight, func() (any, error) {
			res := cardResult{card: route.Card, cardPort: route.CardPort, err: v.verify(context.WithoutCancel(ctx), route), at: time.Now()}
			v.mu.Lock()
			v.results[key] = res
			v.mu.Unlock()
			if res.err != nil {
				v.failures(cardFailureReason(res.err))
				v.log(key, res.err)
			}
			return res, nil
		})
		res = got.(cardResult)
	}
	if res.err != nil && v.mode == contract.CardVerificationStrict {
		return &cardUnverifiedError{route: key, err: res.err}
	}
	return nil
}

// state is the route's CardVerificationHeader value, after check.
func (v *cardVerifier) state(route *Route) string {
	if v == nil || v.mode == contract.CardVerificationOff {
		return contract.CardVerificationOff
	}
	v.mu.Lock()
	res, ok := v.results[route.Key()]
	v.mu.Unlock()
	switch {
	case !ok:
		return contract.CardVerificationOff
	case res.err != nil:
		return "failed: " + res.err.Error()
	}
	return "verified"
}

func (v *cardVerifier) verify(ctx context.Context, route *Route) error {
	if route.Policy.Audience == "" {
		return errCardNoID
	}
	want, err := spiffeid.FromString(route.Policy.Audience)
	if err != nil {
		return fmt.Errorf("%w: %v", errCardNoID, err)
	}
	if route.CardPort == 0 {
		return v.verifyFrom(ctx, route, want, agentCardURL(route), false)
	}
	err = v.verifyFrom(ctx, route, want, signerCardURL(route), true)
	var unreachable *signerUnreachableError
	if errors.As(err, &unreachable) {
		// The Service gains the signer's port at once, while a rollout that adds the signer
		// still runs pods without it: their agent may sign its own card. The signature and
		// the identity are checked the same either way.
		if v.verifyFrom(ctx, route, want, agentCardURL(route), false) == nil {
			return nil
		}
	}
	return err
}

// signerUnreachableError is a card signer that could not be reached at all.
type signerUnreachableError struct{ err error }

func (e *signerUnreachableError) Error() string {
	return "fetch the card from the card signer (Service port " + contract.CardSignerPortName + "): " + e.err.Error()
}

func (e *signerUnreachableError) Unwrap() error { return e.err }

// verifyFrom verifies the card fetched from one URL, the card signer's or the agent's.
func (v *cardVerifier) verifyFrom(ctx context.Context, route *Route, want spiffeid.ID, from string, signer bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
	if err != nil {
		return err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		if signer {
			return &signerUnreachableError{err: err}
		}
		return fmt.Errorf("fetch the agent's card: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fetch the agent's card: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		if signer {
			why, _, _ := strings.Cut(strings.TrimSpace(string(body[:min(len(body), 200)])), "\n")
			return fmt.Errorf("%w: the card signer (Service port %s) answered HTTP %d %q; its pod may have no X509-SVID yet",
				errCardNoService, contract.CardSignerPortName, resp.StatusCode, why)
		}
		return fmt.Errorf("%w (HTTP %d)", errCardNoService, resp.StatusCode)
	}
	if err := cardsig.Verify(body, v.bundles, want); err != nil {
		return err
	}
	// The agent must attest the registered card, which is what the router serves in its name:
	// its signatures verify over that card too, however it writes its own (a server of an A2A
	// SDK writes the card anew).
	if err := cardsig.VerifyFor(route.Card, body, v.bundles, want); err != nil {
		return errCardMismatch
	}
	return nil
}

// agentCardURL is where the agent itself serves its card.
func agentCardURL(route *Route) string {
	return route.Upstream.JoinPath("/.well-known/agent-card.json").String()
}

// signerCardURL is where the platform's card signer beside the agent serves the signed card:
// the agent's Service, at the signer's port.
func signerCardURL(route *Route) string {
	u := url.URL{Scheme: route.Upstream.Scheme, Host: net.JoinHostPort(route.Upstream.Hostname(), strconv.Itoa(int(route.CardPort))),
		Path: "/.well-known/agent-card.json"}
	return u.String()
}

// cardFailureReason is the metric label of a verification failure.
func cardFailureReason(err error) string {
	switch {
	case errors.Is(err, cardsig.ErrUnsigned), errors.Is(err, errCardNoService):
		return "unsigned"
	case errors.Is(err, cardsig.ErrWrongIdentity):
		return "wrong_identity"
	case errors.Is(err, cardsig.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, errCardMismatch):
		return "mismatch"
	case errors.Is(err, errCardNoID):
		return "no_identity"
	}
	return "unreachable"
}

// cardUnverifiedError refuses an agent whose card does not verify (strict mode).
type cardUnverifiedError struct {
	route string
	err   error
}

func (e *cardUnverifiedError) Error() string {
	return "the card of agent " + e.route + " is not verified: " + e.err.Error()
}

func (e *cardUnverifiedError) Unwrap() error { return e.err }
