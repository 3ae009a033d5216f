package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// a2aJSONRPC serves A2A JSON-RPC, POST /a2a/{ns}/{name}: route → authenticate → authorize →
// parse → version → exchange → proxy. Every failure is a JSON-RPC error object carrying the
// request's id.
//
// The envelope is parsed — and the body read whole, up to MaxBodyBytes — only once the caller
// is authorized: the method decides whether the answer is a stream and whether the call may be
// retried, and an unknown method is refused before anything reaches the agent. An earlier
// failure reads at most peekBytes of the body, for the id of its answer.
func (rt *Router) a2aJSONRPC(w http.ResponseWriter, r *http.Request) {
	var env envelope
	parsed := false
	fail := func(err error) {
		if !parsed {
			env.ID = peekID(r.Body)
		}
		rt.fail(w, r, shapeRPC, env.ID, err)
	}
	route, err := rt.route(r.Context(), r.PathValue("ns"), r.PathValue("name"), a2aAgent)
	if err != nil {
		fail(err)
		return
	}
	caller, err := rt.admit(r, route)
	if err != nil {
		fail(err)
		return
	}
	env, body, err := parseRPC(r.Body, r.ContentLength)
	parsed = true
	if err != nil {
		fail(err)
		return
	}
	op, clientVersion, ok := a2aversion.ParseMethod(env.Method)
	if !ok {
		fail(&httpError{http.StatusOK, codeMethodNotFound, "method not found: " + env.Method})
		return
	}
	rt.metrics.method(env.Method).Inc()
	// The version stage: the call goes to the agent in the client's version when the agent
	// speaks it, else translated into the agent's.
	call := upstreamCall{route: route, body: body, stream: op.Streams(), idempotent: op.Idempotent(),
		shape: shapeRPC, id: env.ID, version: route.A2A.jsonrpcVersion(clientVersion)}
	// An agent called over its REST gets the call through a2a-go's JSON-RPC handler, which knows
	// only the standard method names and writes the id back re-encoded (as a float64): the call
	// is rewritten for it, and the client's own id put back, as for a translation.
	if call.version != clientVersion || route.A2A.overREST {
		call.translate = &translation{op: op, agent: call.version, client: clientVersion, id: env.ID}
		agentID := env.ID
		if route.A2A.overREST {
			agentID = json.RawMessage("1") // any id a2a-go reads: the client's comes back from the translation
		}
		if call.body, err = call.translate.request(agentID, body); err != nil {
			fail(&httpError{http.StatusOK, codeInvalidParams, "invalid params for " + env.Method + ": " + err.Error()})
			return
		}
		if call.version != clientVersion {
			rt.metrics.translated.WithLabelValues(string(clientVersion), string(call.version)).Inc()
		}
	}
	if op == a2aversion.ExtendedCard {
		// The extended card names the agent's own URLs: it is answered, like the public card,
		// with the interfaces the router serves in their place.
		if call.translate == nil {
			call.translate = &translation{op: op, agent: call.version, client: clientVersion, id: env.ID}
		}
		call.translate.cardURL = rt.agentURL(route)
	}
	if call.token, err = rt.exchange(r.Context(), caller, route); err != nil {
		fail(err)
		return
	}
	rt.proxy(w, r, call)
}

// parseRPC is the parse stage of a JSON-RPC call: it reads the body (bounded by the body limit
// of the chain) and checks its envelope.
func parseRPC(body io.Reader, size int64) (envelope, []byte, error) {
	data, err := readBody(body, size)
	if err != nil {
		return envelope{}, nil, err
	}
	env, perr := parseEnvelope(data)
	if perr != nil {
		return env, nil, &httpError{http.StatusBadRequest, perr.Code, perr.Message}
	}
	return env, data, nil
}

// readBody reads a body the router must hold whole. A body of known size (Content-Length, which
// the chain has already held to the body limit) is read into a buffer of that size: io.ReadAll
// would grow one by doubling, up to twice as large.
func readBody(body io.Reader, size int64) ([]byte, error) {
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, clientFault(err)
	}
	return buf.Bytes(), nil
}

// clientFault is the refusal for a body the client failed to send: too large (413), too slow
// (408) or malformed (400).
func clientFault(err error) error {
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return errBodyTooLarge
	case isTimeout(err):
		return &refusal{http.StatusRequestTimeout, "request not received in time"}
	}
	return &refusal{http.StatusBadRequest, "the request body could not be read"}
}

// peekBytes is how much of the body a call refused before its parse stage reads for its id.
const peekBytes = 16 << 10

// peekID is the id of a JSON-RPC request whose body fits in peekBytes (nil otherwise: the
// answer's id is null, as JSON-RPC has it when the id cannot be told).
func peekID(body io.Reader) json.RawMessage {
	data, err := io.ReadAll(io.LimitReader(body, peekBytes+1))
	if err != nil || len(data) > peekBytes {
		return nil
	}
	env, _ := parseEnvelope(data)
	return env.ID
}
