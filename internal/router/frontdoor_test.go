package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// agentRecord is what an agent received on one connection: the request line and headers as
// they came over the wire, and the request target.
type agentRecord struct {
	head   string
	target string
}

// recordingAgent is an agent on loopback that keeps the bytes of every request it receives and
// answers each with a JSON-RPC result (whatever was asked: the tests look at the request), then
// closes the connection. It records even what Go's parser refuses.
type recordingAgent struct {
	url *url.URL
	mu  sync.Mutex
	got []agentRecord
}

func newRecordingAgent(t *testing.T) *recordingAgent {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a := &recordingAgent{url: &url.URL{Scheme: "http", Host: l.Addr().String()}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go a.serve(c)
		}
	}()
	return a
}

func (a *recordingAgent) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var seen bytes.Buffer
	req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(c, &seen)))
	rec := agentRecord{}
	if err == nil {
		rec.target = req.RequestURI
		_, _ = io.Copy(io.Discard, req.Body)
	}
	if seen.Len() == 0 {
		return // a connection opened and closed (a pooled one): no request
	}
	rec.head, _, _ = strings.Cut(seen.String(), "\r\n\r\n")
	a.mu.Lock()
	a.got = append(a.got, rec)
	a.mu.Unlock()
	body := `{"jsonrpc":"2.0","id":7,"result":{}}`
	_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// received returns what the agent received since the last call, and forgets it.
func (a *recordingAgent) received() []agentRecord {
	// A request the router sent as the answer went out may still be on its way.
	time.Sleep(20 * time.Millisecond)
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

// rawExchange sends request's bytes as they are on a new connection to addr (what a Go client
// would normalise: escapes, header names) and returns the answer's status and body.
func rawExchange(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read the router's answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// rawPost is a POST of body to target with the given extra header lines, as raw bytes.
func rawPost(host, target string, headerLines []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", target, host)
	for _, h := range headerLines {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// policyEnv is a router in front of one recording agent serving, under one path prefix each,
// two A2A agents, two tools and an ACP agent of namespace team-b. The caller (testCaller) may
// call agent-b, tool-b and acp-b only; agent-a and tool-a allow someone else.
type policyEnv struct {
	issuer   *testIssuer
	agent    *recordingAgent
	registry *Registry
	router   *Router
	addr     string
}

func newPolicyEnv(t *testing.T) *policyEnv {
	t.Helper()
	e := &policyEnv{issuer: newTestIssuer(t), agent: newRecordingAgent(t), registry: NewRegistry()}
	tokens := newFakeTokenEndpoint(t)
	at := func(prefix string) *url.URL { u := *e.agent.url; u.Path = prefix; return &u }
	allow := func(callers ...string) contract.Policy {
		return contract.Policy{Audience: "spiffe://td.test/callee", AllowedCallers: callers}
	}
	other := "spiffe://td.test/ns/x/sa/other"
	e.registry.SetService(Route{Namespace: "team-b", Name: "agent-b", Type: contract.TypeAgent, Protocol: "a2a", Upstream: at("/agent-b"), Policy: allow(testCaller)})
	e.registry.SetService(Route{Namespace: "team-b", Name: "agent-a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: at("/agent-a"), Policy: allow(other)})
	e.registry.SetService(Route{Namespace: "team-b", Name: "tool-b", Type: contract.TypeTool, Protocol: "mcp", Upstream: at("/tool-b"), Policy: allow(testCaller)})
	e.registry.SetService(Route{Namespace: "team-b", Name: "tool-a", Type: contract.TypeTool, Protocol: "mcp", Upstream: at("/tool-a"), Policy: allow(other)})
	e.registry.SetService(Route{Namespace: "team-b", Name: "acp-b", Type: contract.TypeAgent, Protocol: "acp", Upstream: at("/acp-b"), Policy: allow(testCaller)})
	var url string
	e.router, url = startRouter(t, Config{
		Registry: e.registry, Timeout: 5 * time.Second,
		Verifier:  &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: e.issuer.srv.URL, Audiences: []string{testAudience}}}, MinRefresh: time.Millisecond},
		Exchanger: &Exchanger{TokenURL: tokens.srv.URL, ClientID: "kagenti-router", ClientSecret: "router-secret"},
	})
	e.router.runs.put("team-b", "run-1", "acp-b")
	e.addr = strings.TrimPrefix(url, "http://")
	return e
}

// TestFrontDoor_DotSegments pins that no path climbs out of its route: a "." or ".." segment,
// raw or percent-encoded in any case, or formed with an encoded slash, a backslash or a
// ";param", is refused with 400 on every route before routing and authentication, and the agent
// receives nothing; and that an allowed path reaches the agent escaped as the client escaped it.
// Before, /a2a/team-b/agent-b/%2e%2e/agent-a/... was checked against agent-b's policy and
// forwarded as /agent-b/../agent-a/..., which an ingress routes to agent-a.
func TestFrontDoor_DotSegments(t *testing.T) {
	cases := map[string]struct {
		reason string
		target string
		// want is the target the agent receives; "" when the router must refuse with 400.
		want string
	}{
		"encoded dot-dot on the REST binding": {
			reason: "the issue's reproduction: agent-b's policy, agent-a's path",
			target: "/a2a/team-b/agent-b/%2e%2e/agent-a/v1/message:send",
		},
		"upper-case and mixed-case escapes": {
			reason: "escapes are case-insensitive",
			target: "/a2a/team-b/agent-b/%2E%2e/agent-a/v1/message:send",
		},
		"dot-dot and an encoded slash": {
			reason: "..%2F decodes to ../ inside one segment",
			target: "/a2a/team-b/agent-b/..%2Fagent-a/v1/message:send",
		},
		"encoded dots and an encoded slash": {
			reason: "the whole traversal encoded",
			target: "/a2a/team-b/agent-b/%2e%2e%2fagent-a/v1/message:send",
		},
		"raw dot-dot": {
			reason: "ServeMux would redirect it; the router refuses it instead",
			target: "/a2a/team-b/agent-b/../agent-a/v1/message:send",
		},
		"single dot": {
			reason: "a \".\" segment is as ambiguous as \"..\"",
			target: "/a2a/team-b/agent-b/%2e/v1/message:send",
		},
		"backslash": {
			reason: "some servers take a backslash for a slash",
			target: "/a2a/team-b/agent-b/..%5Cagent-a/v1/message:send",
		},
		"dot-dot with a parameter": {
			reason: "Java servers strip ;params from segments",
			target: "/a2a/team-b/agent-b/..;x/agent-a/v1/message:send",
		},
		"dot-dot in the JSON-RPC path": {
			reason: "the JSON-RPC endpoint is matched on the path as sent, not a normalised one",
			target: "/a2a/team-b/agent-b/%2e%2e/agent-a",
		},
		"tool path": {
			reason: "/tools/{ns}/{name}/... forwards its tail too",
			target: "/tools/team-b/tool-b/%2e%2e/tool-a/mcp",
		},
		"ACP run path": {
			reason: "/acp/{ns}/runs/{id}/... forwards its tail too",
			target: "/acp/team-b/runs/run-1/..%2F..%2F..%2Fagent-a/v1/message:send",
		},
		"malformed escape": {
			reason: "an escape that does not decode cannot be checked",
			target: "/a2a/team-b/agent-b/%zz/v1/message:send",
		},
		"fragment": {
			reason: "servers disagree: some read # as part of the path, others as the start of a fragment",
			target: "/a2a/team-b/agent-b/x#/%2e%2e/agent-a",
		},
		"absolute form": {
			reason: "the same check applies to a target with a scheme and host",
			target: "http://router/a2a/team-b/agent-b/%2e%2e/agent-a/v1/message:send",
		},
		"encoded slash kept": {
			reason: "an allowed path goes out with the client's escapes, not decoded and re-escaped",
			target: "/a2a/team-b/agent-b/v1/tasks/a%2Fb:cancel",
			want:   "/agent-b/v1/tasks/a%2Fb:cancel",
		},
		"dots inside a segment": {
			reason: "only whole \".\"/\"..\" segments are refused",
			target: "/a2a/team-b/agent-b/v1/tasks/a..b",
			want:   "/agent-b/v1/tasks/a..b",
		},
		"tool tail": {
			reason: "a tool's tail is forwarded escaped",
			target: "/tools/team-b/tool-b/mcp/x%2Fy",
			want:   "/tool-b/mcp/x%2Fy",
		},
		"ACP run tail": {
			reason: "a run's tail is forwarded escaped",
			target: "/acp/team-b/runs/run-1/cancel",
			want:   "/acp-b/runs/run-1/cancel",
		},
	}
	{
		e := newPolicyEnv(t)
		auth := "Authorization: Bearer " + e.issuer.token(t)
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				status, body := rawExchange(t, e.addr, rawPost(e.addr, tc.target, []string{auth}, sendBody))
				var targets []string
				for _, r := range e.agent.received() {
					targets = append(targets, r.target)
				}
				var want []string
				wantStatus := http.StatusBadRequest
				if tc.want != "" {
					want, wantStatus = []string{tc.want}, http.StatusOK
				}
				if status != wantStatus {
					t.Errorf("%s\nstatus = %d, want %d (body %s)", tc.reason, status, wantStatus, body)
				}
				if diff := cmp.Diff(want, targets); diff != "" {
					t.Errorf("%s\nwhat the agent received (-want +got):\n%s", tc.reason, diff)
				}
			})
		}
	}
}

// TestCheckPath pins the path check on its own, for the spellings a table of requests does not
// reach cheaply.
func TestCheckPath(t *testing.T) {
	cases := map[string]struct {
		reason string
		path   string
		ok     bool
	}{
		"plain":              {"nothing to decode", "/a2a/ns/name/v1/message:send", true},
		"dots in a name":     {"a dot inside a segment is a name", "/a2a/ns/my.agent/v1/.well-known/agent-card.json", true},
		"three dots":         {"\"...\" is a name, not a dot segment", "/a/.../b", true},
		"encoded percent":    {"%252e decodes once to %2e, a name", "/a/%252e%252e/b", true},
		"trailing dot-dot":   {"the last segment counts", "/a/b/..", false},
		"encoded dot":        {"%2e alone", "/a/%2E/b", false},
		"half-encoded":       {"one dot raw, one escaped", "/a/.%2e/b", false},
		"encoded backslash":  {"%5c forms a segment for servers that split on it", "/a/b%5c..%5cc", false},
		"raw backslash":      {"a raw backslash splits too", "/a/b\\..\\c", false},
		"truncated escape":   {"a % at the end", "/a/b%2", false},
		"dot with parameter": {"\".;x\" is \".\" to a Java server", "/a/.;x/b", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := checkPath([]byte(tc.path)) == nil; got != tc.ok {
				t.Errorf("%s\ncheckPath(%q) passes: %v, want %v", tc.reason, tc.path, got, tc.ok)
			}
		})
	}
}

// rpcErrorCode returns the JSON-RPC error code of an answer's body (0 when it is none).
func rpcErrorCode(body string) int {
	var answer struct {
		Error *rpcError `json:"error"`
	}
	if json.Unmarshal([]byte(body), &answer) != nil || answer.Error == nil {
		return 0
	}
	return answer.Error.Code
}

// requestPaths are the kinds of call that reach an agent once past the front door: a
// message/send, a stream and the REST binding (its body streamed).
var requestPaths = map[string]struct{ target, body string }{
	"JSON-RPC send":   {"/a2a/ns/a", sendBody},
	"JSON-RPC stream": {"/a2a/ns/a", strings.Replace(sendBody, `"SendMessage"`, `"SendStreamingMessage"`, 1)},
	"REST binding":    {"/a2a/ns/a/v1/message:send", sendBody},
}

// TestFrontDoor_InvalidHeaders pins that a request with a header name that is not an HTTP token
// (a space in it) or a value with a control byte is refused with 400 at the front door, on
// every path, the agent receives nothing and is not ejected. Before, such a header went on to
// the agent on the event-loop and SSE paths ("Transfer Encoding: chunked" is a smuggling attempt on a
// lenient agent), and on the net/http paths Go's transport refused to send it: a 502 that
// ejected the agent for the client's fault.
func TestFrontDoor_InvalidHeaders(t *testing.T) {
	headers := map[string]struct{ reason, line string }{
		"space in a name":    {"not a token: some servers read \"X Bad\" as \"X-Bad\" or \"XBad\"", "X Bad: 1"},
		"framing look-alike": {"a lenient agent could take it for Transfer-Encoding", "Transfer Encoding: chunked"},
		"NUL in a value":     {"no HTTP value holds a control byte", "X-Note: a\x00b"},
	}
	{
		agent := newRecordingAgent(t)
		reg := NewRegistry()
		reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: agent.url})
		rt, srvURL := startRouter(t, Config{Registry: reg})
		addr := strings.TrimPrefix(srvURL, "http://")
		for hname, h := range headers {
			for pname, p := range requestPaths {
				t.Run(pname+"/"+hname, func(t *testing.T) {
					status, body := rawExchange(t, addr, rawPost(addr, p.target, []string{h.line}, p.body))
					if status != http.StatusBadRequest {
						t.Errorf("%s\nstatus = %d, want 400 (body %s)", h.reason, status, body)
					}
					if got := agent.received(); len(got) != 0 {
						t.Errorf("%s\nthe agent received %q", h.reason, got[0].head)
					}
					if ejected(rt, agent.url.Host) {
						t.Errorf("%s\nthe agent was ejected for the client's malformed request", h.reason)
						rt.balancer.mu.Lock()
						delete(rt.balancer.ejected, agent.url.Host)
						rt.balancer.mu.Unlock()
					}
				})
			}
		}
	}
}

// TestFrontDoor_ForwardingHeaders pins that the client's forwarding headers, in every spelling
// (any case, "_" for "-"), never reach the agent, on every path: the agent gets exactly the
// X-Forwarded-For, -Host and -Proto the router sets. Before, X_Forwarded_For (which a WSGI agent
// reads as X-Forwarded-For) and X-Real-IP went through on every path, and on the net/http
// paths the client's X-Forwarded-For was kept in front of the router's.
func TestFrontDoor_ForwardingHeaders(t *testing.T) {
	spoofed := []string{
		"X-Forwarded-For: 6.6.6.6", "X_Forwarded_For: 6.6.6.6", "x-real-ip: 6.6.6.6", "X_Real_IP: 6.6.6.6",
		"X-Client-IP: 6.6.6.6", "True-Client-IP: 6.6.6.6", "Forwarded: for=6.6.6.6", "X-Forwarded-Host: evil.example",
		"X_FORWARDED_PROTO: https", "X-Forwarded-Prefix: /evil",
	}
	paths := map[string]struct{ target, body string }{
		"tool":    {"/tools/ns/t/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`},
		"ACP run": {"/acp/ns/runs/run-1/cancel", `{}`},
	}
	for name, p := range requestPaths {
		paths[name] = p
	}
	{
		agent := newRecordingAgent(t)
		reg := NewRegistry()
		reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: agent.url})
		reg.SetService(Route{Namespace: "ns", Name: "t", Type: contract.TypeTool, Protocol: "mcp", Upstream: agent.url})
		reg.SetService(Route{Namespace: "ns", Name: "c", Type: contract.TypeAgent, Protocol: "acp", Upstream: agent.url})
		rt, srvURL := startRouter(t, Config{Registry: reg})
		rt.runs.put("ns", "run-1", "c")
		addr := strings.TrimPrefix(srvURL, "http://")
		want := map[string][]string{"x-forwarded-for": {"127.0.0.1"}, "x-forwarded-host": {addr}, "x-forwarded-proto": {"http"}}
		for pname, p := range paths {
			t.Run(pname, func(t *testing.T) {
				status, body := rawExchange(t, addr, rawPost(addr, p.target, spoofed, p.body))
				got := agent.received()
				if status != http.StatusOK || len(got) != 1 {
					t.Fatalf("status %d (body %s), %d requests at the agent; want 200 and 1", status, body, len(got))
				}
				if diff := cmp.Diff(want, forwardingHeaders(got[0].head)); diff != "" {
					t.Errorf("forwarding headers the agent received (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// forwardingHeaders returns the headers of a request head that say where the request came
// from, by name in lower case with "-" for "_", as a WSGI or CGI server reads them.
func forwardingHeaders(head string) map[string][]string {
	out := map[string][]string{}
	lines := strings.Split(head, "\r\n")
	for _, line := range lines[1:] {
		k, v, _ := strings.Cut(line, ":")
		k = strings.ReplaceAll(strings.ToLower(k), "_", "-")
		switch {
		case k == "forwarded", strings.HasPrefix(k, "x-forwarded"), k == "x-real-ip", k == "x-client-ip", k == "true-client-ip":
			out[k] = append(out[k], strings.TrimSpace(v))
		}
	}
	return out
}

// TestSpoofedHeader pins which header names the router never forwards from a client, and that
// ordinary ones pass.
func TestSpoofedHeader(t *testing.T) {
	cases := map[string]struct {
		reason string
		name   string
		want   bool
	}{
		"underscores":       {"WSGI reads X_Forwarded_For as X-Forwarded-For", "X_Forwarded_For", true},
		"mixed case":        {"header names are case-insensitive", "x-FORWARDED-host", true},
		"any X-Forwarded-*": {"X-Forwarded-Prefix and the like steer agents too", "X-Forwarded-Prefix", true},
		"RFC 7239":          {"Forwarded carries for= and proto=", "Forwarded", true},
		"real IP":           {"nginx's convention", "X_Real_Ip", true},
		"client IP":         {"some frameworks read it", "X-Client-IP", true},
		"CDN client IP":     {"Akamai's and Cloudflare's convention", "True-Client-IP", true},
		"ordinary header":   {"an end-to-end header goes on", "X-Request-Id", false},
		"look-alike":        {"only the names above, not their prefixes", "Forwarded-By", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := spoofedHeader(tc.name); got != tc.want {
				t.Errorf("%s\nspoofedHeader(%q) = %v, want %v", tc.reason, tc.name, got, tc.want)
			}
		})
	}
}
