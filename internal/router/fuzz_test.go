package router

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// FuzzParseEnvelope: any body either parses into a request with a method or yields a JSON-RPC
// error, and the error answer is always valid JSON-RPC.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{sendBody, `{}`, `[]`, `{"jsonrpc":"2.0","id":null,"method":"GetTask"}`, `{"jsonrpc":"2.0","id":"x","method":""}`, "\x00", `{"id":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, perr := parseEnvelope(body)
		if perr == nil {
			if env.Method == "" || env.JSONRPC != "2.0" {
				t.Fatalf("accepted %q without a method", body)
			}
			return
		}
		answer := rpcErrorBody(env.ID, perr)
		var out struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   *rpcError       `json:"error"`
		}
		if err := json.Unmarshal(answer, &out); err != nil || out.JSONRPC != "2.0" || out.Error == nil {
			t.Fatalf("error answer for %q is not JSON-RPC: %q", body, answer)
		}
	})
}

// FuzzSSERelay: whatever bytes an agent streams as text/event-stream reach the client unchanged,
// on both stream routes: JSON-RPC (message/stream) and the HTTP+JSON binding. The JSON-RPC request carries the bytes for the agent to
// stream back, base64-encoded.
func FuzzSSERelay(f *testing.F) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the whole body first: an HTTP/1 server may stop reading it once the answer starts.
		body, _ := io.ReadAll(r.Body)
		var rpc struct {
			Params struct {
				Stream []byte `json:"stream"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &rpc) == nil && rpc.Params.Stream != nil {
			body = rpc.Params.Stream
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(body)
	}))
	f.Cleanup(upstream.Close)
	reg := NewRegistry()
	up, _ := url.Parse(upstream.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(f, Config{Registry: reg})
	for _, s := range []string{"data: {}\n\n", "event: x\ndata: a\ndata: b\n\n", ": comment\n\n", "data: \xff\xfe\r\n\r\n", "", strings.Repeat("data: long\n", 1000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		check := func(path string, body []byte) {
			req, _ := http.NewRequest(http.MethodPost, srvURL+path, bytes.NewReader(body))
			req.Header.Set("Accept", "text/event-stream")
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("%s with %q: %v", path, payload, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("%s relayed %q, want %q (%v)", path, got, payload, err)
			}
		}
		check("/a2a/ns/a/v1/message:stream", payload)
		rpc, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "message/stream", "params": map[string]any{"stream": payload}})
		check("/a2a/ns/a", rpc)
	})
}

// FuzzCheckPath: a path below a route that the front door lets through stays below the route
// however a server behind the router reads it: decoded once, with backslashes taken for
// slashes and ";params" stripped from each segment (as Java servers do), then resolved.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"v1/message:send", "%2e%2e/a", "..%2Fa", ".%2E/a", "a/..;x/b", `..\a`, "%5c..%5c", "a%2Fb", "...", "%252e%252e"} {
		f.Add(s)
	}
	const route = "/a2a/ns/b/"
	f.Fuzz(func(t *testing.T, tail string) {
		if checkPath([]byte(route+tail)) != nil {
			return
		}
		decoded, err := url.PathUnescape(route + tail)
		if err != nil {
			t.Fatalf("passed %q, whose escapes do not decode", tail)
		}
		segments := strings.Split(strings.ReplaceAll(decoded, `\`, "/"), "/")
		for i, s := range segments {
			segments[i], _, _ = strings.Cut(s, ";")
		}
		if resolved := path.Clean(strings.Join(segments, "/")) + "/"; !strings.HasPrefix(resolved, route) {
			t.Fatalf("passed %q, which resolves to %q, out of %s", tail, resolved, route)
		}
	})
}
