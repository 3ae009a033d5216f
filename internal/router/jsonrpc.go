package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
)

// A2A JSON-RPC methods the router forwards, by protocol version. Both are accepted on every
// agent: the router passes the method through unchanged and the agent answers in its version.
var (
	a2aMethodsV03 = map[string]methodInfo{
		"message/send":                        {},
		"message/stream":                      {stream: true},
		"tasks/get":                           {idempotent: true},
		"tasks/list":                          {idempotent: true},
		"tasks/cancel":                        {},
		"tasks/resubscribe":                   {stream: true},
		"tasks/pushNotificationConfig/set":    {},
		"tasks/pushNotificationConfig/get":    {idempotent: true},
		"tasks/pushNotificationConfig/list":   {idempotent: true},
		"tasks/pushNotificationConfig/delete": {},
		"agent/getAuthenticatedExtendedCard":  {idempotent: true},
	}
	a2aMethodsV10 = map[string]methodInfo{
		"SendMessage":                      {},
		"SendStreamingMessage":             {stream: true},
		"GetTask":                          {idempotent: true},
		"ListTasks":                        {idempotent: true},
		"CancelTask":                       {},
		"SubscribeToTask":                  {stream: true},
		"CreateTaskPushNotificationConfig": {},
		"GetTaskPushNotificationConfig":    {idempotent: true},
		"ListTaskPushNotificationConfigs":  {idempotent: true},
		"ListTaskPushNotificationConfig":   {idempotent: true},
		"DeleteTaskPushNotificationConfig": {},
		"GetExtendedAgentCard":             {idempotent: true},
	}
)

type methodInfo struct {
	stream     bool
	idempotent bool
}

// lookupMethod finds a method in either version.
func lookupMethod(name string) (methodInfo, bool) {
	if m, ok := a2aMethodsV03[name]; ok {
		return m, true
	}
	m, ok := a2aMethodsV10[name]
	return m, ok
}

// JSON-RPC 2.0 error codes (and A2A's).
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInternalError  = -32603
	// Server errors in the implementation-defined range for what the router refuses.
	codeUnauthorized = -32001
	codeForbidden    = -32003
	codeUnavailable  = -32004
	codeTimeout      = -32005
)

// envelope is the part of a JSON-RPC request the router reads.
type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

var errBatch = errors.New("JSON-RPC batches are not supported by A2A")

// parseEnvelope validates a JSON-RPC 2.0 request body.
func parseEnvelope(body []byte) (envelope, *rpcError) {
	var env envelope
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return env, &rpcError{Code: codeInvalidRequest, Message: errBatch.Error()}
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return env, &rpcError{Code: codeParseError, Message: "parse error: the body is not a JSON object"}
	}
	if env.JSONRPC != "2.0" || env.Method == "" {
		return env, &rpcError{Code: codeInvalidRequest, Message: `invalid request: need "jsonrpc": "2.0" and a method`}
	}
	if len(env.ID) > 0 {
		var id any
		if json.Unmarshal(env.ID, &id) != nil {
			return env, &rpcError{Code: codeInvalidRequest, Message: "invalid request: bad id"}
		}
		switch id.(type) {
		case string, float64, nil:
		default:
			return env, &rpcError{Code: codeInvalidRequest, Message: "invalid request: id must be a string, number or null"}
		}
	}
	return env, nil
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// writeRPCError answers with a JSON-RPC error object for request id (null when unknown).
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, e *rpcError) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *rpcError       `json:"error"`
	}{"2.0", id, e})
}
