package router

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// agentURL is the router's public URL of an agent's A2A endpoint.
func (rt *Router) agentURL(route *Route) string {
	return rt.cfg.PublicURL + "/a2a/" + route.Namespace + "/" + route.Name
}

// card serves an agent's card with its URLs rewritten to the router.
func (rt *Router) card(w http.ResponseWriter, r *http.Request) {
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), a2aAgent)
	if err == nil && len(route.Card) == 0 {
		err = &httpError{http.StatusNotFound, codeNoSuchAgent, "the agent " + route.Key() + " has no card"}
	}
	if err != nil {
		rt.fail(w, r, shapeJSON, nil, err)
		return
	}
	c, err := route.A2A.routerCardJSON(r.Context(), rt.agentURL(route))
	if err != nil {
		rt.fail(w, r, shapeJSON, nil, &httpError{http.StatusBadGateway, codeUnavailable, "the agent's card is not a valid A2A agent card"})
		return
	}
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(contract.CardVerificationHeader, rt.cards.state(route))
	_, _ = w.Write(c)
}

// catalogEntry is one agent in GET /agents.
type catalogEntry struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Protocol  string          `json:"protocol"`
	Framework string          `json:"framework"`
	URL       string          `json:"url"`
	Card      json.RawMessage `json:"card,omitempty"`
}

// catalog lists every agent with its card; ?skill=, ?framework=, ?protocol= filter (a skill
// matches a skill id, name or tag).
func (rt *Router) catalog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	entries := []catalogEntry{}
	for _, route := range rt.cfg.Registry.List() {
		if route.Type != contract.TypeAgent {
			continue
		}
		if f := q.Get("framework"); f != "" && f != route.Framework {
			continue
		}
		if p := q.Get("protocol"); p != "" && p != route.Protocol {
			continue
		}
		e := catalogEntry{Namespace: route.Namespace, Name: route.Name, Protocol: route.Protocol, Framework: route.Framework}
		switch route.Protocol {
		case "acp":
			e.URL = rt.cfg.PublicURL + "/acp/" + route.Namespace
			if json.Valid(route.Card) {
				e.Card = route.Card
			}
		default:
			e.URL = rt.agentURL(route)
			if route.A2A.card != nil {
				e.Card, _ = route.A2A.routerCardJSON(r.Context(), e.URL)
			}
		}
		if s := q.Get("skill"); s != "" && !hasSkill(route.Card, s) {
			continue
		}
		entries = append(entries, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": entries})
}

func hasSkill(card json.RawMessage, skill string) bool {
	c, err := contract.ParseCardSummary(card)
	if err != nil {
		return false
	}
	for _, s := range c.Skills {
		if strings.EqualFold(s.ID, skill) || strings.EqualFold(s.Name, skill) || containsFold(s.Tags, skill) {
			return true
		}
	}
	return containsFold(c.Metadata.Tags, skill)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// tool forwards MCP traffic to a kagenti_tool (/tools/{ns}/{name} is its MCP endpoint): the tool
// server receives a token addressed to it, never the caller's, and sees the user (sub) and the
// calling workload (azp).
func (rt *Router) tool(w http.ResponseWriter, r *http.Request) {
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), mcpTool)
	if err != nil {
		rt.fail(w, r, shapeJSON, nil, err)
		return
	}
	path := "" // /tools/{ns}/{name} and /tools/{ns}/{name}/ are the tool's own path
	if r.PathValue("rest") != "" {
		path = pathTail(r, 3)
	}
	rt.forward(w, r, upstreamCall{route: route, path: path, stream: streamAsked(r, path), shape: shapeJSON})
}

// streamAsked tells whether a request forwarded as it is asks for a stream (SSE), which is
// relayed event by event and not bounded by the router's timeout.
func streamAsked(r *http.Request, path string) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream") || strings.HasSuffix(path, "/events") ||
		strings.Contains(path, ":stream") || strings.Contains(path, ":subscribe")
}

// forward runs the stages after route for a request forwarded as it is, its body streamed:
// authenticate → authorize → exchange → proxy.
func (rt *Router) forward(w http.ResponseWriter, r *http.Request, c upstreamCall) {
	caller, err := rt.admit(r, c.route)
	if err == nil {
		c.token, err = rt.exchange(r.Context(), caller, c.route)
	}
	if err != nil {
		rt.fail(w, r, c.shape, nil, err)
		return
	}
	rt.proxy(w, r, c)
}
