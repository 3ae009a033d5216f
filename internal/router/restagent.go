package router

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"sync"

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

func (t *jsonrpcOverREST) RoundTrip(r *http.Request) (*http.Response, error) {
	agentURL := *r.URL
	agentURL.RawQuery = ""
	calls := &agentCalls{next: t.next, limit: t.limit}
	client := &http.Client{Transport: calls, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	agent := &restAgent{rest: a2aclient.NewRESTTransport(&agentURL, client), params: serviceParams(r.Header)}
	// What a2a-go's handler logs is its writes failing once the proxy has stopped reading (the
	// agent down, the client gone), which the proxy reports itself.
	r = r.WithContext(log.AttachLogger(r.Context(), slog.New(slog.DiscardHandler)))
	return serveInProcess(r, a2asrv.NewJSONRPCHandler(agent), calls.failure)
}

// serviceParams are the headers of the call that go on to the agent with each REST call: the
// exchanged token, A2A-Version and the extensions asked for, the forwarding headers and the
// trace context. The body's headers are the REST call's own.
func serviceParams(h http.Header) a2aclient.ServiceParams {
	params := a2aclient.ServiceParams{}
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Type", "Accept", "Accept-Encoding", "Host":
			continue
		}
		params.Append(k, v...)
	}
	return params
}

// agentCalls is the transport of the REST calls made for one JSON-RPC call. It keeps the first
// failure of the agent's connection, which a2a-go would answer as an internal error: the proxy
// reports it as the agent being down instead, as for any agent.
type agentCalls struct {
	next  http.RoundTripper
	limit int64
	mu    sync.Mutex
	err   error
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
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &limitedBody{ReadCloser: resp.Body, limit: c.limit}
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

// serveInProcess runs handler for r and returns its answer as a response whose body streams
// what the handler writes, as it writes it. The answer is handed over at the handler's first
// write (or its end). If by then a call the handler made failed at the transport, that failure
// is returned instead.
func serveInProcess(r *http.Request, handler http.Handler, failure func() error) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &pipeResponseWriter{header: http.Header{}, body: pw, started: make(chan struct{})}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				w.start()
				pw.CloseWithError(fmt.Errorf("the REST bridge failed: %v", p))
				return
			}
			w.start() // an answer with no body
			pw.Close()
		}()
		handler.ServeHTTP(w, r)
	}()
	<-w.started
	if err := failure(); err != nil {
		pr.CloseWithError(err) // the handler's pending write fails, and it returns
		return nil, err
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: r,
	}, nil
}

// pipeResponseWriter is the http.ResponseWriter of serveInProcess: the status and headers are
// taken at the first write, the body goes through a pipe (each write waits for the reader, so
// an event is handed on when it is written, and nothing piles up).
type pipeResponseWriter struct {
	header, sent http.Header
	status       int
	body         *io.PipeWriter
	once         sync.Once
	started      chan struct{}
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

func (w *pipeResponseWriter) start() {
	w.once.Do(func() {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		w.sent = w.header.Clone()
		close(w.started)
	})
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
