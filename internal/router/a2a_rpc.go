package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// a2aJSONRPC handles POST /a2a/{ns}/{name} on fasthttp: envelope checks, authn and policy,
// token exchange, then the call to the agent. Every failure is a JSON-RPC error object carrying
// the request's id.
func (rt *Router) a2aJSONRPC(c *fasthttp.RequestCtx, ns, name string) {
	call := rt.newRPCCall(c)
	defer func() {
		if p := recover(); p != nil {
			rt.cfg.Log.Error("panic", "path", call.path, "panic", fmt.Sprint(p))
			call.fail(fasthttp.StatusInternalServerError, codeInternalError, "internal error")
		}
		if !call.streaming {
			call.finish()
		}
	}()
	plan, err := call.plan(ns, name, false)
	if err != nil {
		call.refuse(err)
		return
	}
	rt.metrics.method(plan.method).Inc()
	if plan.stream {
		call.stream(plan.route, plan.token, plan.body)
		return
	}
	call.send(plan.route, plan.token, plan.body, plan.idempotent)
}

func (rt *Router) newRPCCall(c *fasthttp.RequestCtx) *rpcCall {
	call := &rpcCall{rt: rt, c: c, start: time.Now(), path: string(c.Path()), traceparent: string(c.Request.Header.Peek("traceparent"))}
	call.startSpan()
	return call
}

// startSpan starts the call's span, continuing the caller's trace; without an exporter and
// without a trace to continue there is nothing to record.
func (call *rpcCall) startSpan() {
	if call.rt.exporting || call.traceparent != "" {
		call.ctx, call.span = call.rt.startSpan(context.Background(), requestHeaderCarrier{&call.c.Request.Header}, fasthttp.MethodPost, call.path)
	} else {
		call.ctx, call.span = context.Background(), trace.SpanFromContext(context.Background())
	}
}

// rpcPlan is an A2A JSON-RPC call checked, authenticated and authorized: what goes to which agent.
type rpcPlan struct {
	methodInfo
	method string
	route  *Route
	token  string
	body   []byte
}

// planError is a call refused before anything went to the agent; status is the HTTP status
// recorded for it (rpcCall.fail).
type planError struct {
	status, code int
	message      string
}

func (e *planError) Error() string { return e.message }

// errWouldWait: the call needs a step that waits (a key fetch, a signature check, a token
// exchange at Keycloak), and was planned with cachedOnly.
var errWouldWait = errors.New("the call needs a step that waits")

// plan checks the envelope, finds the agent, authenticates and authorizes the caller and gets the
// token for the agent. With cachedOnly it uses only what the verifier and the exchanger hold
// already, and returns errWouldWait for anything else; the event loops plan this way, as they
// must never wait (front.go).
func (call *rpcCall) plan(ns, name string, cachedOnly bool) (rpcPlan, error) {
	rt := call.rt
	body := call.c.PostBody()
	env, perr := parseEnvelope(body)
	call.id = env.ID
	if perr != nil {
		return rpcPlan{}, &planError{fasthttp.StatusBadRequest, perr.Code, perr.Message}
	}
	method, ok := lookupMethod(env.Method)
	if !ok {
		return rpcPlan{}, &planError{fasthttp.StatusOK, codeMethodNotFound, "method not found: " + env.Method}
	}
	route := rt.cfg.Registry.Lookup(ns, name)
	if route == nil || route.Type != contract.TypeAgent || route.Protocol != "a2a" {
		return rpcPlan{}, &planError{fasthttp.StatusNotFound, codeNoSuchAgent, "no such A2A agent: " + ns + "/" + name}
	}
	var caller *Caller
	var err error
	if cachedOnly {
		caller, err = rt.cachedCaller(call.c.Request.Header.Peek("Authorization"), route, call.start)
	} else {
		caller, err = rt.authenticateHeader(call.ctx, string(call.c.Request.Header.Peek("Authorization")), route)
	}
	if err != nil {
		return rpcPlan{}, err
	}
	var token string
	if cachedOnly {
		token, err = rt.cachedUpstreamToken(caller, route, call.start)
	} else {
		token, err = rt.upstreamToken(call.ctx, caller, route)
	}
	if err != nil {
		return rpcPlan{}, err
	}
	return rpcPlan{methodInfo: method, method: env.Method, route: route, token: token, body: body}, nil
}

// refuse answers a call its plan refused.
func (call *rpcCall) refuse(err error) {
	var pe *planError
	if errors.As(err, &pe) {
		call.fail(pe.status, pe.code, pe.message)
		return
	}
	status, code := statusOf(err)
	if status == http.StatusUnauthorized {
		call.c.Response.Header.Set("WWW-Authenticate", `Bearer realm="kagenti-router"`)
	}
	call.fail(status, code, err.Error())
}

// rpcCall is one A2A JSON-RPC request in flight.
type rpcCall struct {
	rt          *Router
	c           *fasthttp.RequestCtx
	ctx         context.Context
	span        trace.Span
	start       time.Time
	path        string
	traceparent string
	id          json.RawMessage
	// status is the failure the call ended with, as an HTTP status, for metrics, span and
	// log: a JSON-RPC error is answered with 200 (rpcHTTPStatus), which says nothing of it.
	status int
	// streaming: the response is a stream the server relays after the handler returned; the
	// request is finished when the stream ends.
	streaming bool
}

func (call *rpcCall) finish() { call.finishAt(time.Now()) }

// finishAt records the call as ended at end.
func (call *rpcCall) finishAt(end time.Time) {
	status := call.c.Response.StatusCode()
	if call.status != 0 {
		status = call.status
	}
	call.rt.finish(call.ctx, call.span, fasthttp.MethodPost, call.path, status, end.Sub(call.start), call.traceparent)
}

// fail answers the call with a JSON-RPC error, with the HTTP status the JSON-RPC binding
// expects for code; status is the failure as the router records it.
func (call *rpcCall) fail(status, code int, message string) {
	call.status = status
	call.c.Response.ResetBody()
	call.c.Response.Header.SetContentType("application/json")
	call.c.SetStatusCode(rpcHTTPStatus(code))
	call.c.SetBody(rpcErrorBody(call.id, &rpcError{Code: code, Message: message}))
}

// failUpstream shapes a failed call to the agent; the cause goes to the log, not the caller.
func (call *rpcCall) failUpstream(route *Route, err error) {
	call.rt.metrics.upstreamErrors.WithLabelValues(route.Key()).Inc()
	call.rt.cfg.Log.Warn("upstream failed", "route", route.Key(), "error", loggedError(err))
	status, code := statusOf(err)
	call.fail(status, code, fmt.Sprintf("agent %s is unavailable", route.Key()))
}

// send makes a non-streaming call through the router's net/http transport, as the other routes'
// calls, bounded by the router's timeout. The client hanging up ends it at once: the agent's
// connection is closed, as a stream's is, and the agent stops working for nobody. Idempotent
// reads (GetTask, tasks/get, ...) whose connection failed are retried, on another endpoint when
// there is one; nothing else is: a second SendMessage could act twice.
func (call *rpcCall) send(route *Route, token string, body []byte, idempotent bool) {
	rt := call.rt
	ctx, cancel := context.WithTimeout(call.ctx, rt.cfg.Timeout)
	defer cancel()
	// The client hanging up cancels ctx; its deadline passing is the timeout.
	stopWatch := rt.hangups.watch(call.c.Conn(), cancel)
	defer stopWatch()
	up := rt.balancer.pick(route, "")
	out, err := call.stdRequest(ctx, up, token, body)
	if err != nil {
		call.failUpstream(route, err)
		return
	}
	resp, err := rt.agentTransport(route, body, idempotent).RoundTrip(out)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBodyBytes+1))
		resp.Body.Close()
		if err == nil && len(answer) > maxUpstreamBodyBytes {
			err = fmt.Errorf("the agent's answer exceeds %d bytes", maxUpstreamBodyBytes)
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			call.c.SetStatusCode(499) // the client went away: nobody to answer
			return
		}
		call.failUpstream(route, err)
		return
	}
	h := &call.c.Response.Header
	h.SetStatusCode(resp.StatusCode)
	for k, values := range resp.Header {
		if relayedAnswerHeader([]byte(k)) {
			for _, v := range values {
				h.Add(k, v)
			}
		}
	}
	call.c.Response.SetBody(answer)
}

// stdRequest is the request to the agent (upstreamRequest's headers) for net/http.
func (call *rpcCall) stdRequest(ctx context.Context, up *url.URL, token string, body []byte) (*http.Request, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	path := strings.TrimRight(up.Path, "/")
	call.upstreamRequest(req, up.Scheme, up.Host, path, token, nil)
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, up.Scheme+"://"+up.Host+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range req.Header.All() {
		if bytes.EqualFold(k, []byte("Host")) || bytes.EqualFold(k, []byte("Content-Length")) {
			continue // net/http writes them
		}
		out.Header.Add(string(k), string(v))
	}
	out.Host = up.Host
	return out, nil
}

// agentFailed tells the failures that eject an agent's endpoint (it refused or dropped the
// connection, or broke HTTP) from those that say nothing of its health: a timeout (a slow
// answer), answer headers larger than the router reads (the loops' error, fasthttp's for a
// stream, net/http's — which it exports only as text — for the other calls).
func agentFailed(err error) bool {
	var small *fasthttp.ErrSmallBuffer
	headersTooLarge := errors.As(err, &small) || errors.Is(err, errAnswerHeaderTooLarge) ||
		strings.Contains(err.Error(), "server response headers exceeded")
	return !isTimeout(err) && !headersTooLarge
}

// upstreamRequest builds the request to the agent from the caller's: same headers but the
// hop-by-hop ones, the exchanged token instead of the caller's (never forwarded), the
// X-Forwarded-* headers set by the router (never the caller's), and the trace context.
func (call *rpcCall) upstreamRequest(req *fasthttp.Request, scheme, host, path, token string, body []byte) {
	in := &call.c.Request.Header
	in.CopyTo(&req.Header)
	h := &req.Header
	h.SetProtocol("HTTP/1.1") // whatever the caller spoke, the router speaks HTTP/1.1 to agents
	connection := in.Peek("Connection")
	for k := range in.All() {
		if !forwardedHeader(k, connection) {
			h.DelBytes(k)
		}
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if ip, _, err := net.SplitHostPort(call.c.RemoteAddr().String()); err == nil {
		h.Set("X-Forwarded-For", ip)
	}
	h.SetBytesV("X-Forwarded-Host", call.c.Host())
	proto := "http"
	if call.c.IsTLS() {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	propagator.Inject(call.ctx, requestHeaderCarrier{h})
	req.SetRequestURI(scheme + "://" + host + path)
	h.SetHost(host)
	req.SetBodyRaw(body)
}

// replacedHeaders are the caller's headers an agent never gets but the router replaces: its
// token (the agent gets its own) and Expect (the router has the whole body already). The
// forwarding headers (spoofedHeader) are dropped too; the router sets its own.
var replacedHeaders = []string{"Authorization", "Expect"}

// forwardedHeader tells whether the agent gets a header of the caller's request: not a
// hop-by-hop one, nor one the request's Connection header names, nor a replaced or spoofable
// one.
func forwardedHeader(name, connection []byte) bool {
	if isHopHeader(name) || oneOf(name, replacedHeaders) || spoofedHeader(name) {
		return false
	}
	for len(connection) > 0 {
		var token []byte
		token, connection, _ = bytes.Cut(connection, []byte(","))
		if bytes.EqualFold(bytes.TrimSpace(token), name) {
			return false
		}
	}
	return true
}

// hopHeaders are the hop-by-hop headers of RFC 9110 (and their de-facto companions): they
// concern one connection and are never relayed.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// relayResponseHeader puts an agent's answer's status and end-to-end headers on the router's
// response. Not its HTTP version, status text, framing or date: the router's server frames its
// own answer to its own client.
func relayResponseHeader(dst, src *fasthttp.ResponseHeader) {
	dst.SetStatusCode(src.StatusCode())
	for k, v := range src.All() {
		if relayedAnswerHeader(k) {
			dst.AddBytesKV(k, v)
		}
	}
}

// relayedAnswerHeader tells whether a header of an agent's answer goes on to the client: not a
// hop-by-hop one, nor its framing or date, which the router sets for its own answer.
func relayedAnswerHeader(name []byte) bool {
	return !isHopHeader(name) && !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("Date"))
}

func isHopHeader(name []byte) bool { return oneOf(name, hopHeaders) }

// oneOf tells whether name is one of names, in any letter case. Lengths are compared first: it
// runs for every header of every call.
func oneOf(name []byte, names []string) bool {
	for _, h := range names {
		if len(name) == len(h) && bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	return false
}

// stream relays a streaming call (SSE) event by event. The handler returns with the agent's
// stream set as the response body; the server writes each event as a chunk and flushes it at
// once, and closing the body ends the request. The call has a connection of its own, dialled for
// it and never pooled: the wait for the answer's headers is bounded by the router's timeout, the
// stream itself lasts as long as the agent keeps it open, and the connection is closed when the
// client goes away (Router.hangups), which ends the stream at the agent too.
func (call *rpcCall) stream(route *Route, token string, body []byte) {
	rt := call.rt
	up := rt.balancer.pick(route, "")
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	call.upstreamRequest(req, up.Scheme, up.Host, strings.TrimRight(up.Path, "/"), token, body)
	conn := &streamConn{}
	stopWatch := rt.hangups.watch(call.c.Conn(), conn.clientGone)
	rt.metrics.openStreams.Inc()
	end := func() {
		stopWatch()
		conn.close()
		rt.metrics.openStreams.Dec()
	}
	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true) // an answer without one is relayed without one
	if err := conn.open(req, resp, up, time.Now().Add(rt.cfg.Timeout)); err != nil {
		gone := conn.closedByClient()
		fasthttp.ReleaseResponse(resp)
		end()
		if gone {
			call.c.SetStatusCode(499) // the client went away: nobody to answer
			return
		}
		if agentFailed(err) {
			rt.balancer.fail(up.Host)
		}
		call.failUpstream(route, err)
		return
	}
	out := &call.c.Response
	relayResponseHeader(&out.Header, &resp.Header)
	size := resp.Header.ContentLength()
	if size < 0 {
		size = -1 // chunked to the client, whatever the agent's framing
	}
	call.streaming = true
	out.SetBodyStream(&relayBody{resp: resp, done: func() { end(); call.finish() }}, size)
}

// streamConn is the connection of one stream, closable from the client watcher at any point:
// while dialling, while waiting for the answer, while relaying.
type streamConn struct {
	mu       sync.Mutex
	c        net.Conn
	closed   bool
	byClient bool
}

// open dials the agent, sends req and reads the answer's headers before deadline; the body
// stays on the connection, read as resp's body stream. The buffers are small, as a stream holds
// them for its whole life: one request is written, and the answer's headers must fit in 4 KiB.
func (s *streamConn) open(req *fasthttp.Request, resp *fasthttp.Response, up *url.URL, deadline time.Time) error {
	c, err := fasthttp.DialDualStackTimeout(hostPort(up), min(5*time.Second, time.Until(deadline)))
	if err != nil {
		return err
	}
	if up.Scheme == "https" {
		c = tls.Client(c, &tls.Config{ServerName: up.Hostname(), MinVersion: tls.VersionTLS12})
	}
	if err := s.set(c); err != nil {
		return err
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	// Parsing the URI makes Write send the origin form ("POST /path"), not the absolute URL.
	req.URI().DisablePathNormalizing = true
	w := bufio.NewWriterSize(c, 1<<10)
	if err := req.Write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	resp.StreamBody = true
	if err := resp.Read(bufio.NewReaderSize(c, 4<<10)); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

func (s *streamConn) set(c net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return errClientGone
	}
	s.c = c
	return nil
}

// clientGone closes the connection because the client went away.
func (s *streamConn) clientGone() {
	s.mu.Lock()
	s.byClient = true
	s.mu.Unlock()
	s.close()
}

func (s *streamConn) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.c != nil {
		_ = s.c.Close()
	}
	s.closed = true
}

func (s *streamConn) closedByClient() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byClient
}

var errClientGone = errors.New("the client went away")

// hostPort is the dial address of an upstream URL (the scheme's port when it names none).
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// relayBody is an agent's streamed answer as the body of the router's response. The server
// reads it until it ends and closes it. A read error — the agent or the client went away
// mid-stream — makes the server close the connection instead of terminating the chunked body,
// so the client sees the stream cut, not completed.
type relayBody struct {
	resp *fasthttp.Response
	done func()
	once sync.Once
}

func (b *relayBody) Read(p []byte) (int, error) { return b.resp.BodyStream().Read(p) }

// relayBufferSize is the buffer a stream relays through: an event larger than it goes out as
// several chunks, each flushed.
const relayBufferSize = 2 << 10

// WriteTo relays the stream through a buffer of its own, smaller than the 4 KiB the server
// would take from its pool and hold, blocked in Read, for the stream's whole life. The server
// frames each write as a chunk and flushes it.
func (b *relayBody) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, relayBufferSize)
	var total int64
	for {
		n, err := b.resp.BodyStream().Read(buf)
		if n > 0 {
			written, werr := w.Write(buf[:n])
			total += int64(written)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// SupportsBodyWriteTo tells the server to use WriteTo (fasthttp.BodyWriterTo).
func (b *relayBody) SupportsBodyWriteTo() bool { return true }

func (b *relayBody) Close() error {
	b.once.Do(func() {
		_ = b.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(b.resp)
		b.done()
	})
	return nil
}
