package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ServeHTTP runs every request through the router's chain: record (metrics, span, log, and
// recover) → front door (frontdoor.go) → limits (headers, body) → route (the ServeMux) → the
// route's handler and its stages.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if c, ok := r.Context().Value(connKey{}).(*clientConn); ok {
		c.setHandling(true)
		defer c.setHandling(false)
	}
	// Routes match, and forward, the path as the client escaped it.
	canonicalPath(r)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	ctx, span := rt.startSpan(r.Context(), propagation.HeaderCarrier(r.Header), r.Method, r.URL.Path)
	r = r.WithContext(ctx)
	defer rt.record(rec, r, span, start)

	// The front door comes before routing, so that a refused request is never matched,
	// authenticated or forwarded; it is not the agent's failure.
	if err := checkRequest(r); err != nil {
		rt.fail(rec, r, shapeOf(r), nil, &refusal{http.StatusBadRequest, err.Error()})
		return
	}
	if n := headerBytes(r); n > rt.cfg.MaxHeaderBytes {
		rt.fail(rec, r, shapeOf(r), nil, &refusal{http.StatusRequestHeaderFieldsTooLarge,
			fmt.Sprintf("the request line and headers exceed the router's %d bytes (kagenti-router -max-header-bytes)", rt.cfg.MaxHeaderBytes)})
		return
	}
	// MaxBytesReader gets the server's own writer: it tells the server to close the connection.
	r.Body = &clientBody{ReadCloser: http.MaxBytesReader(w, r.Body, rt.cfg.MaxBodyBytes), raw: r.Body}
	if r.ContentLength > rt.cfg.MaxBodyBytes {
		rt.fail(rec, r, shapeOf(r), nil, errBodyTooLarge)
		return
	}
	rt.mux.ServeHTTP(rec, r)
}

// record ends a request: a panic is answered (or re-raised, for http.ErrAbortHandler, which
// tells the server to cut the connection) and logged, and the request is recorded in metrics,
// its span and the log. A client that went away before its answer is recorded as 499, as
// nginx and Caddy do: not a failure of the router nor of the agent.
func (rt *Router) record(rec *statusRecorder, r *http.Request, span trace.Span, start time.Time) {
	p := recover()
	if p != nil && p != http.ErrAbortHandler {
		rt.cfg.Log.Error("panic", "path", r.URL.Path, "panic", fmt.Sprint(p))
		if !rec.wrote {
			rt.fail(rec, r, shapeOf(r), nil, &httpError{http.StatusInternalServerError, codeInternalError, "internal error"})
		}
	}
	status := rec.recorded()
	if r.Context().Err() == context.Canceled && (!rec.wrote || p == http.ErrAbortHandler) {
		status = 499
	}
	rt.finish(r.Context(), span, r.Method, r.URL.Path, status, time.Since(start), r.Header.Get("traceparent"))
	if p == http.ErrAbortHandler {
		panic(p)
	}
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

// headerBytes is the size of a request's line and headers as they came in (give or take the
// spaces around colons).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// statusRecorder remembers the status of an answer, for metrics, span and log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	// failure is the failure the request ended with when the answer's status does not say it:
	// a JSON-RPC error rides HTTP 200 (rpcHTTPStatus).
	failure int
}

func (s *statusRecorder) recorded() int {
	if s.failure != 0 {
		return s.failure
	}
	return s.status
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote && code >= 200 {
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
	s.wrote = true
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// clientBody is a request's body as the handlers read it: bounded by MaxBodyBytes, its
// failures marked as the client's (bodyError), so that a proxied request that breaks on its
// body is blamed on the client (413, 408, 400), not on the agent. raw is the body before the
// bound, for discarding what is left of a refused one.
type clientBody struct {
	io.ReadCloser
	raw io.ReadCloser
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// bodyError is a failure to read the client's body (too large, too slow, malformed).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read the request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// linger reads and drops what the client is still sending of a refused body (as nginx's
// lingering close does), up to 64 MiB or 5 s: the server closes the connection after the
// answer, and closing with unread data would reset it, so the client would see the reset
// instead of the 413.
func (b *clientBody) linger(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.CopyN(io.Discard, b.raw, 64<<20)
}

// clientListener hands the server clientConns.
type clientListener struct{ net.Listener }

func (l clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &clientConn{Conn: c}, nil
}

type connKey struct{}

// withConn puts a connection in its requests' context (http.Server.ConnContext), for ServeHTTP
// to tell it when a handler has taken a request.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// connState resets a connection between requests (http.Server.ConnState): what the server
// reads from then on belongs to the next request.
func connState(c net.Conn, state http.ConnState) {
	if cc, ok := c.(*clientConn); ok && state == http.StateIdle {
		cc.mu.Lock()
		cc.partial = false
		cc.mu.Unlock()
	}
}

// clientConn is a client connection as the server reads it. net/http closes a connection whose
// request does not arrive within ReadHeaderTimeout without a word; clientConn answers 408 first
// when part of a request had arrived (a connection idle between requests is closed silently).
type clientConn struct {
	net.Conn
	mu sync.Mutex
	// partial: bytes of a request arrived that no handler has taken yet.
	partial, handling bool
}

func (c *clientConn) setHandling(on bool) {
	c.mu.Lock()
	c.handling, c.partial = on, false
	c.mu.Unlock()
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if n > 0 && !c.handling {
		c.partial = true
	}
	late := err != nil && c.partial && !c.handling && isTimeout(err)
	if late {
		c.partial = false
	}
	c.mu.Unlock()
	if late {
		body := apiErrorBody(http.StatusRequestTimeout, "request not received in time")
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c.Conn, "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	return n, err
}
