package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// a2aServed is what an agent serves of A2A, read once from its card when discovery records it:
// the versions it speaks over JSON-RPC and over HTTP+JSON (REST).
type a2aServed struct {
	// card is the agent's card read as 1.0 (a 0.3 card is read through a2a-go's
	// compatibility parser); nil when the card is missing or not an A2A card.
	card *a2a.AgentCard
	// jsonrpc are the versions the router calls the agent in over JSON-RPC: those its card
	// names, or 1.0 for an agent whose card names 1.0 REST and no JSON-RPC, which the router
	// calls over its REST binding (overREST). rest are the versions of REST its card names.
	jsonrpc, rest []a2aversion.Version
	overREST      bool
	// published is the router's card written from this one, kept for the URL it was written
	// for: the card and catalog routes serve it on every call, the card changes only with a
	// new a2aServed.
	published *publishedCard
}

type publishedCard struct {
	mu   sync.Mutex
	url  string
	json json.RawMessage
}

// routerCardJSON is routerCard for the agent's public URL, written once and served again while
// the card and the URL stay the same.
func (s a2aServed) routerCardJSON(ctx context.Context, publicURL string) (json.RawMessage, error) {
	if s.published == nil {
		return routerCard(ctx, s, publicURL)
	}
	s.published.mu.Lock()
	defer s.published.mu.Unlock()
	if s.published.json == nil || s.published.url != publicURL {
		card, err := routerCard(ctx, s, publicURL)
		if err != nil {
			return nil, err
		}
		s.published.url, s.published.json = publicURL, card
	}
	return s.published.json, nil
}

// readA2ACard reads what an agent serves from its card, of either version: 1.0's
// supportedInterfaces, or 0.3's url, preferredTransport, additionalInterfaces and
// protocolVersion. Of an agent without a usable card nothing is known: its calls pass through
// in the client's version, untranslated.
func readA2ACard(raw json.RawMessage) a2aServed {
	var s a2aServed
	if len(raw) == 0 {
		return s
	}
	card, err := a2av0.NewAgentCardParser()(raw)
	if err != nil {
		return s
	}
	s.card, s.published = card, &publishedCard{}
	ifaces := card.SupportedInterfaces
	// a2a-go reads a 0.3 additionalInterfaces entry at the card's own URL as the preferred
	// interface again and drops it; 0.3 lists every interface there, the preferred one too, so
	// one at the same URL with another transport (REST beside JSON-RPC) is read here.
	var v03 struct {
		SupportedInterfaces  json.RawMessage `json:"supportedInterfaces"`
		ProtocolVersion      string          `json:"protocolVersion"`
		AdditionalInterfaces []struct {
			URL       string `json:"url"`
			Transport string `json:"transport"`
		} `json:"additionalInterfaces"`
	}
	if json.Unmarshal(raw, &v03) == nil && len(v03.SupportedInterfaces) == 0 {
		if v03.ProtocolVersion == "" {
			v03.ProtocolVersion = string(a2aversion.V03)
		}
		for _, i := range v03.AdditionalInterfaces {
			ifaces = append(ifaces, &a2a.AgentInterface{URL: i.URL, ProtocolBinding: a2a.TransportProtocol(i.Transport), ProtocolVersion: a2a.ProtocolVersion(v03.ProtocolVersion)})
		}
	}
	for _, iface := range ifaces {
		v, ok := a2aversion.ParseVersion(string(iface.ProtocolVersion))
		if !ok {
			continue
		}
		switch iface.ProtocolBinding {
		case a2a.TransportProtocolJSONRPC:
			s.jsonrpc = addVersion(s.jsonrpc, v)
		case a2a.TransportProtocolHTTPJSON:
			s.rest = addVersion(s.rest, v)
		}
	}
	if len(s.jsonrpc) == 0 && slices.Contains(s.rest, a2aversion.V10) {
		s.jsonrpc, s.overREST = []a2aversion.Version{a2aversion.V10}, true
	}
	return s
}

// servedWithoutCard is what the router assumes of an agent without a card.
var servedWithoutCard = readA2ACard(nil)

func addVersion(list []a2aversion.Version, v a2aversion.Version) []a2aversion.Version {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// jsonrpcVersion is the version the router speaks to the agent for a JSON-RPC client of version
// client: the client's own when the agent speaks it (the call passes through untouched), else
// the one the agent speaks (the call is translated).
func (s a2aServed) jsonrpcVersion(client a2aversion.Version) a2aversion.Version {
	if len(s.jsonrpc) == 0 || slices.Contains(s.jsonrpc, client) {
		return client
	}
	return s.jsonrpc[len(s.jsonrpc)-1]
}

// versionsToTry are the versions the router speaks to the agent in its own calls (the MCP
// facade's): the newest its card names, else 1.0 and then 0.3, an agent without a card being
// of either.
func (s a2aServed) versionsToTry() []a2aversion.Version {
	switch {
	case slices.Contains(s.jsonrpc, a2aversion.V10):
		return []a2aversion.Version{a2aversion.V10}
	case len(s.jsonrpc) > 0:
		return []a2aversion.Version{a2aversion.V03}
	}
	return []a2aversion.Version{a2aversion.V10, a2aversion.V03}
}

// routerCard is the card the router serves for an agent: the agent's own, with the interfaces
// the router serves in its place, and nothing else. JSON-RPC and HTTP+JSON in both versions for
// an agent that speaks JSON-RPC or 1.0 REST (the router translates what the agent does not
// serve), and only the 0.3 HTTP+JSON it serves for one that serves nothing else. It is written
// in the union of both versions' shapes (a2a-go's compatibility producer): a 0.3 client reads
// url, preferredTransport and additionalInterfaces, a 1.0 client supportedInterfaces.
func routerCard(ctx context.Context, served a2aServed, publicURL string) (json.RawMessage, error) {
	if served.card == nil {
		return nil, fmt.Errorf("the agent's card is not an A2A agent card")
	}
	card := *served.card
	card.SupportedInterfaces = nil
	// The agent's signatures are of the agent's card, not of this one (its interfaces are the
	// router's): passed on, they would fail every client that verifies them. The router has
	// verified them itself (card_verification).
	card.Signatures = nil
	// An agent whose card names 0.3 REST alone has no JSON-RPC to translate into; one whose card
	// names nothing is taken to speak JSON-RPC, in whatever version its clients do.
	if len(served.jsonrpc) > 0 || len(served.rest) == 0 {
		for _, v := range []a2aversion.Version{a2aversion.V10, a2aversion.V03} {
			card.SupportedInterfaces = append(card.SupportedInterfaces,
				&a2a.AgentInterface{URL: publicURL, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.ProtocolVersion(v)})
		}
	}
	rest := slices.Clone(served.rest)
	for _, v := range []a2aversion.Version{a2aversion.V10, a2aversion.V03} {
		if served.translatesREST(v) {
			rest = addVersion(rest, v)
		}
	}
	for _, v := range rest {
		card.SupportedInterfaces = append(card.SupportedInterfaces,
			&a2a.AgentInterface{URL: publicURL, ProtocolBinding: a2a.TransportProtocolHTTPJSON, ProtocolVersion: a2a.ProtocolVersion(v)})
	}
	producer, ok := a2av0.NewStaticAgentCardProducer(&card).(a2asrv.AgentCardJSONProducer)
	if !ok {
		return nil, fmt.Errorf("a2a-go's compatibility producer does not write JSON")
	}
	indented, err := producer.CardJSON(ctx)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, indented); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// translation is a JSON-RPC call the router translates: the agent answers in version agent, the
// client reads version client.
type translation struct {
	op            a2aversion.Op
	agent, client a2aversion.Version
	// id is the client's request id, for an error the router puts into a translated stream.
	id json.RawMessage
	// rest: the client called the REST binding of its version; its answer is REST's: the result
	// bare (1.0) or as the 0.3 proto's JSON (0.3), an error as google.rpc.Status (1.0) or the
	// bare JSON-RPC error object (0.3) with its HTTP status, stream errors as "error" events.
	rest bool
	// cardURL: the result is an (extended) agent card, answered with the router's interfaces at
	// this URL instead of the agent's.
	cardURL string
}

// request rewrites a client's JSON-RPC request for the agent: the method's name in the agent's
// version and its params converted.
func (t *translation) request(id json.RawMessage, body []byte) ([]byte, error) {
	var in struct {
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	params, err := a2aversion.Params(t.op, t.client, t.agent, in.Params)
	if err != nil {
		return nil, err
	}
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}{"2.0", id, t.op.Method(t.agent), params})
}

// rpcResponse is a JSON-RPC response of the agent.
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	} `json:"error,omitempty"`
}

// answer rewrites one JSON-RPC response of the agent (a whole answer, or one SSE event's data)
// for the client: its result converted, its error's code in the client's version. For a REST
// client the result goes bare and an error as REST's, with the HTTP status it calls for (0:
// not an error).
func (t *translation) answer(data []byte) (body []byte, errStatus int, err error) {
	var resp rpcResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, 0, err
	}
	if resp.JSONRPC != "2.0" || (resp.Error == nil && len(resp.Result) == 0) {
		// Not an A2A answer: a gateway's or a framework's error page (401 {"detail": ...}).
		return nil, 0, fmt.Errorf("not a JSON-RPC 2.0 response")
	}
	// The client's own id, whatever the agent echoed.
	resp.ID = t.id
	if len(resp.ID) == 0 {
		resp.ID = json.RawMessage("null")
	}
	switch {
	case resp.Error != nil && t.rest:
		status, b := restErrorOf(t.client, a2aversion.ErrorCode(resp.Error.Code, t.client), resp.Error.Message, resp.Error.Data)
		return b, status, nil
	case resp.Error != nil:
		resp.Error.Code = a2aversion.ErrorCode(resp.Error.Code, t.client)
		b, err := json.Marshal(resp)
		return b, 0, err
	}
	var r json.RawMessage
	switch {
	case t.cardURL != "":
		served := readA2ACard(resp.Result)
		if served.card == nil {
			return nil, 0, fmt.Errorf("the agent's extended card is not an A2A agent card")
		}
		r, err = routerCard(context.Background(), served, t.cardURL)
	case t.op.Streams():
		r, err = a2aversion.Event(t.agent, t.client, resp.Result)
	default:
		r, err = a2aversion.Result(t.op, t.agent, t.client, resp.Result)
	}
	if err != nil {
		return nil, 0, err
	}
	if t.rest && t.client == a2aversion.V03 {
		r, err = a2aversion.REST03Result(t.op, r)
	}
	if t.rest {
		return r, 0, err
	}
	resp.Result = r
	b, err := json.Marshal(resp)
	return b, 0, err
}

// event is answer for one event of a stream: its data, and "error" as the event's name when
// a REST client gets an error.
func (t *translation) event(data []byte) (string, []byte, error) {
	b, errStatus, err := t.answer(data)
	if errStatus != 0 {
		return "error", b, err
	}
	return "", b, err
}

// errUntranslatable is an agent's answer the router could not read in the agent's version, so
// could not give the client in its own: A2A's InvalidAgentResponse.
type errUntranslatable struct{ err error }

func (e *errUntranslatable) Error() string {
	return "the agent's answer is not valid A2A of the version it speaks: " + e.err.Error()
}

// translateResponse rewrites an agent's answer for the client: a JSON answer whole (it is at
// most MaxBodyBytes), an SSE stream event by event as the events arrive.
func (t *translation) translateResponse(resp *http.Response, limit int64) error {
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// The translated stream's length is not the agent's (a short stream may come with one).
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Body = &sseTranslator{src: bufio.NewReader(resp.Body), closer: resp.Body, fn: t.event,
			fail: func(err error) (string, []byte) {
				if t.rest {
					_, b := restErrorOf(t.client, codeInvalidAgentResponse, err.Error(), nil)
					return "error", b
				}
				return "", bytes.TrimSpace(rpcErrorBody(t.id, &rpcError{Code: codeInvalidAgentResponse, Message: err.Error()}))
			}}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if err != nil {
		return err
	}

	if int64(len(data)) > limit {
		return &errUntranslatable{fmt.Errorf("the answer is larger than %d bytes", limit)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return nil
	}
	out, errStatus, err := t.answer(data)
	if err != nil {
		return &errUntranslatable{err}
	}
	if errStatus != 0 {
		resp.StatusCode, resp.Status = errStatus, strconv.Itoa(errStatus)+" "+http.StatusText(errStatus)
	}
	if t.rest {
		resp.Header.Set("Content-Type", "application/json")
	}
	out = append(out, '\n')
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// sseTranslator rewrites an SSE stream event by event: each event's data (one JSON-RPC
// response) goes through fn; comments and other fields pass as they are. An event is handed on
// as soon as its closing blank line arrives, so the client sees it when the agent sent it. An
// event it cannot translate ends the stream with the error event fail writes, which the
// client's SDK reads as a typed error (not a stream cut short).
type sseTranslator struct {
	src    *bufio.Reader
	closer io.Closer
	// fn translates one event's data, and may name the event.
	fn   func([]byte) (string, []byte, error)
	fail func(error) (string, []byte)
	out  bytes.Buffer
	err  error
}

// maxEventBytes bounds one event of a translated stream.
const maxEventBytes = 4 << 20

func (s *sseTranslator) Read(p []byte) (int, error) {
	for s.out.Len() == 0 && s.err == nil {
		s.err = s.nextEvent()
		if e := (*errUntranslatable)(nil); errors.As(s.err, &e) {
			s.writeEvent(s.fail(e))
			s.err = io.EOF
		}
	}
	if s.out.Len() > 0 {
		return s.out.Read(p)
	}
	return 0, s.err
}

func (s *sseTranslator) Close() error { return s.closer.Close() }

// nextEvent reads one event and writes it, translated, to out.
func (s *sseTranslator) nextEvent() error {
	var fields [][]byte // every line of the event but its data lines
	var data []byte
	hasData, size := false, 0
	for {
		line, err := s.readLine(maxEventBytes - size)
		size += len(line)
		if size > maxEventBytes || errors.Is(err, errLineTooLong) {
			return &errUntranslatable{fmt.Errorf("an SSE event is larger than %d bytes", maxEventBytes)}
		}
		if err != nil && len(line) == 0 {
			if hasData || len(fields) > 0 {
				return s.emit(fields, data, hasData, err)
			}
			return err
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 { // the blank line that ends the event
			if err := s.emit(fields, data, hasData, nil); err != nil {
				return err
			}
			return nil
		}
		if v, ok := bytes.CutPrefix(trimmed, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, v...)
			hasData = true
		} else {
			fields = append(fields, append([]byte(nil), trimmed...))
		}
		if err != nil {
			return s.emit(fields, data, hasData, err)
		}
	}
}

var errLineTooLong = errors.New("SSE line too long")

// readLine reads one line of at most limit bytes. A line longer than the reader's buffer is
// gathered in pieces (LLM answers make long events), so the buffer a stream holds stays small.
func (s *sseTranslator) readLine(limit int) ([]byte, error) {
	line, err := s.src.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		if len(long) > limit {
			return long, errLineTooLong
		}
		line, err = s.src.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// emit writes one event: its other fields as they were, then its data translated.
func (s *sseTranslator) emit(fields [][]byte, data []byte, hasData bool, end error) error {
	for _, f := range fields {
		s.out.Write(f)
		s.out.WriteByte('\n')
	}
	if !hasData {
		s.out.WriteByte('\n')
		return end
	}
	name, out, err := s.fn(data)
	if err != nil {
		return &errUntranslatable{err}
	}
	s.writeEvent(name, out)
	return end
}

// writeEvent writes the rest of an event: its name, if any, and its data.
func (s *sseTranslator) writeEvent(name string, data []byte) {
	if name != "" {
		s.out.WriteString("event: " + name + "\n")
	}
	s.out.WriteString("data: ")
	s.out.Write(data)
	s.out.WriteString("\n\n")
}
