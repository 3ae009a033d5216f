package router

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// ACP, per namespace at /acp/{ns}: GET /agents and /agents/{name} from the manifests the
// composition rendered; POST /runs routed by agent_name; /runs/{id}... routed to the agent that
// created the run (the router remembers run ids from the answers it relays).

func (rt *Router) acpAgents(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	agents := []json.RawMessage{}
	for _, route := range rt.cfg.Registry.List() {
		if route.Namespace == ns && route.Type == contract.TypeAgent && route.Protocol == "acp" && len(route.Card) > 0 {
			agents = append(agents, route.Card)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": agents})
}

func (rt *Router) acpAgent(w http.ResponseWriter, r *http.Request) {
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), acpAgent)
	if err == nil && len(route.Card) == 0 {
		err = &httpError{http.StatusNotFound, codeNoSuchAgent, "the agent " + route.Key() + " has no manifest"}
	}
	if err != nil {
		rt.fail(w, r, shapeACP, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(route.Card)
}

// acpCreateRun serves POST /acp/{ns}/runs: authenticate → parse (the run request names the
// agent) → route → authorize → exchange → proxy. The body is read whole, up to MaxBodyBytes,
// once the caller is authenticated.
func (rt *Router) acpCreateRun(w http.ResponseWriter, r *http.Request) {
	caller, err := rt.authenticate(r)
	if err != nil {
		rt.fail(w, r, shapeACP, nil, err)
		return
	}
	body, err := readBody(r.Body, r.ContentLength)
	if err != nil {
		rt.fail(w, r, shapeACP, nil, err)
		return
	}
	var req struct {
		AgentName string `json:"agent_name"`
		Mode      string `json:"mode"`
	}
	if json.Unmarshal(body, &req) != nil || req.AgentName == "" {
		rt.fail(w, r, shapeACP, nil, &httpError{http.StatusBadRequest, codeInvalidRequest, "the body must be a run request with agent_name"})
		return
	}
	ns := r.PathValue("ns")
	route, err := rt.route(r.Context(), ns, req.AgentName, acpAgent)
	if err == nil {
		err = rt.authorize(caller, route)
	}
	var token string
	if err == nil {
		token, err = rt.exchange(r.Context(), caller, route)
	}
	if err != nil {
		rt.fail(w, r, shapeACP, nil, err)
		return
	}
	if req.Mode == "stream" {
		r.Header.Set("Accept", "text/event-stream")
	}
	capture := func(b []byte) {
		for _, m := range runIDPattern.FindAllSubmatch(b, -1) {
			rt.runs.put(ns, string(m[1]), route.Name)
		}
	}
	rt.proxy(w, r, upstreamCall{route: route, path: "/runs", token: token, body: body, stream: req.Mode == "stream",
		shape: shapeACP, capture: capture})
}

var runIDPattern = regexp.MustCompile(`"run_id"\s*:\s*"([^"]{1,128})"`)

// acpRun serves /acp/{ns}/runs/{id}...: routed to the agent that created the run.
func (rt *Router) acpRun(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.PathValue("id")
	agent, ok := rt.runs.get(ns, id)
	if !ok {
		rt.fail(w, r, shapeACP, nil, &httpError{http.StatusNotFound, codeNoSuchAgent, "no run " + id + " in " + ns + " (runs are known to the router that created them)"})
		return
	}
	route, err := rt.route(r.Context(), ns, agent, acpAgent)
	if err != nil {
		rt.fail(w, r, shapeACP, nil, &httpError{http.StatusNotFound, codeNoSuchAgent, "the agent of run " + id + " is gone"})
		return
	}
	path := "/runs" + pathTail(r, 3) // the run id and what follows, escaped as sent
	if r.PathValue("rest") == "" {
		path = strings.TrimSuffix(path, "/") // /runs/{id}/ is /runs/{id}
	}
	rt.forward(w, r, upstreamCall{route: route, path: path, stream: streamAsked(r, path), shape: shapeACP})
}

// runIndex remembers which agent owns a run, for a day.
type runIndex struct {
	mu   sync.Mutex
	runs map[string]runEntry
}

type runEntry struct {
	agent string
	at    time.Time
}

func newRunIndex() *runIndex { return &runIndex{runs: map[string]runEntry{}} }

func (x *runIndex) put(ns, id, agent string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.runs) > 100000 {
		for k, e := range x.runs {
			if time.Since(e.at) > 24*time.Hour {
				delete(x.runs, k)
			}
		}
	}
	x.runs[ns+"/"+id] = runEntry{agent: agent, at: time.Now()}
}

func (x *runIndex) get(ns, id string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.runs[ns+"/"+id]
	return e.agent, ok
}
