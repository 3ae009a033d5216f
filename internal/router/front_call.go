package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
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
	// untilClose: the agent's answer has no length; it ends when the agent closes.
	untilClose bool
	done       bool
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
		if err == nil {
			var registered <-chan gnet.RegisteredResult
			if registered, err = el.Enroll(gnet.NewContext(context.Background(), uc), c); err == nil {
				err = (<-registered).Err
			} else {
				_ = c.Close()
			}
		}
		if err != nil {
			_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				if uc.call == call {
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
	var injected headerList
	if call.rpc.span.SpanContext().IsValid() {
		propagator.Inject(call.rpc.ctx, &injected)
	}
	connection := in.Peek("Connection")
	for k, v := range in.All() {
		if !forwardedHeader(k, connection) || bytes.EqualFold(k, []byte("Host")) || bytes.EqualFold(k, []byte("Content-Length")) || injected.has(k) {
			continue
		}
		dst = appendHeader(dst, k, v)
	}
	for _, kv := range injected {
		dst = appendHeader(dst, []byte(kv[0]), []byte(kv[1]))
	}
	dst = appendHeader(dst, []byte("X-Forwarded-For"), call.client.forwardedFor)
	dst = appendHeader(dst, []byte("X-Forwarded-Host"), in.Host())
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

// headerList collects the headers a propagator injects.
type headerList [][2]string

func (l *headerList) Get(key string) string {
	for _, kv := range *l {
		if strings.EqualFold(kv[0], key) {
			return kv[1]
		}
	}
	return ""
}

func (l *headerList) Set(key, value string) { *l = append(*l, [2]string{key, value}) }

func (l *headerList) Keys() []string {
	keys := make([]string, len(*l))
	for i, kv := range *l {
		keys[i] = kv[0]
	}
	return keys
}

func (l *headerList) has(name []byte) bool {
	for _, kv := range *l {
		if bytes.EqualFold(name, []byte(kv[0])) {
			return true
		}
	}
	return false
}

// takeIdle returns an idle connection to addr, the most recently used, dropping the stale.
func (ls *loopState) takeIdle(addr string) *upstreamConn {
	conns := ls.idle[addr]
	now := time.Now()
	for len(conns) > 0 {
		uc := conns[len(conns)-1]
		conns = conns[:len(conns)-1]
		if now.Sub(uc.idleSince) <= upstreamIdleTimeout {
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
	ctx := &cc.ctx
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
		if isHopHeader(k) || bytes.EqualFold(k, []byte("Content-Length")) || bytes.EqualFold(k, []byte("Date")) {
			continue
		}
		dst = appendHeader(dst, k, v)
	}
	dst = appendHeader(dst, []byte("Date"), ls.date(time.Now()))
	if closeAfter {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
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
	call.rpc.finish()
	if len(response) > 0 {
		_, _ = cc.gc.Write(response)
	}
	cc.call = nil
	cc.f.inflight.Add(-1)
	switch {
	case closeAfter:
		_ = cc.gc.Close()
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
	call.done = true
	call.dropUpstream()
	call.client.ctx.Response.SetStatusCode(499)
	call.rpc.finish()
	call.client.call = nil
	call.client.f.inflight.Add(-1)
}

func (call *loopCall) dropUpstream() {
	if uc := call.up; uc != nil {
		call.up = nil
		uc.call = nil
		if uc.gc != nil {
			_ = uc.gc.Close()
		} else {
			uc.abandoned = true
		}
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
	pending   []byte
	abandoned bool
	// reused: the connection served a call before this one.
	reused    bool
	idleSince time.Time
}

func (uc *upstreamConn) onTraffic() gnet.Action {
	call := uc.call
	if call == nil {
		return gnet.Close // an agent does not speak first: nothing it says now can be trusted
	}
	buf, _ := uc.gc.Peek(-1)
	n, body, complete, err := call.readAnswer(buf, false)
	if err != nil {
		uc.call, call.up = nil, nil
		call.fail(err, agentFailed(err))
		return gnet.Close
	}
	if !complete {
		return gnet.None
	}
	uc.call, call.up = nil, nil
	keep := !call.untilClose && !uc.loop.resp.Header.ConnectionClose() && n == len(buf)
	call.relayAnswer(&uc.loop.resp.Header, body)
	_, _ = uc.gc.Discard(n)
	if !keep {
		return gnet.Close
	}
	uc.idleSince = time.Now()
	uc.loop.idle[uc.addr] = append(uc.loop.idle[uc.addr], uc)
	return gnet.None
}

// closed: the agent's connection closed. An answer framed by the close is complete now; a call
// still waiting otherwise fails, and an idle connection leaves the pool.
func (uc *upstreamConn) closed() {
	call := uc.call
	if call == nil {
		conns := uc.loop.idle[uc.addr]
		for i, x := range conns {
			if x == uc {
				uc.loop.idle[uc.addr] = append(conns[:i], conns[i+1:]...)
				break
			}
		}
		return
	}
	uc.call, call.up = nil, nil
	buf, _ := uc.gc.Peek(-1)
	if _, body, complete, err := call.readAnswer(buf, true); err == nil && complete {
		call.relayAnswer(&uc.loop.resp.Header, body)
		return
	}
	// A kept-alive connection the agent closed as the request went out says nothing of its
	// health (it closed an idle connection): that does not eject it. The call is not retried
	// all the same, as nginx and Go's client do not retry a POST: the agent may have acted.
	call.fail(errAgentClosed, !uc.reused || len(buf) > 0)
}

var errAgentClosed = fmt.Errorf("the agent closed the connection before answering: %w", io.ErrUnexpectedEOF)

// errAnswerHeaderTooLarge: an agent's answer's headers exceed what the router reads. Like the
// client's ErrSmallBuffer, it does not eject the agent.
var errAnswerHeaderTooLarge = &fasthttp.ErrSmallBuffer{}

// readAnswer parses the agent's answer in buf into the loop's response header. When it is whole
// it returns the bytes it took and the body; complete is false while more must be read.
// atClose: the agent closed the connection after buf.
func (call *loopCall) readAnswer(buf []byte, atClose bool) (n int, body []byte, complete bool, err error) {
	ls := call.client.loop
	resp := &ls.resp
	for {
		end := bytes.Index(buf[n:], headerEnd)
		if end < 0 {
			if len(buf)-n > maxUpstreamHeaderBytes {
				return 0, nil, false, errAnswerHeaderTooLarge
			}
			return 0, nil, false, nil
		}
		headerLen := end + len(headerEnd)
		if headerLen > maxUpstreamHeaderBytes {
			return 0, nil, false, errAnswerHeaderTooLarge
		}
		resp.Reset()
		resp.Header.SetNoDefaultContentType(true) // an answer without one is relayed without one
		if err := ls.readHeader(resp.Header.Read, buf[n:n+headerLen]); err != nil {
			return 0, nil, false, err
		}
		n += headerLen
		// An interim answer (100 Continue, 103 Early Hints) comes before the real one.
		if status := resp.Header.StatusCode(); status >= 100 && status < 200 && status != 101 {
			continue
		}
		break
	}
	status := resp.Header.StatusCode()
	switch size := resp.Header.ContentLength(); {
	case status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified:
	case size >= 0:
		if size > maxUpstreamBodyBytes {
			return 0, nil, false, fasthttp.ErrBodyTooLarge
		}
		if len(buf) < n+size {
			return 0, nil, false, nil
		}
		body = buf[n : n+size]
		n += size
	case size == -1: // chunked
		var used int
		ls.body, used, complete, err = dechunk(ls.body[:0], buf[n:], maxUpstreamBodyBytes)
		if err != nil || !complete {
			return 0, nil, false, err
		}
		body = ls.body
		n += used
	default: // no length: the body is all the agent sends until it closes
		call.untilClose = true
		if len(buf)-n > maxUpstreamBodyBytes {
			return 0, nil, false, fasthttp.ErrBodyTooLarge
		}
		if !atClose {
			return 0, nil, false, nil
		}
		body = buf[n:]
		n = len(buf)
	}
	return n, body, true, nil
}

var errBadChunk = errors.New("malformed chunked answer")

// dechunk appends the data of the chunked body at the start of src to dst. It returns the bytes
// of src the body took (trailers included) and whether it is whole.
func dechunk(dst, src []byte, limit int) (body []byte, used int, complete bool, err error) {
	for {
		line := bytes.Index(src[used:], []byte("\r\n"))
		if line < 0 {
			if len(src)-used > 1<<10 {
				return dst, 0, false, errBadChunk
			}
			return dst, 0, false, nil
		}
		sizeField := src[used : used+line]
		if i := bytes.IndexByte(sizeField, ';'); i >= 0 {
			sizeField = sizeField[:i] // chunk extensions are ignored
		}
		size, perr := strconv.ParseUint(string(bytes.TrimSpace(sizeField)), 16, 32)
		if perr != nil || len(sizeField) == 0 {
			return dst, 0, false, errBadChunk
		}
		used += line + 2
		if size == 0 {
			// Trailers, if any, end with an empty line; they are not relayed.
			end := bytes.Index(src[used:], []byte("\r\n"))
			for end > 0 {
				used += end + 2
				end = bytes.Index(src[used:], []byte("\r\n"))
			}
			if end < 0 {
				return dst, 0, false, nil
			}
			return dst, used + 2, true, nil
		}
		if len(dst)+int(size) > limit {
			return dst, 0, false, fasthttp.ErrBodyTooLarge
		}
		if len(src) < used+int(size)+2 {
			return dst, 0, false, nil
		}
		if !bytes.Equal(src[used+int(size):used+int(size)+2], []byte("\r\n")) {
			return dst, 0, false, errBadChunk
		}
		dst = append(dst, src[used:used+int(size)]...)
		used += int(size) + 2
	}
}
