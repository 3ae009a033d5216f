package router

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/a2aproject/a2a-go/v2/log"
)

// jsonrpcOverREST is the last hop of a JSON-RPC call to an agent that serves A2A 1.0 over
// HTTP+JSON alone. The call — the client's own in 1.0, or one the router translated into 1.0 —
// is served by a2a-go's JSON-RPC server handler, whose request handler makes it with a2a-go's
// REST client: as the A2A project's own proxy (`a2a serve --proxy`) joins two bindings. So the
// router writes neither binding itself: the methods' paths, the errors' codes and the stream's
// events are the A2A project's reading of the specification.
type jsonrpcOverREST struct {
	next http.RoundTripper
	// limit bounds an answer of the agent that is not a stream (a2a-go's client reads it whole).
	limit int64
}

// restStreamKeepAlive is how often a stream from such an agent carries an SSE comment while no
// event comes: a2a-go's REST client drops the agent's own comments.
const restStreamKeepAlive = 15 * time.Second

func (t *jsonrpcOverREST) RoundTrip(r *http.Request) (*http.Response, error) {
	agentURL := *r.URL
	agentURL.RawQuery = ""
	w := newPipeResponseWriter()
	// A stream's answer starts when the agent's does, not at its first event.
	calls := &agentCalls{next: t.next, limit: t.limit, streaming: w.start}
	client := &http.Client{Transport: calls, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	agent := &restAgent{rest: a2aclient.NewRESTTransport(&agentURL, client), params: serviceParams(r.Header)}
	// What a2a-go's handler logs is its writes failing once the proxy has stopped reading (the
	// agent down, the client gone), which the proxy reports itself.
	r = r.WithContext(log.AttachLogger(r.Context(), slog.New(slog.DiscardHandler)))
	return serveInProcess(r, a2asrv.NewJSONRPCHandler(agent, a2asrv.WithTransportKeepAlive(restStreamKeepAlive)), w, calls.failure)
}

// serviceParams are the headers of the call that go on to the agent with each REST call: the
// exchanged token, A2A-Version and the extensions asked for, the forwarding headers and the
// trace context. The body's headers are the REST call's own.
func serviceParams(h http.Header) a2aclient.ServiceParams {
	params := a2aclient.ServiceParams{}
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Type", "Accept", "Accept-Encoding", "Host", "Te":
			continue
		}
		params.Append(k, v...)
	}
	return params
}

// agentCalls is the transport of the REST calls made for one JSON-RPC call. It keeps the first
// failure of the agent's connection, which a2a-go would answer as an internal error: the proxy
// reports it as the agent being down instead, as for any agent. An answer that is not a stream
// is bounded; a stream's start is reported (streaming).
type agentCalls struct {
	next      http.RoundTripper
	limit     int64
	streaming func()
	mu        sync.Mutex
	err       error
}

func (c *agentCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
		return nil, err
	}
	// What was asked, not what the agent says it sends, decides (a2a-go's client asks for a
	// stream with Accept, and reads an answer whole otherwise).
	if r.Header.Get("Accept") != "text/event-stream" {
		resp.Body = &limitedBody{ReadCloser: resp.Body, limit: c.limit}
	} else if resp.StatusCode == http.StatusOK {
		c.streaming()
	}
	return resp, nil
}

func (c *agentCalls) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// limitedBody fails a read past its limit as an invalid answer of the agent, which a2a-go's
// handler answers as InvalidAgentResponse (io.LimitReader would end the body silently, and a
// truncated answer reads as malformed JSON).
type limitedBody struct {
	io.ReadCloser
	limit, read int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if b.read > b.limit {
		return 0, fmt.Errorf("%w: the answer is larger than %d bytes", a2a.ErrInvalidAgentResponse, b.limit)
	}
	return n, err
}

// serveInProcess runs handler for r, writing to w, and returns its answer as a response whose
// body streams what the handler writes, as it writes it. The answer is handed over when w
// starts: at the handler's first write, at its end, or when w.start is called. If by then a call
// the handler made failed at the transport, or the handler panicked, that failure is returned
// instead.
func serveInProcess(r *http.Request, handler http.Handler, w *pipeResponseWriter, failure func() error) (*http.Response, error) {
	go func() {
		defer func() {
			if p := recover(); p != nil {
				w.fail(fmt.Errorf("the REST bridge failed: %v", p))
				return
			}
			w.start() // an answer with no body
			w.body.Close()
		}()
		handler.ServeHTTP(w, r)
	}()
	<-w.started
	err := w.err
	if err == nil {
		err = failure()
	}
	if err != nil {
		w.reader.CloseWithError(err) // the handler's pending write fails, and it returns
		return nil, err
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: w.reader, ContentLength: -1, Request: r,
	}, nil
}

// pipeResponseWriter is the http.ResponseWriter of serveInProcess: the status and headers are
// taken when it starts, the body goes through a pipe (each write waits for the reader, so an
// event is handed on when it is written, and nothing piles up).
type pipeResponseWriter struct {
	header, sent http.Header
	status       int
	reader       *io.PipeReader
	body         *io.PipeWriter
	once         sync.Once
	started      chan struct{}
	// err is a failure before the start (a panic), returned instead of an answer.
	err error
}

func newPipeResponseWriter() *pipeResponseWriter {
	pr, pw := io.Pipe()
	return &pipeResponseWriter{header: http.Header{}, reader: pr, body: pw, started: make(chan struct{})}
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	w.start()
	return w.body.Write(p)
}

// Flush is a no-op: every write reaches the reader as it is made.
func (w *pipeResponseWriter) Flush() {}

// start hands the answer over, once: what the handler has set of the status and headers by then
// is what is sent. The handler sets them before it calls the agent (a2a-go's stream handler
// writes its headers before its REST call starts), so start may run on the REST call's
// goroutine.
func (w *pipeResponseWriter) start() {
	w.once.Do(func() {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		w.sent = w.header.Clone()
		close(w.started)
	})
}

// fail ends the answer with err: returned instead of the answer when it has not started, and
// as the body's error when it has.
func (w *pipeResponseWriter) fail(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.started)
	})
	w.body.CloseWithError(err)
}

// restAgent is the a2asrv.RequestHandler that makes each call to the agent over its REST
// binding, with the call's headers.
type restAgent struct {
	rest   a2aclient.Transport
	params a2aclient.ServiceParams
}

var _ a2asrv.RequestHandler = (*restAgent)(nil)

func (a *restAgent) GetTask(ctx context.Context, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	return a.rest.GetTask(ctx, a.params, req)
}

func (a *restAgent) ListTasks(ctx context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	return a.rest.ListTasks(ctx, a.params, req)
}

func (a *restAgent) CancelTask(ctx context.Context, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	return a.rest.CancelTask(ctx, a.params, req)
}

func (a *restAgent) SendMessage(ctx context.Context, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	return a.rest.SendMessage(ctx, a.params, req)
}

func (a *restAgent) SubscribeToTask(ctx context.Context, req *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
	return a.rest.SubscribeToTask(ctx, a.params, req)
}

func (a *restAgent) SendStreamingMessage(ctx context.Context, req *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	return a.rest.SendStreamingMessage(ctx, a.params, req)
}

func (a *restAgent) GetTaskPushConfig(ctx context.Context, req *a2a.GetTaskPushConfigRequest) (*a2a.PushConfig, error) {
	return a.rest.GetTaskPushConfig(ctx, a.params, req)
}

func (a *restAgent) ListTaskPushConfigs(ctx context.Context, req *a2a.ListTaskPushConfigRequest) (*a2a.ListTaskPushConfigResponse, error) {
	configs, err := a.rest.ListTaskPushConfigs(ctx, a.params, req)
	if err != nil {
		return nil, err
	}
	return &a2a.ListTaskPushConfigResponse{Configs: configs}, nil
}

func (a *restAgent) CreateTaskPushConfig(ctx context.Context, req *a2a.PushConfig) (*a2a.PushConfig, error) {
	return a.rest.CreateTaskPushConfig(ctx, a.params, req)
}

func (a *restAgent) DeleteTaskPushConfig(ctx context.Context, req *a2a.DeleteTaskPushConfigRequest) error {
	return a.rest.DeleteTaskPushConfig(ctx, a.params, req)
}

func (a *restAgent) GetExtendedAgentCard(ctx context.Context, req *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
	return a.rest.GetExtendedAgentCard(ctx, a.params, req)
}
