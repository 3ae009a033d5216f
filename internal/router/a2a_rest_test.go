package router

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

func TestParseRESTCall(t *testing.T) {
	two := 2
	for _, tc := range []struct {
		method, path string
		query        map[string][]string
		want         restCall
		ok           bool
	}{
		{"POST", "/message:send", nil, restCall{op: a2aversion.Send}, true},
		{"POST", "/message:stream", nil, restCall{op: a2aversion.Stream}, true},
		{"GET", "/tasks/t1", map[string][]string{"historyLength": {"2"}}, restCall{op: a2aversion.Get, taskID: "t1", historyLength: &two}, true},
		{"POST", "/tasks/t1:cancel", nil, restCall{op: a2aversion.Cancel, taskID: "t1"}, true},
		{"GET", "/tasks/t1:subscribe", nil, restCall{op: a2aversion.Subscribe, taskID: "t1"}, true},
		{"POST", "/tasks/t1:subscribe", nil, restCall{op: a2aversion.Subscribe, taskID: "t1"}, true},
		{"GET", "/message:send", nil, restCall{}, false},
		{"POST", "/v1/message:send", nil, restCall{}, false}, // (a2aREST takes 0.3's /v1 off first)
		{"GET", "/tasks/t1/pushNotificationConfigs", nil, restCall{}, false},
		{"GET", "/tasks/", nil, restCall{}, false},
		{"DELETE", "/tasks/t1", nil, restCall{}, false},
		{"GET", "/tasks/a%20b", nil, restCall{op: a2aversion.Get, taskID: "a b"}, true},
		{"GET", "/tasks/t1", map[string][]string{"historyLength": {"many"}}, restCall{}, false},
	} {
		got, err := parseRESTCall(a2aversion.V10, tc.method, tc.path, tc.query)
		if ok := err == nil; ok != tc.ok || got.op != tc.want.op || got.taskID != tc.want.taskID ||
			(got.historyLength == nil) != (tc.want.historyLength == nil) || (got.historyLength != nil && *got.historyLength != *tc.want.historyLength) {
			t.Errorf("%s %s: %+v, %v; want %+v, %v", tc.method, tc.path, got, err, tc.want, tc.ok)
		}
	}
}

// TestRESTErrorBody: an A2A error reaches a REST client as 1.0's binding has it, with the
// ErrorInfo reason SDK clients type the error by.
func TestRESTErrorBody(t *testing.T) {
	status, body := restErrorBody(-32001, "Task not found: x")
	var e restError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNotFound || e.Error.Code != 404 || e.Error.Status != "NOT_FOUND" || len(e.Error.Details) != 1 ||
		e.Error.Details[0].Reason != "TASK_NOT_FOUND" || e.Error.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo" {
		t.Errorf("TaskNotFound: %d %s", status, body)
	}
	var unknown restError
	if status, body := restErrorBody(-32099, "odd"); status != http.StatusInternalServerError || json.Unmarshal(body, &unknown) != nil || len(unknown.Error.Details) != 0 {
		t.Errorf("an unknown code: %d %s", status, body)
	}
}

// TestREST_RouterErrors: below an agent's URL the router's own errors are 1.0 REST's
// (google.rpc.Status with a numeric code), and a 1.0 REST call the router does not translate for
// a JSON-RPC agent is UnsupportedOperation, never forwarded to an agent that would not know it.
func TestREST_RouterErrors(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	token := "Bearer " + e.issuer.token(t)
	for _, tc := range []struct {
		method, url, auth string
		status            int
		reason            string
	}{
		{"POST", e.url + "/a2a/team1/no-such-agent/message:send", token, http.StatusNotFound, ""},
		{"POST", e.agentURL() + "/message:send", "", http.StatusUnauthorized, ""},
		{"GET", e.agentURL() + "/tasks", token, http.StatusBadRequest, "UNSUPPORTED_OPERATION"},
		{"GET", e.agentURL() + "/tasks/t1/pushNotificationConfigs", token, http.StatusBadRequest, "UNSUPPORTED_OPERATION"},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(`{}`))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body restError
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		reason := ""
		if len(body.Error.Details) > 0 {
			reason = body.Error.Details[0].Reason
		}
		if err != nil || resp.StatusCode != tc.status || body.Error.Code != tc.status || body.Error.Status == "" || reason != tc.reason {
			t.Errorf("%s %s: %d %+v (%v); want %d, reason %q", tc.method, tc.url, resp.StatusCode, body, err, tc.status, tc.reason)
		}
	}
}

// TestA2A_REST03OverJSONRPC: a 0.3 REST client calls agents that speak only JSON-RPC, of either
// version, through the router, with the bodies @a2a-js/sdk 0.3 sends (the 0.3 proto's JSON, a
// message's parts under "content"): send, stream (every event, in order), get; and an A2A error
// of the agent, a malformed body and the router's own refusal reach it as the 0.3 binding's
// errors, the JSON-RPC error object with a status. (The JS SDK itself calls through the router
// in TestAccRouter_A2ASDKs.)
func TestA2A_REST03OverJSONRPC(t *testing.T) {
	for _, agent := range a2aversion.Versions {
		t.Run("agent "+string(agent), func(t *testing.T) {
			e := newTestEnvOf(t, agent)
			token := e.issuer.token(t)
			call := func(method, path, body, accept string) (*http.Response, []byte) {
				t.Helper()
				return e.call(t, method, path, token, body, accept)
			}
			message := func(text string) string {
				return `{"message":{"messageId":"` + text + `","role":"ROLE_USER","content":[{"text":"` + text + `"}]},"configuration":{"blocking":true}}`
			}

			resp, body := call("POST", "/v1/message:send", message("rest03"), "application/json")
			var sent struct {
				Message struct {
					Role    string `json:"role"`
					Content []struct {
						Text string `json:"text"`
					} `json:"content"`
				} `json:"message"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &sent) != nil || sent.Message.Role != "ROLE_AGENT" ||
				len(sent.Message.Content) != 1 || sent.Message.Content[0].Text != "echo: rest03" {
				t.Fatalf("send: %d %s", resp.StatusCode, body)
			}

			resp, body = call("POST", "/v1/message:stream", message("stream:2"), "text/event-stream")
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("stream: %d %v %s", resp.StatusCode, resp.Header, body)
			}
			var kinds []string
			taskID := ""
			for _, line := range strings.Split(string(body), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok {
					continue
				}
				var ev struct {
					Task *struct {
						ID string `json:"id"`
					} `json:"task"`
					ArtifactUpdate *struct {
						Artifact struct {
							Parts []struct {
								Text string `json:"text"`
							} `json:"parts"`
						} `json:"artifact"`
					} `json:"artifactUpdate"`
					StatusUpdate *struct {
						Status struct {
							State string `json:"state"`
						} `json:"status"`
						Final bool `json:"final"`
					} `json:"statusUpdate"`
				}
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatalf("stream event %s: %v", data, err)
				}
				switch {
				case ev.Task != nil:
					kinds, taskID = append(kinds, "task"), ev.Task.ID
				case ev.ArtifactUpdate != nil && len(ev.ArtifactUpdate.Artifact.Parts) == 1:
					kinds = append(kinds, "artifact:"+ev.ArtifactUpdate.Artifact.Parts[0].Text)
				case ev.StatusUpdate != nil:
					kinds = append(kinds, fmt.Sprintf("status:%s:%v", ev.StatusUpdate.Status.State, ev.StatusUpdate.Final))
				default:
					kinds = append(kinds, "unknown:"+data)
				}
			}
			if want := []string{"task", "artifact:chunk-0", "artifact:chunk-1", "status:TASK_STATE_COMPLETED:true"}; !slices.Equal(kinds, want) {
				t.Fatalf("stream events %v, want %v", kinds, want)
			}

			resp, body = call("GET", "/v1/tasks/"+taskID, "", "application/json")
			var task struct {
				ID     string `json:"id"`
				Status struct {
					State string `json:"state"`
				} `json:"status"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &task) != nil || task.ID != taskID || task.Status.State != "TASK_STATE_COMPLETED" {
				t.Fatalf("get: %d %s", resp.StatusCode, body)
			}

			// A task the agent is working on: resubscribed to, then cancelled (its id escaped as
			// the JS SDK sends it, encodeURIComponent).
			resp, body = call("POST", "/v1/message:send", `{"message":{"messageId":"w","role":"ROLE_USER","content":[{"text":"wait"}]},"configuration":{"blocking":false}}`, "application/json")
			var waiting struct {
				Task struct {
					ID string `json:"id"`
				} `json:"task"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &waiting) != nil || waiting.Task.ID == "" {
				t.Fatalf("non-blocking send: %d %s", resp.StatusCode, body)
			}
			escapedID := url.PathEscape(waiting.Task.ID)
			subscribed := make(chan string, 1)
			go func() {
				req, _ := http.NewRequest("POST", e.agentURL()+"/v1/tasks/"+escapedID+":subscribe", nil)
				req.Header.Set("Authorization", "Bearer "+e.issuer.token(t))
				req.Header.Set("Accept", "text/event-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					subscribed <- err.Error()
					return
				}
				defer resp.Body.Close()
				lines := bufio.NewReader(resp.Body)
				for {
					line, err := lines.ReadString('\n')
					if strings.HasPrefix(line, "data:") || err != nil {
						subscribed <- line
						return
					}
				}
			}()
			if line := <-subscribed; !strings.HasPrefix(line, "data: {") || !strings.Contains(line, waiting.Task.ID) {
				t.Fatalf("subscribe: first event %q", line)
			}
			resp, body = call("POST", "/v1/tasks/"+escapedID+":cancel", "", "application/json")
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &task) != nil || task.ID != waiting.Task.ID || task.Status.State != "TASK_STATE_CANCELLED" {
				t.Fatalf("cancel: %d %s", resp.StatusCode, body)
			}

			for _, tc := range []struct {
				name, method, path, body string
				status, code             int
			}{
				{"unknown task", "GET", "/v1/tasks/no-such-task", "", http.StatusNotFound, -32001},
				{"cancel of a finished task", "POST", "/v1/tasks/" + url.PathEscape(taskID) + ":cancel", "", http.StatusConflict, -32002},
				{"negative historyLength", "GET", "/v1/tasks/" + taskID + "?historyLength=-1", "", http.StatusBadRequest, codeInvalidParams},
				{"body not JSON", "POST", "/v1/message:send", `{"message":`, http.StatusBadRequest, codeParseError},
				{"body not a SendMessageRequest", "POST", "/v1/message:send", `{"message":{"content":"hi"}}`, http.StatusBadRequest, codeInvalidParams},
				{"not translated", "GET", "/v1/tasks/t1/pushNotificationConfigs", "", http.StatusBadRequest, -32004},
			} {
				resp, body := call(tc.method, tc.path, tc.body, "application/json")
				var e rpcError
				if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Code != tc.code || e.Message == "" {
					t.Errorf("%s: %d %s, want %d with code %d", tc.name, resp.StatusCode, body, tc.status, tc.code)
				}
			}
			// Without a token the router says nothing of the agent's bindings: a call it would
			// not translate is refused as unauthenticated too.
			token = ""
			for _, path := range []string{"/v1/message:send", "/v1/tasks/t1/pushNotificationConfigs"} {
				resp, body = call("POST", path, message("x"), "application/json")
				var refused rpcError
				if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &refused) != nil || refused.Code != codeUnauthenticated {
					t.Errorf("no token, %s: %d %s", path, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestA2A_REST03ExtendedCardAndErrorData: the extended card over 0.3 REST (GET /v1/card, which
// the JS SDK's getAgentCard calls when the card says supportsAuthenticatedExtendedCard) comes
// from the agent's JSON-RPC, as the 0.3 proto's AgentCard with the router's URL in place of the
// agent's; and an A2A error of the agent reaches a 0.3 REST client with its data.
func TestA2A_REST03ExtendedCardAndErrorData(t *testing.T) {
	e := newTestEnvOf(t, a2aversion.V03)
	e.peer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "agent/getAuthenticatedExtendedCard") {
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"0.3.0","name":"agent1","description":"secret skills",`+
				`"url":"http://agent1.team1.svc.cluster.local:8000","preferredTransport":"JSONRPC","version":"1.0.0","capabilities":{},`+
				`"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{"id":"hidden","name":"Hidden","description":"","tags":[]}]}}`)
			return
		}
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"no images","data":{"accepted":["text/plain"]}}}`)
	})
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, e.agentURL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.issuer.token(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := do("GET", "/v1/card", "")
	var card struct {
		Name                 string `json:"name"`
		URL                  string `json:"url"`
		PreferredTransport   string `json:"preferredTransport"`
		AdditionalInterfaces []struct {
			URL       string `json:"url"`
			Transport string `json:"transport"`
		} `json:"additionalInterfaces"`
		Skills []struct {
			ID string `json:"id"`
		} `json:"skills"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &card) != nil || card.Name != "agent1" || card.URL != e.agentURL() ||
		len(card.Skills) != 1 || card.Skills[0].ID != "hidden" || strings.Contains(string(body), "svc.cluster.local") ||
		!slices.ContainsFunc(card.AdditionalInterfaces, func(i struct {
			URL       string `json:"url"`
			Transport string `json:"transport"`
		}) bool {
			return i.Transport == "HTTP+JSON" && i.URL == e.agentURL()
		}) {
		t.Fatalf("extended card: %d %s", status, body)
	}
	status, body = do("POST", "/v1/message:send", `{"message":{"messageId":"m","role":"ROLE_USER","content":[{"text":"x"}]}}`)
	var rpcErr struct {
		Code int `json:"code"`
		Data struct {
			Accepted []string `json:"accepted"`
		} `json:"data"`
	}
	if status != http.StatusInternalServerError || json.Unmarshal(body, &rpcErr) != nil || rpcErr.Code != -32005 || len(rpcErr.Data.Accepted) != 1 {
		t.Fatalf("agent error: %d %s", status, body)
	}
}
