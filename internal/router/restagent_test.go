package router

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// restOnlyCard is the card of an agent that serves A2A 1.0 over HTTP+JSON and nothing else.
var restOnlyCard = json.RawMessage(`{"name":"agent1","description":"echo","version":"1.0.0","capabilities":{"streaming":true},` +
	`"supportedInterfaces":[{"url":"http://agent1.team1.svc.cluster.local:8000","protocolBinding":"HTTP+JSON","protocolVersion":"1.0"}],` +
	`"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{"id":"echo","name":"Echo","description":"echoes","tags":["test"]}]}`)

// newA2ARESTPeer serves the executor over the A2A SDK's 1.0 REST handler alone.
func newA2ARESTPeer(t *testing.T) (*httptest.Server, *echoExecutor) {
	t.Helper()
	exec := &echoExecutor{release: make(chan struct{})}
	rest := a2asrv.NewRESTHandler(a2asrv.NewHandler(exec))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exec.recordVersion(r.Header.Get(a2aversion.Header))
		exec.recordAuth(r.Header.Get("Authorization")) // every call, not only those that run the executor
		rest.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(exec.release)
		srv.Close()
	})
	return srv, exec
}

// TestA2A_RESTOnlyAgent: an agent that serves 1.0 REST alone is reached by every client: the SDK's
// JSON-RPC clients of both versions (send, stream in order, get, a typed TaskNotFound,
// resubscribe and cancel), its 1.0 REST client (forwarded), and a 0.3 REST call. The agent gets
// only exchanged tokens and A2A-Version 1.0.
func TestA2A_RESTOnlyAgent(t *testing.T) {
	peer, exec := newA2ARESTPeer(t)
	e := newTestEnvWith(t, peer, exec, restOnlyCard)
	token := e.issuer.token(t)
	ctx := bearer(context.Background(), token)

	restClient := func() *a2aclient.Client {
		card, err := agentcard.DefaultResolver.Resolve(context.Background(), e.agentURL())
		if err != nil {
			t.Fatal(err)
		}
		c, err := a2aclient.NewFromCard(context.Background(), card, a2aclient.WithDefaultsDisabled(), a2aclient.WithRESTTransport(http.DefaultClient))
		if err != nil {
			t.Fatalf("a REST client from the router's card: %v", err)
		}
		return c
	}
	clients := map[string]func() *a2aclient.Client{
		"JSON-RPC 0.3": func() *a2aclient.Client { return clientOf(t, e, a2aversion.V03) },
		"JSON-RPC 1.0": func() *a2aclient.Client { return clientOf(t, e, a2aversion.V10) },
		"REST 1.0":     restClient,
	}
	for name, newClient := range clients {
		t.Run(name, func(t *testing.T) {
			c := newClient()
			echoFlow(ctx, t, c)
			if _, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"}); !errors.Is(err, a2a.ErrTaskNotFound) {
				t.Fatalf("get of an unknown task: %v, want TaskNotFound", err)
			}
		})
	}

	t.Run("REST 0.3", func(t *testing.T) {
		resp, body := e.call(t, http.MethodPost, "/v1/message:send", token,
			`{"message":{"messageId":"m1","role":"ROLE_USER","content":[{"text":"rest03"}]},"configuration":{"blocking":true}}`, "")
		var sent struct {
			Message struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"message"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &sent) != nil || len(sent.Message.Content) != 1 || sent.Message.Content[0].Text != "echo: rest03" {
			t.Fatalf("0.3 REST send: %d %s", resp.StatusCode, body)
		}
	})

	for _, v := range exec.seenVersions() {
		if v != "1.0" {
			t.Fatalf("the agent got A2A-Version %q, want 1.0 on every call", v)
		}
	}
	auths := exec.seenAuth()
	if len(auths) == 0 {
		t.Fatal("the agent recorded no call")
	}
	for _, a := range auths {
		if !strings.HasPrefix(a, "Bearer exchanged:"+testCallee+":") {
			t.Fatalf("the agent received %q, want only tokens exchanged for it", a)
		}
	}
	if n := testutil.ToFloat64(e.router.metrics.translated.WithLabelValues("0.3", "1.0")); n == 0 {
		t.Error("the 0.3 client's calls were not counted as translated")
	}
}

// TestA2A_RESTOnlyAgentKeepsTheCall: through the REST hop a 1.0 client gets its own id back as it
// wrote it (a2a-go reads ids as float64: 9007199254740993 would come back ...992), in an answer
// and in every event of a stream, and the method names the router accepts beside the standard
// ones reach the agent (a2a-go's handler knows only the standard ones).
func TestA2A_RESTOnlyAgentKeepsTheCall(t *testing.T) {
	peer, exec := newA2ARESTPeer(t)
	e := newTestEnvWith(t, peer, exec, restOnlyCard)
	token := e.issuer.token(t)
	post := func(body string) string {
		t.Helper()
		_, b := e.call(t, http.MethodPost, "", token, body, "")
		return string(b)
	}
	const id = `9007199254740993`
	answer := post(`{"jsonrpc":"2.0","id":` + id + `,"method":"GetTask","params":{"id":"no-such-task"}}`)
	if !strings.Contains(answer, `"id":`+id) || rpcErrorCode(answer) != -32001 {
		t.Fatalf("GetTask: %s, want TaskNotFound with id %s", answer, id)
	}
	stream := post(`{"jsonrpc":"2.0","id":` + id + `,"method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"stream:2"}]}}}`)
	events := 0
	for _, line := range strings.Split(stream, "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			events++
			if !strings.Contains(data, `"id":`+id) {
				t.Fatalf("stream event %s does not carry id %s", data, id)
			}
		}
	}
	if events != 4 {
		t.Fatalf("stream: %d events, want 4:\n%s", events, stream)
	}
	// The 1.0 alias of ListTaskPushNotificationConfigs: the agent answers it (with its own error
	// for an unknown task), not a2a-go's handler with "method not found".
	answer = post(`{"jsonrpc":"2.0","id":"p","method":"ListTaskPushNotificationConfig","params":{"taskId":"no-such-task"}}`)
	if code := rpcErrorCode(answer); code == codeMethodNotFound || code == 0 || !strings.Contains(answer, `"id":"p"`) {
		t.Fatalf("ListTaskPushNotificationConfig: %s, want the agent's answer", answer)
	}
}

// TestMCP_RESTOnlyAgent: the MCP facade calls an agent that serves 1.0 REST alone (its stream,
// through the REST hop) and gets its answer.
func TestMCP_RESTOnlyAgent(t *testing.T) {
	peer, exec := newA2ARESTPeer(t)
	e := newTestEnvWith(t, peer, exec, restOnlyCard)
	opted := *e.registry.Lookup("team1", "agent1")
	opted.ExposeAsTool = true
	e.registry.SetService(opted)
	session := mcpSession(t, e, e.issuer.token(t))
	res, err := session.CallTool(context.Background(), &mcp.CallToolParams{Name: "agent1", Arguments: map[string]any{"text": "from MCP"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "echo: from MCP" {
		t.Fatalf("result = %+v", res)
	}
}

// TestA2A_RESTOnlyAgentFailures: through the REST hop, an agent that is down is the router's
// "agent unavailable" (counted as the agent failing), as for any agent, not a2a-go's internal
// error; an answer past the body limit is InvalidAgentResponse; an A2A error keeps its type.
func TestA2A_RESTOnlyAgentFailures(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := &httptest.Server{URL: "http://" + l.Addr().String()}
		l.Close()
		e := newTestEnvWith(t, down, &echoExecutor{}, restOnlyCard)
		bodies := []string{
			`{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
			`{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`,
			`{"jsonrpc":"2.0","id":7,"method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
		}
		for _, body := range bodies {
			status, answer := rpc(t, e, "Bearer "+e.issuer.token(t), body)
			errObj, _ := answer["error"].(map[string]any)
			if status != http.StatusOK || errObj == nil || errObj["code"] != float64(codeUnavailable) || answer["id"] != float64(7) {
				t.Fatalf("%s: %d %v, want error %d with id 7", body, status, answer, codeUnavailable)
			}
		}
		if n := testutil.ToFloat64(e.router.metrics.upstreamErrors.WithLabelValues("team1/agent1")); n != float64(len(bodies)) {
			t.Fatalf("%v upstream errors counted, want %d", n, len(bodies))
		}
	})
	t.Run("a stream starts with the agent's", func(t *testing.T) {
		// The agent starts its stream and sends its first event a second later: the client has
		// the answer's headers at once (a client's header timeout, an idle proxy, would not wait).
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, `data: {"message":{"messageId":"x","role":"ROLE_AGENT","parts":[{"text":"late"}]}}`+"\n\n")
		}))
		t.Cleanup(slow.Close)
		e := newTestEnvWith(t, slow, &echoExecutor{}, restOnlyCard)
		req, _ := http.NewRequest(http.MethodPost, e.agentURL(), strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.issuer.token(t))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if waited := time.Since(start); waited > 500*time.Millisecond || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("headers after %v (%v), want a stream's at once", waited, resp.Header)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "late") {
			t.Fatalf("stream: %s", body)
		}
	})
	t.Run("answer too large", func(t *testing.T) {
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"message":{"messageId":"x","role":"ROLE_AGENT","parts":[{"text":"`+strings.Repeat("a", 5<<20)+`"}]}}`)
		}))
		t.Cleanup(big.Close)
		e := newTestEnvWith(t, big, &echoExecutor{}, restOnlyCard)
		status, answer := rpc(t, e, "Bearer "+e.issuer.token(t),
			`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`)
		errObj, _ := answer["error"].(map[string]any)
		if status != http.StatusOK || errObj == nil || errObj["code"] != float64(-32006) {
			t.Fatalf("%d, error %v, want InvalidAgentResponse (-32006)", status, errObj)
		}
	})
}
