package router

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// clientOf is the A2A SDK's client of version v, built from the card it reads through the
// router, as a user of that SDK version builds it.
func clientOf(t *testing.T, e *testEnv, v a2aversion.Version) *a2aclient.Client {
	t.Helper()
	ctx := context.Background()
	if v == a2aversion.V10 {
		card, err := agentcard.DefaultResolver.Resolve(ctx, e.agentURL())
		if err != nil {
			t.Fatalf("1.0 client: resolve the card through the router: %v", err)
		}
		c, err := a2aclient.NewFromCard(ctx, card)
		if err != nil {
			t.Fatalf("1.0 client: %v", err)
		}
		return c
	}
	resolver := agentcard.Resolver{CardParser: a2av0.NewAgentCardParser()}
	card, err := resolver.Resolve(ctx, e.agentURL())
	if err != nil {
		t.Fatalf("0.3 client: resolve the card through the router: %v", err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(),
		a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: http.DefaultClient}))
	if err != nil {
		t.Fatalf("0.3 client: %v", err)
	}
	return c
}

// TestA2A_VersionPairs: a client of either version calls an agent of either version through the
// router: send, stream (every event, in order), get, resubscribe and cancel. The agent is
// always spoken to in its own version (its SDK handler of the other version would answer
// "method not found"), with the A2A-Version header a 1.0 agent needs.
func TestA2A_VersionPairs(t *testing.T) {
	for _, agent := range a2aversion.Versions {
		for _, client := range a2aversion.Versions {
			t.Run("client "+string(client)+" agent "+string(agent), func(t *testing.T) {
				e := newTestEnvOf(t, agent)
				c := clientOf(t, e, client)
				ctx := bearer(context.Background(), e.issuer.token(t))
				echoFlow(ctx, t, c)

				wantHeader := ""
				if agent == a2aversion.V10 {
					wantHeader = "1.0"
				}
				for _, got := range e.exec.seenVersions() {
					if got != wantHeader {
						t.Fatalf("the %s agent got A2A-Version %q, want %q", agent, got, wantHeader)
					}
				}
				translated := testutil.ToFloat64(e.router.metrics.translated.WithLabelValues(string(client), string(agent)))
				if (client != agent) != (translated > 0) {
					t.Errorf("client %s, agent %s: %v calls counted as translated", client, agent, translated)
				}
			})
		}
	}
}

// echoFlow runs the calls every client makes of the echo agent through the router: send,
// stream (every event, in order), get, resubscribe and cancel.
func echoFlow(ctx context.Context, t *testing.T, c *a2aclient.Client) {
	t.Helper()
	res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hello"))})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := textOf(t, res); got != "echo: hello" {
		t.Fatalf("send: reply %q", got)
	}
	kinds, taskID := streamEvents(ctx, t, c, "stream:3")
	want := []string{"task", "artifact:chunk-0", "artifact:chunk-1", "artifact:chunk-2", "status:" + string(a2a.TaskStateCompleted)}
	if !slices.Equal(kinds, want) {
		t.Fatalf("stream events %v, want %v", kinds, want)
	}
	task, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
	if err != nil || task.Status.State != a2a.TaskStateCompleted || len(task.Artifacts) != 3 {
		t.Fatalf("get: %+v, %v", task, err)
	}
	resubscribeAndCancel(ctx, t, c)
}

// streamEvents streams text to the echo agent through c and names every event, in order
// ("task", "artifact:<text>", "status:<state>"); it returns them and the task's id.
func streamEvents(ctx context.Context, t *testing.T, c *a2aclient.Client, text string) ([]string, a2a.TaskID) {
	t.Helper()
	var kinds []string
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch v := ev.(type) {
		case *a2a.Task:
			taskID = v.ID
			kinds = append(kinds, "task")
		case *a2a.TaskArtifactUpdateEvent:
			kinds = append(kinds, "artifact:"+v.Artifact.Parts[0].Text())
		case *a2a.TaskStatusUpdateEvent:
			kinds = append(kinds, "status:"+string(v.Status.State))
		default:
			kinds = append(kinds, fmt.Sprintf("%T", v))
		}
	}
	return kinds, taskID
}

// TestA2A_TranslatedErrors: an A2A error of the agent reaches a client of the other version as
// the same typed error (TaskNotFound), not as a router failure.
func TestA2A_TranslatedErrors(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V10)
	c := clientOf(t, e, a2aversion.V03)
	ctx := bearer(context.Background(), e.issuer.token(t))
	_, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"})
	if !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("get of an unknown task through translation: %v, want TaskNotFound (-32001)", err)
	}
}

// TestA2A_UntranslatableAnswer: an agent whose answer is not A2A of the version its card names
// gives the client A2A's InvalidAgentResponse (-32006), in a stream too, never a broken answer.
func TestA2A_UntranslatableAnswer(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"kind\":\"surprise\"}}\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"kind":"surprise"}}`)
	})
	e.peer.Config.Handler = agent
	token := "Bearer " + e.issuer.token(t)

	status, out := rpc(t, e, token, sendBody)
	errObj, _ := out["error"].(map[string]any)
	if status != http.StatusOK || errObj == nil || errObj["code"] != float64(codeInvalidAgentResponse) || out["id"] != float64(7) {
		t.Fatalf("untranslatable answer: %d %v", status, out)
	}

	req, _ := http.NewRequest(http.MethodPost, e.agentURL(), strings.NewReader(
		`{"jsonrpc":"2.0","id":8,"method":"SendStreamingMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`))
	req.Header.Set("Authorization", token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	data, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "data: ")
	var ev struct {
		ID    int `json:"id"`
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if !ok || json.Unmarshal([]byte(data), &ev) != nil || ev.Error.Code != codeInvalidAgentResponse || ev.ID != 8 {
		t.Fatalf("untranslatable stream event gave %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

// TestCard_ListsWhatTheRouterServes: the router's card lists JSON-RPC in both versions and REST
// in both for every agent that speaks JSON-RPC or 1.0 REST (what the agent does not serve is
// translated), and only the REST an agent serves when it has neither; a 0.3 client finds REST
// in additionalInterfaces, or as the preferred transport.
func TestCard_ListsWhatTheRouterServes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		card   string
		want   []string // binding/version of supportedInterfaces, in order
		v03Alt []string // transports of additionalInterfaces
	}{
		{"0.3 JSON-RPC", `{"name":"a","protocolVersion":"0.3.0","url":"http://a","preferredTransport":"JSONRPC"}`,
			[]string{"JSONRPC/1.0", "JSONRPC/0.3", "HTTP+JSON/1.0", "HTTP+JSON/0.3"}, []string{"HTTP+JSON"}},
		{"0.3 with REST", `{"name":"a","protocolVersion":"0.3.0","url":"http://a","preferredTransport":"JSONRPC","additionalInterfaces":[{"url":"http://a","transport":"HTTP+JSON"}]}`,
			[]string{"JSONRPC/1.0", "JSONRPC/0.3", "HTTP+JSON/0.3", "HTTP+JSON/1.0"}, []string{"HTTP+JSON"}},
		{"1.0 with REST", `{"name":"a","supportedInterfaces":[{"url":"http://a","protocolBinding":"JSONRPC","protocolVersion":"1.0"},{"url":"http://a","protocolBinding":"HTTP+JSON","protocolVersion":"1.0"}]}`,
			[]string{"JSONRPC/1.0", "JSONRPC/0.3", "HTTP+JSON/1.0", "HTTP+JSON/0.3"}, []string{"HTTP+JSON"}},
		// Called over its REST (jsonrpcOverREST): everything, as for a JSON-RPC agent.
		{"1.0 REST only", `{"name":"a","supportedInterfaces":[{"url":"http://a","protocolBinding":"HTTP+JSON","protocolVersion":"1.0"}]}`,
			[]string{"JSONRPC/1.0", "JSONRPC/0.3", "HTTP+JSON/1.0", "HTTP+JSON/0.3"}, []string{"HTTP+JSON"}},
		// No JSON-RPC to translate into, nor 1.0 REST to call: only the REST the agent serves.
		{"0.3 REST only", `{"name":"a","protocolVersion":"0.3.0","url":"http://a","preferredTransport":"HTTP+JSON"}`,
			[]string{"HTTP+JSON/0.3"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := routerCard(context.Background(), readA2ACard(json.RawMessage(tc.card)), "http://router/a2a/ns/a")
			if err != nil {
				t.Fatal(err)
			}
			var card struct {
				URL                  string `json:"url"`
				ProtocolVersion      string `json:"protocolVersion"`
				PreferredTransport   string `json:"preferredTransport"`
				AdditionalInterfaces []struct {
					URL       string `json:"url"`
					Transport string `json:"transport"`
				} `json:"additionalInterfaces"`
				SupportedInterfaces []struct {
					URL, ProtocolBinding, ProtocolVersion string
				} `json:"supportedInterfaces"`
			}
			if err := json.Unmarshal(raw, &card); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, i := range card.SupportedInterfaces {
				if i.URL != "http://router/a2a/ns/a" {
					t.Errorf("interface URL %s is not the router's", i.URL)
				}
				got = append(got, i.ProtocolBinding+"/"+i.ProtocolVersion)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("supportedInterfaces %v, want %v", got, tc.want)
			}
			preferred := "JSONRPC"
			if !slices.Contains(tc.want, "JSONRPC/0.3") {
				preferred = "HTTP+JSON"
			}
			if card.URL != "http://router/a2a/ns/a" || card.PreferredTransport != preferred || card.ProtocolVersion != "0.3" {
				t.Errorf("0.3 fields: url %q, preferredTransport %q, protocolVersion %q", card.URL, card.PreferredTransport, card.ProtocolVersion)
			}
			alt := []string{}
			for _, i := range card.AdditionalInterfaces {
				alt = append(alt, i.Transport)
			}
			if !slices.Equal(alt, tc.v03Alt) {
				t.Errorf("additionalInterfaces %v, want %v", alt, tc.v03Alt)
			}
		})
	}
}

// TestCard_DropsTheAgentsSignatures: the router's card is not the agent's (its interfaces are
// the router's), so the agent's signatures, which would not verify over it, are not served.
func TestCard_DropsTheAgentsSignatures(t *testing.T) {
	raw, err := routerCard(context.Background(), readA2ACard(json.RawMessage(`{"name":"a","supportedInterfaces":[{"url":"http://a","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],`+
		`"signatures":[{"protected":"eyJhbGciOiJFUzI1NiJ9","signature":"c2ln"}]}`)), "http://router/a2a/ns/a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "signatures") {
		t.Fatalf("the router's card carries the agent's signatures: %s", raw)
	}
}

// TestA2A_RESTOverJSONRPC: a 1.0 REST client (the Go SDK's) calls agents that speak only
// JSON-RPC, of either version, through the router: send, stream (every event, in order), get,
// resubscribe and cancel; and an A2A error of the agent reaches it typed.
func TestA2A_RESTOverJSONRPC(t *testing.T) {
	for _, agent := range a2aversion.Versions {
		t.Run("agent "+string(agent), func(t *testing.T) {
			e := newTestEnvOf(t, agent)
			ctx := context.Background()
			card, err := agentcard.DefaultResolver.Resolve(ctx, e.agentURL())
			if err != nil {
				t.Fatal(err)
			}
			c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), a2aclient.WithRESTTransport(http.DefaultClient))
			if err != nil {
				t.Fatalf("a REST client from the router's card: %v", err)
			}
			ctx = bearer(ctx, e.issuer.token(t))
			res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("rest"))})
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := textOf(t, res); got != "echo: rest" {
				t.Fatalf("send: %q", got)
			}
			kinds, taskID := streamEvents(ctx, t, c, "stream:2")
			if want := []string{"task", "artifact:chunk-0", "artifact:chunk-1", "status:" + string(a2a.TaskStateCompleted)}; !slices.Equal(kinds, want) {
				t.Fatalf("stream events %v, want %v", kinds, want)
			}
			task, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
			if err != nil || task.Status.State != a2a.TaskStateCompleted {
				t.Fatalf("get: %+v, %v", task, err)
			}
			if _, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"}); !errors.Is(err, a2a.ErrTaskNotFound) {
				t.Fatalf("get of an unknown task: %v, want TaskNotFound", err)
			}

			resubscribeAndCancel(ctx, t, c)
		})
	}
}

// TestSSETranslator_LongEvent: an event longer than the reader's buffer (an LLM's long answer)
// is translated whole; one past the event limit ends the stream with the failure event.
func TestSSETranslator_LongEvent(t *testing.T) {
	identity := func(b []byte) (string, []byte, error) { return "", b, nil }
	fail := func(error) (string, []byte) { return "", []byte("FAILED") }
	long := strings.Repeat("x", 10000)
	src := io.NopCloser(strings.NewReader("data: " + long + "\r\n\r\n"))
	got, err := io.ReadAll(&sseTranslator{src: bufio.NewReader(src), closer: src, fn: identity, fail: fail})
	if err != nil || string(got) != "data: "+long+"\n\n" {
		t.Fatalf("a 10 kB event: %d bytes, %v", len(got), err)
	}
	huge := strings.Repeat("y", maxEventBytes+1)
	src = io.NopCloser(strings.NewReader("data: " + huge + "\n\n"))
	got, err = io.ReadAll(&sseTranslator{src: bufio.NewReader(src), closer: src, fn: identity, fail: fail})
	if err != nil || string(got) != "data: FAILED\n\n" {
		t.Fatalf("an event past the limit: %q, %v", got[:min(len(got), 40)], err)
	}
}

// TestA2A_TranslatedAnswerChecks: what the router translates is the agent's JSON-RPC answer,
// uncompressed even when the agent compresses what it may (the client's Accept-Encoding is not
// passed on), and the client's id comes back whatever the agent echoed; an error page that is
// not JSON-RPC is InvalidAgentResponse, never an empty task.
func TestA2A_TranslatedAnswerChecks(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	token := "Bearer " + e.issuer.token(t)
	e.peer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "tasks/get") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"detail":"Not authenticated"}`)
			return
		}
		answer := `{"jsonrpc":"2.0","id":"the agent's own","result":{"kind":"message","messageId":"r","role":"agent","parts":[{"kind":"text","text":"ok"}]}}`
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, answer)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, answer)
	})
	req, _ := http.NewRequest(http.MethodPost, e.agentURL(), strings.NewReader(sendBody))
	req.Header.Set("Authorization", token)
	req.Header.Set("Accept-Encoding", "gzip") // a client that decompresses itself
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body := io.Reader(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if body, err = gzip.NewReader(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	var out struct {
		ID     json.RawMessage `json:"id"`
		Result struct {
			Message *struct{} `json:"message"`
		} `json:"result"`
	}
	err = json.NewDecoder(body).Decode(&out)
	resp.Body.Close()
	if err != nil || string(out.ID) != "7" || out.Result.Message == nil {
		t.Fatalf("translated answer of a compressing agent: %v, id %s, result %+v", err, out.ID, out.Result)
	}
	status, answer := rpc(t, e, token, `{"jsonrpc":"2.0","id":9,"method":"GetTask","params":{"id":"t1"}}`)
	errObj, _ := answer["error"].(map[string]any)
	if status != http.StatusOK || errObj == nil || errObj["code"] != float64(codeInvalidAgentResponse) || answer["id"] != float64(9) {
		t.Fatalf("an agent's 401 page: %d %v", status, answer)
	}
}

// TestA2A_ExtendedCardRewritten: the authenticated extended card names the router's interfaces,
// never the agent's own URL, in either version.
func TestA2A_ExtendedCardRewritten(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	e.peer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"0.3.0","name":"agent1","description":"secret skills",`+
			`"url":"http://agent1.team1.svc.cluster.local:8000","preferredTransport":"JSONRPC","version":"1.0.0","capabilities":{},`+
			`"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{"id":"hidden","name":"Hidden","description":"","tags":[]}]}}`)
	})
	token := "Bearer " + e.issuer.token(t)
	for _, method := range []string{"agent/getAuthenticatedExtendedCard", "GetExtendedAgentCard"} {
		status, out := rpc(t, e, token, `{"jsonrpc":"2.0","id":3,"method":"`+method+`"}`)
		card, _ := out["result"].(map[string]any)
		raw, _ := json.Marshal(card)
		if status != http.StatusOK || card == nil || card["url"] != e.agentURL() || strings.Contains(string(raw), "svc.cluster.local") ||
			!strings.Contains(string(raw), "hidden") || out["id"] != float64(3) {
			t.Fatalf("%s: %d %s", method, status, raw)
		}
	}
}

// TestCard_WrittenOnceFollowsChanges: the router's card is written once per agent card and
// served again, and a new agent card (discovery sees the ConfigMap change) is served at once.
func TestCard_WrittenOnceFollowsChanges(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	get := func() string {
		resp, err := http.Get(e.agentURL() + "/.well-known/agent-card.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	first := get()
	if second := get(); second != first || !strings.Contains(first, `"name":"agent1"`) {
		t.Fatalf("the card changed between two calls:\n%s\n%s", first, second)
	}
	e.registry.SetCard("team1", "agent1", json.RawMessage(strings.Replace(string(testCard(a2aversion.V03)), `"name":"agent1"`, `"name":"renamed"`, 1)))
	if got := get(); !strings.Contains(got, `"name":"renamed"`) || !strings.Contains(got, e.agentURL()) {
		t.Fatalf("after the card changed: %s", got)
	}
}
