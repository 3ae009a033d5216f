package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestAccNode_CardVerification: on the real node, with the router in strict card verification,
// the three cases of a card's binding to its agent's identity. The demo agent serves the card
// the composition mounts, signed with the X509-SVID SPIRE attests its pod for: the router
// serves it. The same agent told not to sign: refused. An agent whose endpoint is the first
// agent's pod serves a card signed by another identity than the one registered for it: refused.
// The router counts each refusal by reason. The same unsigning agent with the platform's card
// signer beside it (identity.card_signer): served, its card fetched from the signer; without
// the signer again, refused.
func TestAccNode_CardVerification(t *testing.T) {
	testAccNodeRun(t, workloadAPIByCSI, testAccNodeCardVerification)
}

func testAccNodeCardVerification(t *testing.T, client kubernetes.Interface, _ *identityTestEnv, ns string) {
	images := testAccSandbox.Node.Images
	agent := func(name, args, identity string) string {
		return fmt.Sprintf(`
resource "kagenti_agent" %[1]q {
  name         = %[1]q
  namespace    = %[2]q
  framework    = "custom"
  image        = %[3]q
  port         = 8080
  a2a_versions = ["1.0"]
  pod          = %[4]s
  identity = {
    keycloak_client = { allowed_callers = [kagenti_platform.main.router_client_id] }
    %[5]s
  }
}
`, name, ns, images["demo-agent"], testAccNodeHCL(fmt.Sprintf(`args = ["-listen=:8080", "-name=%s"%s]`, name, args)), identity)
	}
	config := fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %[1]q
  create_namespace = false
  agent_namespaces = [%[1]q]
  router_image     = %[2]q
  router_replicas  = 1
  token_exchange   = true
  router_pod       = %[3]s
  router_settings  = { card_verification = "strict" }
}

# Registered with an identity of its own, served by the signed agent's pod.
resource "kagenti_agent" "impostor" {
  name         = "impostor"
  namespace    = %[1]q
  framework    = "custom"
  endpoint     = "http://signed.%[1]s.svc.cluster.local:8080"
  a2a_versions = ["1.0"]
  identity = {
    keycloak_client = { allowed_callers = [kagenti_platform.main.router_client_id] }
  }
  depends_on = [kagenti_agent.signed]
}
`, ns, images["router"], testAccNodeHCL("")) + agent("signed", "", "") + agent("unsigned", `, "-sign=false"`, "")
	signer := fmt.Sprintf("card_signer = { image = %q }", images["router"])
	router := fmt.Sprintf("http://kagenti-router.%s.svc.cluster.local", ns)
	hc := clusterDNSClient()
	card := func(ctx context.Context, name string) (int, string, error) {
		return get(ctx, hc, router+"/a2a/"+ns+"/"+name+"/.well-known/agent-card.json")
	}
	// verified waits for an agent's card to verify: its SVID may come a moment after its pod is
	// ready, and a failed verification is tried again after a few seconds.
	verified := func(ctx context.Context, name string) error {
		var status int
		var body string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			var err error
			if status, body, err = card(ctx, name); err == nil && status == http.StatusOK {
				break
			}
		}
		if status != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"name":%q`, name)) {
			return fmt.Errorf("the card of %s: HTTP %d %s; want it served, verified", name, status, body)
		}
		return nil
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraformState) error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				for _, name := range []string{"signed", "unsigned"} {
					if err := onRealNode(ctx, client, ns, name); err != nil {
						return err
					}
				}
				if err := verified(ctx, "signed"); err != nil {
					return err
				}
				for name, want := range map[string]string{"unsigned": "not signed", "impostor": "signed by another identity"} {
					status, body, err := card(ctx, name)
					if err != nil {
						return err
					}
					if status != http.StatusBadGateway || !strings.Contains(body, "is not verified") || !strings.Contains(body, want) {
						return fmt.Errorf("the card of %s: HTTP %d %s; want 502 saying %q", name, status, body, want)
					}
				}
				// Nor is it called.
				resp, err := hc.Post(router+"/a2a/"+ns+"/unsigned", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}`))
				if err != nil {
					return err
				}
				rpc, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(rpc), "is not verified") {
					return fmt.Errorf("a call to the unsigned agent: HTTP %d %s; want it refused as not verified", resp.StatusCode, rpc)
				}
				_, metrics, err := get(ctx, hc, router+"/metrics")
				if err != nil {
					return err
				}
				for _, reason := range []string{"unsigned", "wrong_identity"} {
					if !strings.Contains(metrics, fmt.Sprintf(`kagenti_router_card_verification_failures_total{reason=%q}`, reason)) {
						return fmt.Errorf("no card verification failure counted as %s:\n%s", reason, grepLines(metrics, "card_verification"))
					}
				}
				return nil
			},
		}, {
			// The agent that does not sign gets the platform's signer: its card verifies, and
			// it is called.
			Config: config + agent("countersigned", `, "-sign=false"`, signer),
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr("kagenti_agent.countersigned", "identity.card_signer.image", images["router"]),
				func(*terraformState) error {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					if err := onRealNode(ctx, client, ns, "countersigned"); err != nil {
						return err
					}
					if err := verified(ctx, "countersigned"); err != nil {
						return err
					}
					// What signed is the signer, a second container of the agent's pod.
					pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=countersigned"})
					if err != nil {
						return err
					}
					for _, p := range pods.Items {
						for _, c := range p.Status.ContainerStatuses {
							if c.Name == "card-signer" && c.Ready {
								return nil
							}
						}
					}
					return fmt.Errorf("no pod of countersigned has a ready card-signer container")
				}),
		}, {
			// Without the signer, its card is refused again.
			Config: config + agent("countersigned", `, "-sign=false"`, ""),
			Check: func(*terraformState) error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				var status int
				var body string
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
					var err error
					// Until the rollout ends, the router may reach a pod on its way out.
					if status, body, err = card(ctx, "countersigned"); err == nil && status == http.StatusBadGateway && strings.Contains(body, "not signed") {
						break
					}
				}
				if status != http.StatusBadGateway || !strings.Contains(body, "not signed") {
					return fmt.Errorf("the card of countersigned without its signer: HTTP %d %s; want 502 saying it is not signed", status, body)
				}
				return nil
			},
		}}})
}

func get(ctx context.Context, hc *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
