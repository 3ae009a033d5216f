package a2aversion

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"
)

// jsSamples are 0.3 values as JSON-RPC carries them and as @a2a-js/sdk 0.3.14's REST transport
// writes them (testdata/js-0.3-rest.json, written by
// internal/provider/testdata/a2a-js/v03/rest-samples.mjs): the SDK's reading of the 0.3
// HTTP+JSON binding, not ours.
func jsSamples(t *testing.T) map[string]struct{ JSONRPC, REST json.RawMessage } {
	t.Helper()
	raw, err := os.ReadFile("testdata/js-0.3-rest.json")
	if err != nil {
		t.Fatal(err)
	}
	var samples map[string]struct {
		JSONRPC json.RawMessage `json:"jsonrpc"`
		REST    json.RawMessage `json:"rest"`
	}
	if err := json.Unmarshal(raw, &samples); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct{ JSONRPC, REST json.RawMessage }{}
	for k, v := range samples {
		out[k] = struct{ JSONRPC, REST json.RawMessage }{v.JSONRPC, v.REST}
	}
	return out
}

func sameJSON(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	return reflect.DeepEqual(sameTimes(g), sameTimes(w))
}

// sameTimes writes every timestamp one way: the JS SDK writes milliseconds (.000Z), protojson
// none when they are zero; both are RFC 3339 and read alike.
func sameTimes(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = sameTimes(e)
		}
	case []any:
		for i, e := range v {
			v[i] = sameTimes(e)
		}
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return ts.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// TestREST03Result_WritesWhatTheJSSDKWrites: the router's 0.3 REST answers are, member for
// member, what the JS SDK's own 0.3 REST server writes for the same values: a message's parts
// under "content", an artifact's under "parts", proto enum names for roles and states.
func TestREST03Result_WritesWhatTheJSSDKWrites(t *testing.T) {
	samples := jsSamples(t)
	for name, op := range map[string]Op{
		"sendTask": Send, "sendMessage": Send, "getTask": Get,
		"streamStatus": Stream, "streamArtifact": Stream, "streamTask": Subscribe,
	} {
		t.Run(name, func(t *testing.T) {
			s := samples[name]
			got, err := REST03Result(op, s.JSONRPC)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, s.REST) {
				t.Fatalf("wrote\n%s\nthe JS SDK writes\n%s", got, s.REST)
			}
		})
	}
}

// TestREST03Params_ReadsWhatTheJSSDKSends: a message:send body as the JS SDK sends it becomes
// the params of the same 0.3 JSON-RPC call; the same body with a2a-go's spelling of a message's
// parts ("parts") reads the same.
func TestREST03Params_ReadsWhatTheJSSDKSends(t *testing.T) {
	s := jsSamples(t)["sendRequest"]
	got, err := REST03Params(s.REST)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, s.JSONRPC) {
		t.Fatalf("read\n%s\nthe JS SDK sent\n%s", got, s.JSONRPC)
	}
	var body map[string]map[string]json.RawMessage
	if err := json.Unmarshal(s.REST, &body); err != nil {
		t.Fatal(err)
	}
	body["message"]["parts"] = body["message"]["content"]
	delete(body["message"], "content")
	other, _ := json.Marshal(body)
	got2, err := REST03Params(other)
	if err != nil || !sameJSON(t, got2, got) {
		t.Fatalf("with parts: %s, %v", got2, err)
	}
}

func TestREST03_Refusals(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":         `{"message":`,
		"no message":       `{"configuration":{"historyLength":1}}`,
		"a wrong type":     `{"message":{"content":"hi"}}`,
		"bytes not base64": `{"message":{"content":[{"file":{"fileWithBytes":"%%%"}}]}}`,
	} {
		if _, err := REST03Params([]byte(body)); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	// A file's bytes as agents write them: padded or not, standard or URL-safe alphabet.
	for _, b64 := range []string{"aGk=", "aGk", "_-8=", "_-8"} {
		msg := `{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"file","file":{"bytes":"` + b64 + `"}}]}`
		if _, err := REST03Result(Send, json.RawMessage(msg)); err != nil {
			t.Errorf("file bytes %q: %v", b64, err)
		}
	}
	if _, err := REST03Result(Send, json.RawMessage(`{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"file","file":{"bytes":"%%%"}}]}`)); err == nil {
		t.Error("file bytes that are not base64 were written")
	}
	if _, err := REST03Result(List, json.RawMessage(`{}`)); err == nil {
		t.Error("tasks/list has no 0.3 REST answer the router writes, yet one was written")
	}
	if _, err := REST03Result(Send, json.RawMessage(`{"kind":"status-update","taskId":"t","contextId":"c","status":{"state":"working"},"final":false}`)); err == nil {
		t.Error("a status update is not a message/send result, yet was written as one")
	}
}
