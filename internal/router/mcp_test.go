package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// bearerTransport adds a token to every request of the MCP client.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func mcpSession(t *testing.T, e *testEnv, token string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	session, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: e.url + "/mcp/team1", HTTPClient: &http.Client{Transport: bearerTransport{token}},
	}, nil)
	if err != nil {
		t.Fatalf("connect the MCP client to the router: %v", err)
	}
	t.Cleanup(func() { session.Close() })
	return session
}

// TestMCP_AgentAsTool: an MCP client (the official Go SDK) lists the agent as a tool and calls
// it; the call reaches the A2A SDK agent with an exchanged token and the answer comes back as
// the tool result.
func TestMCP_AgentAsTool(t *testing.T) {
	e := newTestEnv(t)
	rt := e.registry.Lookup("team1", "agent1")
	opted := *rt
	opted.ExposeAsTool = true
	e.registry.SetService(opted)
	token := e.issuer.token(t)
	session := mcpSession(t, e, token)
	ctx := context.Background()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) != 1 || tools.Tools[0].Name != "agent1" || !strings.Contains(tools.Tools[0].Description, "Echo") {
		t.Fatalf("tools = %+v", tools.Tools)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "agent1", Arguments: map[string]any{"text": "from MCP"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "echo: from MCP" {
		t.Fatalf("result = %+v %v", res, res.Content[0])
	}
	auths := e.exec.seenAuth()
	if len(auths) != 1 || !strings.HasPrefix(auths[0], "Bearer exchanged:"+testCallee+":") {
		t.Fatalf("the agent received %v, want one exchanged token", auths)
	}
}

// TestMCP_PolicyAndOptIn: agents that did not opt in are not tools; a caller the agent's policy
// does not list cannot call it (it is not among that caller's tools: the call is refused) and
// the agent is not called; no token, no session.
func TestMCP_PolicyAndOptIn(t *testing.T) {
	e := newTestEnv(t)
	token := e.issuer.token(t)
	tools, err := mcpSession(t, e, token).ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 0 {
		t.Fatalf("an agent that did not opt in is listed: %+v %v", tools, err)
	}
	rt := e.registry.Lookup("team1", "agent1")
	opted := *rt
	opted.ExposeAsTool = true
	e.registry.SetService(opted)
	intruder := e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["azp"] = "spiffe://td.test/ns/x/sa/intruder" }), "k1")
	res, err := mcpSession(t, e, intruder).CallTool(context.Background(), &mcp.CallToolParams{Name: "agent1", Arguments: map[string]any{"text": "x"}})
	if (err == nil && !res.IsError) || len(e.exec.seenAuth()) != 0 {
		t.Fatalf("an intruder's call: %+v %v, agent calls %d", res, err, len(e.exec.seenAuth()))
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "anon", Version: "1"}, nil)
	if _, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp/team1"}, nil); err == nil {
		t.Fatal("an MCP session without a token was accepted")
	}
}

// TestTool_MCPServerGetsExchangedToken: an MCP client calls a kagenti_tool (an MCP SDK server)
// through the router; the tool receives only a token exchanged for its own audience.
func TestTool_MCPServerGetsExchangedToken(t *testing.T) {
	e := newTestEnv(t)
	var seen []string
	server := mcp.NewServer(&mcp.Implementation{Name: "weather-tool", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "forecast", Description: "forecast"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		City string `json:"city"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny in " + in.City}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	toolSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		handler.ServeHTTP(w, r)
	}))
	defer toolSrv.Close()
	up, _ := url.Parse(toolSrv.URL + "/mcp")
	toolID := "spiffe://td.test/ns/team1/sa/weather-tool"
	e.registry.SetService(Route{Namespace: "team1", Name: "weather-tool", Type: contract.TypeTool, Protocol: "mcp", Upstream: up,
		Policy: contract.Policy{Audience: toolID, AllowedCallers: []string{testCaller}}})

	token := e.issuer.token(t)
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
	session, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: e.url + "/tools/team1/weather-tool",
		HTTPClient: &http.Client{Transport: bearerTransport{token}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	res, err := session.CallTool(context.Background(), &mcp.CallToolParams{Name: "forecast", Arguments: map[string]any{"city": "Brno"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "sunny in Brno" {
		t.Fatalf("tools/call through the router: %+v %v", res, err)
	}
	if len(seen) == 0 {
		t.Fatal("the tool saw no request")
	}
	for _, a := range seen {
		if !strings.HasPrefix(a, "Bearer exchanged:"+toolID+":") {
			t.Fatalf("the tool received %q, want only tokens exchanged for %s", a, toolID)
		}
	}
}

// TestMCP_Progress: a client that asks for progress gets one notification per agent event
// (relayed from A2A streaming) and the whole answer as the result.
func TestMCP_Progress(t *testing.T) {
	e := newTestEnv(t)
	rt := e.registry.Lookup("team1", "agent1")
	opted := *rt
	opted.ExposeAsTool = true
	e.registry.SetService(opted)
	var mu sync.Mutex
	var notes []string
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, req.Params.Message)
			mu.Unlock()
		},
	})
	session, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: e.url + "/mcp/team1", HTTPClient: &http.Client{Transport: bearerTransport{e.issuer.token(t)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	params := &mcp.CallToolParams{Name: "agent1", Arguments: map[string]any{"text": "stream:3"}}
	params.SetProgressToken("p1")
	res, err := session.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("tools/call with progress: %+v %v", res, err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "chunk-0\nchunk-1\nchunk-2\ndone" {
		t.Fatalf("result %q", got)
	}
	// The client handles notifications on its own goroutine: they may land just after the result.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(notes)
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 4 || notes[0] != "chunk-0" || notes[3] != "done" {
		t.Fatalf("progress notifications %q, want one per agent event", notes)
	}
}

// TestMCP_ListsOnlyCallableAgents pins that tools/list at /mcp/{ns} shows a caller exactly the
// agents the call path would let it call (the same allowed_callers predicate): an agent whose
// policy lists other callers is not listed, one without allowed_callers is listed to anyone.
// Before, every agent that opted in was listed to every caller.
func TestMCP_ListsOnlyCallableAgents(t *testing.T) {
	e := newTestEnv(t)
	agent1 := *e.registry.Lookup("team1", "agent1") // allows testCaller only
	agent1.ExposeAsTool = true
	e.registry.SetService(agent1)
	others := agent1
	others.Name, others.Policy.AllowedCallers = "others-only", []string{"spiffe://td.test/ns/x/sa/other"}
	e.registry.SetService(others)
	open := agent1
	open.Name, open.Policy.AllowedCallers = "open", nil
	e.registry.SetService(open)
	intruder := e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["azp"] = "spiffe://td.test/ns/x/sa/intruder" }), "k1")
	cases := map[string]struct {
		reason string
		token  string
		want   []string
	}{
		"allowed caller": {"sees the agent that lists it and the open one", e.issuer.token(t), []string{"agent1", "open"}},
		"other caller":   {"sees only the open agent", intruder, []string{"open"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tools, err := mcpSession(t, e, tc.token).ListTools(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tool := range tools.Tools {
				got = append(got, tool.Name)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ntools/list (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}
