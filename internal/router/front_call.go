package router

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
)

// loopCall is a call the loops make to an agent (front.go). Every step runs on the client's
// loop: the agent's connection is on the same loop, and timers and dials come back to it.
type loopCall struct {
	client *clientConn
	rpc    rpcCall
	plan   rpcPlan
	// addr is the agent's endpoint (IP and port); host and path make the request's URL.
	addr, host, path string
	up               *upstreamConn
	// deadline: the call times out then (the loop's sweep).
	deadline time.Time
	// partial is the agent's answer while its body arrives (front_answer.go).
	partial *agentAnswer
	done    bool
}

// start sends the request to the agent, on an idle connection of the loop or a new one.
func (call *loopCall) start() {
	cc := call.client
	ls := cc.loop
	f := cc.f
	rt := f.rt
	cc.call = call
	f.inflight.Add(1)
	f.served.Add(1)
	rt.metrics.method(call.plan.method).Inc()
	call.deadline = call.rpc.start.Add(rt.cfg.Timeout)
	ls.out = call.appendRequest(ls.out[:0])
	if uc := ls.takeIdle(call.addr); uc != nil {
		uc.call = call
		uc.reused = true
		call.up = uc
		if _, err := uc.gc.Write(ls.out); err != nil {
			call.upstreamFailed(err)
		}
		return
	}
	uc := &upstreamConn{loop: ls, addr: call.addr, call: call, pending: bytes.Clone(ls.out)}
	call.up = uc
	el := cc.gc.EventLoop()
	go func() {
		c, err := net.DialTimeout("tcp", call.addr, min(upstreamDialTimeout, rt.cfg.Timeout))
		if err != nil {
			err = &dialError{err}
		} else {
			var registered <-chan gnet.RegisteredResult
			if registered, err = el.Enroll(gnet.NewContext(context.Background(), uc), c); err != nil {
				_ = c.Close()
			} else {
				select {
				case res := <-registered:
					err = res.Err
				case <-f.closed:
					return
				}
			}
		}
		if err != nil {
			_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				if uc.call == call {
					ls.stamp()
					call.upstreamFailed(err)
				}
				return nil
			}))
		}
	}()
}

// appendRequest appends the request to the agent, as upstreamRequest builds it for the server's
// calls: the caller's headers the agent gets (forwardedHeader), the router's X-Forwarded-*, the
// trace context, the exchanged token, and the body.
func (call *loopCall) appendRequest(dst []byte) []byte {
	in := &call.client.ctx.Request.Header
	path := call.path
	if path == "" {
		path = "/"
	}
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, call.host...)
	dst = append(dst, "\r\n"...)
	var injected propagation.MapCarrier // nil, unless there is a trace to carry on
	if call.rpc.span.SpanContext().IsValid() {
		injected = propagation.MapCarrier{}
		propagator.Inject(call.rpc.ctx, injected)
	}
	connection := in.Peek("Connection")
	for k, v := range in.All() {
		if !forwardedHeader(k, connection) || bytes.EqualFold(k, []byte("Host")) || bytes.EqualFold(k, []byte("Content-Length")) {
			continue
		}
		if injected != nil && injected.Get(strings.ToLower(string(k))) != "" {
			continue // the router's trace context replaces the caller's
		}
		dst = appendHeader(dst, k, v)
	}
	for k, v := range injected {
		dst = appendHeader(dst, []byte(k), []byte(v))
	}
	dst = appendHeader(dst, []byte("X-Forwarded-For"), call.client.forwardedFor)
	dst = appendHeader(dst, []byte("X-Forwarded-Host"), call.client.ctx.Host())
	dst = append(dst, "X-Forwarded-Proto: http\r\n"...)
	if call.plan.token != "" {
		dst = append(dst, "Authorization: Bearer "...)
		dst = append(dst, call.plan.token...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(call.plan.body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, call.plan.body...)
}

func appendHeader(dst, k, v []byte) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

// takeIdle returns an idle connection to addr, the most recently used, dropping the stale.
func (ls *loopState) takeIdle(addr string) *upstreamConn {
	conns := ls.idle[addr]
	for len(conns) > 0 {
		uc := conns[len(conns)-1]
		conns = conns[:len(conns)-1]
		if ls.now.Sub(uc.idleSince) <= upstreamIdleTimeout {
			ls.idle[addr] = conns
			return uc
		}
		_ = uc.gc.Close()
	}
	delete(ls.idle, addr)
	return nil
}

// answer sends the client the call's response: the agent's answer (relayAnswer) or the error
// fail set.
func (call *loopCall) answer() {
	if call.done {
		return
	}
	cc := call.client
	ls := cc.loop
	ctx := cc.ctx
	closeAfter := call.closeAfter()
	if closeAfter {
		ctx.Response.SetConnectionClose()
	}
	ls.out = ls.out[:0]
	if b, err := ctx.Response.WriteTo(ls); err == nil && b > 0 {
		call.send(ls.out, closeAfter)
		return
	}
	call.send(nil, true)
}

// closeAfter: the client's connection closes after this answer, as it asked or because the
// router drains.
func (call *loopCall) closeAfter() bool {
	return call.client.f.draining.Load() || call.client.ctx.Request.Header.ConnectionClose()
}

// relayAnswer sends the client the agent's answer: its status and end-to-end headers (as
// relayResponseHeader), the router's date and framing, and the body.
func (call *loopCall) relayAnswer(h *fasthttp.ResponseHeader, body []byte) {
	ls := call.client.loop
	status := h.StatusCode()
	call.client.ctx.Response.SetStatusCode(status) // for the metrics, span and log
	closeAfter := call.closeAfter()
	dst := append(ls.out[:0], "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(status)...)
	dst = append(dst, "\r\n"...)
	for k, v := range h.All() {
		if relayedAnswerHeader(k) {
			dst = appendHeader(dst, k, v)
		}
	}
	dst = appendHeader(dst, []byte("Date"), ls.date(ls.now))
	if closeAfter {
		dst = append(dst, "Connection: close\r\n"...)
	}
	// As fasthttp's server: no length on an answer that cannot have a body.
	if status >= 200 && status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	} else {
		body = nil
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, body...)
	ls.out = dst
	call.send(dst, closeAfter)
}

// send ends the call: it is recorded, then the response goes to the client.
func (call *loopCall) send(response []byte, closeAfter bool) {
	call.done = true
	cc := call.client
	// Recorded first, as the server's handlers do: whoever reads the answer finds the call's
	// metrics and span.
	call.rpc.finishAt(cc.loop.now)
	if len(response) > 0 {
		_, _ = cc.gc.Write(response)
	}
	cc.call, cc.spare = nil, call
	cc.f.inflight.Add(-1)
	switch {
	case closeAfter:
		cc.closeWhenSent()
	case cc.gc.InboundBuffered() > 0:
		// A pipelined request: served in the connection's own OnTraffic, where it can be
		// handed over.
		_ = cc.gc.Wake(nil)
	}
}

// Write appends to the loop's output buffer (fasthttp's Response.WriteTo writes there).
func (ls *loopState) Write(p []byte) (int, error) {
	ls.out = append(ls.out, p...)
	return len(p), nil
}

// date is the Date header's value, formatted once a second.
func (ls *loopState) date(now time.Time) []byte {
	if sec := now.Unix(); sec != ls.dateSecond || ls.dateValue == nil {
		ls.dateSecond = sec
		ls.dateValue = now.UTC().AppendFormat(ls.dateValue[:0], http.TimeFormat)
	}
	return ls.dateValue
}

// fail answers with the protocol's error for a failed call to the agent.
func (call *loopCall) fail(err error, eject bool) {
	if call.done {
		return
	}
	if eject {
		call.client.f.rt.balancer.fail(call.host)
	}
	call.rpc.failUpstream(call.plan.route, err)
	call.answer()
}

// upstreamFailed: the agent's connection failed; it is closed, and the call answered.
func (call *loopCall) upstreamFailed(err error) {
	call.dropUpstream()
	call.fail(err, agentFailed(err))
}

func (call *loopCall) timedOut() {
	if call.done {
		return
	}
	call.dropUpstream()
	call.fail(fasthttp.ErrTimeout, false)
}

// clientGone: the client closed its connection; the agent's is closed too, which tells the
// agent (as a stream's does), and the call is recorded as 499.
func (call *loopCall) clientGone() {
	if call.done {
		return
	}
	call.dropUpstream()
	call.client.ctx.Response.SetStatusCode(499)
	call.send(nil, false)
}

func (call *loopCall) dropUpstream() {
	if uc := call.up; uc != nil {
		call.up = nil
		uc.call = nil
		if uc.gc != nil {
			_ = uc.gc.Close()
		} // else still dialling: OnOpen closes it, its call being gone
	}
}

// upstreamConn is a connection to an agent, on one loop.
type upstreamConn struct {
	gc   gnet.Conn
	loop *loopState
	addr string
	// call is the call waiting for this connection's answer; nil while idle.
	call *loopCall
	// pending is the request written once the dial completes.
	pending []byte
	// reused: the connection served a call before this one.
	reused    bool
	idleSince time.Time
}

// dialError is a failed dial to an agent: a failure of the agent, whatever its cause (a dial
// timeout included, as for the server's calls: a blackholed endpoint is ejected).
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
