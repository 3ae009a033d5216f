package router

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// rpcAnswer is what a JSON-RPC client sees of an error answer.
type rpcAnswer struct {
	Status    int
	Code      int
	Challenge bool // WWW-Authenticate: Bearer
}

// TestJSONRPC_RouterErrors pins the router's own JSON-RPC errors: none reuses a code A2A assigns (-32001 to -32009: a client would show a missing token
// as "task not found"), and each rides HTTP 200, as the JSON-RPC binding's clients expect,
// but a request without valid credentials, which A2A answers 401 with WWW-Authenticate. Before,
// the router answered -32001, -32003, -32004 and -32005 with 401, 403, 404, 502 and 504.
func TestJSONRPC_RouterErrors(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	issuer, tokens := newTestIssuer(t), newFakeTokenEndpoint(t)
	intruder := issuer.sign(t, issuer.claims(func(c map[string]any) { c["azp"] = "spiffe://td.test/ns/x/sa/intruder" }), issuer.kid)
	cases := map[string]struct {
		reason      string
		agent, body string
		token       string
		want        rpcAnswer
	}{
		"no token": {"A2A asks for 401 with a challenge", "down", sendBody, "", rpcAnswer{http.StatusUnauthorized, codeUnauthenticated, true}},
		"bad token": {"an invalid token is answered as a missing one", "down", sendBody, "not.a.jwt",
			rpcAnswer{http.StatusUnauthorized, codeUnauthenticated, true}},
		"caller not allowed": {"a policy refusal is the router's, not A2A's PushNotificationNotSupported", "down", sendBody, intruder,
			rpcAnswer{http.StatusOK, codeForbidden, false}},
		"no such agent": {"an unknown agent is not JSON-RPC's unknown method", "nobody", sendBody, "valid",
			rpcAnswer{http.StatusOK, codeNoSuchAgent, false}},
		"agent down": {"an unreachable agent is not A2A's UnsupportedOperation", "down", sendBody, "valid",
			rpcAnswer{http.StatusOK, codeUnavailable, false}},
		"agent slow": {"a timeout is not A2A's ContentTypeNotSupported", "slow", sendBody, "valid",
			rpcAnswer{http.StatusOK, codeTimeout, false}},
		"unknown method": {"JSON-RPC's own errors ride 200 too", "down", `{"jsonrpc":"2.0","id":7,"method":"tasks/delete"}`, "valid",
			rpcAnswer{http.StatusOK, codeMethodNotFound, false}},
		"not JSON": {"a parse error is a JSON-RPC error, not a bare HTTP 400", "down", `{nope`, "valid",
			rpcAnswer{http.StatusOK, codeParseError, false}},
	}
	{
		reg := NewRegistry()
		allow := contract.Policy{Audience: testCallee, AllowedCallers: []string{testCaller}}
		reg.SetService(Route{Namespace: "team1", Name: "down", Type: contract.TypeAgent, Protocol: "a2a", Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Policy: allow})
		reg.SetService(Route{Namespace: "team1", Name: "slow", Type: contract.TypeAgent, Protocol: "a2a", Upstream: &url.URL{Scheme: "http", Host: silent.Addr().String()}, Policy: allow})
		_, srvURL := startRouter(t, Config{
			Registry: reg, Timeout: 300 * time.Millisecond,
			Verifier:  &Verifier{Issuers: []TrustedIssuer{{Issuer: testIssuerURL, JWKSURL: issuer.srv.URL, Audiences: []string{testAudience}}}},
			Exchanger: &Exchanger{TokenURL: tokens.srv.URL, ClientID: "kagenti-router", ClientSecret: "router-secret"},
		})
		valid := issuer.token(t)
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				header := http.Header{}
				switch tc.token {
				case "":
				case "valid":
					header.Set("Authorization", "Bearer "+valid)
				default:
					header.Set("Authorization", "Bearer "+tc.token)
				}
				resp, answer := postRPC(t, freshClient, srvURL+"/a2a/team1/"+tc.agent, header, tc.body)
				errObj, _ := answer["error"].(map[string]any)
				code, _ := errObj["code"].(float64)
				got := rpcAnswer{resp.StatusCode, int(code), strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer")}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s\nanswer (-want +got):\n%s", tc.reason, diff)
				}
				if got.Code <= -32001 && got.Code >= -32009 {
					t.Errorf("%s\nthe router answered %d, a code A2A assigns", tc.reason, got.Code)
				}
			})
		}
	}
}
