package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// The one place errors become answers: statusOf maps an error of any stage to an HTTP status, a
// JSON-RPC code and a message for the caller, and fail writes it in the shape of the API the
// request addressed.

// shape is how an API writes its errors.
type shape int

const (
	// shapeJSON: {"error": {"code": "Not Found", "message": ...}}, the router's own.
	shapeJSON shape = iota
	// shapeRPC: a JSON-RPC error object carrying the request's id (A2A JSON-RPC).
	shapeRPC
	// shapeACP: ACP's {"code": "not_found", "message": ...}.
	shapeACP
	// shapeREST: A2A 1.0's HTTP+JSON binding, google.rpc.Status:
	// {"error": {"code": 404, "status": "NOT_FOUND", "message": ...}}.
	shapeREST
	// shapeREST03: A2A 0.3's HTTP+JSON binding, a JSON-RPC error object without the envelope:
	// {"code": -32044, "message": ...}.
	shapeREST03
)

// restShapes are the REST bindings' error shapes by version.
var restShapes = map[a2aversion.Version]shape{a2aversion.V03: shapeREST03, a2aversion.V10: shapeREST}

// shapeOf is the shape of errors for a request no handler has taken yet.
func shapeOf(r *http.Request) shape {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/acp/"):
		return shapeACP
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/a2a/") && strings.Count(p, "/") == 3:
		return shapeRPC
	case strings.HasPrefix(p, "/a2a/") && strings.Count(p, "/") > 3:
		return restShape(pathTail(r, 3))
	}
	return shapeJSON
}

// restShape is the shape of errors below an agent's URL: 0.3 REST's under /v1, 1.0 REST's
// elsewhere, but for its card, which has the router's own.
func restShape(tail string) shape {
	switch {
	case strings.HasPrefix(tail, "/.well-known/"):
		return shapeJSON
	case strings.HasPrefix(tail, "/v1/"):
		return shapeREST03
	}
	return shapeREST
}

// httpError is an error whose status, JSON-RPC code and message the stage that found it chose.
type httpError struct {
	status, code int
	message      string
}

func (e *httpError) Error() string { return e.message }

// refusal is a request the router does not read — malformed, too large, too slow — answered
// with its status in every API's shape (a JSON-RPC error too: the request is not one).
type refusal struct {
	status  int
	message string
}

func (e *refusal) Error() string { return e.message }

var errBodyTooLarge = &refusal{http.StatusRequestEntityTooLarge, "request body too large"}

// upstreamError is a call to an agent or tool that failed; the caller is told which, the log
// why.
type upstreamError struct {
	route string
	err   error
}

func (e *upstreamError) Error() string { return "agent " + e.route + " is unavailable" }
func (e *upstreamError) Unwrap() error { return e.err }

type forbiddenError struct{ reason string }

func (e *forbiddenError) Error() string { return "forbidden: " + e.reason }

// noRouteError: no callee of that kind, namespace and name.
type noRouteError struct{ kind, key string }

func (e *noRouteError) Error() string { return "no such " + e.kind + ": " + e.key }

// statusOf maps an error of any stage to the HTTP status the REST-shaped routes answer (and
// metrics and logs record), the JSON-RPC code and the message for the caller.
func statusOf(err error) (status, code int, message string) {
	var he *httpError
	var rf *refusal
	var ae *AuthError
	var fe *forbiddenError
	var xe *ExchangeError
	var ue *upstreamError
	switch {
	case errors.As(err, &he):
		return he.status, he.code, he.message
	case errors.As(err, &rf):
		return rf.status, codeInvalidRequest, rf.message
	case errors.As(err, &ae):
		return http.StatusUnauthorized, codeUnauthenticated, err.Error()
	case errors.As(err, &fe), errors.As(err, &xe):
		return http.StatusForbidden, codeForbidden, err.Error()
	case errors.As(err, new(*errUntranslatable)):
		return http.StatusBadGateway, codeInvalidAgentResponse, err.Error()
	case errors.As(err, new(*noRouteError)):
		return http.StatusNotFound, codeNoSuchAgent, err.Error()
	case errors.As(err, &ue) && isTimeout(ue.err):
		return http.StatusGatewayTimeout, codeTimeout, "agent " + ue.route + " did not answer in time"
	case isTimeout(err):
		return http.StatusGatewayTimeout, codeTimeout, err.Error()
	}
	return http.StatusBadGateway, codeUnavailable, err.Error()
}

// fail answers err in shape s (id: the JSON-RPC request's, nil when unknown).
func (rt *Router) fail(w http.ResponseWriter, r *http.Request, s shape, id json.RawMessage, err error) {
	status, code, message := statusOf(err)
	if rec, ok := w.(*statusRecorder); ok {
		rec.failure = status
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kagenti-router"`)
	}
	w.Header().Set("Content-Type", "application/json")
	var body []byte
	switch s {
	case shapeRPC:
		if !errors.As(err, new(*refusal)) {
			status = rpcHTTPStatus(code)
		}
		body = rpcErrorBody(id, &rpcError{Code: code, Message: message})
	case shapeACP:
		body, _ = json.Marshal(map[string]string{"code": acpCode(status), "message": message})
	case shapeREST:
		if code == codeInvalidAgentResponse {
			status, body = restErrorBody(code, message)
		} else {
			body = mustJSON(restError{restStatus{Code: status, Status: rpcStatusName(status), Message: message}})
		}
	case shapeREST03: // (statusOf already gives InvalidAgentResponse its 502)
		body = mustJSON(rpcError{Code: code, Message: message})
	default:
		body = apiErrorBody(status, message)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if b, ok := r.Body.(*clientBody); ok && status == http.StatusRequestEntityTooLarge && r.Header.Get("Expect") == "" {
		b.linger(w) // (a client waiting for 100 Continue sends nothing more)
	}
}

// apiErrorBody is the error the router answers in its own name (not an agent's, nor A2A's).
func apiErrorBody(status int, message string) []byte {
	return []byte(fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`+"\n", http.StatusText(status), message))
}

// rpcStatusName is google.rpc's name of the code an HTTP status stands for (AIP-193).
func rpcStatusName(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "INTERNAL"
}

// acpCode is ACP's error code for a status.
func acpCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	}
	if status < 500 {
		return "invalid_input"
	}
	return "server_error"
}

func isTimeout(err error) bool {
	var ne net.Error
	// context.DeadlineExceeded is a net.Error whose Timeout is true.
	return errors.As(err, &ne) && ne.Timeout()
}

// loggedError is an upstream error as the log gets it: without the bytes of the agent's answer
// that header errors quote (net/http's malformed line, in quotes), which may hold the agent's
// cookies or tokens.
func loggedError(err error) string {
	return quoted.ReplaceAllLiteralString(err.Error(), `"(redacted)"`)
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
