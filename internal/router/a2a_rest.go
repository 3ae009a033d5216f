package router

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// a2aREST serves A2A's HTTP+JSON binding below /a2a/{ns}/{name}: 1.0's paths, and 0.3's,
// which are the same under /v1. A call in a version the agent serves over REST is forwarded as
// it is, its body streamed. A call to an agent that does not serve that version over REST is
// translated into a JSON-RPC call in the version the agent speaks, and its answer back into
// the client's REST: so every agent that speaks JSON-RPC has the REST binding of both versions.
func (rt *Router) a2aREST(w http.ResponseWriter, r *http.Request) {
	path := pathTail(r, 3)
	shape := restShape(path)
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), a2aAgent)
	if err != nil {
		rt.fail(w, r, shape, nil, err)
		return
	}
	client, call := a2aversion.V10, path
	if tail, ok := strings.CutPrefix(path, "/v1"); ok && strings.HasPrefix(tail, "/") {
		client, call = a2aversion.V03, tail
	}
	if shape != shapeJSON && route.A2A.translatesREST(client) {
		rt.restViaJSONRPC(w, r, route, client, call)
		return
	}
	c := upstreamCall{route: route, path: path, stream: streamAsked(r, path), shape: shape}
	if client == a2aversion.V10 && route.A2A.card != nil {
		c.version = a2aversion.V10 // a 1.0 REST path (0.3's are under /v1)
	}
	rt.forward(w, r, c)
}

// translatesREST tells whether the router serves REST of version v for the agent by
// translation: the agent speaks JSON-RPC and does not serve that version's REST itself.
func (s a2aServed) translatesREST(v a2aversion.Version) bool {
	return len(s.jsonrpc) > 0 && !slices.Contains(s.rest, v)
}

// restCall is a REST call the router can translate.
type restCall struct {
	op     a2aversion.Op
	taskID string
	// historyLength is GetTask's query parameter, when given.
	historyLength *int
}

// extendedCardPaths are the REST paths of the authenticated extended card, by version.
var extendedCardPaths = map[a2aversion.Version]string{a2aversion.V03: "/card", a2aversion.V10: "/extendedAgentCard"}

// parseRESTCall reads a REST call of version v from its method and path (below the agent's
// URL, and below /v1 for 0.3) and query: send, stream, get, cancel, subscribe and the extended
// card, the ones the router translates. Any other is refused as UnsupportedOperation: the
// agent speaks JSON-RPC only, and the router does not forward what it would not understand.
func parseRESTCall(v a2aversion.Version, method, path string, query url.Values) (restCall, *httpError) {
	unsupported := &httpError{http.StatusBadRequest, -32004, "this agent speaks JSON-RPC; through the router its HTTP+JSON binding has " +
		"message:send, message:stream, tasks/{id}, tasks/{id}:cancel, tasks/{id}:subscribe and " + strings.TrimPrefix(extendedCardPaths[v], "/") +
		" (call JSON-RPC for the others)"}
	switch {
	case method == http.MethodPost && path == "/message:send":
		return restCall{op: a2aversion.Send}, nil
	case method == http.MethodPost && path == "/message:stream":
		return restCall{op: a2aversion.Stream}, nil
	case method == http.MethodGet && path == extendedCardPaths[v]:
		return restCall{op: a2aversion.ExtendedCard}, nil
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
		// (The proto's JSON names it historyLength; the JS SDK's 0.3 server reads history_length too.)
		if s := cmp.Or(query.Get("historyLength"), query.Get("history_length")); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return restCall{}, &httpError{http.StatusBadRequest, codeInvalidParams, "historyLength must be a number, 0 or more"}
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

// restViaJSONRPC runs a REST call of version client, at path below the agent's URL (and /v1),
// as a JSON-RPC call to the agent: route → authenticate → authorize → parse → version →
// exchange → proxy, the answer rewritten into the client's REST.
func (rt *Router) restViaJSONRPC(w http.ResponseWriter, r *http.Request, route *Route, client a2aversion.Version, path string) {
	shape := restShapes[client]
	fail := func(err error) { rt.fail(w, r, shape, nil, err) }
	caller, err := rt.admit(r, route)
	if err != nil {
		fail(err)
		return
	}
	call, perr := parseRESTCall(client, r.Method, path, r.URL.Query())
	if perr != nil {
		rt.failREST(w, r, client, perr.status, perr.code, perr.message)
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
			rt.failREST(w, r, client, http.StatusBadRequest, codeParseError, "the body is not JSON")
			return
		}
		if client == a2aversion.V03 {
			if params, err = a2aversion.REST03Params(params); err != nil {
				rt.failREST(w, r, client, http.StatusBadRequest, codeInvalidParams, "the body is not a 0.3 SendMessageRequest: "+err.Error())
				return
			}
		}
	case a2aversion.ExtendedCard:
		params = json.RawMessage(`{}`)
	default:
		p := map[string]any{"id": call.taskID}
		if call.historyLength != nil {
			p["historyLength"] = *call.historyLength
		}
		params, _ = json.Marshal(p)
	}
	agent := route.A2A.jsonrpcVersion(client)
	t := &translation{op: call.op, agent: agent, client: client, id: json.RawMessage("1"), rest: true}
	if call.op == a2aversion.ExtendedCard {
		t.cardURL = rt.agentURL(route) // answered with the router's interfaces, as the public card
	}
	body, err := t.request(t.id, mustJSON(map[string]json.RawMessage{"params": params}))
	if err != nil {
		rt.failREST(w, r, client, http.StatusBadRequest, codeInvalidParams, "invalid request: "+err.Error())
		return
	}
	rt.metrics.translated.WithLabelValues(string(client)+"-rest", string(agent)).Inc()
	token, err := rt.exchange(r.Context(), caller, route)
	if err != nil {
		fail(err)
		return
	}
	rt.proxy(w, r, upstreamCall{route: route, token: token, body: body, stream: call.op.Streams(), idempotent: call.op.Idempotent(),
		shape: shape, version: agent, translate: t, method: http.MethodPost})
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

// rest03Statuses are the HTTP statuses of A2A errors in the 0.3 REST binding, as @a2a-js/sdk's
// 0.3 server gives them; any other error is a 500.
var rest03Statuses = map[int]int{
	codeParseError:    http.StatusBadRequest,
	-32600:            http.StatusBadRequest, // InvalidRequest
	codeInvalidParams: http.StatusBadRequest,
	-32601:            http.StatusNotFound, // MethodNotFound
	-32001:            http.StatusNotFound, // TaskNotFound
	-32002:            http.StatusConflict, // TaskNotCancelable
	-32003:            http.StatusBadRequest,
	-32004:            http.StatusBadRequest,
}

// rest03ErrorBody is a JSON-RPC error of the agent as a 0.3 REST error, and its HTTP status. The
// 0.3 binding's errors are the JSON-RPC error object itself, {"code": -32001, "message": ...},
// which the JS SDK's REST client types by code.
func rest03ErrorBody(code int, message string, data json.RawMessage) (int, []byte) {
	status, ok := rest03Statuses[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == codeInvalidAgentResponse {
		status = http.StatusBadGateway
	}
	e := rpcError{Code: code, Message: message}
	if len(data) > 0 {
		e.Data = data
	}
	return status, mustJSON(e)
}

// restErrorOf is the REST error body of version v for an A2A error (with the agent's data,
// which 0.3's carries), and its HTTP status.
func restErrorOf(v a2aversion.Version, code int, message string, data json.RawMessage) (int, []byte) {
	if v == a2aversion.V03 {
		return rest03ErrorBody(code, message, data)
	}
	return restErrorBody(code, message)
}

// failREST answers a REST call of version v that the router refuses for an A2A reason (a
// malformed body).
func (rt *Router) failREST(w http.ResponseWriter, r *http.Request, v a2aversion.Version, status, code int, message string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.failure = status
	}
	_, body := restErrorOf(v, code, message, nil)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
