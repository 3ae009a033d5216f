package router

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

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
		rec := httptest.NewRecorder()
		writeRPCError(rec, http.StatusBadRequest, env.ID, perr)
		var out struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   *rpcError       `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.JSONRPC != "2.0" || out.Error == nil {
			t.Fatalf("error answer for %q is not JSON-RPC: %q", body, rec.Body.String())
		}
	})
}

// FuzzSSERelay: whatever bytes an agent streams as text/event-stream reach the client unchanged.
func FuzzSSERelay(f *testing.F) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the whole body first: an HTTP/1 server may stop reading it once the answer starts.
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(body)
	}))
	f.Cleanup(upstream.Close)
	reg := NewRegistry()
	up, _ := url.Parse(upstream.URL)
	reg.SetService(Route{Namespace: "ns", Name: "a", Type: contract.TypeAgent, Protocol: "a2a", Upstream: up})
	_, srvURL := startRouter(f, Config{Registry: reg})
	for _, s := range []string{"data: {}\n\n", "event: x\ndata: a\ndata: b\n\n", ": comment\n\n", "data: \xff\xfe\r\n\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, _ := http.NewRequest(http.MethodPost, srvURL+"/a2a/ns/a/v1/message:stream", bytes.NewReader(payload))
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("relayed %q, want %q (%v)", got, payload, err)
		}
	})
}
