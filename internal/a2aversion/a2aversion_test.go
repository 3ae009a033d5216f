package a2aversion

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestParseMethod(t *testing.T) {
	for _, tc := range []struct {
		method  string
		op      Op
		version Version
	}{
		{"message/send", Send, V03}, {"SendMessage", Send, V10},
		{"message/stream", Stream, V03}, {"SendStreamingMessage", Stream, V10},
		{"tasks/resubscribe", Subscribe, V03}, {"SubscribeToTask", Subscribe, V10},
		{"tasks/pushNotificationConfig/list", PushList, V03}, {"ListTaskPushNotificationConfig", PushList, V10},
	} {
		op, v, ok := ParseMethod(tc.method)
		if !ok || op != tc.op || v != tc.version {
			t.Errorf("ParseMethod(%q) = %s, %s, %v; want %s, %s", tc.method, op, v, ok, tc.op, tc.version)
		}
		if tc.method != "ListTaskPushNotificationConfig" && op.Method(v) != tc.method {
			t.Errorf("%s.Method(%s) = %q, want %q", op, v, op.Method(v), tc.method)
		}
	}
	if _, _, ok := ParseMethod("tasks/send"); ok {
		t.Error("tasks/send (a 0.2 method) was taken")
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"0.3": V03, "0.3.0": V03, "1.0": V10, "1.0.0": V10, "1": V10, "0.2.5": "", "10.0": "", "": ""} {
		got, ok := ParseVersion(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// The same send, in each version's shape: kind-tagged parts and lower-case roles in 0.3,
// untagged parts and ROLE_ enums in 1.0.
const (
	sendV03 = `{"message":{"kind":"message","messageId":"m1","contextId":"c1","role":"user",
		"parts":[{"kind":"text","text":"hi"},{"kind":"data","data":{"n":1}}]},
		"configuration":{"acceptedOutputModes":["text/plain"],"blocking":true}}`
	sendV10 = `{"message":{"messageId":"m1","contextId":"c1","role":"ROLE_USER",
		"parts":[{"text":"hi"},{"data":{"n":1}}]},
		"configuration":{"acceptedOutputModes":["text/plain"]}}`
)

func TestParams_Send(t *testing.T) {
	up, err := Params(Send, V03, V10, json.RawMessage(sendV03))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, up, sendV10)
	down, err := Params(Send, V10, V03, up)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Message struct {
			Kind  string `json:"kind"`
			Role  string `json:"role"`
			Parts []struct {
				Kind string `json:"kind"`
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"message"`
		Configuration struct {
			Blocking *bool `json:"blocking"`
		} `json:"configuration"`
	}
	if err := json.Unmarshal(down, &back); err != nil {
		t.Fatal(err)
	}
	m := back.Message
	if m.Kind != "message" || m.Role != "user" || len(m.Parts) != 2 || m.Parts[0].Kind != "text" || m.Parts[0].Text != "hi" || m.Parts[1].Kind != "data" {
		t.Errorf("0.3 params back: %s", down)
	}
	if b := back.Configuration.Blocking; b == nil || !*b {
		t.Errorf("blocking lost on the way back: %s", down)
	}
}

func TestParams_SameVersionUntouched(t *testing.T) {
	raw := json.RawMessage(`{"id": "t1", "odd": true}`)
	got, err := Params(Get, V10, V10, raw)
	if err != nil || string(got) != string(raw) {
		t.Errorf("same version: %s, %v", got, err)
	}
}

func TestResult_SendTaskAndMessage(t *testing.T) {
	taskV03 := `{"kind":"task","id":"t1","contextId":"c1","status":{"state":"completed",
		"message":{"kind":"message","messageId":"m2","role":"agent","parts":[{"kind":"text","text":"done"}]}},
		"artifacts":[{"artifactId":"a1","parts":[{"kind":"text","text":"42"}]}]}`
	up, err := Result(Send, V03, V10, json.RawMessage(taskV03))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, up, `{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED",
		"message":{"messageId":"m2","role":"ROLE_AGENT","parts":[{"text":"done"}]}},
		"artifacts":[{"artifactId":"a1","parts":[{"text":"42"}]}]}}`)
	down, err := Result(Send, V10, V03, up)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, down, taskV03)

	msgV10 := `{"message":{"messageId":"m3","role":"ROLE_AGENT","parts":[{"text":"hello"}]}}`
	down, err = Result(Send, V10, V03, json.RawMessage(msgV10))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, down, `{"kind":"message","messageId":"m3","role":"agent","parts":[{"kind":"text","text":"hello"}]}`)
}

// A 1.0 status update has no final flag; a 0.3 client ends its stream on final: true, which
// the conversion sets for a terminal state (and input-required).
func TestEvent_StatusUpdateFinal(t *testing.T) {
	for state, final := range map[string]bool{"TASK_STATE_WORKING": false, "TASK_STATE_COMPLETED": true, "TASK_STATE_CANCELED": true, "TASK_STATE_INPUT_REQUIRED": true} {
		ev := `{"statusUpdate":{"taskId":"t1","contextId":"c1","status":{"state":"` + state + `"}}}`
		down, err := Event(V10, V03, json.RawMessage(ev))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Kind   string `json:"kind"`
			Final  bool   `json:"final"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if err := json.Unmarshal(down, &got); err != nil {
			t.Fatal(err)
		}
		if got.Kind != "status-update" || got.Final != final || got.Status.State == "" {
			t.Errorf("%s: %s", state, down)
		}
		up, err := Event(V03, V10, down)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, up, ev)
	}
}

func TestEvent_ArtifactUpdate(t *testing.T) {
	ev03 := `{"kind":"artifact-update","taskId":"t1","contextId":"c1","append":true,"lastChunk":true,
		"artifact":{"artifactId":"a1","parts":[{"kind":"text","text":"x"}]}}`
	up, err := Event(V03, V10, json.RawMessage(ev03))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, up, `{"artifactUpdate":{"taskId":"t1","contextId":"c1","append":true,"lastChunk":true,
		"artifact":{"artifactId":"a1","parts":[{"text":"x"}]}}}`)
}

func TestEvent_Malformed(t *testing.T) {
	if _, err := Event(V03, V10, json.RawMessage(`{"kind":"surprise"}`)); err == nil {
		t.Error("an event of unknown kind converted")
	}
	if _, err := Event(V10, V03, json.RawMessage(`{}`)); err == nil {
		t.Error("an empty 1.0 event converted")
	}
}

func TestPushList(t *testing.T) {
	v03 := `[{"taskId":"t1","pushNotificationConfig":{"id":"p1","url":"https://hook.example/a"}}]`
	up, err := Result(PushList, V03, V10, json.RawMessage(v03))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Configs []struct {
			TaskID string `json:"taskId"`
			ID     string `json:"id"`
			URL    string `json:"url"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(up, &resp); err != nil || len(resp.Configs) != 1 || resp.Configs[0].TaskID != "t1" || resp.Configs[0].URL != "https://hook.example/a" {
		t.Errorf("push list up: %s (%v)", up, err)
	}
	down, err := Result(PushList, V10, V03, up)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, down, v03)
}

func TestErrorCode(t *testing.T) {
	if got := ErrorCode(-32009, V03); got != -32004 {
		t.Errorf("VersionNotSupported to 0.3: %d", got)
	}
	if got := ErrorCode(-32009, V10); got != -32009 {
		t.Errorf("VersionNotSupported to 1.0: %d", got)
	}
	if got := ErrorCode(-32001, V03); got != -32001 {
		t.Errorf("TaskNotFound: %d", got)
	}
}

func TestRenameHeaders(t *testing.T) {
	h := http.Header{}
	h.Add("X-A2A-Extensions", "https://ext.example/a")
	h.Add("X-A2A-Extensions", "https://ext.example/b")
	RenameHeaders(h, V03, V10)
	if got := h.Values("A2A-Extensions"); len(got) != 2 || h.Get("X-A2A-Extensions") != "" {
		t.Fatalf("0.3 to 1.0: %v", h)
	}
	RenameHeaders(h, V10, V03)
	if got := h.Values("X-A2A-Extensions"); len(got) != 2 || h.Get("A2A-Extensions") != "" {
		t.Fatalf("1.0 to 0.3: %v", h)
	}
}
