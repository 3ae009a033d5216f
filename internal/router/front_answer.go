package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// An agent's answer on a loop (front.go). Most answers arrive whole in one read and are relayed
// straight from the connection's buffer. A larger one is taken off the buffer as it arrives,
// so that no read copies again what came before, and relayed once whole.

// How an answer's body ends.
const (
	framedByLength = iota // Content-Length
	framedByChunks        // Transfer-Encoding: chunked
	framedByClose         // neither: the agent closes the connection
	noBody                // 204, 304
)

// agentAnswer is an answer whose body is still arriving.
type agentAnswer struct {
	header    fasthttp.ResponseHeader
	framing   int
	remaining int    // framedByLength: the bytes still to come
	body      []byte // the body so far (decoded, for chunks)
	chunked   []byte // framedByChunks: the bytes of the chunk not yet whole
}

var (
	errAgentClosed = fmt.Errorf("the agent closed the connection before answering: %w", io.ErrUnexpectedEOF)
	// errAnswerHeaderTooLarge: an agent's answer's headers exceed what the router reads. Like
	// fasthttp's ErrSmallBuffer (a stream's answer), it does not eject the agent (agentFailed).
	errAnswerHeaderTooLarge = fmt.Errorf("the agent's answer's headers exceed %d bytes", maxUpstreamHeaderBytes)
	errBadAnswer            = errors.New("malformed answer")
	errBadChunk             = errors.New("malformed chunked answer")
)

const (
	maxChunkLineBytes = 1 << 10
	maxTrailerBytes   = 8 << 10
)

func (uc *upstreamConn) onTraffic() gnet.Action {
	call := uc.call
	if call == nil {
		return gnet.Close // an agent does not speak first: nothing it says now can be trusted
	}
	ls := uc.loop
	if call.partial == nil {
		buf, _ := uc.gc.Peek(-1)
		headerLen, err := ls.readAnswerHeader(buf)
		if err != nil {
			return uc.failed(err)
		}
		if headerLen == 0 {
			return gnet.None // the headers are not all here
		}
		h := &ls.resp.Header
		framing, size, err := answerFraming(h)
		if err != nil {
			return uc.failed(err)
		}
		rest := buf[headerLen:]
		whole, used := false, 0
		var body []byte
		switch framing {
		case noBody:
			whole = true
		case framedByLength:
			if len(rest) >= size {
				whole, body, used = true, rest[:size], size
			}
		case framedByChunks:
			var complete bool
			if ls.body, used, complete, err = dechunk(ls.body[:0], rest, maxUpstreamBodyBytes); err != nil {
				return uc.failed(err)
			}
			whole, body = complete, ls.body
		}
		if whole {
			keep := headerLen+used == len(buf) && !h.ConnectionClose()
			uc.call, call.up = nil, nil
			call.relayAnswer(h, body)
			_, _ = uc.gc.Discard(headerLen + used)
			return uc.release(keep)
		}
		// The body is still coming: the call keeps its own copy of the headers.
		call.partial = &agentAnswer{framing: framing, remaining: size}
		h.CopyTo(&call.partial.header)
		_, _ = uc.gc.Discard(headerLen)
	}
	a := call.partial
	data, _ := uc.gc.Peek(-1)
	complete, extra, err := a.add(data)
	_, _ = uc.gc.Discard(len(data))
	if err != nil {
		return uc.failed(err)
	}
	if !complete {
		return gnet.None
	}
	uc.call, call.up = nil, nil
	call.relayAnswer(&a.header, a.body)
	return uc.release(!extra && !a.header.ConnectionClose())
}

// failed fails the call for an answer that cannot be relayed, and closes the connection.
func (uc *upstreamConn) failed(err error) gnet.Action {
	call := uc.call
	uc.call, call.up = nil, nil
	call.fail(err, agentFailed(err))
	return gnet.Close
}

// release puts the connection back in the loop's pool, or closes it.
func (uc *upstreamConn) release(keep bool) gnet.Action {
	if !keep {
		return gnet.Close
	}
	uc.idleSince = uc.loop.now
	uc.loop.idle[uc.addr] = append(uc.loop.idle[uc.addr], uc)
	return gnet.None
}

// add takes the bytes that arrived; extra: the agent sent more than its answer.
func (a *agentAnswer) add(data []byte) (complete, extra bool, err error) {
	switch a.framing {
	case framedByLength:
		take := min(len(data), a.remaining)
		a.body = append(a.body, data[:take]...)
		a.remaining -= take
		return a.remaining == 0, len(data) > take, nil
	case framedByChunks:
		a.chunked = append(a.chunked, data...)
		var used int
		if a.body, used, complete, err = dechunk(a.body, a.chunked, maxUpstreamBodyBytes); err != nil {
			return false, false, err
		}
		if complete {
			return true, used < len(a.chunked), nil
		}
		a.chunked = a.chunked[:copy(a.chunked, a.chunked[used:])]
		return false, false, nil
	default: // framedByClose: whole when the agent closes
		a.body = append(a.body, data...)
		if len(a.body) > maxUpstreamBodyBytes {
			return false, false, fasthttp.ErrBodyTooLarge
		}
		return false, false, nil
	}
}

// closed: the agent's connection closed. An answer framed by the close is whole now; a call
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
	if a := call.partial; a != nil {
		if a.framing == framedByClose {
			if complete, _, err := a.add(buf); err == nil && !complete {
				call.relayAnswer(&a.header, a.body)
				return
			}
		}
	} else if headerLen, err := uc.loop.readAnswerHeader(buf); err == nil && headerLen > 0 {
		h := &uc.loop.resp.Header
		if framing, _, err := answerFraming(h); err == nil && framing == framedByClose && len(buf)-headerLen <= maxUpstreamBodyBytes {
			call.relayAnswer(h, buf[headerLen:])
			return
		}
	}
	// A kept-alive connection the agent closed as the request went out says nothing of its
	// health (it closed an idle connection): that does not eject it. The call is not retried
	// all the same, as nginx and Go's client do not retry a POST: the agent may have acted.
	call.fail(errAgentClosed, !uc.reused || len(buf) > 0)
}

// readAnswerHeader parses the headers of the answer at the start of buf into the loop's
// response header, past any interim answer (100 Continue, 103 Early Hints). It returns the
// bytes they take, 0 while they are not all here.
func (ls *loopState) readAnswerHeader(buf []byte) (int, error) {
	n := 0
	for {
		end := bytes.Index(buf[n:], headerEnd)
		if end < 0 {
			if len(buf)-n > maxUpstreamHeaderBytes {
				return 0, errAnswerHeaderTooLarge
			}
			return 0, nil
		}
		headerLen := end + len(headerEnd)
		if headerLen > maxUpstreamHeaderBytes {
			return 0, errAnswerHeaderTooLarge
		}
		h := &ls.resp.Header
		h.Reset()
		h.SetNoDefaultContentType(true) // an answer without one is relayed without one
		if err := ls.readHeader(h.Read, buf[n:n+headerLen]); err != nil {
			return 0, errBadAnswer
		}
		n += headerLen
		if status := h.StatusCode(); status >= 100 && status < 200 && status != fasthttp.StatusSwitchingProtocols {
			continue
		}
		return n, nil
	}
}

// answerFraming tells how the answer's body ends, and its length when it has one.
func answerFraming(h *fasthttp.ResponseHeader) (framing, size int, err error) {
	if status := h.StatusCode(); status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified || status < 200 {
		return noBody, 0, nil
	}
	switch size = h.ContentLength(); {
	case size > maxUpstreamBodyBytes:
		return 0, 0, fasthttp.ErrBodyTooLarge
	case size >= 0:
		return framedByLength, size, nil
	case size == -1:
		return framedByChunks, 0, nil
	}
	return framedByClose, 0, nil
}

// dechunk decodes the chunks at the start of src, appending their data to dst. It returns the
// bytes of src it took: the whole body (trailers included, not relayed) when complete, else
// the whole chunks decoded so far.
func dechunk(dst, src []byte, limit int) (body []byte, used int, complete bool, err error) {
	for {
		line := bytes.Index(src[used:], []byte("\r\n"))
		if line < 0 {
			if len(src)-used > maxChunkLineBytes {
				return dst, used, false, errBadChunk
			}
			return dst, used, false, nil
		}
		sizeField := src[used : used+line]
		if i := bytes.IndexByte(sizeField, ';'); i >= 0 {
			sizeField = sizeField[:i] // chunk extensions are ignored
		}
		sizeField = bytes.TrimSpace(sizeField)
		size, perr := strconv.ParseUint(string(sizeField), 16, 32)
		if perr != nil || len(sizeField) == 0 {
			return dst, used, false, errBadChunk
		}
		data := used + line + 2
		if size == 0 {
			// Trailers, if any, end with an empty line.
			for i := data; ; {
				end := bytes.Index(src[i:], []byte("\r\n"))
				if end < 0 {
					if len(src)-data > maxTrailerBytes {
						return dst, used, false, errBadChunk
					}
					return dst, used, false, nil
				}
				if end == 0 {
					return dst, i + 2, true, nil
				}
				if i += end + 2; i-data > maxTrailerBytes {
					return dst, used, false, errBadChunk
				}
			}
		}
		if len(dst)+int(size) > limit {
			return dst, used, false, fasthttp.ErrBodyTooLarge
		}
		next := data + int(size) + 2
		if len(src) < next {
			return dst, used, false, nil
		}
		if !bytes.Equal(src[next-2:next], []byte("\r\n")) {
			return dst, used, false, errBadChunk
		}
		dst = append(dst, src[data:next-2]...)
		used = next
	}
}
