package router

import (
	"bufio"
	"context"
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

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// freshClient opens a new connection for each request, so that each starts on the event loops.
var freshClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func postRPC(t *testing.T, client *http.Client, url string, header http.Header, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// ejected tells whether the router's balancer has ejected host.
func ejected(rt *Router, host string) bool {
	rt.balancer.mu.Lock()
	defer rt.balancer.mu.Unlock()
	_, ok := rt.balancer.ejected[host]
	return ok
}

// frontOf returns the router's front once Serve has started it.
func frontOf(t *testing.T, rt *Router) *front {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		rt.mu.Lock()
		f := rt.front
		rt.mu.Unlock()
		if f != nil {
			return f
		}
	}
	t.Fatal("the router's event loops did not start")
	return nil
}

// TestFront_SendOnLoops: once the caller's token is verified and exchanged (on the server, the
// first time), a message/send on a new connection is made on the event loops, with the same
// request to the agent the server would send and the agent's answer relayed as the server would.
func TestFront_SendOnLoops(t *testing.T) {
	e := newTestEnv(t)
	seen := make(chan *http.Request, 4)
	up := rawAgent(t, func(r *http.Request) string {
		seen <- r
		body := `{"jsonrpc":"2.0","id":7,"result":{}}`
		return fmt.Sprintf("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Agent: yes\r\nKeep-Alive: timeout=5\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	e.registry.SetService(Route{Namespace: "team1", Name: "agent1", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up,
		Policy: contract.Policy{Audience: testCallee, AudienceScope: "kagenti-aud-x", AllowedCallers: []string{testCaller}}})
	token := e.issuer.token(t)
	header := http.Header{
		"Authorization":   {"Bearer " + token},
		"Connection":      {"X-Hop"},
		"X-Hop":           {"dropped"},
		"X-Forwarded-For": {"10.9.9.9"},
		"Forwarded":       {"for=10.9.9.9"},
		"X-Caller":        {"kept"},
	}
	for i := range 2 {
		resp, answer := postRPC(t, freshClient, e.agentURL(), header, sendBody)
		if resp.StatusCode != http.StatusCreated || answer["result"] == nil || resp.Header.Get("X-Agent") != "yes" ||
			resp.Header.Get("Keep-Alive") != "" || len(resp.Header.Values("Date")) != 1 {
			t.Fatalf("call %d: %d %v %v", i, resp.StatusCode, answer, resp.Header)
		}
		r := <-seen
		if r.Header.Get("Authorization") == "Bearer "+token || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer exchanged:"+testCallee+":") {
			t.Fatalf("call %d: the agent got Authorization %q", i, r.Header.Get("Authorization"))
		}
		if r.Header.Get("X-Hop") != "" || r.Header.Get("Forwarded") != "" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" ||
			r.Header.Get("X-Forwarded-Proto") != "http" || r.Header.Get("X-Caller") != "kept" || r.RequestURI != "/" || r.ContentLength != int64(len(sendBody)) {
			t.Fatalf("call %d: the agent got %s %v", i, r.RequestURI, r.Header)
		}
	}
	// The first call verified and exchanged the token on the server; the second was the loops'.
	if served := frontOf(t, e.router).served.Load(); served != 1 {
		t.Fatalf("calls made on the loops: %d, want 1", served)
	}
}

// TestFront_AnswerFramings: an agent's answer framed by chunks (with trailers) or by closing
// the connection (HTTP/1.0) is relayed whole, with a length.
func TestFront_AnswerFramings(t *testing.T) {
	answers := map[string]string{
		"chunked": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n" +
			"4;ext=1\r\n{\"a\"\r\n6\r\n:\"b\"}\n\r\n0\r\nX-T: 1\r\n\r\n",
		"close": "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":\"b\"}\n",
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			up := rawAgent(t, func(*http.Request) string { return answer })
			reg := NewRegistry()
			reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
			rt, srvURL := startRouter(t, Config{Registry: reg})
			resp, err := freshClient.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(sendBody))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "{\"a\":\"b\"}\n" || resp.ContentLength != int64(len(body)) || resp.Header.Get("Trailer") != "" {
				t.Fatalf("%d %q (length %d) %v", resp.StatusCode, body, resp.ContentLength, resp.Header)
			}
			if frontOf(t, rt).served.Load() != 1 {
				t.Fatal("the call was not made on the loops")
			}
		})
	}
}

// TestFront_Timeout: an agent that does not answer in time gets the caller a JSON-RPC timeout
// error, near the timeout, and is not ejected for it.
func TestFront_Timeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // holds every connection, answers nothing
		}
	}()
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: &url.URL{Scheme: "http", Host: l.Addr().String()}})
	rt, srvURL := startRouter(t, Config{Registry: reg, Timeout: 300 * time.Millisecond})
	start := time.Now()
	resp, answer := postRPC(t, freshClient, srvURL+"/a2a/ns/a", nil, sendBody)
	errObj, _ := answer["error"].(map[string]any)
	if resp.StatusCode != http.StatusOK || errObj == nil || errObj["code"] != float64(codeTimeout) || answer["id"] != float64(7) {
		t.Fatalf("%d %v", resp.StatusCode, answer)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("answered after %s, want about 300ms", took)
	}
	if ejected(rt, l.Addr().String()) {
		t.Fatal("a slow agent was ejected")
	}
}

// TestClientGone: a client that goes away while its call is in flight closes the call's
// connection to the agent at once, which tells the agent (not when the agent answers or the
// router's timeout ends the call): on the loops, and on the fasthttp server (loops off).
func TestClientGone(t *testing.T) {
	for name, loops := range map[string]int{"loops": 0, "server": -1} {
		t.Run(name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			agentGotRequest, agentSawClose := make(chan struct{}), make(chan struct{})
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				close(agentGotRequest)
				_, _ = c.Read(make([]byte, 1)) // then waits: the router must close
				close(agentSawClose)
			}()
			reg := NewRegistry()
			reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: &url.URL{Scheme: "http", Host: l.Addr().String()}})
			rt, srvURL := startRouter(t, Config{Registry: reg, EventLoops: loops, Timeout: time.Minute})
			c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /a2a/ns/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(sendBody), sendBody)
			select {
			case <-agentGotRequest:
			case <-time.After(5 * time.Second):
				t.Fatal("the call did not reach the agent")
			}
			c.Close()
			select {
			case <-agentSawClose:
			case <-time.After(5 * time.Second):
				t.Fatal("the agent's connection stayed open after the client went away")
			}
			if loops < 0 {
				return
			}
			f := frontOf(t, rt)
			if f.served.Load() != 1 {
				t.Fatal("the call was not made on the loops")
			}
			for deadline := time.Now().Add(5 * time.Second); f.inflight.Load() != 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if n := f.inflight.Load(); n != 0 {
				t.Fatalf("%d calls still in flight", n)
			}
		})
	}
}

// TestFront_PipelinedAndHandedOver: requests sent back to back on one connection are answered
// in order, the loops' calls first; a request the loops do not serve (a card) hands the
// connection over with the bytes already read, and the server answers it and the next one.
func TestFront_PipelinedAndHandedOver(t *testing.T) {
	var mu sync.Mutex
	var calls int
	up := rawAgent(t, func(*http.Request) string {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		body := fmt.Sprintf(`{"n":%d}`, n)
		// rawAgent closes after each answer, and says so.
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	reg.SetCard("ns", "a", json.RawMessage(`{"name":"a","url":"http://a.ns:8000","version":"1"}`))
	rt, srvURL := startRouter(t, Config{Registry: reg})
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	post := fmt.Sprintf("POST /a2a/ns/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(sendBody), sendBody)
	card := "GET /a2a/ns/a/.well-known/agent-card.json HTTP/1.1\r\nHost: x\r\n\r\n"
	// The first request arrives in two pieces; the rest back to back in one write.
	_, _ = io.WriteString(c, post[:20])
	time.Sleep(50 * time.Millisecond)
	_, _ = io.WriteString(c, post[20:]+post+card+post)
	r := bufio.NewReader(c)
	for i, want := range []string{`{"n":1}`, `{"n":2}`, `"name":"a"`, `{"n":3}`} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("answer %d: %d %s, want %s", i, resp.StatusCode, body, want)
		}
	}
	if served, handed := frontOf(t, rt).served.Load(), frontOf(t, rt).handedOver.Load(); served != 2 || handed != 1 {
		t.Fatalf("loops served %d calls and handed over %d connections, want 2 and 1", served, handed)
	}
}

// TestFront_Shutdown: a call in flight on the loops finishes during Shutdown, and its answer
// closes the connection.
func TestFront_Shutdown(t *testing.T) {
	release := make(chan struct{})
	up := rawAgent(t, func(*http.Request) string {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
	})
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	rt, srvURL := startRouter(t, Config{Registry: reg})
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Post(srvURL+"/a2a/ns/a", "application/json", strings.NewReader(sendBody))
		if err != nil {
			done <- nil
			return
		}
		resp.Body.Close()
		done <- resp
	}()
	for frontOf(t, rt).inflight.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- rt.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	resp := <-done
	if resp == nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("answer during shutdown: %+v", resp)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// loopRouter serves one agent, ns/a, with no authentication: every message/send on a new
// connection is the loops'.
func loopRouter(t *testing.T, up *url.URL) (*Router, string) {
	reg := NewRegistry()
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	return startRouter(t, Config{Registry: reg})
}

// TestFront_LargeAnswers: answers larger than a read, by length or in chunks, arrive whole,
// also when the connection closes after them.
func TestFront_LargeAnswers(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	var chunked strings.Builder
	for i := 0; i < len(big); i += 5000 {
		part := big[i:min(i+5000, len(big))]
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(part), part)
	}
	chunked.WriteString("0\r\n\r\n")
	answers := map[string]string{
		"length":  fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big),
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String(),
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			rt, srvURL := loopRouter(t, rawAgent(t, func(*http.Request) string { return answer }))
			req, _ := http.NewRequest(http.MethodPost, srvURL+"/a2a/ns/a", strings.NewReader(sendBody))
			req.Close = true // the router closes after the answer: all of it must have gone out
			resp, err := freshClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || len(body) != len(big) || string(body) != big {
				t.Fatalf("got %d of %d bytes: %v", len(body), len(big), err)
			}
			if frontOf(t, rt).served.Load() != 1 {
				t.Fatal("the call was not made on the loops")
			}
		})
	}
}

// TestFront_BadAnswers: an answer the router cannot relay is a JSON-RPC error, the router keeps
// serving, and only a broken agent is ejected (not one whose headers are merely large).
func TestFront_BadAnswers(t *testing.T) {
	cases := []struct {
		name, answer string
		eject        bool
	}{
		{"headers over 8 KiB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 9<<10) + "\r\nContent-Length: 2\r\n\r\n{}", false},
		{"not HTTP", "hello\r\n\r\n", true},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true},
		{"endless trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-T: 1\r\n", 2000), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := rawAgent(t, func(*http.Request) string { return tc.answer })
			rt, srvURL := loopRouter(t, up)
			resp, answer := postRPC(t, freshClient, srvURL+"/a2a/ns/a", nil, sendBody)
			errObj, _ := answer["error"].(map[string]any)
			if resp.StatusCode != http.StatusOK || errObj == nil || errObj["code"] != float64(codeUnavailable) {
				t.Fatalf("%d %v", resp.StatusCode, answer)
			}
			if got := ejected(rt, up.Host); got != tc.eject {
				t.Fatalf("ejected: %v, want %v", got, tc.eject)
			}
			if frontOf(t, rt).served.Load() != 1 {
				t.Fatal("the call was not made on the loops")
			}
		})
	}
}

// TestFront_NoContent: a 204 is relayed without a length, as the server relays it.
func TestFront_NoContent(t *testing.T) {
	_, srvURL := loopRouter(t, rawAgent(t, func(*http.Request) string { return "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n" }))
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /a2a/ns/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(sendBody), sendBody)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 204 No Content\r\n") || strings.Contains(string(raw), "Content-Length") || !strings.Contains(string(raw), "X-A: 1") {
		t.Fatalf("%q", raw)
	}
}

// TestFront_FramingAgreesWithServer: a request whose headers end at a bare LF (which fasthttp
// accepts) and whose body holds a CRLFCRLF is not framed by the loops at that CRLFCRLF: it goes
// to the server, and the agent never sees a request smuggled in the body.
func TestFront_FramingAgreesWithServer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := rawAgent(t, func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(body))
		mu.Unlock()
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
	})
	rt, srvURL := loopRouter(t, up)
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hidden := strings.Replace(sendBody, "m1", "smuggled", 1)
	body := `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}` + "\r\n\r\n" + hidden
	fmt.Fprintf(c, "POST /a2a/ns/a HTTP/1.1\nHost: x\nContent-Length: %d\n\n%s", len(hidden), body)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.ReadAll(c)
	mu.Lock()
	defer mu.Unlock()
	for _, b := range seen {
		if strings.Contains(b, "smuggled") {
			t.Fatalf("the agent got the body's hidden request: %s", b)
		}
	}
	if frontOf(t, rt).served.Load() != 0 || frontOf(t, rt).handedOver.Load() != 1 {
		t.Fatal("the loops framed a request the server frames otherwise")
	}
}

// TestFront_SlowAndIdleClients: a request that does not arrive in time is answered 408 in the
// server's error shape and its connection closed; an idle kept-alive connection is closed.
func TestFront_SlowAndIdleClients(t *testing.T) {
	reg := NewRegistry()
	_, srvURL := startRouter(t, Config{Registry: reg, ReadTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(srvURL, "http://")

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = io.WriteString(slow, "POST /a2a/ns/a HTTP/1.1\r\nHost: x\r\n") // and nothing more
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, _ := io.ReadAll(slow) // until the router closes
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"request not received in time"`) || !resp.Close {
		t.Fatalf("%d %s %v", resp.StatusCode, body, resp.Header)
	}

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want it closed", n, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("idle connection closed after %s, before the idle timeout", took)
	}
}
