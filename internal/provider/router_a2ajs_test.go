package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"k8s.io/client-go/kubernetes"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// The official JavaScript A2A SDK (@a2a-js/sdk), pinned in testdata/a2a-js: its 0.3 line and
// its 1.x line, each as a server (an echo agent) and as a client, meet through kagenti-router.
// Nobody on this team wrote either; the router's reading of the two specifications is checked
// against theirs.
var a2aJSVersions = []struct {
	dir     string // testdata/a2a-js/<dir>
	version string // the A2A version it speaks
}{{"v03", "0.3"}, {"v1", "1.0"}}

// npmInstallOnce installs each SDK project once per test binary, from its lock file.
var npmInstallOnce sync.Map // dir → *sync.Once

// a2aJSDir is an SDK project's directory, its dependencies installed (npm ci from the npm
// registry, the first time).
func a2aJSDir(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is needed for the @a2a-js/sdk tests: %v", err)
	}
	abs := mustAbs(t, filepath.Join("testdata", "a2a-js", dir))
	once, _ := npmInstallOnce.LoadOrStore(abs, new(sync.Once))
	var installErr error
	once.(*sync.Once).Do(func() {
		if _, err := os.Stat(filepath.Join(abs, "node_modules", ".package-lock.json")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = abs
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("npm ci in %s: %v\n%s", abs, err, out)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return abs
}

// startA2AJSServer runs an SDK version's echo agent on a loopback port, with the environment
// given, until the test ends and returns its base URL (JSON-RPC at it, REST under it).
func startA2AJSServer(t *testing.T, dir string, env ...string) string {
	t.Helper()
	return startEchoAgent(t, a2aJSDir(t, dir), []string{"node", "server.mjs"}, env...)
}

// startA2APythonServer runs the Python SDK's 0.3 echo agent (testdata/a2a-python/v03/server.py,
// JSON-RPC only) as startA2AJSServer does the JS ones.
func startA2APythonServer(t *testing.T) string {
	t.Helper()
	return startEchoAgent(t, mustAbs(t, filepath.Join("testdata", "a2a-python", "v03")), []string{venvPython(t, testenv.A2APython03()), "server.py"})
}

// startEchoAgent runs an echo agent (argv, in dir) that prints "LISTENING <port>" and serves at
// /agent, until the test ends, and returns its base URL.
func startEchoAgent(t *testing.T, dir string, argv []string, env ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "PORT=0"), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if port, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
				ready <- port
			}
		}
	}()
	select {
	case port := <-ready:
		return "http://127.0.0.1:" + port + "/agent"
	case <-time.After(30 * time.Second):
		t.Fatalf("the echo agent in %s did not start: %s", dir, stderr.String())
	}
	return ""
}

// a2aJSSeen is what an SDK agent recorded of the calls it received.
type a2aJSSeen struct {
	Authorization []string `json:"authorization"`
	A2AVersion    []string `json:"a2aVersion"`
}

func seenByA2AJS(base string) (a2aJSSeen, error) {
	var seen a2aJSSeen
	resp, err := http.Get(base + "/_seen")
	if err != nil {
		return seen, err
	}
	defer resp.Body.Close()
	return seen, json.NewDecoder(resp.Body).Decode(&seen)
}

// runA2AJSClient runs an SDK version's client in a mode ("flow" or "call") and returns the JSON
// lines it printed.
func runA2AJSClient(ctx context.Context, t *testing.T, dir, mode string, env ...string) ([]map[string]any, error) {
	return runClientScript(ctx, a2aJSDir(t, dir), []string{"node", "client.mjs", mode}, env...)
}

// The official Python A2A SDK (a2a-sdk from PyPI, its 0.3 and 1.x lines, built into the tool
// cache): testdata/a2a-python/<dir>/client.py is its client, with the JS clients' modes and
// output.
var a2aPythonVersions = []struct {
	dir, version string
	tool         testenv.Tool
}{{"v03", "0.3", testenv.A2APython03()}, {"v1", "1.0", testenv.A2APython1()}}

// runA2APythonClient runs a Python SDK line's client in a mode, as runA2AJSClient.
func runA2APythonClient(ctx context.Context, t *testing.T, dir string, tool testenv.Tool, mode string, env ...string) ([]map[string]any, error) {
	return runClientScript(ctx, mustAbs(t, filepath.Join("testdata", "a2a-python", dir)), []string{venvPython(t, tool), "client.py", mode}, env...)
}

// venvPython is the interpreter of a Python virtualenv of the tool cache, built the first time.
func venvPython(t *testing.T, tool testenv.Tool) string {
	t.Helper()
	builder := &testenv.Builder{CacheDir: testenv.DefaultCacheDir(), Log: os.Stderr}
	if err := builder.Ensure(context.Background(), tool); err != nil {
		t.Fatal(err)
	}
	return builder.Path(tool, "venv/bin/python")
}

// runClientScript runs an SDK client (argv, in dir) and returns the JSON lines it printed.
func runClientScript(ctx context.Context, dir string, argv []string, env ...string) ([]map[string]any, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	if err != nil {
		return lines, fmt.Errorf("%s %v: %v\nstdout: %s\nstderr: %s", dir, argv[1:], err, out, stderr.String())
	}
	return lines, nil
}

// TestAccRouter_A2ASDKs: clients of @a2a-js/sdk 0.3.x and 1.x call agents of both lines through
// kagenti-router, each client discovering its agent only through the router's card URL: send,
// stream (every event, in order), get, resubscribe and cancel, over JSON-RPC in all four
// client/agent pairs and over REST in all four (the router translates the mixed ones: a 1.x
// client's REST calls to a 0.3 agent become 0.3 JSON-RPC calls, a 0.3 client's REST calls to a
// 1.x agent 1.0 JSON-RPC calls). A third agent, of the 1.x line, serves REST alone
// (a2a_jsonrpc = false): every client reaches it over both transports, the router calling it
// over its REST. The clients of the official Python SDK's two lines (a2a-sdk 0.3 and 1.x) make
// the same calls of the same three agents over both transports. The router's errors reach the
// JS clients as JSON-RPC errors with the router's codes, never as an A2A error they are not.
func TestAccRouter_A2ASDKs(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	agents := map[string]string{}
	for _, v := range a2aJSVersions {
		agents[v.dir] = startA2AJSServer(t, v.dir)
	}
	agents["v1-rest"] = startA2AJSServer(t, "v1", "REST_ONLY=1")
	agents["py-v03"] = startA2APythonServer(t)
	mcp := startMCPPythonTool(t)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			testAccRouterA2AJSSDK(t, client, env, agents, mcp)
		})
	}
}

// mcpPython is the official Python MCP SDK: its interpreter, and a tool server built with it.
type mcpPython struct {
	python, toolURL string
}

// startMCPPythonTool runs testdata/mcp/tool_server.py (FastMCP, streamable HTTP) until the test
// ends.
func startMCPPythonTool(t *testing.T) mcpPython {
	t.Helper()
	python := venvPython(t, testenv.MCPPython())
	port := freePort(t)
	server := exec.Command(python, "testdata/mcp/tool_server.py", fmt.Sprint(port))
	server.Stdout, server.Stderr = testWriter{t}, testWriter{t}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return mcpPython{python: python, toolURL: fmt.Sprintf("http://127.0.0.1:%d/mcp", port)}
}

// call runs testdata/mcp/client.py: list the tools at url, call one with progress.
func (m mcpPython) call(ctx context.Context, url, token, tool string, args map[string]any) (mcpCallResult, error) {
	var res mcpCallResult
	argv, _ := json.Marshal(args)
	out, err := exec.CommandContext(ctx, m.python, "testdata/mcp/client.py", url, token, tool, string(argv)).Output()
	if err != nil {
		return res, fmt.Errorf("MCP client: %v: %s", err, out)
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		return res, fmt.Errorf("MCP client printed %q: %v", out, err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("MCP client: %s", res.Error)
	}
	return res, nil
}

type mcpCallResult struct {
	Tools    []string `json:"tools"`
	IsError  bool     `json:"isError"`
	Text     string   `json:"text"`
	Progress [][]any  `json:"progress"`
	Error    string   `json:"error"`
}

func testAccRouterA2AJSSDK(t *testing.T, client kubernetes.Interface, env *identityTestEnv, agents map[string]string, mcp mcpPython) {
	ns := testAccNamespace(t, client)
	td := testAccSandbox.Spire.TrustDomain
	uiID, routerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/ui", td, ns), fmt.Sprintf("spiffe://%s/ns/%s/sa/kagenti-router", td, ns)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerURL := "http://" + l.Addr().String()
	// An agent nobody serves: a port just closed.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String() + "/agent"
	closed.Close()

	config := routerAndCallerIdentities(ns) + fmt.Sprintf(`

resource "kagenti_agent" "js_v03" {
  name           = "js-v03"
  namespace      = %[1]q
  framework      = "custom"
  endpoint       = %[2]q
  a2a_versions   = ["0.3"]
  a2a_rest       = true
  expose_as_tool = true
  identity       = { keycloak_client = { allowed_callers = local.callers } }
}

resource "kagenti_agent" "js_v1" {
  name           = "js-v1"
  namespace      = %[1]q
  framework      = "custom"
  endpoint       = %[3]q
  a2a_versions   = ["1.0"]
  a2a_rest       = true
  expose_as_tool = true
  identity       = { keycloak_client = { allowed_callers = local.callers } }
}

# The 1.x SDK's agent serving REST alone.
resource "kagenti_agent" "js_v1_rest" {
  name           = "js-v1-rest"
  namespace      = %[1]q
  framework      = "custom"
  endpoint       = %[6]q
  a2a_versions   = ["1.0"]
  a2a_rest       = true
  a2a_jsonrpc    = false
  expose_as_tool = true
  identity       = { keycloak_client = { allowed_callers = local.callers } }
}

# The Python SDK's 0.3 agent, JSON-RPC alone (the router translates REST for it).
resource "kagenti_agent" "py_v03" {
  name           = "py-v03"
  namespace      = %[1]q
  framework      = "custom"
  endpoint       = %[7]q
  expose_as_tool = true
  identity       = { keycloak_client = { allowed_callers = local.callers } }
}

# An agent nobody serves.
resource "kagenti_agent" "down" {
  name      = "down"
  namespace = %[1]q
  framework = "custom"
  endpoint  = %[4]q
  identity  = { keycloak_client = { allowed_callers = local.callers } }
}

locals {
  callers = [kagenti_identity.ui.keycloak_client_id, kagenti_identity.router.keycloak_client_id]
}

resource "kagenti_tool" "weather" {
  name      = "weather"
  namespace = %[1]q
  endpoint  = %[5]q
  identity  = { keycloak_client = { allowed_callers = local.callers } }
}
`, ns, agents["v03"], agents["v1"], downURL, mcp.toolURL, agents["v1-rest"], agents["py-v03"])

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
				defer cancel()
				stop := startRouter(ctx, t, client, env, ns, l, routerURL, routerID, "js-v03", "js-v1", "js-v1-rest", "py-v03", "down")
				defer stop()
				token, err := env.clientTokenWithScope(ctx, uiID, keycloak.AudienceScopeName(routerID))
				if err != nil {
					return fmt.Errorf("ui login: %w", err)
				}
				cardURL := func(agent string) string {
					return routerURL + "/a2a/" + ns + "/" + agent + "/.well-known/agent-card.json"
				}
				// The agents every client calls: each JS SDK line's, the 1.x one serving REST alone,
				// and the Python SDK's 0.3 one, whose server ends a resubscription at a cancel
				// without sending it the canceled status (the cancel's events go to the cancel
				// call's own queue; the cancel step shows the task canceled).
				targets := []struct {
					name, dir, version      string
					resubscribeMissesCancel bool
				}{{"js-v03", "v03", "0.3", false}, {"js-v1", "v1", "1.0", false}, {"js-v1-rest", "v1-rest", "1.0", false}, {"py-v03", "py-v03", "0.3", true}}
				// The clients: both lines of the JS SDK and of the Python SDK.
				type sdkClient struct {
					name, version string
					run           func(mode string, env ...string) ([]map[string]any, error)
				}
				var clients []sdkClient
				for _, c := range a2aJSVersions {
					clients = append(clients, sdkClient{"JS " + c.version, c.version, func(mode string, env ...string) ([]map[string]any, error) {
						return runA2AJSClient(ctx, t, c.dir, mode, env...)
					}})
				}
				for _, c := range a2aPythonVersions {
					clients = append(clients, sdkClient{"Python " + c.version, c.version, func(mode string, env ...string) ([]map[string]any, error) {
						return runA2APythonClient(ctx, t, c.dir, c.tool, mode, env...)
					}})
				}
				for _, c := range clients {
					for _, a := range targets {
						// REST: forwarded in the agent's own version, and translated into the
						// agent's JSON-RPC in the other (or, for js-v1-rest, into its 1.0 REST).
						for _, transport := range []string{"JSONRPC", "HTTP+JSON"} {
							what := fmt.Sprintf("%s client → agent %s over %s", c.name, a.name, transport)
							lines, err := c.run("flow", "CARD_URL="+cardURL(a.name), "TOKEN="+token, "TRANSPORT="+transport)
							if err != nil {
								return fmt.Errorf("%s: %w", what, err)
							}
							if err := checkA2AJSFlow(lines, c.version, transport, a.resubscribeMissesCancel); err != nil {
								return fmt.Errorf("%s: %w", what, err)
							}
						}
					}
				}
				// Every call reached each agent with a token exchanged for it, never the caller's,
				// and a 1.0 agent always with the A2A-Version header it needs.
				for _, a := range targets {
					seen, err := seenByA2AJS(agents[a.dir])
					if err != nil {
						return err
					}
					if len(seen.Authorization) == 0 {
						return fmt.Errorf("agent %s was never called", a.name)
					}
					for _, auth := range seen.Authorization {
						if auth == "" || auth == "Bearer "+token {
							return fmt.Errorf("agent %s received %q: it must get a token exchanged for it", a.name, auth)
						}
					}
					if a.version == "1.0" && slices.ContainsFunc(seen.A2AVersion, func(v string) bool { return v != "1.0" }) {
						return fmt.Errorf("agent %s got A2A-Version headers %v", a.name, seen.A2AVersion)
					}
				}
				// The router's own errors: its codes, as JSON-RPC errors both SDKs read.
				routerErrors := []struct {
					name   string
					code   float64
					status int // of the REST answer
					env    []string
				}{
					{"no token", -32041, http.StatusUnauthorized, []string{"CARD_URL=" + cardURL("js-v03"), "TOKEN="}},
					{"unknown agent", -32044, http.StatusNotFound, []string{"CARD_URL=" + cardURL("js-v03"), "TOKEN=" + token, "OVERRIDE_URL=" + routerURL + "/a2a/" + ns + "/no-such-agent"}},
					{"agent down", -32052, http.StatusBadGateway, []string{"CARD_URL=" + cardURL("down"), "TOKEN=" + token}},
				}
				for _, c := range a2aJSVersions {
					for _, e := range routerErrors {
						lines, err := runA2AJSClient(ctx, t, c.dir, "call", append(e.env, "TRANSPORT=JSONRPC")...)
						if err != nil {
							return fmt.Errorf("client %s, %s: %w", c.version, e.name, err)
						}
						if err := checkA2AJSError(lines, e.code); err != nil {
							return fmt.Errorf("client %s, %s: %w", c.version, e.name, err)
						}
					}
				}
				for _, c := range a2aPythonVersions {
					for _, e := range routerErrors {
						for _, transport := range []string{"JSONRPC", "HTTP+JSON"} {
							lines, err := runA2APythonClient(ctx, t, c.dir, c.tool, "call", append(e.env, "TRANSPORT="+transport)...)
							if err == nil {
								err = checkA2APythonError(lines, c.version, transport, e.code, e.status)
							}
							if err != nil {
								return fmt.Errorf("Python client %s over %s, %s: %w", c.version, transport, e.name, err)
							}
						}
					}
				}
				// MCP through the router with the official Python SDK: the agents as tools at
				// /mcp/{namespace}, each spoken to in its own A2A version (and binding), their
				// stream's events as progress; and a Python MCP tool server at
				// /tools/{namespace}/{name}, its progress relayed, with a token exchanged for it.
				for _, a := range targets {
					res, err := mcp.call(ctx, routerURL+"/mcp/"+ns, token, a.name, map[string]any{"text": "via MCP"})
					if err != nil {
						return fmt.Errorf("MCP call of agent %s: %w", a.name, err)
					}
					if res.IsError || !strings.Contains(res.Text, "echo: via MCP") || len(res.Progress) == 0 || !slices.Contains(res.Tools, a.name) {
						return fmt.Errorf("MCP call of agent %s: %+v", a.name, res)
					}
				}
				res, err := mcp.call(ctx, routerURL+"/tools/"+ns+"/weather", token, "forecast", map[string]any{"city": "Brno"})
				if err != nil {
					return fmt.Errorf("MCP tool through the router: %w", err)
				}
				// The tool reports progress 1, 2 and 3 of 3. The Python client may still drop the last
				// ones when the result arrives right behind them (seen with the tool called
				// directly, without the router), so what counts is that progress passes, in order.
				if res.IsError || res.Text != "sunny in Brno" || !progressInOrder(res.Progress, 3) {
					return fmt.Errorf("MCP tool through the router: %+v", res)
				}
				toolSeen, err := seenByA2AJS(strings.TrimSuffix(mcp.toolURL, "/mcp"))
				if err != nil {
					return err
				}
				if len(toolSeen.Authorization) == 0 || slices.ContainsFunc(toolSeen.Authorization, func(a string) bool { return a == "" || a == "Bearer "+token }) {
					return fmt.Errorf("the MCP tool received %v: it must get only tokens exchanged for it", toolSeen.Authorization)
				}

				// A malformed body: JSON-RPC's parse error, the id unknown (null), as both SDKs'
				// servers answer it.
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, routerURL+"/a2a/"+ns+"/js-v1", strings.NewReader(`{"jsonrpc":"2.0","id":1,`))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var parsed struct {
					ID    any `json:"id"`
					Error struct {
						Code int `json:"code"`
					} `json:"error"`
				}
				if json.Unmarshal(body, &parsed) != nil || parsed.Error.Code != -32700 || parsed.ID != nil {
					return fmt.Errorf("malformed body: %d %s, want a -32700 error with id null", resp.StatusCode, body)
				}
				return nil
			},
		}},
	})
}

// checkA2AJSFlow checks the lines of a client's flow: the version and transport it used, and
// what each step gave (resubscribeMissesCancel: the agent ends a resubscription at a cancel
// without the canceled status).
func checkA2AJSFlow(lines []map[string]any, version, transport string, resubscribeMissesCancel bool) error {
	steps := map[string]map[string]any{}
	for _, l := range lines {
		if s, ok := l["step"].(string); ok {
			steps[s] = l
		}
	}
	str := func(step, key string) string { s, _ := steps[step][key].(string); return s }
	events := func(step string) []string {
		var out []string
		list, _ := steps[step]["events"].([]any)
		for _, e := range list {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	if got := str("card", "protocolVersion"); !strings.HasPrefix(got, version) || !strings.EqualFold(str("card", "transport"), transport) {
		return fmt.Errorf("the client spoke %q over %q, want %s over %s (%v)", got, str("card", "transport"), version, transport, steps["card"])
	}
	if str("send", "state") != "completed" || str("send", "text") != "echo: hello" {
		return fmt.Errorf("send: %v", steps["send"])
	}
	if got, want := events("stream"), []string{"task:submitted", "status:working", "artifact:echo: stream me", "status:completed"}; !slices.Equal(got, want) {
		return fmt.Errorf("stream events %q, want %q", got, want)
	}
	if str("get", "state") != "completed" || steps["get"]["artifacts"] != float64(1) {
		return fmt.Errorf("get: %v", steps["get"])
	}
	resubscribed := str("resubscribe", "last") == "canceled" || resubscribeMissesCancel && str("resubscribe", "last") == "working"
	if !resubscribed || len(events("resubscribe")) == 0 {
		return fmt.Errorf("resubscribe: %v", steps["resubscribe"])
	}
	if str("cancel", "state") != "canceled" {
		return fmt.Errorf("cancel: %v", steps["cancel"])
	}
	return nil
}

// checkA2APythonError checks what the Python SDK made of a router error (a "call" line). Over
// JSON-RPC it is the router's code: 0.3 types it as A2AClientJSONRPCError with the code, 1.x
// names the code in an A2AClientError's message. A missing token is HTTP's 401 (A2A puts
// authentication in HTTP), which both lines raise as an HTTP error before reading the body.
// Over REST it is the HTTP status: 0.3's REST transport reads no error body, and 1.x reads a
// google.rpc.Status only by an A2A reason, typing a 404 without one as MethodNotFoundError
// ("Resource not found"), whoever answered it. Never another A2A error.
func checkA2APythonError(lines []map[string]any, version, transport string, code float64, status int) error {
	if len(lines) != 1 || lines[0]["ok"] != false {
		return fmt.Errorf("want one failed call, got %v", lines)
	}
	e, _ := lines[0]["error"].(map[string]any)
	class, _ := e["class"].(string)
	msg, _ := e["message"].(string)
	if version == "1.0" && transport == "HTTP+JSON" && status == http.StatusNotFound {
		if class != "MethodNotFoundError" || !strings.Contains(msg, "Resource not found") {
			return fmt.Errorf("error %v: want the SDK's reading of a bare 404, MethodNotFoundError", e)
		}
		return nil
	}
	for _, c := range a2aErrorClasses {
		if strings.Contains(class, c) {
			return fmt.Errorf("error %v: the SDK read the router's error as A2A's %s", e, c)
		}
	}
	switch {
	case transport == "JSONRPC" && status != http.StatusUnauthorized:
		if e["code"] != code && !strings.Contains(msg, fmt.Sprintf("JSON-RPC Error %d:", int(code))) {
			return fmt.Errorf("error %v: want the router's code %v", e, code)
		}
	case !strings.Contains(msg, fmt.Sprintf("HTTP Error %d", status)):
		return fmt.Errorf("error %v: want HTTP status %d", e, status)
	}
	return nil
}

// a2aErrorClasses are the SDKs' classes of A2A's own errors: a router error must never be read
// as one of them.
var a2aErrorClasses = []string{"TaskNotFound", "TaskNotCancelable", "PushNotification", "UnsupportedOperation", "ContentType", "InvalidAgentResponse", "VersionNotSupported"}

// checkA2AJSError checks a client's "call" line: a failure carrying the router's code, typed as
// a JSON-RPC error by the SDK and not as any A2A error, nor a bare HTTP error.
func checkA2AJSError(lines []map[string]any, code float64) error {
	if len(lines) != 1 || lines[0]["ok"] != false {
		return fmt.Errorf("want one failed call, got %v", lines)
	}
	e, _ := lines[0]["error"].(map[string]any)
	class, _ := e["class"].(string)
	msg, _ := e["message"].(string)
	if e["code"] != code {
		return fmt.Errorf("error %v: want code %v", e, code)
	}
	for _, c := range a2aErrorClasses {
		if strings.Contains(class, c) {
			return fmt.Errorf("error %v: the SDK read the router's error as A2A's %s", e, c)
		}
	}
	if strings.HasPrefix(msg, "HTTP error") {
		return fmt.Errorf("error %v: a bare HTTP error, not a JSON-RPC one", e)
	}
	return nil
}

// progressInOrder tells whether MCP progress notifications ([progress, total, message]) came,
// at least one, with progress rising and never past total.
func progressInOrder(progress [][]any, total float64) bool {
	last := 0.0
	for _, p := range progress {
		v, _ := p[0].(float64)
		if t, _ := p[1].(float64); v <= last || v > total || t != total {
			return false
		}
		last = v
	}
	return len(progress) > 0
}
