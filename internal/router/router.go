package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures a Router.
type Config struct {
	// PublicURL is where clients reach the router; agent cards are rewritten to it.
	PublicURL string
	Registry  *Registry
	// Verifier authenticates callers; nil disables authentication (local development only).
	Verifier *Verifier
	// Exchanger trades the caller's token for one addressed to the callee; nil forwards no
	// token at all.
	Exchanger *Exchanger
	// Timeout bounds a non-streaming call to a backend (default 2m: LLM answers are slow).
	Timeout time.Duration
	// MaxBodyBytes limits request bodies (default 4 MiB).
	MaxBodyBytes int64
	// MaxHeaderBytes limits a request's line and headers together (default 8 KiB). Each open
	// connection holds a buffer of this size.
	MaxHeaderBytes int
	// ReadTimeout bounds the receipt of a request (default 30s: 408 after); IdleTimeout closes
	// a kept-alive client connection with no request (default 90s).
	ReadTimeout, IdleTimeout time.Duration
	// EventLoops is the number of event loops reading client connections (front.go); 0: one
	// per CPU the Go runtime uses; negative: none, the fasthttp server serves every connection.
	EventLoops int
	Log        *slog.Logger
	// Registerer receives the metrics (a new registry when nil).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// TracerProvider receives the router's spans (a no-op one when nil: traceparent still
	// propagates).
	TracerProvider trace.TracerProvider
}

// Router is the HTTP handler of kagenti-router.
type Router struct {
	cfg    Config
	mux    *http.ServeMux
	server *fasthttp.Server
	// hangups tells requests in flight that their client went away.
	hangups *hangupWatcher
	// front reads client connections on event loops; nil when Config.EventLoops is negative
	// or before Serve.
	front *front
	// transport makes the calls to agents and tools but those of the event loops and streams.
	transport *http.Transport
	metrics   *metrics
	runs      *runIndex
	balancer  *balancer
	tracer    trace.Tracer
	// exporting: spans go somewhere. Without, a request with no trace context to carry on
	// skips the span work.
	exporting bool
	// draining makes /readyz fail so that load balancers stop sending new requests.
	draining chan struct{}
	once     sync.Once
	mu       sync.Mutex
}

// New provisions a router: defaults, metrics and routes.
func New(cfg Config) (*Router, error) {
	if cfg.Registry == nil {
		return nil, errors.New("router: a registry is required")
	}
	if _, err := url.Parse(cfg.PublicURL); err != nil || cfg.PublicURL == "" {
		return nil, fmt.Errorf("router: public URL %q is not a URL", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 8 << 10
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	exporting := cfg.TracerProvider != nil
	if !exporting {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	rt := &Router{
		exporting: exporting,
		cfg:       cfg,
		tracer:    cfg.TracerProvider.Tracer("github.com/kagenti/terraform-provider-kagenti/internal/router"),
		metrics:   m,
		runs:      newRunIndex(),
		balancer:  newBalancer(10 * time.Second),
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			// Below the 5 s keep-alive of uvicorn (most Python agents): the router closes an
			// idle connection before the agent does, so that a request seldom lands on a
			// connection the agent is closing (a SendMessage there is not retried).
			IdleConnTimeout:       upstreamIdleTimeout,
			ResponseHeaderTimeout: cfg.Timeout,
			// As the event loops: an answer's headers fit in 8 KiB.
			MaxResponseHeaderBytes: maxUpstreamHeaderBytes,
			ForceAttemptHTTP2:      false,
		},
		draining: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", rt.ready)
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /agents", rt.catalog)
	mux.HandleFunc("GET /a2a/{ns}/{name}/.well-known/agent-card.json", rt.card)
	mux.HandleFunc("GET /a2a/{ns}/{name}/.well-known/agent.json", rt.card)
	// POST /a2a/{ns}/{name} (JSON-RPC) is served natively by the fasthttp handler (server.go).
	mux.HandleFunc("/a2a/{ns}/{name}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeRPCError(w, http.StatusMethodNotAllowed, nil, &rpcError{Code: codeInvalidRequest, Message: "A2A JSON-RPC takes POST"})
	})
	mux.HandleFunc("/a2a/{ns}/{name}/{rest...}", rt.a2aREST)
	mux.Handle("/mcp/{ns}", rt.mcpHandler())
	mux.HandleFunc("/tools/{ns}/{name}", rt.tool)
	mux.HandleFunc("/tools/{ns}/{name}/{rest...}", rt.tool)
	mux.HandleFunc("GET /acp/{ns}/agents", rt.acpAgents)
	mux.HandleFunc("GET /acp/{ns}/agents/{name}", rt.acpAgent)
	mux.HandleFunc("POST /acp/{ns}/runs", rt.acpCreateRun)
	mux.HandleFunc("/acp/{ns}/runs/{id}/{rest...}", rt.acpRun)
	mux.HandleFunc("/acp/{ns}/runs/{id}", rt.acpRun)
	rt.mux = mux
	if rt.hangups, err = newHangupWatcher(); err != nil {
		return nil, err
	}
	rt.server = rt.newServer()
	return rt, nil
}

// serveStd runs the net/http chain that serves every route but A2A JSON-RPC (see server.go):
// recover → metrics and log → body limit → route.
func (rt *Router) serveStd(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Routes match, and forward, the path as the client escaped it (frontdoor.go).
	canonicalPath(r)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	ctx, span := rt.startSpan(r.Context(), propagation.HeaderCarrier(r.Header), r.Method, r.URL.Path)
	r = r.WithContext(ctx)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			rt.cfg.Log.Error("panic", "path", r.URL.Path, "panic", fmt.Sprint(p))
			if !rec.wrote {
				http.Error(rec, "internal error", http.StatusInternalServerError)
			}
		}
		status := rec.status
		if r.Context().Err() != nil && !rec.wrote {
			status = 499 // the client went away first; not a failure of ours
		}
		rt.finish(r.Context(), span, r.Method, r.URL.Path, status, time.Since(start), r.Header.Get("traceparent"))
	}()
	r.Body = http.MaxBytesReader(rec, r.Body, rt.cfg.MaxBodyBytes)
	rt.mux.ServeHTTP(rec, r)
}

// finish records a request that ended: metrics, its span and a log line. Failures are always
// logged; every request only at debug level (metrics count them).
func (rt *Router) finish(ctx context.Context, span trace.Span, method, path string, status int, elapsed time.Duration, traceparent string) {
	rt.metrics.observe(path, status, elapsed)
	endSpan(span, status)
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	} else if status >= 400 {
		level = slog.LevelInfo
	}
	if rt.cfg.Log.Enabled(ctx, level) {
		rt.cfg.Log.Log(ctx, level, "request", "method", method, "path", path, "status", status,
			"duration_ms", elapsed.Milliseconds(), "traceparent", traceparent)
	}
}

func (rt *Router) ready(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-rt.draining:
		http.Error(w, "draining", http.StatusServiceUnavailable)
	default:
		_, _ = io.WriteString(w, "ok\n")
	}
}

// Drain marks the router not ready; in-flight requests finish (the server's Shutdown waits).
func (rt *Router) Drain() { rt.once.Do(func() { close(rt.draining) }) }

// authenticate runs the authn and policy stages for a route. It returns the caller (nil when
// authentication is off) or writes nothing and returns an error for the protocol layer to shape.
func (rt *Router) authenticate(r *http.Request, route *Route) (*Caller, error) {
	return rt.authenticateHeader(r.Context(), r.Header.Get("Authorization"), route)
}

// authenticateHeader is authenticate for the value of the Authorization header.
func (rt *Router) authenticateHeader(ctx context.Context, authorization string, route *Route) (*Caller, error) {
	if rt.cfg.Verifier == nil {
		return nil, nil
	}
	raw, err := bearerToken(authorization)
	if err != nil {
		return nil, err
	}
	caller, err := rt.cfg.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	return caller, rt.authorize(caller, route)
}

// authorize applies the callee's policy to an authenticated caller: it must be an allowed caller
// (when the policy lists any) and hold every required scope. With authentication off there is no
// caller to check.
func (rt *Router) authorize(caller *Caller, route *Route) error {
	if rt.cfg.Verifier == nil {
		return nil
	}
	p := route.Policy
	if caller == nil {
		return &forbiddenError{reason: "an anonymous caller may not call " + route.Key()}
	}
	if len(p.AllowedCallers) > 0 && !contains(p.AllowedCallers, caller.ClientID) {
		return &forbiddenError{reason: fmt.Sprintf("%s may not call %s", caller.ClientID, route.Key())}
	}
	for _, s := range p.RequiredScopes {
		if !contains(caller.Scopes, s) {
			return &forbiddenError{reason: "missing scope " + s}
		}
	}
	return nil
}

type forbiddenError struct{ reason string }

func (e *forbiddenError) Error() string { return "forbidden: " + e.reason }

// cachedCaller is authenticateHeader with only the verifier's cache: errWouldWait when the
// token is not in it (or the header holds none: the server path says why).
func (rt *Router) cachedCaller(authorization []byte, route *Route, now time.Time) (*Caller, error) {
	if rt.cfg.Verifier == nil {
		return nil, nil
	}
	scheme, raw, ok := bytes.Cut(authorization, []byte(" "))
	if !ok || !bytes.EqualFold(scheme, []byte("Bearer")) {
		return nil, errWouldWait
	}
	caller, ok := rt.cfg.Verifier.cachedBytes(bytes.TrimSpace(raw), now)
	if !ok {
		return nil, errWouldWait
	}
	return caller, rt.authorize(caller, route)
}

// cachedUpstreamToken is upstreamToken with only the exchanger's cache: errWouldWait when an
// exchange is needed and its token is not in it.
func (rt *Router) cachedUpstreamToken(caller *Caller, route *Route, now time.Time) (string, error) {
	if !rt.exchangesFor(caller, route) {
		return "", nil
	}
	tok, ok := rt.cfg.Exchanger.cached(caller.Token, route.Policy.Audience, route.Policy.AudienceScope, now)
	if !ok {
		return "", errWouldWait
	}
	return tok, nil
}

// upstreamToken is the token sent to the callee: exchanged for its audience, or none.
func (rt *Router) upstreamToken(ctx context.Context, caller *Caller, route *Route) (string, error) {
	if !rt.exchangesFor(caller, route) {
		return "", nil
	}
	tok, exchanged, err := rt.cfg.Exchanger.Exchange(ctx, caller.Token, route.Policy.Audience, route.Policy.AudienceScope)
	if exchanged { // a cached token is not an exchange (the metric's help says so)
		rt.metrics.exchanges.WithLabelValues(resultLabel(err)).Inc()
	}
	return tok, err
}

// exchangesFor tells whether a call to route carries an exchanged token: authentication is on,
// the router exchanges, and the callee has an audience.
func (rt *Router) exchangesFor(caller *Caller, route *Route) bool {
	return caller != nil && rt.cfg.Exchanger != nil && route.Policy.Audience != ""
}

func resultLabel(err error) string {
	var xe *ExchangeError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &xe):
		return "refused"
	}
	return "error"
}

// statusOf maps an error of the authn, policy, exchange or proxy stage to an HTTP status and
// a JSON-RPC code: one place decides. The status is what the REST-shaped routes answer, and
// what metrics and logs record for a JSON-RPC call, whose answer's own status is
// rpcHTTPStatus(code).
func statusOf(err error) (int, int) {
	var ae *AuthError
	var fe *forbiddenError
	var xe *ExchangeError
	switch {
	case errors.As(err, &ae):
		return http.StatusUnauthorized, codeUnauthenticated
	case errors.As(err, &fe), errors.As(err, &xe):
		return http.StatusForbidden, codeForbidden
	case isTimeout(err):
		return http.StatusGatewayTimeout, codeTimeout
	case errors.Is(err, errNoRoute):
		return http.StatusNotFound, codeNoSuchAgent
	}
	return http.StatusBadGateway, codeUnavailable
}

var errNoRoute = errors.New("no such agent")

// loggedError is an upstream error as the log gets it: without the bytes of the agent's answer
// that header errors quote (fasthttp's ", contents: ..."; net/http's malformed line, in quotes),
// which may hold the agent's cookies or tokens.
func loggedError(err error) string {
	message, _, _ := strings.Cut(err.Error(), ", contents: ")
	return quoted.ReplaceAllLiteralString(message, `"(redacted)"`)
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// proxy forwards r to the route's upstream with the exchanged token, at the upstream's path
// followed by path, which is escaped (pathTail). Streaming responses
// (text/event-stream) are flushed event by event; the client going away cancels the upstream
// request through r's context. onError shapes failures for the protocol.
func (rt *Router) proxy(w http.ResponseWriter, r *http.Request, route *Route, path string, token string, body []byte,
	stream bool, onError func(w http.ResponseWriter, status int, err error), capture func([]byte)) {
	rt.proxyWith(w, r, route, path, token, body, stream, false, onError, capture)
}

// proxyWith is proxy; idempotent requests (with their body) are retried on connection failures.
func (rt *Router) proxyWith(w http.ResponseWriter, r *http.Request, route *Route, path string, token string, body []byte,
	stream, idempotent bool, onError func(w http.ResponseWriter, status int, err error), capture func([]byte)) {
	ctx := r.Context()
	if !stream {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.cfg.Timeout)
		defer cancel()
	} else {
		rt.metrics.openStreams.Inc()
		defer rt.metrics.openStreams.Dec()
	}
	up := rt.balancer.pick(route, "")
	p := &httputil.ReverseProxy{
		Transport: rt.agentTransport(route, body, idempotent),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = up.Scheme, up.Host
			// path is escaped as the client escaped it, and goes out so: decoding it and
			// escaping it anew could turn an encoded slash into a path separator.
			raw := strings.TrimRight(up.EscapedPath(), "/") + path
			decoded, err := url.PathUnescape(raw)
			if err != nil {
				decoded = raw // unreachable: the front door refused malformed escapes
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = decoded, raw
			pr.Out.Host = up.Host
			// Never forward the caller's token: only the one exchanged for this callee.
			pr.Out.Header.Del("Authorization")
			if token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+token)
			}
			setForwarded(pr.Out.Header, pr.In)
			injectTrace(pr.Out)
		},
		// Streams flush every write; other answers flush when done (ReverseProxy also flushes
		// any text/event-stream answer at once).
		FlushInterval: flushInterval(stream),
		BufferPool:    copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rt.metrics.upstreamErrors.WithLabelValues(route.Key()).Inc()
			if r.Context().Err() != nil && ctx.Err() == nil {
				return // the client went away: nothing to answer
			}
			status, _ := statusOf(err)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			rt.cfg.Log.Warn("upstream failed", "route", route.Key(), "error", loggedError(err))
			onError(w, status, fmt.Errorf("agent %s is unavailable", route.Key()))
		},
	}
	if capture != nil {
		p.ModifyResponse = func(resp *http.Response) error {
			resp.Body = &captureBody{ReadCloser: resp.Body, fn: capture}
			return nil
		}
	}
	out := r.Clone(ctx)
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	}
	p.ServeHTTP(w, out)
}

// agentTransport is the transport of a call to route: a failing endpoint is ejected, and an
// idempotent request (with its body) whose connection failed is retried, on another endpoint
// when there is one.
func (rt *Router) agentTransport(route *Route, body []byte, idempotent bool) http.RoundTripper {
	var t http.RoundTripper = &ejectingTransport{next: rt.transport, balancer: rt.balancer}
	if idempotent && body != nil {
		t = &retryTransport{next: t, attempts: 3, body: body,
			reroute: func(failed string) string { return rt.balancer.pick(route, failed).Host }}
	}
	return t
}

// copyBuffers are the proxy's copy buffers: 8 KiB instead of ReverseProxy's default 32 KiB
// each, which an open stream holds for its whole life (1,000 streams: 8 MiB, not 32).
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}}

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

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush keeps SSE streaming through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
