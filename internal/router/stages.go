package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// The stages a call to an agent or tool goes through, each one job, in this order: route (which
// callee), authenticate (who calls), authorize (may they call it), exchange (the token the
// callee gets), proxy (proxy.go). A handler that must read the body (the JSON-RPC envelope,
// an ACP run request) parses it once the caller is known, so that an unauthenticated client
// never makes the router hold its body. Each stage returns an error for fail (errors.go).

// routeKind is the kind of callee a path addresses.
type routeKind struct {
	name  string
	match func(*Route) bool
}

var (
	a2aAgent = routeKind{"A2A agent", func(r *Route) bool { return r.Type == contract.TypeAgent && r.Protocol == "a2a" }}
	acpAgent = routeKind{"ACP agent", func(r *Route) bool { return r.Type == contract.TypeAgent && r.Protocol == "acp" }}
	mcpTool  = routeKind{"tool", func(r *Route) bool { return r.Type == contract.TypeTool }}
)

// route finds the callee of namespace ns and name of the kind a path addresses.
func (rt *Router) route(ctx context.Context, ns, name string, kind routeKind) (*Route, error) {
	route := rt.cfg.Registry.Lookup(ns, name)
	if route == nil || !kind.match(route) {
		return nil, &noRouteError{kind.name, ns + "/" + name}
	}
	// An agent whose card is not bound to its identity is neither served nor called (strict).
	if err := rt.cards.check(ctx, route); err != nil {
		return nil, err
	}
	return route, nil
}

// authenticate verifies the caller's bearer token; nil when authentication is off.
func (rt *Router) authenticate(r *http.Request) (*Caller, error) {
	if rt.cfg.Verifier == nil {
		return nil, nil
	}
	raw, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	return rt.cfg.Verifier.Verify(r.Context(), raw)
}

// authorize applies the callee's policy to an authenticated caller: it must be an allowed caller
// (when the policy lists any) and hold every required scope. With authentication off there is no
// caller to check.
func (rt *Router) authorize(caller *Caller, route *Route) error {
	if rt.cfg.Verifier == nil {
		return nil
	}
	p := route.Policy
	if caller == nil {
		return &forbiddenError{reason: "an anonymous caller may not call " + route.Key()}
	}
	if len(p.AllowedCallers) > 0 && !slices.Contains(p.AllowedCallers, caller.ClientID) {
		return &forbiddenError{reason: fmt.Sprintf("%s may not call %s", caller.ClientID, route.Key())}
	}
	for _, s := range p.RequiredScopes {
		if !slices.Contains(caller.Scopes, s) {
			return &forbiddenError{reason: "missing scope " + s}
		}
	}
	return nil
}

// admit is authenticate then authorize, for the handlers that need nothing between them.
func (rt *Router) admit(r *http.Request, route *Route) (*Caller, error) {
	caller, err := rt.authenticate(r)
	if err != nil {
		return nil, err
	}
	return caller, rt.authorize(caller, route)
}

// exchange is the token the callee gets: the caller's exchanged for the callee's audience, or
// none (authentication off, no exchanger, or a callee without an audience). The caller's own
// token is never forwarded.
func (rt *Router) exchange(ctx context.Context, caller *Caller, route *Route) (string, error) {
	if caller == nil || rt.cfg.Exchanger == nil || route.Policy.Audience == "" {
		return "", nil
	}
	tok, exchanged, err := rt.cfg.Exchanger.Exchange(ctx, caller.Token, route.Policy.Audience, route.Policy.AudienceScope)
	if exchanged { // a cached token is not an exchange (the metric's help says so)
		rt.metrics.exchanges.WithLabelValues(resultLabel(err)).Inc()
	}
	return tok, err
}

func resultLabel(err error) string {
	var xe *ExchangeError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &xe):
		return "refused"
	}
	return "error"
}
