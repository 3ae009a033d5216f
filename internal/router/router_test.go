package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

const (
	testIssuerURL = "https://keycloak.test/realms/kagenti"
	testAudience  = "kagenti-router"
	testCaller    = "spiffe://td.test/ns/team1/sa/ui"
	testCallee    = "spiffe://td.test/ns/team1/sa/agent1"
)

// testIssuer signs tokens like a Keycloak realm and serves its JWKS (a unit-test stand-in).
type testIssuer struct {
	key *rsa.PrivateKey
	kid string
	srv *httptest.Server
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIssuer{key: key, kid: "k1"}
	ti.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: ti.kid, Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) claims(mod func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": testIssuerURL, "sub": "user-42", "azp": testCaller, "aud": []string{testAudience},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": "openid agents"}
	if mod != nil {
		mod(c)
	}
	return c
}

func (ti *testIssuer) sign(t *testing.T, claims map[string]any, kid string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: ti.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token is a valid caller token.
func (ti *testIssuer) token(t *testing.T) string { return ti.sign(t, ti.claims(nil), ti.kid) }

// fakeTokenEndpoint answers token exchanges with "exchanged:<audience>:<n>" and records them.
type fakeTokenEndpoint struct {
	srv      *httptest.Server
	requests atomic.Int32
	refuse   atomic.Bool
	subjects sync.Map
}

func newFakeTokenEndpoint(t *testing.T) *fakeTokenEndpoint {
	f := &fakeTokenEndpoint{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		n := f.requests.Add(1)
		if f.refuse.Load() || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || r.Form.Get("client_secret") != "router-secret" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_scope","error_description":"audience not available"}`)
			return
		}
		f.subjects.Store(r.Form.Get("subject_token"), true)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("exchanged:%s:%d", r.Form.Get("audience"), n), "expires_in": 300})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type testEnv struct {
	issuer   *testIssuer
	tokens   *fakeTokenEndpoint
	router   *Router
	url      string
	peer     *httptest.Server
	exec     *echoExecutor
	registry *Registry
}

// newTestEnv runs a router in front of one A2A SDK agent (team1/agent1) of both protocol
// versions, whose policy allows testCaller only.
func newTestEnv(t *testing.T) *testEnv {
	return newTestEnvOf(t, a2aversion.V03, a2aversion.V10)
}

// newTestEnvOf is newTestEnv with an agent that speaks, and whose card lists, only the versions
// given.
func newTestEnvOf(t *testing.T, versions ...a2aversion.Version) *testEnv {
	t.Helper()
	peer, exec := newA2APeer(t, versions...)
	return newTestEnvWith(t, peer, exec, testCard(versions...))
}

// newTestEnvWith is newTestEnv with the agent peer and its card given.
func newTestEnvWith(t *testing.T, peer *httptest.Server, exec *echoExecutor, card json.RawMessage) *testEnv {
	t.Helper()
	e := &testEnv{issuer: newTestIssuer(t), tokens: newFakeTokenEndpoint(t), registry: NewRegistry(), peer: peer, exec: exec}
	up, _ := url.Parse(e.peer.URL)
	e.registry.SetService(Route{Namespace: "team1", Name: "agent1", Type: contract.TypeAgent, Protocol: "a2a", Framework: "langgraph",
		Upstream: up, Policy: contract.Policy{Audience: testCallee, AudienceScope: "kagenti-aud-x", AllowedCallers: []string{testCaller}}})
	e.registry.SetCard("team1", "agent1", card)
	e.router, e.url = startRouter(t, Config{
		Registry: e.registry, Timeout: 5 * time.Second,
		Verifier:  &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: e.issuer.srv.URL, Audiences: []string{testAudience}}}, MinRefresh: time.Millisecond},
		Exchanger: &Exchanger{TokenURL: e.tokens.srv.URL, ClientID: "kagenti-router", ClientSecret: "router-secret"},
	})
	return e
}

// testCard is agent1's card, listing a JSON-RPC interface for each version given, in 1.0's
// shape when 1.0 is among them and in 0.3's otherwise (as an agent of either SDK publishes it).
func testCard(versions ...a2aversion.Version) json.RawMessage {
	const common = `"name":"agent1","description":"echo","version":"1.0.0","capabilities":{"streaming":true},` +
		`"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{"id":"echo","name":"Echo","description":"echoes","tags":["test"]}]`
	if !slices.Contains(versions, a2aversion.V10) {
		return json.RawMessage(`{"protocolVersion":"0.3.0","url":"http://agent1.team1.svc.cluster.local:8000","preferredTransport":"JSONRPC",` + common + `}`)
	}
	var ifaces []string
	for _, v := range versions {
		ifaces = append(ifaces, `{"url":"http://agent1.team1.svc.cluster.local:8000","protocolBinding":"JSONRPC","protocolVersion":"`+string(v)+`"}`)
	}
	return json.RawMessage(`{"supportedInterfaces":[` + strings.Join(ifaces, ",") + `],` + common + `}`)
}

// startRouter serves a router built from cfg on a loopback port until the test ends and returns
// its URL, which is also the router's public URL.
func startRouter(t testing.TB, cfg Config) (*Router, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + l.Addr().String()
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rt.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
	})
	return rt, cfg.PublicURL
}

func (e *testEnv) agentURL() string { return e.url + "/a2a/team1/agent1" }

// call sends a request with a JSON body to path below the agent's URL through the router, with
// the bearer token when one is given, and returns the answer and its body.
func (e *testEnv) call(t *testing.T, method, path, token, body, accept string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.agentURL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// bearer adds a token to every SDK call.
func bearer(ctx context.Context, token string) context.Context {
	return a2aclient.AttachServiceParams(ctx, a2aclient.ServiceParams{"Authorization": {"Bearer " + token}})
}

func textOf(t *testing.T, res a2a.SendMessageResult) string {
	t.Helper()
	m, ok := res.(*a2a.Message)
	if !ok {
		t.Fatalf("result is %T, want a message", res)
	}
	var s string
	for _, p := range m.Parts {
		s += p.Text()
	}
	return s
}

// TestA2A_V10Client: the SDK's 1.0 client discovers the agent through the router's card, then
// sends, streams, gets and cancels through the router; the agent sees only exchanged tokens.
func TestA2A_V10Client(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	card, err := agentcard.DefaultResolver.Resolve(ctx, e.agentURL())
	if err != nil {
		t.Fatalf("resolve card through the router: %v", err)
	}
	if card.SupportedInterfaces[0].URL != e.agentURL() {
		t.Fatalf("card URL = %s, want the router's %s", card.SupportedInterfaces[0].URL, e.agentURL())
	}
	client, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	token := e.issuer.token(t)
	ctx = bearer(ctx, token)

	res, err := client.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hello"))})
	if err != nil {
		t.Fatalf("SendMessage through the router: %v", err)
	}
	if got := textOf(t, res); got != "echo: hello" {
		t.Fatalf("reply = %q", got)
	}

	var artifacts int
	var taskID a2a.TaskID
	for ev, err := range client.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("stream:3"))}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch v := ev.(type) {
		case *a2a.TaskArtifactUpdateEvent:
			artifacts++
		case *a2a.Task:
			taskID = v.ID
		}
	}
	if artifacts != 3 || taskID == "" {
		t.Fatalf("stream gave %d artifact events and task %q, want 3 and a task", artifacts, taskID)
	}
	task, err := client.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
	if err != nil || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("GetTask = %+v, %v", task, err)
	}

	for _, auth := range e.exec.seenAuth() {
		if auth == "Bearer "+token || !strings.HasPrefix(auth, "Bearer exchanged:"+testCallee+":") {
			t.Fatalf("the agent received %q: it must get only a token exchanged for %s", auth, testCallee)
		}
	}
	if _, ok := e.tokens.subjects.Load(token); !ok {
		t.Fatalf("the caller's token was not the subject of the exchange")
	}
}

// TestA2A_V03Client: the SDK's 0.3 client (compat layer) works through the same route, with the
// 0.3 method names.
func TestA2A_V03Client(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	resolver := agentcard.Resolver{CardParser: a2av0.NewAgentCardParser()}
	card, err := resolver.Resolve(ctx, e.agentURL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(),
		a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: http.DefaultClient}))
	if err != nil {
		t.Fatal(err)
	}
	ctx = bearer(ctx, e.issuer.token(t))
	res, err := client.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("old"))})
	if err != nil {
		t.Fatalf("0.3 message/send through the router: %v", err)
	}
	if got := textOf(t, res); got != "echo: old" {
		t.Fatalf("reply = %q", got)
	}
	events := 0
	for _, err := range client.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("stream:2"))}) {
		if err != nil {
			t.Fatal(err)
		}
		events++
	}
	if events < 3 {
		t.Fatalf("0.3 message/stream gave %d events", events)
	}
}

// TestA2A_Cancel: a long task is resubscribed to (a second stream of the running task) and then
// cancelled, both through the router.
func TestA2A_Cancel(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	card, err := agentcard.DefaultResolver.Resolve(ctx, e.agentURL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	resubscribeAndCancel(bearer(ctx, e.issuer.token(t)), t, client)
}

// resubscribeAndCancel starts a task that runs until cancelled ("wait"), leaves its stream,
// subscribes to it again (the first event must be the task) and cancels it, through c.
func resubscribeAndCancel(ctx context.Context, t *testing.T, c *a2aclient.Client) {
	t.Helper()
	streamCtx, stop := context.WithCancel(ctx)
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(streamCtx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("wait"))}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if tsk, ok := ev.(*a2a.Task); ok {
			taskID = tsk.ID
			break
		}
	}
	stop()
	if taskID == "" {
		t.Fatal("no task from the stream")
	}
	subCtx, stopSub := context.WithCancel(ctx)
	resubscribed := false
	for ev, err := range c.SubscribeToTask(subCtx, &a2a.SubscribeToTaskRequest{ID: taskID}) {
		if err != nil {
			t.Fatalf("resubscribe: %v", err)
		}
		if tsk, ok := ev.(*a2a.Task); ok && tsk.ID == taskID {
			resubscribed = true
			break
		}
	}
	stopSub()
	if !resubscribed {
		t.Fatal("resubscribe gave no event of the task")
	}
	task, err := c.CancelTask(ctx, &a2a.CancelTaskRequest{ID: taskID})
	if err != nil || task.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("cancel: %+v, %v", task, err)
	}
}

// rpc posts a raw JSON-RPC body to the agent through the router.
func rpc(t *testing.T, e *testEnv, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.agentURL(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const sendBody = `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`

func hs256WithPublicKey(t *testing.T, ti *testIssuer) string {
	t.Helper()
	// The classic key-confusion attack: HMAC-sign with the RSA public key as the secret.
	pub, _ := x509.MarshalPKIXPublicKey(&ti.key.PublicKey)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"k1","typ":"JWT"}`))
	payload, _ := json.Marshal(ti.claims(nil))
	signing := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func algNone(t *testing.T, ti *testIssuer) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, _ := json.Marshal(ti.claims(nil))
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// TestA2A_SecurityNegatives: each bad caller is refused with the right status and code, as a
// JSON-RPC error carrying the request id, and nothing reaches the agent: a missing or invalid
// token is 401 (A2A's specification asks for it), a policy refusal 200 with the router's
// forbidden code.
func TestA2A_SecurityNegatives(t *testing.T) {
	e := newTestEnv(t)
	other := newTestIssuer(t)
	cases := map[string]struct {
		auth   func() string
		status int
	}{
		"no token":           {func() string { return "" }, http.StatusUnauthorized},
		"not a bearer token": {func() string { return "Basic dXNlcjpwYXNz" }, http.StatusUnauthorized},
		"alg none":           {func() string { return "Bearer " + algNone(t, e.issuer) }, http.StatusUnauthorized},
		"HS256 with RSA key": {func() string { return "Bearer " + hs256WithPublicKey(t, e.issuer) }, http.StatusUnauthorized},
		"wrong issuer": {func() string {
			return "Bearer " + e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["iss"] = "https://evil/realms/x" }), "k1")
		}, http.StatusUnauthorized},
		"wrong audience": {func() string {
			return "Bearer " + e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["aud"] = "someone-else" }), "k1")
		}, http.StatusUnauthorized},
		"expired": {func() string {
			return "Bearer " + e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "k1")
		}, http.StatusUnauthorized},
		"unknown kid":         {func() string { return "Bearer " + e.issuer.sign(t, e.issuer.claims(nil), "k-unknown") }, http.StatusUnauthorized},
		"signed by other key": {func() string { return "Bearer " + other.sign(t, e.issuer.claims(nil), "k1") }, http.StatusUnauthorized},
		"caller not allowed": {func() string {
			return "Bearer " + e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["azp"] = "spiffe://td.test/ns/x/sa/intruder" }), "k1")
		}, http.StatusOK},
		"garbage": {func() string { return "Bearer not.a.jwt" }, http.StatusUnauthorized},
		"no expiry": {func() string {
			return "Bearer " + e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { delete(c, "exp") }), "k1")
		}, http.StatusUnauthorized},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(e.exec.seenAuth())
			status, body := rpc(t, e, tc.auth(), sendBody)
			if status != tc.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
			}
			errObj, _ := body["error"].(map[string]any)
			wantCode := float64(codeUnauthenticated)
			if tc.status == http.StatusOK {
				wantCode = codeForbidden
			}
			if errObj == nil || body["id"] != float64(7) || errObj["code"] != wantCode {
				t.Fatalf("want a JSON-RPC error %v with id 7, got %v", wantCode, body)
			}
			if after := len(e.exec.seenAuth()); after != before {
				t.Fatalf("the request reached the agent")
			}
		})
	}
	// And the valid token passes, so the refusals above are not a broken setup.
	if status, body := rpc(t, e, "Bearer "+e.issuer.token(t), sendBody); status != http.StatusOK || body["result"] == nil {
		t.Fatalf("valid token: %d %v", status, body)
	}
}

// TestA2A_ExchangeRefused: when Keycloak refuses the exchange, the caller gets the router's
// forbidden error (with HTTP 200, as JSON-RPC errors go) and the agent nothing.
func TestA2A_ExchangeRefused(t *testing.T) {
	e := newTestEnv(t)
	e.tokens.refuse.Store(true)
	status, body := rpc(t, e, "Bearer "+e.issuer.token(t), sendBody)
	if errObj, _ := body["error"].(map[string]any); status != http.StatusOK || errObj == nil || errObj["code"] != float64(codeForbidden) || len(e.exec.seenAuth()) != 0 {
		t.Fatalf("status %d body %v, agent calls %d", status, body, len(e.exec.seenAuth()))
	}
}

// TestA2A_EnvelopeErrors: malformed requests are answered by the router, not forwarded: a
// JSON-RPC error with HTTP 200, or, for a body or headers the router does not read, 413 or 431.
func TestA2A_EnvelopeErrors(t *testing.T) {
	e := newTestEnv(t)
	auth := "Bearer " + e.issuer.token(t)
	cases := map[string]struct {
		body   string
		status int
		code   float64
	}{
		"not JSON":       {`{nope`, http.StatusOK, codeParseError},
		"no version":     {`{"id":1,"method":"SendMessage"}`, http.StatusOK, codeInvalidRequest},
		"batch":          {`[{"jsonrpc":"2.0","id":1,"method":"SendMessage"}]`, http.StatusOK, codeInvalidRequest},
		"unknown method": {`{"jsonrpc":"2.0","id":1,"method":"tasks/delete"}`, http.StatusOK, codeMethodNotFound},
		"object id":      {`{"jsonrpc":"2.0","id":{"a":1},"method":"GetTask"}`, http.StatusOK, codeInvalidRequest},
		"method twice":   {`{"jsonrpc":"2.0","id":1,"method":"GetTask","method":"SendMessage"}`, http.StatusOK, codeInvalidRequest},
		"METHOD too":     {`{"jsonrpc":"2.0","id":1,"method":"GetTask","METHOD":"SendStreamingMessage"}`, http.StatusOK, codeInvalidRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, body := rpc(t, e, auth, tc.body)
			errObj, _ := body["error"].(map[string]any)
			if status != tc.status || errObj == nil || errObj["code"] != tc.code {
				t.Fatalf("got %d %v, want %d code %v", status, body, tc.status, tc.code)
			}
		})
	}
	if len(e.exec.seenAuth()) != 0 {
		t.Fatal("a malformed request reached the agent")
	}
	big := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":"` + strings.Repeat("x", 5<<20) + `"}`
	if status, body := rpc(t, e, auth, big); status != http.StatusRequestEntityTooLarge || body["error"] == nil {
		t.Fatalf("oversized body: %d %v, want 413 with a JSON-RPC error", status, body)
	}
	// Headers beyond the router's limit (8 KiB) are refused with 431, naming the flag.
	if status, body := rpc(t, e, auth+strings.Repeat("x", 9<<10), sendBody); status != http.StatusRequestHeaderFieldsTooLarge ||
		!strings.Contains(fmt.Sprint(body["error"]), "-max-header-bytes") {
		t.Fatalf("oversized headers: %d %v, want 431 naming -max-header-bytes", status, body)
	}
	// A token of several KiB (a Keycloak token with many roles) still fits.
	if status, _ := rpc(t, e, "Bearer "+e.issuer.sign(t, e.issuer.claims(func(c map[string]any) { c["roles"] = strings.Repeat("r", 5<<10) }), e.issuer.kid), sendBody); status != http.StatusOK {
		t.Fatalf("a 5 KiB token: status %d, want 200", status)
	}
}

// TestA2A_BackendDown: an unreachable agent is a JSON-RPC error at once, not a hang, and is
// recorded as a 502.
func TestA2A_BackendDown(t *testing.T) {
	e := newTestEnv(t)
	dead, _ := url.Parse("http://127.0.0.1:1")
	e.registry.SetService(Route{Namespace: "team1", Name: "agent1", Type: contract.TypeAgent, Protocol: "a2a", Upstream: dead,
		Policy: contract.Policy{Audience: testCallee, AllowedCallers: []string{testCaller}}})
	streamBody := strings.Replace(sendBody, `"SendMessage"`, `"SendStreamingMessage"`, 1)
	for _, body := range []string{sendBody, streamBody} {
		start := time.Now()
		status, answer := rpc(t, e, "Bearer "+e.issuer.token(t), body)
		errObj, _ := answer["error"].(map[string]any)
		if status != http.StatusOK || errObj == nil || errObj["code"] != float64(codeUnavailable) || answer["id"] != float64(7) || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: got %d %v after %s", body, status, answer, time.Since(start))
		}
	}
	if got := testutil.ToFloat64(e.router.metrics.upstreamErrors.WithLabelValues("team1/agent1")); got != 2 {
		t.Fatalf("upstream errors counted: %v, want 2", got)
	}
	// The answers are JSON-RPC errors with HTTP 200; the metrics still count them as the
	// failures they are.
	if got := testutil.ToFloat64(e.router.metrics.requests.WithLabelValues("a2a", "502")); got != 2 {
		t.Fatalf("requests counted as 502: %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.router.metrics.openStreams); got != 0 {
		t.Fatalf("open streams after a failed stream: %v", got)
	}
}

// TestSSE_HTTP10Agent: an agent answering HTTP/1.0 (Python's http.server) with a stream that
// ends when it closes is relayed as the router's own HTTP/1.1 chunked answer, which ends too.
func TestSSE_HTTP10Agent(t *testing.T) {
	up := rawAgent(t, func(req *http.Request) string {
		if req.RequestURI != "/" {
			// Not the origin form: some servers (h11) take the whole target as the path.
			return "HTTP/1.0 400 Bad Request\r\n\r\nrequest target " + req.RequestURI
		}
		return "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\ndata: one\n\ndata: two\n\n"
	})
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(t, Config{Registry: reg})
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "data: one\n\ndata: two\n\n" || resp.ProtoMinor != 1 || len(resp.Header.Values("Date")) != 1 {
		t.Fatalf("relayed %s %q %v (Date %v)", resp.Proto, got, err, resp.Header.Values("Date"))
	}
}

// TestSSE_FlushesAtOnceAndClientCancels: stream events reach the client while the agent is
// still working, and a client that goes away cancels the upstream request.
func TestSSE_FlushesAtOnceAndClientCancels(t *testing.T) {
	upstreamDone := make(chan struct{})
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"n\":1}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(upstreamDone)
		case <-release:
		}
	}))
	defer upstream.Close()
	defer close(release)
	reg := NewRegistry()
	up, _ := url.Parse(upstream.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(t, Config{Registry: reg})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srvURL+"/a2a/ns/a", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event not relayed while the upstream still streams: %q %v", line, err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
}

// TestCardAndCatalog: the card is rewritten to the router; the catalog filters by skill,
// framework and protocol.
func TestCardAndCatalog(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"/.well-known/agent-card.json", "/.well-known/agent.json"} {
		resp, err := http.Get(e.agentURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		var card map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&card)
		resp.Body.Close()
		if card["url"] != e.agentURL() || card["name"] != "agent1" {
			t.Fatalf("%s: card %v", path, card)
		}
	}
	get := func(q string) int {
		resp, err := http.Get(e.url + "/agents" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Agents []catalogEntry `json:"agents"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return len(out.Agents)
	}
	for q, want := range map[string]int{"": 1, "?skill=echo": 1, "?skill=test": 1, "?skill=weather": 0, "?framework=langgraph": 1, "?framework=crewai": 0, "?protocol=acp": 0} {
		if got := get(q); got != want {
			t.Errorf("GET /agents%s: %d agents, want %d", q, got, want)
		}
	}
}

// TestACP: runs are routed by agent_name, and later calls on a run go to the agent that made it.
func TestACP(t *testing.T) {
	var calls sync.Map
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Store(r.Method+" "+r.URL.Path, r.Header.Get("Authorization"))
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/runs":
			writeJSON(w, http.StatusOK, map[string]any{"run_id": "run-1", "agent_name": "summarizer", "status": "completed"})
		case r.URL.Path == "/runs/run-1":
			writeJSON(w, http.StatusOK, map[string]any{"run_id": "run-1", "status": "completed"})
		case r.URL.Path == "/runs/run-1/cancel":
			writeJSON(w, http.StatusAccepted, map[string]any{"run_id": "run-1", "status": "cancelling"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer peer.Close()
	e := newTestEnv(t)
	up, _ := url.Parse(peer.URL)
	e.registry.SetService(Route{Namespace: "team1", Name: "summarizer", Type: contract.TypeAgent, Protocol: "acp", Upstream: up,
		Policy: contract.Policy{Audience: "spiffe://td.test/ns/team1/sa/summarizer"}})
	e.registry.SetCard("team1", "summarizer", json.RawMessage(`{"name":"summarizer","description":"sums"}`))
	token := e.issuer.token(t)
	do := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, out := do(http.MethodGet, "/acp/team1/agents", ""); status != 200 || len(out["agents"].([]any)) != 1 {
		t.Fatalf("GET agents: %d %v", status, out)
	}
	if status, out := do(http.MethodPost, "/acp/team1/runs", `{"agent_name":"summarizer","input":[],"mode":"sync"}`); status != 200 || out["run_id"] != "run-1" {
		t.Fatalf("POST runs: %d %v", status, out)
	}
	if status, _ := do(http.MethodGet, "/acp/team1/runs/run-1", ""); status != 200 {
		t.Fatalf("GET run: %d", status)
	}
	if status, _ := do(http.MethodPost, "/acp/team1/runs/run-1/cancel", ""); status != http.StatusAccepted {
		t.Fatalf("cancel run: %d", status)
	}
	if status, out := do(http.MethodPost, "/acp/team1/runs", `{"agent_name":"nobody"}`); status != 404 || out["code"] != "not_found" {
		t.Fatalf("unknown agent: %d %v", status, out)
	}
	auth, _ := calls.Load("POST /runs")
	if a, _ := auth.(string); !strings.HasPrefix(a, "Bearer exchanged:spiffe://td.test/ns/team1/sa/summarizer:") {
		t.Fatalf("the ACP agent received %q, want an exchanged token", auth)
	}
}

// TestRetries: a read (GetTask) whose first connection fails is retried and answered; a write
// (SendMessage) is not retried, so it cannot act twice.
func TestRetries(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // the connection dies before any answer
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"id": "t1"}})
	}))
	defer flaky.Close()
	reg := NewRegistry()
	up, _ := url.Parse(flaky.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(t, Config{Registry: reg})
	post := func(body string) int {
		resp, err := http.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return rpcErrorCode(string(answer))
	}
	if code := post(`{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}`); code != 0 || calls.Load() != 2 {
		t.Fatalf("GetTask: error %d after %d upstream calls, want a result after a retry", code, calls.Load())
	}
	calls.Store(0)
	if code := post(sendBody); code != codeUnavailable || calls.Load() != 1 {
		t.Fatalf("SendMessage: error %d after %d upstream calls, want %d after exactly one", code, calls.Load(), codeUnavailable)
	}
}

// TestTracing: the caller's trace continues through the router: one server span whose parent is
// the caller's span, and the agent gets a traceparent of the same trace naming the router's span.
func TestTracing(t *testing.T) {
	var got string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{}})
	}))
	defer upstream.Close()
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	reg := NewRegistry()
	up, _ := url.Parse(upstream.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(t, Config{Registry: reg, TracerProvider: tp})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, srvURL+"/a2a/ns/a", strings.NewReader(sendBody))
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := exporter.GetSpans()
	if len(spans) != 1 || spans[0].SpanContext.TraceID().String() != traceID || spans[0].Parent.SpanID().String() != parentID {
		t.Fatalf("spans %+v: want one span in trace %s with parent %s", spans, traceID, parentID)
	}
	want := "00-" + traceID + "-" + spans[0].SpanContext.SpanID().String() + "-01"
	if got != want {
		t.Fatalf("the agent got traceparent %q, want %q", got, want)
	}
}

// TestBalancing: requests spread over an agent's endpoints; a dead endpoint is ejected after its
// first failure, and a read that hit it is retried on a live one.
func TestBalancing(t *testing.T) {
	var hits [2]atomic.Int32
	live := make([]*httptest.Server, 2)
	for i := range live {
		i := i
		live[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{}})
		}))
		defer live[i].Close()
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	reg := NewRegistry()
	up, _ := url.Parse("http://agent.ns.svc.cluster.local:8000")
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	reg.SetEndpoints("ns", "a", []string{live[0].Listener.Addr().String(), deadAddr, live[1].Listener.Addr().String()})
	_, srvURL := startRouter(t, Config{Registry: reg})
	for i := range 9 {
		resp, err := http.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t"}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d (a read that hits a dead endpoint is retried elsewhere)", i, resp.StatusCode)
		}
	}
	if hits[0].Load() == 0 || hits[1].Load() == 0 || hits[0].Load()+hits[1].Load() != 9 {
		t.Fatalf("hits %d and %d: want all 9 requests spread over both live endpoints", hits[0].Load(), hits[1].Load())
	}
}

// TestDrain: after Drain the router reports not ready (load balancers stop sending) while it
// still serves requests in flight and arriving.
func TestDrain(t *testing.T) {
	e := newTestEnv(t)
	get := func(path string) int {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/readyz") != http.StatusOK {
		t.Fatal("not ready before draining")
	}
	e.router.Drain()
	if get("/readyz") != http.StatusServiceUnavailable || get("/healthz") != http.StatusOK {
		t.Fatal("draining must fail readiness and keep liveness")
	}
	if status, _ := rpc(t, e, "Bearer "+e.issuer.token(t), sendBody); status != http.StatusOK {
		t.Fatalf("a request while draining: %d", status)
	}
}

// TestUpstreamHeaderErrorsNotLogged: an agent's malformed answer fails the call, and the log
// line about it does not quote the agent's headers (they may hold cookies or tokens).
func TestUpstreamHeaderErrorsNotLogged(t *testing.T) {
	up := rawAgent(t, func(*http.Request) string {
		// The malformed line holds the secret too: net/http's error quotes that line.
		return "HTTP/1.1 200 OK\r\nSet-Cookie: session=TOPSECRET\r\nSet-Cookie session=TOPSECRET\r\n\r\n"
	})
	var logs bytes.Buffer
	var mu sync.Mutex
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(t, Config{Registry: reg, Log: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))})
	calls := map[string]string{ // path → body: JSON-RPC (a call and a stream) and the HTTP+JSON binding
		"/a2a/ns/a#send":            `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}`,
		"/a2a/ns/a#stream":          `{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{}}`,
		"/a2a/ns/a/v1/message:send": `{"message":{}}`,
	}
	for path, body := range calls {
		p, _, _ := strings.Cut(path, "#")
		resp, err := http.Post(srvURL+p, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// JSON-RPC errors ride HTTP 200; the HTTP+JSON binding's is a 502.
		if code := rpcErrorCode(string(answer)); resp.StatusCode != http.StatusBadGateway && code != codeUnavailable {
			t.Fatalf("%s: status %d %s, want 502 or a JSON-RPC error %d", path, resp.StatusCode, answer, codeUnavailable)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "upstream failed") || strings.Contains(logs.String(), "TOPSECRET") {
		t.Fatalf("log: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// rawAgent is an agent speaking raw HTTP/1.x on loopback: for each request it writes answer's
// bytes as they are, then closes the connection. It returns the agent's URL.
func rawAgent(t *testing.T, answer func(*http.Request) string) *url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, answer(req))
			}()
		}
	}()
	return &url.URL{Scheme: "http", Host: l.Addr().String()}
}

// TestEjection: an agent whose answer breaks HTTP is ejected; one whose answer's headers exceed
// what the router reads, or that is slow, is not (agentFailed).
func TestEjection(t *testing.T) {
	broken := rawAgent(t, func(*http.Request) string { return "HTTP/1.1 200 OK\r\nnot a header\r\n\r\n" })
	bigHeaders := rawAgent(t, func(*http.Request) string {
		return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 9<<10) + "\r\nContent-Length: 0\r\n\r\n"
	})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // net/http sees the router leave only once it has read the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
			t.Error("the router kept its connection to the slow agent open after its timeout")
		}
	}))
	defer slow.Close()
	slowURL, _ := url.Parse(slow.URL)
	for _, tc := range []struct {
		name  string
		agent *url.URL
		eject bool
	}{{"broken answer", broken, true}, {"headers over 8 KiB", bigHeaders, false}, {"slow", slowURL, false}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry()
			reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: tc.agent})
			rt, srvURL := startRouter(t, Config{Registry: reg, Timeout: 300 * time.Millisecond})
			resp, err := http.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(sendBody))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if code := rpcErrorCode(string(answer)); code != codeUnavailable && code != codeTimeout {
				t.Fatalf("status %d %s, want the JSON-RPC error of an unavailable or slow agent", resp.StatusCode, answer)
			}
			if got := ejected(rt, tc.agent.Host); got != tc.eject {
				t.Fatalf("ejected: %v, want %v", got, tc.eject)
			}
		})
	}
}
