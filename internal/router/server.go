package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// The router serves HTTP with fasthttp. A2A JSON-RPC — every message/send and message/stream,
// the traffic that matters for throughput — is handled natively (a2a_rpc.go): fasthttp's server
// and client do not allocate per request and do not hand each request across goroutines, which
// is what lets a Go proxy keep pace with nginx on the same two cores (make bench-router). Every
// other route (cards, catalog, REST binding, ACP, MCP, tools, metrics) runs the net/http chain
// (serveStd) through fasthttpadaptor, which streams as soon as the handler flushes.

// newServer builds the router's HTTP server.
func (rt *Router) newServer() *fasthttp.Server {
	std := fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(rt.serveAdapted))
	return &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			// The front door (frontdoor.go) comes before routing, so a refused request is
			// never matched, authenticated or forwarded; it is not the agent's failure.
			if err := checkRequest(&c.Request); err != nil {
				rt.refuseRequest(c, fasthttp.StatusBadRequest, err.Error())
				return
			}
			if ns, name, ok := a2aRPCPath(c); ok {
				rt.a2aJSONRPC(c, ns, name)
				return
			}
			std(c)
		},
		ErrorHandler:          rt.serverError,
		Logger:                serverLogger{rt.cfg.Log},
		MaxRequestBodySize:    int(rt.cfg.MaxBodyBytes),
		ReadBufferSize:        rt.cfg.MaxHeaderBytes,
		ReadTimeout:           rt.cfg.ReadTimeout,
		IdleTimeout:           rt.cfg.IdleTimeout,
		NoDefaultServerHeader: true,
		// Parse errors do not quote the request: it may carry a caller's token.
		SecureErrorLogMessage: true,
		NoDefaultContentType:  true,
		// Connections are told to close while the router drains, so that clients move on.
		CloseOnShutdown: true,
		// ReduceMemoryUsage stays off: it would return an idle connection's buffers to the
		// pools, but waits for each request with an extra 1-byte read, a syscall per request.
	}
}

// Serve serves the router on l until Shutdown: on the event loops (front.go) and the server
// they hand connections over to.
func (rt *Router) Serve(l net.Listener) error {
	if rt.cfg.EventLoops >= 0 {
		loops := rt.cfg.EventLoops
		if loops == 0 {
			loops = runtime.GOMAXPROCS(0)
		}
		f, err := newFront(rt, loops)
		if err != nil {
			return fmt.Errorf("event loops: %w", err)
		}
		rt.mu.Lock()
		rt.front = f
		rt.mu.Unlock()
		l = f.listen(l)
	}
	return rt.server.Serve(l)
}

// Shutdown drains the router: /readyz fails, the listener closes, and in-flight requests and
// streams may finish until ctx is done.
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.Drain()
	defer rt.hangups.close()
	rt.mu.Lock()
	f := rt.front
	rt.mu.Unlock()
	if f != nil {
		f.draining.Store(true)
	}
	err := rt.server.ShutdownWithContext(ctx)
	if f != nil {
		if ferr := f.close(ctx); err == nil {
			err = ferr
		}
	}
	return err
}

// serveAdapted runs the net/http chain for a request fasthttpadaptor converted, with a context
// that ends when the client goes away (the adaptor passes the server's RequestCtx, whose Done
// only fires on shutdown: streams would outlive their clients, and shutdown would cut them).
func (rt *Router) serveAdapted(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c, ok := r.Context().(*fasthttp.RequestCtx); ok {
		stop := rt.hangups.watch(c.Conn(), cancel)
		defer stop()
	}
	rt.serveStd(w, r.WithContext(ctx))
}

// serverError answers requests the server refused before any handler ran, in the shape of the
// API they were addressed to.
func (rt *Router) serverError(c *fasthttp.RequestCtx, err error) {
	status, message := fasthttp.StatusBadRequest, "malformed request"
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		status, message = fasthttp.StatusRequestHeaderFieldsTooLarge,
			fmt.Sprintf("the request line and headers exceed the router's %d bytes (kagenti-router -max-header-bytes)", rt.cfg.MaxHeaderBytes)
		lingerDiscard(c.Conn())
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, message = fasthttp.StatusRequestEntityTooLarge, "request body too large"
		lingerDiscard(c.Conn())
	case isTimeout(err):
		status, message = fasthttp.StatusRequestTimeout, "request not received in time"
	}
	rt.refuseRequest(c, status, message)
}

// refuseRequest answers a request the router refuses as malformed, before any handler ran, in
// the shape of the API it was addressed to.
func (rt *Router) refuseRequest(c *fasthttp.RequestCtx, status int, message string) {
	c.Response.Header.SetContentType("application/json")
	c.SetStatusCode(status)
	if bytes.HasPrefix(c.Path(), []byte("/a2a/")) && c.IsPost() {
		c.SetBody(rpcErrorBody(nil, &rpcError{Code: codeInvalidRequest, Message: message}))
		return
	}
	c.SetBody(apiErrorBody(status, message))
}

// apiErrorBody is the error the router answers in its own name (not an agent's, nor A2A's).
func apiErrorBody(status int, message string) []byte {
	return []byte(fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`+"\n", http.StatusText(status), message))
}

// lingerDiscard reads and drops what the client is still sending (as nginx's lingering close
// does), until it pauses or a bound is reached. The server closes the connection after the
// answer; closing with unread data would reset it, and the client would see the reset instead
// of the 413.
func lingerDiscard(conn net.Conn) {
	buf := make([]byte, 32<<10)
	until := time.Now().Add(5 * time.Second)
	for total := 0; total < 64<<20 && time.Now().Before(until); {
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		total += n
		if err != nil {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// serverLogger sends fasthttp's own messages (connection errors) to the router's log.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
