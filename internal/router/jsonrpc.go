package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/valyala/fastjson"
)

// JSON-RPC 2.0's error codes the router answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternalError  = -32603
)

// The router's own JSON-RPC errors: in JSON-RPC's implementation-defined server-error range
// (-32000 to -32099), clear of the codes A2A assigns there (-32001 to -32009: TaskNotFound,
// TaskNotCancelable, PushNotificationNotSupported, UnsupportedOperation,
// ContentTypeNotSupported, InvalidAgentResponse, ...), which clients map to A2A errors the
// router's are not. The last two digits echo the HTTP status the router's other routes answer
// for the same failure. docs/guides/router.md lists them.
const (
	codeUnauthenticated = -32041 // no bearer token, or one the router does not accept
	codeForbidden       = -32043 // the callee's policy refuses the caller, or Keycloak the exchange
	codeNoSuchAgent     = -32044 // no A2A agent of that namespace and name
	codeUnavailable     = -32052 // the agent could not be reached, or its answer broke HTTP
	codeTimeout         = -32054 // the agent did not answer in time
)

// codeInvalidAgentResponse is A2A's InvalidAgentResponse, the one A2A code the router answers
// with: the agent's answer could not be read in the version it speaks, so could not be
// translated into the client's.
const codeInvalidAgentResponse = -32006

// rpcHTTPStatus is the HTTP status of a JSON-RPC error answer. The JSON-RPC binding carries
// errors in the body with 200, and its SDKs look for them only there (a2a-go's client refuses
// any other status, and a JS client reports a bare "HTTP error"). The one exception is the
// A2A specification's (section 4.4): a request without valid credentials is answered 401 with
// WWW-Authenticate.
func rpcHTTPStatus(code int) int {
	if code == codeUnauthenticated {
		return http.StatusUnauthorized
	}
	return http.StatusOK
}

// envelope is the part of a JSON-RPC request the router reads.
type envelope struct {
	JSONRPC string
	// ID is the request's id as it was sent (a string, a number or null), for the answer.
	ID     json.RawMessage
	Method string
}

var errBatch = errors.New("JSON-RPC batches are not supported by A2A")

// envelopeParsers parse request bodies with fastjson: it validates the whole body and reads
// the three fields the router needs without building the params (every call goes through
// here; encoding/json took an eighth of the router's CPU).
var envelopeParsers fastjson.ParserPool

// parseEnvelope validates a JSON-RPC 2.0 request body.
func parseEnvelope(body []byte) (envelope, *rpcError) {
	var env envelope
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return env, &rpcError{Code: codeInvalidRequest, Message: errBatch.Error()}
	}
	p := envelopeParsers.Get()
	defer envelopeParsers.Put(p)
	v, err := p.ParseBytes(trimmed)
	if err != nil || v.Type() != fastjson.TypeObject {
		return env, &rpcError{Code: codeParseError, Message: "parse error: the body is not a JSON object"}
	}
	// A member given twice is refused: parsers disagree on which one counts (fastjson takes the
	// first, most others the last; Go's encoding/json also matches names in any case), and the
	// router must read the method the agent will.
	obj, _ := v.Object()
	var jsonrpcs, ids, methods int
	obj.Visit(func(key []byte, _ *fastjson.Value) {
		switch {
		case bytes.EqualFold(key, []byte("jsonrpc")):
			jsonrpcs++
		case bytes.EqualFold(key, []byte("id")):
			ids++
		case bytes.EqualFold(key, []byte("method")):
			methods++
		}
	})
	if jsonrpcs > 1 || ids > 1 || methods > 1 {
		return env, &rpcError{Code: codeInvalidRequest, Message: `invalid request: "jsonrpc", "id" and "method" may each appear once`}
	}
	if id := v.Get("id"); id != nil {
		switch id.Type() {
		case fastjson.TypeString, fastjson.TypeNumber, fastjson.TypeNull:
			env.ID = id.MarshalTo(nil)
		default:
			return env, &rpcError{Code: codeInvalidRequest, Message: "invalid request: id must be a string, number or null"}
		}
	}
	env.JSONRPC = string(v.GetStringBytes("jsonrpc"))
	env.Method = string(v.GetStringBytes("method"))
	if env.JSONRPC != "2.0" || env.Method == "" {
		return env, &rpcError{Code: codeInvalidRequest, Message: `invalid request: need "jsonrpc": "2.0" and a method`}
	}
	return env, nil
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// rpcErrorBody is the JSON-RPC response carrying e for request id (null when unknown).
func rpcErrorBody(id json.RawMessage, e *rpcError) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	type answer struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *rpcError       `json:"error"`
	}
	body, err := json.Marshal(answer{"2.0", id, e})
	if err != nil { // an id encoding/json does not take back: answer without it
		body, _ = json.Marshal(answer{"2.0", json.RawMessage("null"), e})
	}
	return append(body, '\n')
}
