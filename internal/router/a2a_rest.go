package router

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// a2aREST serves A2A's HTTP+JSON binding below /a2a/{ns}/{name}. A call in a version the agent
// serves over REST is forwarded as it is, its body streamed. A 1.0 call to an agent that does
// not serve 1.0 REST is translated into a JSON-RPC call in the version the agent speaks, and
// its answer back into 1.0 REST: so every agent has the 1.0 REST binding. (0.3 REST, whose
// proto-JSON shapes no SDK reads alike, is only forwarded.)
func (rt *Router) a2aREST(w http.ResponseWriter, r *http.Request) {
	path := pathTail(r, 3)
	shape := restShape(path)
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), a2aAgent)
	if err != nil {
		rt.fail(w, r, shape, nil, err)
		return
	}
	if shape == shapeREST && route.A2A.translatesREST() {
		call, err := parseRESTCall(r.Method, path, r.URL.Query())
		if err != nil {
			rt.failREST(w, r, err.status, err.code, err.message)
			return
		}
		rt.restViaJSONRPC(w, r, route, call)
		return
	}
	c := upstreamCall{route: route, path: path, stream: streamAsked(r, path), shape: shape}
	if !strings.HasPrefix(path, "/v1/") && route.A2A.card != nil {
		c.version = a2aversion.V10 // a 1.0 REST path (0.3's are under /v1)
	}
	rt.forward(w, r, c)
}

// translatesREST tells whether the router serves 1.0 REST for the agent by translation: the
// agent speaks JSON-RPC and does not serve 1.0 REST itself.
func (s a2aServed) translatesREST() bool {
	return len(s.jsonrpc) > 0 && !slices.Contains(s.rest, a2aversion.V10)
}

// restCall is a 1.0 REST call the router can translate.
type restCall struct {
	op     a2aversion.Op
	taskID string
	// historyLength is GetTask's query parameter, when given.
	historyLength *int
}

// parseRESTCall reads a 1.0 REST call from its method and path (below the agent's URL) and
// query: send, stream, get, cancel and subscribe, the ones the router translates. Any other is
// refused as UnsupportedOperation: the agent speaks JSON-RPC only, and the router does not
// forward what it would not understand.
func parseRESTCall(method, path string, query url.Values) (restCall, *httpError) {
	unsupported := &httpError{http.StatusBadRequest, -32004, "this agent speaks JSON-RPC; through the router its HTTP+JSON binding has " +
		"message:send, message:stream, tasks/{id}, tasks/{id}:cancel and tasks/{id}:subscribe (call JSON-RPC for the others)"}
	switch {
	case method == http.MethodPost && path == "/message:send":
		return restCall{op: a2aversion.Send}, nil
	case method == http.MethodPost && path == "/message:stream":
		return restCall{op: a2aversion.Stream}, nil
	}
	rest, ok := strings.CutPrefix(path, "/tasks/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return restCall{}, unsupported
	}
	escaped, verb, _ := strings.Cut(rest, ":")
	id, err := url.PathUnescape(escaped)
	if err != nil || id == "" {
		return restCall{}, &httpError{http.StatusBadRequest, codeInvalidParams, "the task id in the path is not valid"}
	}
	switch {
	case verb == "" && method == http.MethodGet:
		c := restCall{op: a2aversion.Get, taskID: id}
		if v := query.Get("historyLength"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return restCall{}, &httpError{http.StatusBadRequest, codeInvalidParams, "historyLength must be a number"}
			}
			c.historyLength = &n
		}
		return c, nil
	case verb == "cancel" && method == http.MethodPost:
		return restCall{op: a2aversion.Cancel, taskID: id}, nil
	case verb == "subscribe" && (method == http.MethodPost || method == http.MethodGet):
		return restCall{op: a2aversion.Subscribe, taskID: id}, nil
	}
	return restCall{}, unsupported
}

// restViaJSONRPC runs a 1.0 REST call as a JSON-RPC call to the agent: route → authenticate →
// authorize → parse → version → exchange → proxy, the answer rewritten into REST.
func (rt *Router) restViaJSONRPC(w http.ResponseWriter, r *http.Request, route *Route, call restCall) {
	fail := func(err error) { rt.fail(w, r, shapeREST, nil, err) }
	caller, err := rt.admit(r, route)
	if err != nil {
		fail(err)
		return
	}
	var params json.RawMessage
	switch call.op {
	case a2aversion.Send, a2aversion.Stream:
		if params, err = readBody(r.Body, r.ContentLength); err != nil {
			fail(err)
			return
		}
		if !json.Valid(params) {
			rt.failREST(w, r, http.StatusBadRequest, codeParseError, "the body is not JSON")
			return
		}
	default:
		p := map[string]any{"id": call.taskID}
		if call.historyLength != nil {
			p["historyLength"] = *call.historyLength
		}
		params, _ = json.Marshal(p)
	}
	agent := route.A2A.jsonrpcVersion(a2aversion.V10)
	t := &translation{op: call.op, agent: agent, client: a2aversion.V10, id: json.RawMessage("1"), rest: true}
	body, err := t.request(t.id, mustJSON(map[string]json.RawMessage{"params": params}))
	if err != nil {
		rt.failREST(w, r, http.StatusBadRequest, codeInvalidParams, "invalid request: "+err.Error())
		return
	}
	rt.metrics.translated.WithLabelValues("1.0-rest", string(agent)).Inc()
	token, err := rt.exchange(r.Context(), caller, route)
	if err != nil {
		fail(err)
		return
	}
	rt.proxy(w, r, upstreamCall{route: route, token: token, body: body, stream: call.op.Streams(), idempotent: call.op.Idempotent(),
		shape: shapeREST, version: agent, translate: t, method: http.MethodPost})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of raw JSON: unreachable
	}
	return b
}

// restError is the body of a 1.0 REST error (google.rpc.Status, as AIP-193 has it): the reason
// in its ErrorInfo is what SDK clients type the error by.
type restError struct {
	Error restStatus `json:"error"`
}

type restStatus struct {
	Code    int             `json:"code"`
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Details []restErrorInfo `json:"details,omitempty"`
}

type restErrorInfo struct {
	Type   string `json:"@type"`
	Reason string `json:"reason"`
	Domain string `json:"domain"`
}

// restErrors are the HTTP status, google.rpc code name and ErrorInfo reason of each A2A error
// code in the 1.0 REST binding.
var restErrors = map[int]struct {
	status       int
	name, reason string
}{
	-32001: {http.StatusNotFound, "NOT_FOUND", "TASK_NOT_FOUND"},
	-32002: {http.StatusBadRequest, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE"},
	-32003: {http.StatusBadRequest, "FAILED_PRECONDITION", "PUSH_NOTIFICATION_NOT_SUPPORTED"},
	-32004: {http.StatusBadRequest, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION"},
	-32005: {http.StatusBadRequest, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED"},
	-32006: {http.StatusBadGateway, "INTERNAL", "INVALID_AGENT_RESPONSE"},
	-32007: {http.StatusBadRequest, "FAILED_PRECONDITION", "EXTENDED_AGENT_CARD_NOT_CONFIGURED"},
	-32008: {http.StatusBadRequest, "FAILED_PRECONDITION", "EXTENSION_SUPPORT_REQUIRED"},
	-32009: {http.StatusBadRequest, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED"},
	-32700: {http.StatusBadRequest, "INVALID_ARGUMENT", "PARSE_ERROR"},
	-32600: {http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_REQUEST"},
	-32602: {http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_PARAMS"},
	-32601: {http.StatusNotImplemented, "UNIMPLEMENTED", "METHOD_NOT_FOUND"},
}

// restErrorBody is a JSON-RPC error of the agent as a 1.0 REST error, and its HTTP status.
func restErrorBody(code int, message string) (int, []byte) {
	e, ok := restErrors[code]
	if !ok {
		e.status, e.name = http.StatusInternalServerError, "INTERNAL"
	}
	s := restStatus{Code: e.status, Status: e.name, Message: message}
	if e.reason != "" {
		s.Details = []restErrorInfo{{Type: "type.googleapis.com/google.rpc.ErrorInfo", Reason: e.reason, Domain: "a2a-protocol.org"}}
	}
	return e.status, mustJSON(restError{s})
}

// failREST answers a REST call the router refuses for an A2A reason (a malformed body).
func (rt *Router) failREST(w http.ResponseWriter, r *http.Request, status, code int, message string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.failure = status
	}
	_, body := restErrorBody(code, message)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
