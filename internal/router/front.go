package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// The front serves the router's TCP connections on event loops (gnet): one goroutine per CPU
// reads every connection, in the way nginx does, instead of a goroutine per connection parked
// and woken by Go's scheduler for each request. On two cores that scheduling and its extra
// syscalls cost about as much as the whole proxying, which kept the router at 0.7-0.8x nginx's
// requests/s (make bench-router).
//
// The loops serve the call that matters for throughput: a non-streaming, non-idempotent A2A
// JSON-RPC call (message/send, SendMessage) whose caller's token and exchanged token the router
// already holds, to an agent reached over plain HTTP at an IP address. The agent is called on a
// connection of the same loop, and its answer relayed when it is whole; nothing waits.
//
// Anything else — a stream, a read that may be retried, a token to verify or exchange, a card,
// ACP, MCP, a malformed or oversized request — hands the connection over to the fasthttp server
// (server.go), untouched: the bytes the loop has read go first, the connection is served there
// for the rest of its life, and the answer is exactly what the server gives.

// front is the router's event-loop front.
type front struct {
	rt       *Router
	client   *gnet.Client
	closed   chan struct{}
	stopOnce sync.Once
	draining atomic.Bool
	// inflight counts the calls the loops have sent to agents and not yet answered.
	inflight atomic.Int64
	// served and handedOver count the calls made on the loops and the connections handed over.
	served, handedOver atomic.Int64

	mu    sync.Mutex
	loops map[gnet.EventLoop]*loopState
}

// loopState is what one event loop holds; only that loop touches it.
type loopState struct {
	loop    gnet.EventLoop
	clients map[*clientConn]struct{}
	// idle are the connections to agents waiting for a call, by address, the freshest last.
	idle map[string][]*upstreamConn
	// Parsing and writing buffers, reused call after call.
	bytesReader  bytes.Reader
	headerReader *bufio.Reader
	resp         fasthttp.Response
	out          []byte
	body         []byte
	// ctxFree are RequestCtx no connection holds.
	ctxFree []*fasthttp.RequestCtx
	// The Date header's value and the second it is for.
	dateValue  []byte
	dateSecond int64
	// now is when the event the loop handles began: read once per event, as a call takes a
	// handful of timestamps and each costs a clock read (time.Now, ~80 ns on these VMs).
	now time.Time
}

// stamp sets the loop's time for the event it begins to handle: every entry point to a loop
// (gnet's callbacks and the tasks run on it) calls it first.
func (ls *loopState) stamp() { ls.now = time.Now() }

// Limits of the connections to agents (a client's come from Config, as the server's): an
// agent's idle connection closes below the 5 s keep-alive of uvicorn, on the loops as in the
// router's transport.
const (
	upstreamIdleTimeout = 4 * time.Second
	upstreamDialTimeout = 5 * time.Second
	// maxLoopBodyBytes is the largest request body the loops take.
	maxLoopBodyBytes = 64 << 10
	// maxUpstreamHeaderBytes bounds an agent's answer's headers, on the loops as in the
	// router's transport.
	maxUpstreamHeaderBytes = 8 << 10
	maxUpstreamBodyBytes   = 64 << 20
)

func newFront(rt *Router, loops int) (*front, error) {
	f := &front{rt: rt, closed: make(chan struct{}), loops: map[gnet.EventLoop]*loopState{}}
	client, err := gnet.NewClient(f,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{rt.cfg.Log}),
	)
	if err != nil {
		return nil, err
	}
	f.client = client
	if err := client.Start(); err != nil {
		return nil, err
	}
	go f.sweep()
	return f, nil
}

// close stops the loops once the calls in flight are answered or ctx is done. Connections still
// open are closed.
func (f *front) close(ctx context.Context) error {
	f.draining.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for f.inflight.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	f.stopOnce.Do(func() {
		close(f.closed)
		if stopErr := f.client.Stop(); err == nil {
			err = stopErr
		}
	})
	return err
}

func (f *front) loopOf(el gnet.EventLoop) *loopState {
	f.mu.Lock()
	defer f.mu.Unlock()
	ls := f.loops[el]
	if ls == nil {
		ls = &loopState{loop: el, clients: map[*clientConn]struct{}{}, idle: map[string][]*upstreamConn{},
			headerReader: bufio.NewReaderSize(nil, max(f.rt.cfg.MaxHeaderBytes, maxUpstreamHeaderBytes)+4)}
		f.loops[el] = ls
	}
	return ls
}

// sweep times out the calls past their deadline and closes the connections idle too long or
// sending a request too slowly, and while draining every client connection with no call in
// flight.
func (f *front) sweep() {
	// Often enough that a call or a connection times out within a quarter of its timeout.
	cfg := f.rt.cfg
	tick := time.NewTicker(max(min(time.Second, cfg.Timeout/4, cfg.ReadTimeout/4, cfg.IdleTimeout/4), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-f.closed:
			return
		case <-tick.C:
		}
		f.mu.Lock()
		loops := make([]*loopState, 0, len(f.loops))
		for _, ls := range f.loops {
			loops = append(loops, ls)
		}
		f.mu.Unlock()
		for _, ls := range loops {
			_ = ls.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				ls.stamp()
				ls.sweep(ls.now, f.draining.Load(), f.rt.cfg.ReadTimeout, f.rt.cfg.IdleTimeout)
				return nil
			}))
		}
	}
}

func (ls *loopState) sweep(now time.Time, draining bool, readTimeout, idleTimeout time.Duration) {
	for cc := range ls.clients {
		switch {
		case cc.call != nil:
			if now.After(cc.call.deadline) {
				cc.call.timedOut()
			}
		case !cc.closingSince.IsZero() || !cc.handoverSince.IsZero() || cc.gc.OutboundBuffered() > 0:
			// Its own wake-ups see to it.
		case !cc.partialSince.IsZero():
			if now.Sub(cc.partialSince) > readTimeout {
				cc.readTimedOut = true
				_ = cc.gc.Wake(nil) // answered in its OnTraffic
			}
		case draining || now.Sub(cc.lastActive) > idleTimeout:
			cc.closeWhenSent()
		}
	}
	for addr, conns := range ls.idle {
		kept := conns[:0]
		for _, uc := range conns {
			if now.Sub(uc.idleSince) > upstreamIdleTimeout {
				_ = uc.gc.Close()
				continue
			}
			kept = append(kept, uc)
		}
		if len(kept) == 0 {
			delete(ls.idle, addr)
		} else {
			ls.idle[addr] = kept
		}
	}
}

// enroll gives an accepted connection to the loops; false for one they cannot take (not TCP).
// Whatever the outcome, a TCP connection is the loops' afterwards: enrolling duplicates its
// descriptor and closes the original.
func (f *front) enroll(c net.Conn) bool {
	if _, ok := c.(*net.TCPConn); !ok {
		return false
	}
	cc := &clientConn{f: f, addrs: &addrConn{c.LocalAddr(), c.RemoteAddr()}}
	if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cc.forwardedFor = []byte(tcp.IP.String())
	}
	if _, err := f.client.EnrollContext(c, cc); err != nil {
		f.rt.cfg.Log.Warn("connection dropped: the event loops refused it", "error", err)
	}
	return true
}

// OnBoot, OnShutdown and OnTick: nothing to do.
func (f *front) OnBoot(gnet.Engine) gnet.Action       { return gnet.None }
func (f *front) OnShutdown(gnet.Engine)               {}
func (f *front) OnTick() (time.Duration, gnet.Action) { return time.Hour, gnet.None }

func (f *front) OnOpen(c gnet.Conn) (out []byte, action gnet.Action) {
	defer f.recoverPanic(&action)
	switch x := c.Context().(type) {
	case *clientConn:
		x.gc = c
		x.loop = f.loopOf(c.EventLoop())
		x.loop.clients[x] = struct{}{}
		x.loop.stamp()
		x.lastActive = x.loop.now
	case *upstreamConn:
		x.gc = c
		x.loop.stamp()
		if x.call == nil || x.call.done {
			return nil, gnet.Close // the call ended (timeout, client gone) while dialling
		}
		request := x.pending
		x.pending = nil
		return request, gnet.None
	}
	return nil, gnet.None
}

func (f *front) OnTraffic(c gnet.Conn) (action gnet.Action) {
	defer f.recoverPanic(&action)
	switch x := c.Context().(type) {
	case *clientConn:
		x.loop.stamp()
		return x.onTraffic()
	case *upstreamConn:
		x.loop.stamp()
		return x.onTraffic()
	}
	return gnet.Close
}

func (f *front) OnClose(c gnet.Conn, _ error) (action gnet.Action) {
	defer f.recoverPanic(&action)
	switch x := c.Context().(type) {
	case *clientConn:
		if x.loop == nil {
			break // closed before it opened
		}
		x.loop.stamp()
		delete(x.loop.clients, x)
		if x.call != nil && !x.handedOver {
			x.call.clientGone()
		}
		x.releaseCtx()
	case *upstreamConn:
		x.loop.stamp()
		x.closed()
	}
	return gnet.None
}

// recoverPanic keeps a panic on a loop from ending the router, as the server's handlers do: the
// connection it happened on is closed (its call, if any, ends as the client's going away).
func (f *front) recoverPanic(action *gnet.Action) {
	if p := recover(); p != nil {
		f.rt.cfg.Log.Error("panic on an event loop", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*action = gnet.Close
	}
}

// clientConn is a client's connection served by a loop.
type clientConn struct {
	f    *front
	gc   gnet.Conn
	loop *loopState
	// addrs are the connection's addresses, for its RequestCtx.
	addrs *addrConn
	// forwardedFor is the client's address, as agents get it in X-Forwarded-For.
	forwardedFor []byte
	// ctx holds the request being read and the call's response: from the loop's free list
	// while the connection is on the loop (a connection handed over at once, as a stream's,
	// leaves it there).
	ctx *fasthttp.RequestCtx
	// call is the call in flight: one at a time; a pipelined request waits in the buffer.
	call *loopCall
	// spare is the last call, done, for the next to reuse.
	spare      *loopCall
	handedOver bool
	lastActive time.Time
	// partialSince is when the buffered part of a request arrived (zero: none is buffered).
	partialSince time.Time
	// readTimedOut: the request did not arrive in time; the next OnTraffic answers 408.
	readTimedOut bool
	// closingSince: the connection closes once its last answer is sent; nothing more is read.
	closingSince time.Time
	// handoverSince: the connection is handed over once its last answer is sent.
	handoverSince time.Time
}

var headerEnd = []byte("\r\n\r\n")

func (cc *clientConn) onTraffic() gnet.Action {
	switch {
	case !cc.closingSince.IsZero():
		_, _ = cc.gc.Discard(-1)
		if cc.gc.OutboundBuffered() == 0 || cc.loop.now.Sub(cc.closingSince) > cc.f.rt.cfg.ReadTimeout {
			return gnet.Close
		}
		cc.wakeLater()
		return gnet.None
	case !cc.handoverSince.IsZero():
		return cc.handOver()
	case cc.readTimedOut:
		cc.answerReadTimeout()
		return gnet.None
	}
	cc.lastActive = cc.loop.now
	if cc.call != nil {
		// A pipelined request waits for the answer to the one before it, within bounds.
		if cc.gc.InboundBuffered() > cc.f.rt.cfg.MaxHeaderBytes+int(cc.f.rt.cfg.MaxBodyBytes) {
			return gnet.Close
		}
		return gnet.None
	}
	return cc.serve()
}

// serve reads the next request: a call for the loops starts, anything else hands over.
func (cc *clientConn) serve() gnet.Action {
	rt := cc.f.rt
	buf, _ := cc.gc.Peek(-1)
	if len(buf) == 0 {
		cc.partialSince = time.Time{}
		return gnet.None
	}
	end := bytes.Index(buf, headerEnd)
	if end < 0 {
		if len(buf) > rt.cfg.MaxHeaderBytes {
			return cc.handOver()
		}
		cc.partial()
		return gnet.None
	}
	headerLen := end + len(headerEnd)
	if headerLen > rt.cfg.MaxHeaderBytes {
		return cc.handOver()
	}
	if cc.ctx == nil {
		cc.ctx = cc.loop.acquireCtx(cc.addrs)
	}
	ctx := cc.ctx
	ctx.Request.Reset()
	ctx.Response.Reset()
	if err := cc.loop.readHeader(ctx.Request.Header.Read, buf[:headerLen]); err != nil {
		return cc.handOver()
	}
	if checkRequest(&ctx.Request) != nil {
		return cc.handOver() // the server refuses it, with the body framed as it reads it
	}
	h := &ctx.Request.Header
	size := h.ContentLength()
	// A large body goes to the server: gnet would copy what it has buffered at every read.
	if !h.IsHTTP11() || size < 0 || size > maxLoopBodyBytes || int64(size) > rt.cfg.MaxBodyBytes || len(h.Peek("Expect")) > 0 {
		return cc.handOver()
	}
	ns, name, ok := a2aRPCPath(ctx)
	if !ok {
		return cc.handOver()
	}
	if len(buf) < headerLen+size {
		cc.partial()
		return gnet.None
	}
	ctx.Request.SetBody(buf[headerLen : headerLen+size])
	call, ok := cc.plan(ns, name)
	if !ok {
		return cc.handOver()
	}
	_, _ = cc.gc.Discard(headerLen + size)
	cc.partialSince = time.Time{}
	call.start()
	return gnet.None
}

func (cc *clientConn) partial() {
	if cc.partialSince.IsZero() {
		cc.partialSince = cc.loop.now
	}
}

// plan decides whether the request is a call for the loops (see the top of this file).
func (cc *clientConn) plan(ns, name string) (*loopCall, bool) {
	rt := cc.f.rt
	ctx := cc.ctx
	// The connection's last call is reused: calls on a connection come one at a time, and
	// nothing holds a finished one.
	call := cc.spare
	if call == nil {
		call = new(loopCall)
	}
	cc.spare = nil
	*call = loopCall{client: cc, rpc: rpcCall{rt: rt, c: ctx, ctx: context.Background(), start: cc.loop.now,
		path: string(ctx.Path()), traceparent: string(ctx.Request.Header.Peek("traceparent"))}}
	plan, err := call.rpc.plan(ns, name, true)
	if err != nil || plan.stream || plan.idempotent || plan.route.Upstream.Scheme != "http" {
		return nil, false
	}
	host := rt.balancer.pickHost(plan.route, "")
	addr := host
	if _, err := netip.ParseAddrPort(host); err != nil {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return nil, false // a name to resolve: resolving waits
		}
		addr = netip.AddrPortFrom(ip, 80).String()
	}
	call.rpc.startSpan()
	call.plan, call.addr, call.host, call.path = plan, addr, host, strings.TrimRight(plan.route.Upstream.Path, "/")
	return call, true
}

// handOver gives the connection to the fasthttp server with what the loop has read of it. It
// runs in the connection's OnTraffic, whose Close takes the connection off the loop at once,
// before the loop reads it again.
func (cc *clientConn) handOver() gnet.Action {
	if cc.gc.OutboundBuffered() > 0 {
		// The answer before is still going out: hand over once it is gone (a client that does
		// not read it in time is dropped).
		if cc.handoverSince.IsZero() {
			cc.handoverSince = cc.loop.now
		} else if cc.loop.now.Sub(cc.handoverSince) > cc.f.rt.cfg.ReadTimeout {
			return gnet.Close
		}
		cc.wakeLater()
		return gnet.None
	}
	read, _ := cc.gc.Peek(-1)
	read = bytes.Clone(read)
	fd, err := cc.gc.Dup()
	if err != nil {
		cc.f.rt.cfg.Log.Warn("connection dropped: could not hand it over", "error", err)
		return gnet.Close
	}
	cc.handedOver = true
	cc.f.handedOver.Add(1)
	cc.releaseCtx()
	go cc.f.serveHandedOver(fd, read)
	return gnet.Close
}

func (f *front) serveHandedOver(fd int, read []byte) {
	file := os.NewFile(uintptr(fd), "client")
	c, err := net.FileConn(file)
	_ = file.Close()
	if err != nil {
		f.rt.cfg.Log.Warn("connection dropped: could not hand it over", "error", err)
		return
	}
	var conn net.Conn = c
	if len(read) > 0 {
		conn = &readFirstConn{Conn: c, first: read}
	}
	// The server counts it among its connections: Shutdown waits for it, closes it when idle.
	_ = f.rt.server.ServeConn(conn)
}

// wakeLater has the connection's OnTraffic run again shortly: gnet says nothing when an
// answer has gone out.
func (cc *clientConn) wakeLater() {
	time.AfterFunc(10*time.Millisecond, func() { _ = cc.gc.Wake(nil) })
}

// closeWhenSent closes the connection once its answers are sent: gnet's Close drops what the
// socket has not taken yet.
func (cc *clientConn) closeWhenSent() {
	if cc.closingSince.IsZero() {
		cc.closingSince = cc.loop.now
	}
	if cc.gc.OutboundBuffered() == 0 {
		_ = cc.gc.Close()
		return
	}
	cc.wakeLater()
}

// answerReadTimeout answers a request not received in time, as the server does (serverError),
// and closes.
func (cc *clientConn) answerReadTimeout() {
	body := apiErrorBody(fasthttp.StatusRequestTimeout, "request not received in time")
	out := fmt.Appendf(nil, "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nDate: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		cc.loop.date(cc.loop.now), len(body), body)
	_, _ = cc.gc.Write(out)
	cc.closeWhenSent()
}

// readFirstConn is a connection whose first bytes were read by the loop.
type readFirstConn struct {
	net.Conn
	first []byte
}

func (c *readFirstConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// SyscallConn lets the hang-up watcher reach the socket.
func (c *readFirstConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// acquireCtx takes a RequestCtx from the loop's free list.
func (ls *loopState) acquireCtx(addrs *addrConn) *fasthttp.RequestCtx {
	var ctx *fasthttp.RequestCtx
	if n := len(ls.ctxFree); n > 0 {
		ctx, ls.ctxFree = ls.ctxFree[n-1], ls.ctxFree[:n-1]
	} else {
		ctx = new(fasthttp.RequestCtx)
	}
	ctx.Init2(addrs, nil, false)
	return ctx
}

// releaseCtx gives the connection's RequestCtx back to the loop.
func (cc *clientConn) releaseCtx() {
	ctx := cc.ctx
	if ctx == nil || cc.loop == nil {
		return
	}
	cc.ctx = nil
	ctx.Request.Reset()
	ctx.Response.Reset()
	if len(cc.loop.ctxFree) < maxFreeCtx {
		cc.loop.ctxFree = append(cc.loop.ctxFree, ctx)
	}
}

// maxFreeCtx bounds a loop's free RequestCtx list.
const maxFreeCtx = 256

// readHeader parses a whole header block with fasthttp's parser.
// The loop found the block's end at the first CRLFCRLF; fasthttp must agree, or the two would
// frame the same bytes differently (it also ends headers at a bare LF): such a block is refused.
func (ls *loopState) readHeader(read func(*bufio.Reader) error, header []byte) error {
	ls.bytesReader.Reset(header)
	ls.headerReader.Reset(&ls.bytesReader)
	if err := read(ls.headerReader); err != nil {
		return err
	}
	if ls.headerReader.Buffered() != 0 || ls.bytesReader.Len() != 0 {
		return errHeaderEnd
	}
	return nil
}

var errHeaderEnd = errors.New("the header block ends before its CRLFCRLF")

// frontListener is the fasthttp server's listener. It accepts connections and gives those over
// TCP to the loops; the server serves the others (ServeConn), and those the loops hand over.
// Its Accept returns only the listener's error: closing it (the server's Shutdown) stops
// accepting.
type frontListener struct {
	net.Listener
	f    *front
	errc chan error
}

func (f *front) listen(l net.Listener) net.Listener {
	fl := &frontListener{Listener: l, f: f, errc: make(chan error, 1)}
	go fl.accept()
	return fl
}

func (fl *frontListener) accept() {
	for {
		c, err := fl.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			fl.errc <- err
			return
		}
		if !fl.f.enroll(c) {
			go func() { _ = fl.f.rt.server.ServeConn(c) }()
		}
	}
}

func (fl *frontListener) Accept() (net.Conn, error) {
	err := <-fl.errc
	fl.errc <- err
	return nil, err
}

// addrConn gives a loop's RequestCtx its addresses; nothing is read or written through it.
type addrConn struct{ local, remote net.Addr }

func (a *addrConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (a *addrConn) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (a *addrConn) Close() error                     { return nil }
func (a *addrConn) LocalAddr() net.Addr              { return a.local }
func (a *addrConn) RemoteAddr() net.Addr             { return a.remote }
func (a *addrConn) SetDeadline(time.Time) error      { return nil }
func (a *addrConn) SetReadDeadline(time.Time) error  { return nil }
func (a *addrConn) SetWriteDeadline(time.Time) error { return nil }

// gnetLogger sends gnet's messages to the router's log.
type gnetLogger struct{ log *slog.Logger }

func (l gnetLogger) Debugf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l gnetLogger) Infof(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l gnetLogger) Warnf(format string, args ...any)  { l.log.Warn(fmt.Sprintf(format, args...)) }
func (l gnetLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }
func (l gnetLogger) Fatalf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }
