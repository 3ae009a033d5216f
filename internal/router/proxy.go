package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// upstreamCall is what the proxy stage sends, where, and how its errors are shaped.
type upstreamCall struct {
	route *Route
	// path is what follows the upstream's own path, escaped as the client escaped it.
	path  string
	token string
	// body is a body the router has read already (a JSON-RPC envelope); nil: the client's
	// body is streamed to the agent as it arrives.
	body []byte
	// stream: the answer is a stream (SSE), relayed event by event, with no timeout.
	// idempotent: a read, retried with its body when its connection fails.
	stream, idempotent bool
	shape              shape
	id                 json.RawMessage
	// capture sees the first bytes of the answer (the ACP run index).
	capture func([]byte)
	// version is the A2A version the agent is spoken to in (A2A JSON-RPC only): 1.0 goes with
	// its A2A-Version header, which a 1.0 agent needs to read the call as 1.0.
	version a2aversion.Version
	// translate: the client speaks another version; the answer is translated for it.
	translate *translation
	// method, when set, is the method the agent is called with, the query dropped: a REST call
	// made a JSON-RPC one.
	method string
}

// proxy forwards r to the call's agent with httputil.ReverseProxy: hop-by-hop headers dropped
// (ReverseProxy does it), the exchanged token instead of the caller's, the router's own
// forwarding headers and the trace context. A non-streaming call is bounded by the router's
// timeout; the client going away cancels the call through r's context, which closes the
// connection to the agent.
func (rt *Router) proxy(w http.ResponseWriter, r *http.Request, c upstreamCall) {
	ctx := r.Context()
	if c.stream {
		rt.metrics.openStreams.Inc()
		defer rt.metrics.openStreams.Dec()
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.cfg.Timeout)
		defer cancel()
	}
	up := rt.balancer.pick(c.route, "")
	p := &httputil.ReverseProxy{
		Transport: rt.agentTransport(c.route, c.body, c.idempotent, c.version != "" && c.path == ""),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = up.Scheme, up.Host
			// The path goes out escaped as the client escaped it: decoding it and escaping it
			// anew could turn an encoded slash into a path separator.
			raw := strings.TrimRight(up.EscapedPath(), "/") + c.path
			decoded, err := url.PathUnescape(raw)
			if err != nil {
				decoded = raw // unreachable: the front door refused malformed escapes
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = decoded, raw
			pr.Out.Host = up.Host
			if c.method != "" {
				pr.Out.Method, pr.Out.URL.RawQuery = c.method, ""
				pr.Out.Header.Set("Content-Type", "application/json")
				if c.stream {
					pr.Out.Header.Set("Accept", "text/event-stream")
				} else {
					pr.Out.Header.Set("Accept", "application/json")
				}
			}
			// Never the caller's token: only the one exchanged for this callee. Nor Expect: the
			// router answers it to its client.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Expect")
			if c.token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+c.token)
			}
			switch c.version {
			case a2aversion.V10:
				pr.Out.Header.Set(a2aversion.Header, string(a2aversion.V10))
			case a2aversion.V03:
				pr.Out.Header.Del(a2aversion.Header)
			}
			if c.translate != nil {
				a2aversion.RenameHeaders(pr.Out.Header, c.translate.client, c.translate.agent)
				// The router reads what it translates: the agent answers uncompressed (and the
				// client gets an uncompressed answer, which any HTTP client takes).
				pr.Out.Header.Del("Accept-Encoding")
			}
			setForwarded(pr.Out.Header, pr.In)
			injectTrace(pr.Out)
		},
		// A stream is flushed at every write; ReverseProxy also flushes any text/event-stream
		// answer, and any of unknown length, at once.
		FlushInterval: flushInterval(c.stream),
		BufferPool:    copyBuffers(c.stream),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer (recorded as 499)
			}
			if errors.As(err, new(*bodyError)) { // the client's body broke the call, not the agent
				rt.fail(w, r, c.shape, c.id, clientFault(err))
				return
			}
			if errors.As(err, new(*errUntranslatable)) {
				rt.cfg.Log.Warn("agent answer not translated", "route", c.route.Key(), "error", loggedError(err))
				rt.fail(w, r, c.shape, c.id, err)
				return
			}
			rt.metrics.upstreamErrors.WithLabelValues(c.route.Key()).Inc()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = context.DeadlineExceeded
			}
			rt.cfg.Log.Warn("upstream failed", "route", c.route.Key(), "error", loggedError(err))
			rt.fail(w, r, c.shape, c.id, &upstreamError{route: c.route.Key(), err: err})
		},
	}
	switch {
	case c.capture != nil:
		p.ModifyResponse = func(resp *http.Response) error {
			resp.Body = &captureBody{ReadCloser: resp.Body, fn: c.capture}
			return nil
		}
	case c.translate != nil:
		p.ModifyResponse = func(resp *http.Response) error {
			return c.translate.translateResponse(resp, rt.cfg.MaxBodyBytes)
		}
	}
	out := r.WithContext(ctx)
	if c.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(c.body))
		out.ContentLength = int64(len(c.body))
	}
	p.ServeHTTP(w, out)
}

// agentTransport is the transport of a call to route: the router's one transport, with a
// failing endpoint ejected, and an idempotent request (with its body) whose connection failed
// retried, on another endpoint when there is one. An A2A JSON-RPC call (jsonrpc) to an agent
// that serves 1.0 REST alone is made over REST.
func (rt *Router) agentTransport(route *Route, body []byte, idempotent, jsonrpc bool) http.RoundTripper {
	t := rt.agents
	if jsonrpc && route.A2A.overREST {
		t = &jsonrpcOverREST{next: t, limit: rt.cfg.MaxBodyBytes}
	}
	if idempotent && body != nil {
		t = &retryTransport{next: t, attempts: 3, body: body,
			reroute: func(failed string) string { return rt.balancer.pick(route, failed).Host }}
	}
	return t
}

// agentFailed tells the failures that eject an agent's endpoint (it refused or dropped the
// connection, or broke HTTP) from those that say nothing of its health: a timeout (a slow
// answer), or answer headers larger than the router reads (net/http exports that error only as
// text).
func agentFailed(err error) bool {
	return !isTimeout(err) && !errors.As(err, new(*bodyError)) && !strings.Contains(err.Error(), "server response headers exceeded")
}

// The proxy's copy buffers, smaller than ReverseProxy's default 32 KiB: an answer is copied in
// 8 KiB reads; a stream, which holds its buffer for its whole life and whose events are small
// (an LLM's tokens, a status), in 2 KiB reads (1,000 streams: 2 MiB, not 32).
var (
	answerBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}}
	streamBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 2<<10); return &b }}}
)

func copyBuffers(stream bool) httputil.BufferPool {
	if stream {
		return streamBuffers
	}
	return answerBuffers
}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *(p.pool.Get().(*[]byte)) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

func flushInterval(stream bool) time.Duration {
	if stream {
		return -1
	}
	return 0
}

// captureBody hands the first bytes of a response to fn (for the ACP run index).
type captureBody struct {
	io.ReadCloser
	fn   func([]byte)
	seen int
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if c.seen < 64<<10 && n > 0 {
		c.fn(p[:n])
		c.seen += n
	}
	return n, err
}
