package router

import (
	"bytes"
	"encoding/json"
	"io"
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
	route := rt.cfg.Registry.Lookup(r.PathValue("ns"), r.PathValue("name"))
	if route == nil || route.Protocol != "acp" || len(route.Card) == 0 {
		acpError(w, http.StatusNotFound, "not_found", "no such ACP agent")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(route.Card)
}

// acpError answers in ACP's error shape.
func acpError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"code": code, "message": message})
}

func (rt *Router) acpCreateRun(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		acpError(w, http.StatusRequestEntityTooLarge, "invalid_input", "request body too large or unreadable")
		return
	}
	var req struct {
		AgentName string `json:"agent_name"`
		Mode      string `json:"mode"`
	}
	if json.Unmarshal(body, &req) != nil || req.AgentName == "" {
		acpError(w, http.StatusBadRequest, "invalid_input", "the body must be a run request with agent_name")
		return
	}
	ns := r.PathValue("ns")
	route := rt.cfg.Registry.Lookup(ns, req.AgentName)
	if route == nil || route.Protocol != "acp" {
		acpError(w, http.StatusNotFound, "not_found", "no such ACP agent: "+ns+"/"+req.AgentName)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if req.Mode == "stream" {
		r.Header.Set("Accept", "text/event-stream")
	}
	capture := func(b []byte) {
		for _, m := range runIDPattern.FindAllSubmatch(b, -1) {
			rt.runs.put(ns, string(m[1]), route.Name)
		}
	}
	rt.forwardACP(w, r, route, "/runs", capture)
}

var runIDPattern = regexp.MustCompile(`"run_id"\s*:\s*"([^"]{1,128})"`)

func (rt *Router) acpRun(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.PathValue("id")
	agent, ok := rt.runs.get(ns, id)
	if !ok {
		acpError(w, http.StatusNotFound, "not_found", "no run "+id+" in "+ns+" (runs are known to the router that created them)")
		return
	}
	route := rt.cfg.Registry.Lookup(ns, agent)
	if route == nil {
		acpError(w, http.StatusNotFound, "not_found", "the agent of run "+id+" is gone")
		return
	}
	path := "/runs" + pathTail(r, 3) // the run id and what follows, escaped as sent
	if r.PathValue("rest") == "" {
		path = strings.TrimSuffix(path, "/") // /runs/{id}/ is /runs/{id}
	}
	rt.forwardACP(w, r, route, path, nil)
}

// forwardACP is forwardHTTP with ACP-shaped errors.
func (rt *Router) forwardACP(w http.ResponseWriter, r *http.Request, route *Route, path string, capture func([]byte)) {
	caller, err := rt.authenticate(r, route)
	if err != nil {
		status, _ := statusOf(err)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kagenti-router"`)
		}
		acpError(w, status, "unauthorized", err.Error())
		return
	}
	token, err := rt.upstreamToken(r.Context(), caller, route)
	if err != nil {
		status, _ := statusOf(err)
		acpError(w, status, "forbidden", err.Error())
		return
	}
	stream := r.Header.Get("Accept") == "text/event-stream" || (len(path) > 7 && path[len(path)-7:] == "/events")
	rt.proxy(w, r, route, path, token, nil, stream, func(w http.ResponseWriter, status int, err error) {
		acpError(w, status, "server_error", err.Error())
	}, capture)
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
