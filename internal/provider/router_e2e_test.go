package provider

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/demo"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// e2eAgent is an A2A SDK agent on loopback that records the token of every call. With a next
// hop it calls that agent through the router first, as a workload would: it exchanges the
// token it received for one addressed to the router, authenticating with its own JWT-SVID.
type e2eAgent struct {
	name     string
	spiffeID string
	env      *identityTestEnv
	// next is the router URL of the agent to call, and routerClientID the router's audience.
	next, routerClientID string
	// tool is the router URL of an MCP tool to call (forecast, with the message as the city).
	tool string

	mu     sync.Mutex
	tokens []string
}

func (a *e2eAgent) received() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.tokens...)
}

func (a *e2eAgent) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		auth := ""
		if v, ok := ec.ServiceParams.Get("authorization"); ok && len(v) > 0 {
			auth = strings.TrimPrefix(v[0], "Bearer ")
		}
		a.mu.Lock()
		a.tokens = append(a.tokens, auth)
		a.mu.Unlock()
		text := ""
		for _, p := range ec.Message.Parts {
			text += p.Text()
		}
		reply := a.name + " got: " + text
		if a.tool != "" {
			answer, err := a.callTool(ctx, auth, text)
			if err != nil {
				yield(nil, err)
				return
			}
			reply += "; the tool said: " + answer
		}
		if a.next != "" {
			answer, err := a.callNext(ctx, auth, text)
			if err != nil {
				yield(nil, err)
				return
			}
			reply = a.name + " asked the next agent, which said: " + answer
		}
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(reply)), nil)
	}
}

func (a *e2eAgent) callNext(ctx context.Context, incoming, text string) (string, error) {
	token, err := a.env.exchange(ctx, a.spiffeID, incoming, a.routerClientID)
	if err != nil {
		return "", fmt.Errorf("%s: exchange for the router: %w", a.name, err)
	}
	return demo.SendText(ctx, nil, a.next, token, text)
}

// callTool calls the forecast tool through the router with a token exchanged for the router.
func (a *e2eAgent) callTool(ctx context.Context, incoming, city string) (string, error) {
	token, err := a.env.exchange(ctx, a.spiffeID, incoming, a.routerClientID)
	if err != nil {
		return "", fmt.Errorf("%s: exchange for the router: %w", a.name, err)
	}
	answer, err := demo.Forecast(ctx, a.tool, token, city)
	if err != nil {
		return "", fmt.Errorf("%s: the tool through the router: %w", a.name, err)
	}
	return answer, nil
}

// e2eTool is an MCP tool server (the official SDK) on loopback that records the token of every
// request.
type e2eTool struct {
	mu     sync.Mutex
	tokens []string
}

func (tl *e2eTool) received() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.tokens...)
}

func serveTool(t *testing.T, tl *e2eTool) string {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "weather-tool", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "forecast", Description: "Forecast for a city"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		City string `json:"city"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny (" + in.City + ")"}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tl.mu.Lock()
		tl.tokens = append(tl.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		tl.mu.Unlock()
		handler.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String() + "/mcp"
}

func (a *e2eAgent) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(func(a2a.Event, error) bool) {}
}

func serveAgent(t *testing.T, a *e2eAgent) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(a)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// TestAccRouter_EndToEnd: Terraform creates the identities and two agents (registered by
// endpoint; they run as A2A SDK servers on loopback); kagenti-router runs out of cluster against
// the sandbox. A real A2A client with a Keycloak token calls agent 1 through the router; agent 1
// calls agent 2 through the router with a token it exchanged; each hop's token is checked: every
// agent gets a token addressed to it, for the same subject, and never the caller's.
//
// It runs with each way of registering identities that reaches SPIRE without its socket: the
// server API over mutual TLS, and ClusterSPIFFEIDs for the SPIRE Controller Manager (whose
// entries for the agents' pods the test finds in SPIRE).
func TestAccRouter_EndToEnd(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	for _, mode := range testAccSpireModes() {
		t.Run(string(mode), func(t *testing.T) {
			testAccSpireMode(t, mode)
			for _, cli := range testAccCLIs {
				t.Run(cli.name, func(t *testing.T) {
					t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
					testAccRouterEndToEnd(t, client, env, mode)
				})
			}
		})
	}
}

func testAccRouterEndToEnd(t *testing.T, client kubernetes.Interface, env *identityTestEnv, mode testenv.SpireMode) {
	ns := testAccNamespace(t, client)
	td := testAccSandbox.Spire.TrustDomain
	id := func(sa string) string { return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa) }
	uiID, routerID, agent1ID, agent2ID, toolID := id("ui"), id("kagenti-router"), id("agent1"), id("agent2"), id("weather-tool")

	// The router listens first so that agent 1 knows where to call.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerURL := "http://" + l.Addr().String()
	tool := &e2eTool{}
	toolURL := serveTool(t, tool)
	agent2 := &e2eAgent{name: "agent2", spiffeID: agent2ID, env: env, tool: routerURL + "/tools/" + ns + "/weather-tool", routerClientID: routerID}
	agent1 := &e2eAgent{name: "agent1", spiffeID: agent1ID, env: env, next: routerURL + "/a2a/" + ns + "/agent2", routerClientID: routerID}
	agent1URL, agent2URL := serveAgent(t, agent1), serveAgent(t, agent2)

	config := routerAndCallerIdentities(ns) + fmt.Sprintf(`

resource "kagenti_tool" "weather" {
  name     = "weather-tool"
  namespace = %[1]q
  endpoint = %[4]q
  identity = {
    keycloak_client = { allowed_callers = [kagenti_agent.agent2.client_id, kagenti_identity.router.keycloak_client_id] }
  }
}

resource "kagenti_agent" "agent2" {
  name      = "agent2"
  namespace = %[1]q
  framework = "custom"
  endpoint  = %[2]q
  a2a_versions = ["1.0"]
  identity = {
    keycloak_client = {
      token_exchange  = true
      audiences       = [kagenti_identity.router.keycloak_client_id]
      allowed_callers = [kagenti_agent.agent1.client_id, kagenti_identity.router.keycloak_client_id]
    }
  }
}

resource "kagenti_agent" "agent1" {
  name           = "agent1"
  namespace      = %[1]q
  framework      = "langgraph"
  endpoint       = %[3]q
  a2a_versions   = ["1.0"]
  expose_as_tool = true
  identity = {
    keycloak_client = {
      token_exchange  = true
      audiences       = [kagenti_identity.router.keycloak_client_id]
      allowed_callers = [kagenti_identity.ui.keycloak_client_id, kagenti_identity.router.keycloak_client_id]
    }
  }
}
`, ns, agent2URL, agent1URL, toolURL)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				stop := startRouter(ctx, t, client, env, ns, l, routerURL, routerID, "agent1", "agent2")
				defer stop()
				if mode == testenv.SpireKubernetes {
					// The agents' identities are ClusterSPIFFEIDs: a pod of each service account gets
					// its entry from the controller manager, in SPIRE itself.
					for _, agent := range []struct{ sa, id string }{{"agent1", agent1ID}, {"agent2", agent2ID}} {
						if err := restrictedWorkloadPod(ctx, client, ns, agent.sa); err != nil {
							return err
						}
						if _, err := env.waitEntry(ctx, agent.id, func(e []spire.Entry) bool { return len(e) > 0 }); err != nil {
							return err
						}
					}
				}

				// The caller: a workload logged in with its JWT-SVID, token addressed to the router.
				uiToken, err := env.clientTokenWithScope(ctx, uiID, keycloak.AudienceScopeName(routerID))
				if err != nil {
					return fmt.Errorf("ui login: %w", err)
				}
				card, err := agentcard.DefaultResolver.Resolve(ctx, routerURL+"/a2a/"+ns+"/agent1")
				if err != nil {
					return fmt.Errorf("agent 1's card through the router: %w", err)
				}
				a2a1, err := a2aclient.NewFromCard(ctx, card)
				if err != nil {
					return err
				}
				callCtx := a2aclient.AttachServiceParams(ctx, a2aclient.ServiceParams{"Authorization": {"Bearer " + uiToken}})
				res, err := a2a1.SendMessage(callCtx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("weather in Brno?"))})
				if err != nil {
					return fmt.Errorf("call agent 1 through the router: %w", err)
				}
				m, ok := res.(*a2a.Message)
				if !ok || m.Parts[0].Text() != "agent1 asked the next agent, which said: agent2 got: weather in Brno?; the tool said: sunny (weather in Brno?)" {
					return fmt.Errorf("answer = %+v", res)
				}
				uiClaims := claims(t, uiToken)
				for _, hop := range []struct {
					agent *e2eAgent
					aud   string
				}{{agent1, agent1ID}, {agent2, agent2ID}} {
					got := hop.agent.received()
					if len(got) != 1 {
						return fmt.Errorf("%s received %d calls", hop.agent.name, len(got))
					}
					if got[0] == uiToken {
						return fmt.Errorf("%s received the caller's own token", hop.agent.name)
					}
					c := claims(t, got[0])
					if !containsString(audiences(c), hop.aud) || c["sub"] != uiClaims["sub"] || c["azp"] != routerID {
						return fmt.Errorf("%s's token: aud %v sub %v azp %v; want aud %s, sub %v (the caller), azp %s (the router)",
							hop.agent.name, c["aud"], c["sub"], c["azp"], hop.aud, uiClaims["sub"], routerID)
					}
				}
				// The tool server got tokens addressed to it, for the same user, from the router.
				for _, tok := range tool.received() {
					if tok == "" || tok == uiToken {
						return fmt.Errorf("the tool received %q", tok)
					}
					c := claims(t, tok)
					if !containsString(audiences(c), toolID) || c["sub"] != uiClaims["sub"] || c["azp"] != routerID {
						return fmt.Errorf("the tool's token: aud %v sub %v azp %v", c["aud"], c["sub"], c["azp"])
					}
				}
				if len(tool.received()) == 0 {
					return fmt.Errorf("the tool was not called")
				}
				// A caller the policy does not list is refused by the router: agent 2 only takes agent 1.
				direct, err := a2aclient.NewFromCard(ctx, mustResolve(ctx, t, routerURL+"/a2a/"+ns+"/agent2"))
				if err != nil {
					return err
				}
				_, err = direct.SendMessage(callCtx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("sneak"))})
				if err == nil || len(agent2.received()) != 1 {
					return fmt.Errorf("the ui reached agent 2 directly through the router (err %v)", err)
				}
				// Agent 1 as an MCP tool: an MCP client (the official Go SDK) calls it through the router.
				mcpClient := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1.0.0"}, nil)
				session, err := mcpClient.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: routerURL + "/mcp/" + ns,
					HTTPClient: &http.Client{Transport: demo.Bearer{Token: uiToken}}}, nil)
				if err != nil {
					return fmt.Errorf("MCP session through the router: %w", err)
				}
				defer session.Close()
				tools, err := session.ListTools(ctx, nil)
				if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "agent1" {
					return fmt.Errorf("MCP tools: %+v %v (want agent1 only: agent2 did not opt in)", tools, err)
				}
				res2, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "agent1", Arguments: map[string]any{"text": "via MCP"}})
				if err != nil || res2.IsError {
					return fmt.Errorf("MCP tools/call: %+v %v", res2, err)
				}
				if got := res2.Content[0].(*mcp.TextContent).Text; got != "agent1 asked the next agent, which said: agent2 got: via MCP; the tool said: sunny (via MCP)" {
					return fmt.Errorf("MCP tool result %q", got)
				}
				return nil
			},
		}},
	})
}

func mustResolve(ctx context.Context, t *testing.T, u string) *a2a.AgentCard {
	t.Helper()
	card, err := agentcard.DefaultResolver.Resolve(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	return card
}

// startRouter wires kagenti-router as cmd/kagenti-router does: discovery against the sandbox,
// Keycloak as the trusted issuer, and the router's own client (its secret read from the
// Kubernetes Secret kagenti_identity wrote) for exchanges. It returns once the agents named are
// routable.
func startRouter(ctx context.Context, t *testing.T, client kubernetes.Interface, env *identityTestEnv, ns string, l net.Listener, publicURL, routerID string, agents ...string) func() {
	t.Helper()
	secret, err := client.CoreV1().Secrets(ns).Get(ctx, "kagenti-router-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the router's client secret: %v", err)
	}
	issuer := env.issuer()
	registry := router.NewRegistry()
	rt, err := router.New(router.Config{
		PublicURL: publicURL, Registry: registry, Timeout: 30 * time.Second,
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Verifier:  &router.Verifier{HTTP: env.http, Issuers: []router.TrustedIssuer{{Issuer: issuer, JWKSURL: issuer + "/protocol/openid-connect/certs", Audiences: []string{routerID}}}},
		Exchanger: &router.Exchanger{HTTP: env.http, TokenURL: issuer + "/protocol/openid-connect/token", ClientID: string(secret.Data["client-id"]), ClientSecret: string(secret.Data["client-secret"])},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	synced := make(chan struct{})
	disc := &router.Discovery{Client: testAccDynamic(t), Keys: contract.NewKeys(""), Namespaces: []string{ns}, Registry: registry, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	go func() { _ = disc.Run(runCtx, synced) }()
	go func() { _ = rt.Serve(l) }()
	<-synced
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range agents {
		for {
			if r := registry.Lookup(ns, name); r != nil && len(r.Card) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the router did not discover %s/%s", ns, name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return func() {
		cancel()
		stopRouter(rt)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// The router itself holds no secret: its Keycloak client is federated-jwt, its SPIRE entry
// (unix:uid selector under the sandbox's spire-agent) gives it JWT-SVIDs from the Workload API,
// and it authenticates every token exchange with a fresh one.
func TestAccRouter_SPIFFEAuthenticatedRouter(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	sb := testAccSandbox
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			ns := testAccNamespace(t, client)
			id := func(sa string) string { return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", sb.Spire.TrustDomain, ns, sa) }
			routerID, uiID, helloID := id("kagenti-router"), id("ui"), id("hello")
			hello := &e2eAgent{name: "hello", spiffeID: helloID, env: env}
			helloURL := serveAgent(t, hello)
			config := fmt.Sprintf(`
resource "kagenti_identity" "router" {
  namespace       = %[1]q
  service_account = "kagenti-router"
  parent_id       = %[2]q
  selectors       = ["unix:uid:%[3]d"]
  keycloak_client = { token_exchange = true }
}

resource "kagenti_identity" "ui" {
  namespace       = %[1]q
  service_account = "ui"
  keycloak_client = { audiences = [kagenti_identity.router.keycloak_client_id] }
}

resource "kagenti_agent" "hello" {
  name      = "hello"
  namespace = %[1]q
  framework = "custom"
  endpoint  = %[4]q
  a2a_versions = ["1.0"]
  identity = {
    keycloak_client = { allowed_callers = [kagenti_identity.ui.keycloak_client_id, kagenti_identity.router.keycloak_client_id] }
  }
}
`, ns, sb.Spire.AgentID, os.Getuid(), helloURL)
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: config,
					Check: func(*terraformState) error {
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
						defer cancel()
						if _, err := client.CoreV1().Secrets(ns).Get(ctx, "kagenti-router-keycloak", metav1.GetOptions{}); err == nil {
							return fmt.Errorf("a client secret exists for the router")
						}
						assertion := router.SPIFFEAssertion(sb.Spire.AgentSocket, env.issuer(), routerID)
						// New entries reach the agent within seconds.
						deadline := time.Now().Add(30 * time.Second)
						for {
							_, err := assertion(ctx)
							if err == nil {
								break
							}
							if time.Now().After(deadline) {
								return fmt.Errorf("the router never got a JWT-SVID: %w", err)
							}
							time.Sleep(250 * time.Millisecond)
						}
						registry := router.NewRegistry()
						synced := make(chan struct{})
						disc := &router.Discovery{Client: testAccDynamic(t), Keys: contract.NewKeys(""), Namespaces: []string{ns}, Registry: registry,
							Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
						go func() { _ = disc.Run(ctx, synced) }()
						<-synced
						l, err := net.Listen("tcp", "127.0.0.1:0")
						if err != nil {
							return err
						}
						issuer := env.issuer()
						rt, err := router.New(router.Config{PublicURL: "http://" + l.Addr().String(), Registry: registry,
							Verifier:  &router.Verifier{HTTP: env.http, Issuers: []router.TrustedIssuer{{Issuer: issuer, JWKSURL: issuer + "/protocol/openid-connect/certs", Audiences: []string{routerID}}}},
							Exchanger: &router.Exchanger{HTTP: env.http, TokenURL: issuer + "/protocol/openid-connect/token", ClientID: routerID, Assertion: assertion}})
						if err != nil {
							return err
						}
						go func() { _ = rt.Serve(l) }()
						defer stopRouter(rt)
						for registry.Lookup(ns, "hello") == nil || len(registry.Lookup(ns, "hello").Card) == 0 {
							if ctx.Err() != nil {
								return fmt.Errorf("hello never routable")
							}
							time.Sleep(20 * time.Millisecond)
						}
						uiToken, err := env.clientTokenWithScope(ctx, uiID, keycloak.AudienceScopeName(routerID))
						if err != nil {
							return err
						}
						card, err := agentcard.DefaultResolver.Resolve(ctx, "http://"+l.Addr().String()+"/a2a/"+ns+"/hello")
						if err != nil {
							return err
						}
						a2c, err := a2aclient.NewFromCard(ctx, card)
						if err != nil {
							return err
						}
						callCtx := a2aclient.AttachServiceParams(ctx, a2aclient.ServiceParams{"Authorization": {"Bearer " + uiToken}})
						if _, err := a2c.SendMessage(callCtx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi"))}); err != nil {
							return fmt.Errorf("call through a router that authenticates with its JWT-SVID: %w", err)
						}
						got := hello.received()
						if len(got) != 1 || claims(t, got[0])["azp"] != routerID || !containsString(audiences(claims(t, got[0])), helloID) {
							return fmt.Errorf("hello received %d tokens; the first must have aud %s and azp %s", len(got), helloID, routerID)
						}
						return nil
					},
				}},
			})
		})
	}
}

// stopRouter shuts a router down, giving requests in flight a moment.
func stopRouter(rt *router.Router) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = rt.Shutdown(ctx)
}

// restrictedWorkloadPod runs a pod of a service account (created when missing: an agent that
// runs elsewhere has none) that the namespace's restricted Pod Security admits, on a kwok node.
func restrictedWorkloadPod(ctx context.Context, client kubernetes.Interface, ns, sa string) error {
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	no, yes := false, true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: sa + "-workload", Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeSelector:       map[string]string{"type": "kwok"},
			SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1",
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	_, err = client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// routerAndCallerIdentities is the configuration of the identities every router test starts
// from: the router's (a client secret, allowed to exchange tokens) and a caller's, "ui", whose
// tokens are addressed to the router.
func routerAndCallerIdentities(ns string) string {
	return fmt.Sprintf(`
resource "kagenti_identity" "router" {
  namespace       = %q
  service_account = "kagenti-router"
  keycloak_client = { authentication = "client-secret", token_exchange = true }
}

resource "kagenti_identity" "ui" {
  namespace       = %q
  service_account = "ui"
  keycloak_client = { audiences = [kagenti_identity.router.keycloak_client_id] }
}
`, ns, ns)
}
