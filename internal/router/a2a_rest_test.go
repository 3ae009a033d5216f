package router

import (
	"encoding/json"
	"net/http"
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
		{"POST", "/v1/message:send", nil, restCall{}, false}, // 0.3: forwarded, never translated
		{"GET", "/tasks/t1/pushNotificationConfigs", nil, restCall{}, false},
		{"GET", "/tasks/", nil, restCall{}, false},
		{"DELETE", "/tasks/t1", nil, restCall{}, false},
		{"GET", "/tasks/a%20b", nil, restCall{op: a2aversion.Get, taskID: "a b"}, true},
		{"GET", "/tasks/t1", map[string][]string{"historyLength": {"many"}}, restCall{}, false},
	} {
		got, err := parseRESTCall(tc.method, tc.path, tc.query)
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
