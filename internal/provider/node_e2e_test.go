package provider

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/demo"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// nodeWorkloadAPI is how the pods of a real-node test reach the node agent's Workload API socket.
type nodeWorkloadAPI struct {
	name string
	// env is the provider setting that chooses the volume, and its value.
	env func() (key, value string)
	// podSecurity is the strictest Pod Security level the volume allows, which the test's
	// namespace enforces.
	podSecurity string
}

var (
	// workloadAPIByCSI is the SPIFFE CSI driver: an inline CSI volume, allowed by the restricted
	// profile.
	workloadAPIByCSI = nodeWorkloadAPI{name: "csi", podSecurity: "restricted",
		env: func() (string, string) { return "KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER", testAccSandbox.Node.CSIDriver }}
	// workloadAPIByHostPath is a hostPath volume of the socket's directory, which the baseline
	// and restricted profiles forbid.
	workloadAPIByHostPath = nodeWorkloadAPI{name: "hostPath", podSecurity: "privileged",
		env: func() (string, string) {
			return "KAGENTI_SPIRE_WORKLOAD_API_HOST_PATH", testAccSandbox.Node.WorkloadAPIDir
		}}
)

// testAccNodeNamespace is a namespace for pods of the real node that enforces a Pod Security
// level.
func testAccNodeNamespace(t *testing.T, client kubernetes.Interface, podSecurity string) string {
	t.Helper()
	if testAccSandbox.Node.Name == "" {
		t.Fatal("the sandbox has no real node (component \"node\")")
	}
	name := "node-" + rand.String(6)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": podSecurity}}}
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// testAccNodeHCL places a workload on the real node: its node selector and a toleration of its
// taint, as the value of a pod (or router_pod) attribute, with extra attributes appended.
func testAccNodeHCL(extra string) string {
	return fmt.Sprintf(`{
    node_selector = { %[1]q = "true" }
    tolerations   = [{ key = %[1]q, operator = "Exists", effect = "NoSchedule" }]
    %[2]s
  }`, testenv.NodeTaintKey, extra)
}

// clusterDNSClient is an HTTP client of a machine outside the cluster that resolves names with
// the cluster's DNS (the sandbox's CoreDNS on the node's bridge) and reaches Services through
// kube-proxy's rules on this host.
func clusterDNSClient() *http.Client {
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(testAccSandbox.Node.Gateway, "53"))
	}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 5 * time.Second, Resolver: resolver}).DialContext
	return &http.Client{Transport: transport, Timeout: time.Minute}
}

// TestAccNode_EndToEnd is the seed's flow with nothing simulated. Terraform applies the platform
// with token exchange (the router runs from its image on the real node), two agents and a tool
// (the demo agent and demo tool images), each with a SPIRE entry for its service account and a
// federated-jwt Keycloak client. A client outside the cluster calls agent 1 through the router's
// Service; agent 1 takes its JWT-SVID from the node's Workload API (attested by SPIRE's
// Kubernetes workload attestor), exchanges its token for the router and calls agent 2, which
// calls the tool the same way. Each hop reports the token it got: addressed to it, exchanged by
// the router, for the caller's subject; the same with @a2a-js/sdk 0.3 and 1.x clients. No Secret
// exists, and a caller that agent 2 does not allow is refused.
func TestAccNode_EndToEnd(t *testing.T) { testAccNodeRun(t, workloadAPIByCSI, testAccNodeEndToEnd) }

// testAccNodeRun runs a real-node test under each CLI, each in a namespace of its own:
// identities registered through the SPIRE server API, and pods reaching the node agent's
// Workload API socket the way via says.
func testAccNodeRun(t *testing.T, via nodeWorkloadAPI, test func(t *testing.T, client kubernetes.Interface, env *identityTestEnv, ns string)) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	testAccSpireMode(t, testenv.SpireTCP)
	key, value := via.env()
	if value == "" {
		t.Fatalf("the sandbox's node has no %s Workload API (sandbox.json)", via.name)
	}
	t.Setenv(key, value)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			test(t, client, env, testAccNodeNamespace(t, client, via.podSecurity))
		})
	}
}

func testAccNodeEndToEnd(t *testing.T, client kubernetes.Interface, env *identityTestEnv, ns string) {
	td := testAccSandbox.Spire.TrustDomain
	id := func(sa string) string { return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa) }
	uiID, routerID := id("ui"), id("kagenti-router")
	ca, err := os.ReadFile(testAccSandbox.Keycloak.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	router := fmt.Sprintf("http://kagenti-router.%s.svc.cluster.local", ns)
	images := testAccSandbox.Node.Images
	agent := func(name, onward string) string {
		return fmt.Sprintf(`
resource "kagenti_agent" %[1]q {
  name         = %[1]q
  namespace    = %[2]q
  framework    = "custom"
  image        = %[3]q
  port         = 8080
  a2a_versions = ["1.0"]
  env          = { KAGENTI_ISSUER_CA_PEM = %[4]q }
  pod = %[5]s
  identity = {
    keycloak_client = {
      token_exchange  = true
      audiences       = [kagenti_platform.main.router_client_id]
      allowed_callers = [%[6]s, kagenti_platform.main.router_client_id]
    }
  }
}
`, name, ns, images["demo-agent"], string(ca), testAccNodeHCL(fmt.Sprintf(`args = ["-listen=:8080", "-name=%s", %s, "-issuer=%s", "-router-audience=${kagenti_platform.main.router_client_id}"]`,
			name, onward, env.issuer())), map[string]string{"agent1": "kagenti_identity.ui.keycloak_client_id", "agent2": "kagenti_agent.agent1.client_id"}[name])
	}
	config := fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %[1]q
  create_namespace = false
  agent_namespaces = [%[1]q]
  router_image     = %[2]q
  token_exchange   = true
  router_pod       = %[3]s
  # No Istio runs here: the options leave labels Istio would read, and the mesh's
  # NetworkPolicy, which kube-router enforces (checkRouterOnly).
  mesh     = "istio-ambient"
  waypoint = true
}

resource "kagenti_identity" "ui" {
  namespace       = %[1]q
  service_account = "ui"
  keycloak_client = { audiences = [kagenti_platform.main.router_client_id] }
}

resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = %[1]q
  image     = %[4]q
  port      = 8080
  pod       = %[5]s
  identity = {
    keycloak_client = { allowed_callers = [kagenti_agent.agent2.client_id, kagenti_platform.main.router_client_id] }
  }
}
`, ns, images["router"], testAccNodeHCL(""), images["demo-tool"], testAccNodeHCL(`args = ["-listen=:8080"]`)) +
		agent("agent1", fmt.Sprintf(`"-next=%s/a2a/%s/agent2"`, router, ns)) +
		agent("agent2", fmt.Sprintf(`"-tool=%s/tools/%s/weather-tool"`, router, ns))

	// The waypoint is a Gateway API Gateway.
	crds, err := testenv.GatewayAPICRDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	applyCRDs(t, testAccDynamic(t), crds)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				for _, name := range []string{"kagenti-router", "agent1", "agent2", "weather-tool"} {
					if err := onRealNode(ctx, client, ns, name); err != nil {
						return err
					}
				}
				uiToken, err := env.clientTokenWithScope(ctx, uiID, keycloak.AudienceScopeName(routerID))
				if err != nil {
					return fmt.Errorf("ui login: %w", err)
				}
				hc := clusterDNSClient()
				answer, err := demo.SendText(ctx, hc, router+"/a2a/"+ns+"/agent1", uiToken, "weather in Brno?")
				if err != nil {
					return fmt.Errorf("agent 1 through the router's Service: %w", err)
				}
				t.Logf("answer: %s", answer)
				sub := fmt.Sprint(claims(t, uiToken)["sub"])
				// Each hop says who it is, what it was asked and the claims of the token it received.
				checkHops := func(answer, text string) error {
					hops := strings.Split(answer, " | ")
					if len(hops) != 3 {
						return fmt.Errorf("want the answers of agent 1, agent 2 and the tool, got %q", answer)
					}
					for i, hop := range []struct{ prefix, aud string }{
						{fmt.Sprintf("Hello from agent1! You said %q", text), id("agent1")},
						{fmt.Sprintf("Hello from agent2! You said %q", text), id("agent2")},
						{"weather-tool: sunny in " + text, id("weather-tool")},
					} {
						want := regexp.MustCompile(`The token I received: aud=\[?[^ ]*` + regexp.QuoteMeta(hop.aud) + `[^ ]* azp=` +
							regexp.QuoteMeta(routerID) + ` sub=` + regexp.QuoteMeta(sub) + `$`)
						if !strings.HasPrefix(hops[i], hop.prefix) || !want.MatchString(hops[i]) {
							return fmt.Errorf("hop %d said %q; want %q and a token for %s, exchanged by the router for %v", i+1, hops[i], hop.prefix, hop.aud, sub)
						}
					}
					return nil
				}
				if err := checkHops(answer, "weather in Brno?"); err != nil {
					return err
				}
				// The same through the router's Service with @a2a-js/sdk clients of both lines (the
				// 0.3 one translated by the router). They cannot resolve the cluster's names, so the
				// card's interface URLs are replaced with the Service's ClusterIP.
				svc, err := client.CoreV1().Services(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
				if err != nil {
					return err
				}
				viaIP := "http://" + svc.Spec.ClusterIP + "/a2a/" + ns + "/agent1"
				for _, v := range a2aJSVersions {
					text := "weather in Praha? (A2A " + v.version + ")"
					lines, err := runA2AJSClient(ctx, t, v.dir, "call", "CARD_URL="+viaIP+"/.well-known/agent-card.json",
						"OVERRIDE_URL="+viaIP, "TOKEN="+uiToken, "TRANSPORT=JSONRPC", "TEXT="+text)
					if err != nil || len(lines) != 1 || lines[0]["ok"] != true {
						return fmt.Errorf("@a2a-js/sdk %s client through the router's Service: %v %v", v.version, lines, err)
					}
					t.Logf("@a2a-js/sdk %s client: %s", v.version, lines[0]["text"])
					if err := checkHops(fmt.Sprint(lines[0]["text"]), text); err != nil {
						return fmt.Errorf("@a2a-js/sdk %s client: %w", v.version, err)
					}
				}
				secrets, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				if len(secrets.Items) != 0 {
					return fmt.Errorf("the namespace holds %d Secrets (first %s); the flow must need none", len(secrets.Items), secrets.Items[0].Name)
				}
				// Every pod (the router's too) took the socket from the CSI driver, in a namespace
				// that enforces the restricted profile.
				pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				for _, p := range pods.Items {
					if !mountsCSI(p, testAccSandbox.Node.CSIDriver) {
						return fmt.Errorf("pod %s does not mount the Workload API with %s: %v", p.Name, testAccSandbox.Node.CSIDriver, p.Spec.Volumes)
					}
				}
				// Below the router: a pod that calls agent 1 at its own Service, around the router,
				// is dropped by agent 1's NetworkPolicy; the same call through the router works,
				// and so does one from the mesh's waypoint.
				if err := checkRouterOnly(ctx, client, ns, testAccNodeNamespace(t, client, "restricted"), uiToken, router); err != nil {
					return err
				}
				// Agent 2 allows agent 1 only: the ui calling it directly through the router is refused.
				if _, err := demo.SendText(ctx, hc, router+"/a2a/"+ns+"/agent2", uiToken, "sneak"); err == nil {
					return fmt.Errorf("the ui reached agent 2, which does not allow it")
				}
				return nil
			},
		}},
	})
}

// checkRouterOnly runs the same call from pods that are no agent: from ns straight to agent1's
// Service, which must fail for want of a connection (kube-router rejects what the NetworkPolicy
// does not allow, so it is refused; agent1 listens, and answers anyone who connects); the same
// from a pod in another namespace that copies the router's labels (a namespace no platform
// labelled as the router's, or as the mesh's waypoint); and through the router, which must be
// answered. A pod labelled as the waypoint in the router's namespace gets through (the
// platform's mesh policy).
func checkRouterOnly(ctx context.Context, client kubernetes.Interface, ns, otherNS, token, router string) error {
	agent1 := fmt.Sprintf("http://agent1.%s.svc.cluster.local:8080", ns)
	routerLabels := map[string]string{"app.kubernetes.io/name": "kagenti-router", "kagenti.io/type": "platform"}
	waypoint := map[string]string{composition.WaypointPodLabel: composition.WaypointName}
	for _, c := range []struct {
		ns, name string
		labels   map[string]string
	}{{ns, "bypass", nil}, {otherNS, "fake-router", routerLabels}, {otherNS, "fake-waypoint", waypoint}} {
		out, err := runCaller(ctx, client, c.ns, c.name, c.labels, agent1, token)
		if err == nil {
			return fmt.Errorf("pod %s/%s reached agent1 around the router: %s", c.ns, c.name, out)
		}
		if !strings.Contains(out, "connection refused") && !strings.Contains(out, "timeout") {
			return fmt.Errorf("pod %s/%s's call around the router failed, but not for want of a connection: %s", c.ns, c.name, out)
		}
	}
	via, err := runCaller(ctx, client, ns, "via-router", nil, router+"/a2a/"+ns+"/agent1", token)
	if err != nil || !strings.Contains(via, "Hello from agent1!") {
		return fmt.Errorf("the same pod's call through the router: %v: %s", err, via)
	}
	// The platform's mesh policy admits the waypoint's pods (in the router's namespace, here
	// ns) to the isolated agents: such a pod gets agent 1's card at its Service (what the
	// message then meets is agent 1's and the router's business, not the network's). The pod
	// is new, and kube-router admits it once it has synced its address into the policy's
	// set, a moment after the pod starts: the caller tries for a while.
	out, err := runCaller(ctx, client, ns, "waypoint", waypoint, agent1, token, "-send-for=30s")
	answered := err == nil && strings.Contains(out, "Hello from agent1!")
	refusedLater := err != nil && strings.Contains(out, "send to ") && !strings.Contains(out, "card:")
	if !answered && !refusedLater {
		return fmt.Errorf("the waypoint's pod did not reach agent1: %v: %s", err, out)
	}
	return nil
}

// runCaller runs the demo agent's one-shot client (-send) as a pod on the real node and returns
// its output, with an error when it failed.
func runCaller(ctx context.Context, client kubernetes.Interface, ns, name string, labels map[string]string, target, token string, args ...string) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			NodeSelector:  map[string]string{testenv.NodeTaintKey: "true"},
			Tolerations:   []corev1.Toleration{{Key: testenv.NodeTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "caller", Image: testAccSandbox.Node.Images["demo-agent"], ImagePullPolicy: corev1.PullNever,
				Args: append([]string{"-send", target}, args...), Env: []corev1.EnvVar{{Name: "TOKEN", Value: token}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	defer func() { _ = client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}) }()
	var phase corev1.PodPhase
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	}); err != nil {
		return "", fmt.Errorf("pod %s did not finish: %w", name, err)
	}
	logs, err := client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	if phase == corev1.PodFailed {
		return string(logs), fmt.Errorf("pod %s failed", name)
	}
	return string(logs), nil
}

// mountsCSI reports whether a pod has a volume of the CSI driver.
func mountsCSI(p corev1.Pod, driver string) bool {
	for _, v := range p.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == driver {
			return true
		}
	}
	return false
}

// onRealNode checks that a Deployment's pods run on the real node, and are ready.
func onRealNode(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + name})
	if err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no pods of %s", name)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != testAccSandbox.Node.Name || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s on %q; want Running on %s", p.Name, p.Status.Phase, p.Spec.NodeName, testAccSandbox.Node.Name)
		}
	}
	return nil
}

// TestAccNode_ReadinessProbe: on the real node, an agent whose pod fails its readiness probe
// (it listens on another port than the one declared) keeps wait_for_rollout waiting until the
// create timeout, with the probe named in the error; applied without waiting, it is not routed
// (the router answers that the agent is unavailable, not with a connection to a pod that is not
// ready). Once it listens where it should, the same call goes through.
func TestAccNode_ReadinessProbe(t *testing.T) {
	testAccNodeRun(t, workloadAPIByHostPath, testAccNodeReadinessProbe)
}

func testAccNodeReadinessProbe(t *testing.T, client kubernetes.Interface, _ *identityTestEnv, ns string) {
	router := fmt.Sprintf("http://kagenti-router.%s.svc.cluster.local", ns)
	images := testAccSandbox.Node.Images
	config := func(listen string, wait bool) string {
		return fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %[1]q
  create_namespace = false
  agent_namespaces = [%[1]q]
  router_image     = %[2]q
  router_pod       = %[3]s
}

resource "kagenti_agent" "probed" {
  name             = "probed"
  namespace        = %[1]q
  framework        = "custom"
  image            = %[4]q
  port             = 8080
  a2a_versions     = ["1.0"]
  wait_for_rollout = %[5]t
  timeouts         = { create = "20s" }
  pod              = %[6]s
}
`, ns, images["router"], testAccNodeHCL(""), images["demo-agent"], wait, testAccNodeHCL(`args = ["-listen=`+listen+`", "-name=probed"]`))
	}
	call := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return demo.SendText(ctx, clusterDNSClient(), router+"/a2a/"+ns+"/probed", "", "are you there?")
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config:      config(":9090", true),
				ExpectError: regexp.MustCompile(`(?i)timed\s+out\s+waiting\s+for\s+Deployment\s+\S+/probed[\s\S]*readiness`),
			},
			{
				Config: config(":9090", false),
				Check: func(*terraform.State) error {
					if answer, err := call(); err == nil || !strings.Contains(err.Error(), "unavailable") {
						return fmt.Errorf("a pod failing its readiness probe was routed to: answer %q, error %v", answer, err)
					}
					return nil
				},
			},
			{
				Config: config(":8080", true),
				Check: func(*terraform.State) error {
					answer, err := call()
					if err != nil || !strings.HasPrefix(answer, "Hello from probed!") {
						return fmt.Errorf("the ready agent through the router: %q, %v", answer, err)
					}
					return nil
				},
			},
		},
	})
}
