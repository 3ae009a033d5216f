package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	fwtypes "github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

func testAccAgentConfig(namespace, agentBody string) string {
	return fmt.Sprintf(`
resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = %[1]q
  image     = "ghcr.io/example/weather-tool:0.3.1"
}

resource "kagenti_agent" "test" {
  name        = "weather-service"
  namespace   = %[1]q
  framework   = "langgraph"
  image       = "ghcr.io/example/weather-service:1.4.0"
  description = "Answers questions about the weather"
  skills      = [{ id = "forecast", name = "Forecast", description = "Forecasts", tags = ["weather"] }]
  tools       = [kagenti_tool.weather.id]
  secret_env  = { OPENAI_API_KEY = { secret = "openai", key = "apikey" } }
  llm         = { base_url = "http://ollama:11434/v1", model = "llama3.2:3b" }
%[2]s
}
`, namespace, agentBody)
}

// The whole life of an agent wired to a tool: create → Available; import; env change rolls
// out; scale; autoscaling; persistence and patches; out-of-band drift detected and repaired;
// destroy leaves nothing with our labels.
func TestAccAgentResource_Lifecycle(t *testing.T) {
	client := testAccKube(t)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			testAccAgentLifecycle(t, client)
		})
	}
}

func testAccAgentLifecycle(t *testing.T, client kubernetes.Interface) {
	ns := testAccNamespace(t, client)
	agent := "kagenti_agent.test"
	toolURL := fmt.Sprintf("http://weather-tool.%s.svc.cluster.local:8000/mcp", ns)
	deployments := client.AppsV1().Deployments(ns)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config: testAccAgentConfig(ns, `  replicas = 2
  env      = { LOG_LEVEL = "info" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("id"), knownvalue.StringExact(ns+"/weather-service")),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("ready_replicas"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("url"), knownvalue.StringExact(fmt.Sprintf("http://weather-service.%s.svc.cluster.local:8000", ns))),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("card"), knownvalue.StringRegexp(regexp.MustCompile(`"skills":\[\{"id":"forecast","name":"Forecast"`))),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("revision"), knownvalue.StringRegexp(regexp.MustCompile(`^sha256:[0-9a-f]{64}$`))),
					// serviceaccount, card, networkpolicy, deployment, service, pdb (2 replicas)
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects"), knownvalue.ListSizeExact(6)),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects").AtSliceIndex(2).AtMapKey("kind"), knownvalue.StringExact("NetworkPolicy")),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects").AtSliceIndex(3).AtMapKey("kind"), knownvalue.StringExact("Deployment")),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects").AtSliceIndex(3).AtMapKey("in_sync"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("kagenti_tool.weather", tfjsonpath.New("url"), knownvalue.StringExact(toolURL)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkDeploymentAvailable(client, ns, "weather-service", 2),
					checkContainerEnv(client, ns, "weather-service", "MCP_URL", toolURL),
					checkContainerEnv(client, ns, "weather-service", "MCP_TRANSPORT", "streamable-http"),
					checkContainerEnv(client, ns, "weather-service", "LLM_MODEL", "llama3.2:3b"),
					checkContainerEnv(client, ns, "weather-service", "LOG_LEVEL", "info"),
					checkExists(func(ctx context.Context) error {
						_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "PodDisruptionBudget", true),
					checkExists(func(ctx context.Context) error {
						_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "weather-service-card", metav1.GetOptions{})
						return err
					}, "card ConfigMap", true),
				),
			},
			{
				ResourceName:            agent,
				ImportState:             true,
				ImportStateId:           ns + "/weather-service",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// An env change and a scale-up roll out.
				Config: testAccAgentConfig(ns, `  replicas = 3
  env      = { LOG_LEVEL = "debug" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(agent, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("ready_replicas"), knownvalue.Int64Exact(3)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkDeploymentAvailable(client, ns, "weather-service", 3),
					checkContainerEnv(client, ns, "weather-service", "LOG_LEVEL", "debug"),
				),
			},
			{
				// Autoscaling replaces the fixed count: an HPA appears, and with min 1 the PDB is pruned.
				Config: testAccAgentConfig(ns, `  autoscaling = { min_replicas = 1, max_replicas = 4, target_cpu_utilization = 75 }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects").AtSliceIndex(5).AtMapKey("kind"), knownvalue.StringExact("HorizontalPodAutoscaler")),
					statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects"), knownvalue.ListSizeExact(6)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExists(func(ctx context.Context) error {
						_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "HorizontalPodAutoscaler", true),
					// The HPA's utilization is a percentage of the CPU request: one is set.
					checkContainerResource(client, ns, "weather-service", false, "cpu", "100m"),
					checkExists(func(ctx context.Context) error {
						_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "PodDisruptionBudget", false),
				),
			},
			{
				// A checkpoint volume, and patches that reach fields no attribute has.
				Config: testAccAgentConfig(ns, `  persistence = { size = "1Gi" }
  composition = {
    patches = [{
      target = "deployment"
      type   = "strategic"
      patch  = <<-EOT
        spec:
          template:
            spec:
              containers:
                - name: agent
                  resources:
                    limits: { memory: 512Mi }
      EOT
    }, {
      target = "service"
      type   = "merge"
      patch  = jsonencode({ metadata = { annotations = { "example.com/team" = "weather" } } })
    }]
  }`),
				Check: resource.ComposeTestCheckFunc(
					checkDeploymentAvailable(client, ns, "weather-service", 1),
					checkContainerEnv(client, ns, "weather-service", "CHECKPOINT_DIR", "/data"),
					checkExists(func(ctx context.Context) error {
						_, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "weather-service-data", metav1.GetOptions{})
						return err
					}, "PersistentVolumeClaim", true),
					checkExists(func(ctx context.Context) error {
						_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "HorizontalPodAutoscaler", false),
					func(*terraformState) error {
						d, err := deployments.Get(context.Background(), "weather-service", metav1.GetOptions{})
						if err != nil {
							return err
						}
						if got := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "512Mi" {
							return fmt.Errorf("patched memory limit = %s, want 512Mi", got)
						}
						svc, err := client.CoreV1().Services(ns).Get(context.Background(), "weather-service", metav1.GetOptions{})
						if err != nil {
							return err
						}
						if svc.Annotations["example.com/team"] != "weather" {
							return fmt.Errorf("merge patch not applied to the Service: annotations %v", svc.Annotations)
						}
						return nil
					},
				),
			},
			{
				// Out-of-band: delete the Service and change an env value of the Deployment.
				PreConfig: func() {
					ctx := context.Background()
					if err := client.CoreV1().Services(ns).Delete(ctx, "weather-service", metav1.DeleteOptions{}); err != nil {
						t.Fatal(err)
					}
					patch := `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/example/weather-service:evil"}]`
					if _, err := deployments.Patch(ctx, "weather-service", types.JSONPatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
						t.Fatal(err)
					}
				},
				Config: testAccAgentConfig(ns, `  persistence = { size = "1Gi" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(agent, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(
					checkExists(func(ctx context.Context) error {
						_, err := client.CoreV1().Services(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "Service (re-created)", true),
					func(*terraformState) error {
						d, err := deployments.Get(context.Background(), "weather-service", metav1.GetOptions{})
						if err != nil {
							return err
						}
						if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/example/weather-service:1.4.0" {
							return fmt.Errorf("image after repair = %s", img)
						}
						return nil
					},
				),
			},
			{
				// After the repair the plan is empty.
				Config:   testAccAgentConfig(ns, `  persistence = { size = "1Gi" }`),
				PlanOnly: true,
			},
		},
	})
}

// Drift alone (no config change) shows in the plan: the objects attribute says which object
// and which field.
func TestAccAgentResource_DriftShowsInPlan(t *testing.T) {
	client := testAccKube(t)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			ns := testAccNamespace(t, client)
			config := fmt.Sprintf(`
resource "kagenti_agent" "test" {
  name      = "drifty"
  namespace = %q
  framework = "crewai"
  image     = "ghcr.io/example/drifty:1.0.0"
  env       = { MODE = "calm" }
}
`, ns)
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				CheckDestroy:             checkNoLabelledObjects(client, ns),
				Steps: []resource.TestStep{
					{Config: config},
					{
						PreConfig: func() {
							patch := `[{"op":"replace","path":"/spec/replicas","value":4}]`
							if _, err := client.AppsV1().Deployments(ns).Patch(context.Background(), "drifty", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
								t.Fatal(err)
							}
						},
						Config:             config,
						PlanOnly:           true,
						ExpectNonEmptyPlan: true,
					},
					{
						Config: config,
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("objects").AtSliceIndex(3).AtMapKey("in_sync"), knownvalue.Bool(true)),
						},
						Check: checkDeploymentAvailable(client, ns, "drifty", 1),
					},
					// Another writer removes the label refreshes list objects by: the card
					// ConfigMap is read with a GET instead, so it shows as drift, not as missing.
					{
						PreConfig: func() {
							patch := `[{"op":"remove","path":"/metadata/labels/app.kubernetes.io~1managed-by"}]`
							if _, err := client.CoreV1().ConfigMaps(ns).Patch(context.Background(), "drifty-card", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
								t.Fatal(err)
							}
						},
						RefreshState:       true,
						ExpectNonEmptyPlan: true,
						Check: resource.ComposeTestCheckFunc(
							resource.TestCheckResourceAttr("kagenti_agent.test", "objects.1.key", "card"),
							resource.TestCheckResourceAttr("kagenti_agent.test", "objects.1.in_sync", "false"),
							resource.TestMatchResourceAttr("kagenti_agent.test", "objects.1.drift.0", regexp.MustCompile(`managed-by`)),
						),
					},
					{Config: config, Check: resource.TestCheckResourceAttr("kagenti_agent.test", "objects.1.in_sync", "true")},
				},
			})
		})
	}
}

// An agent deleted entirely out of band is planned for creation again.
func TestAccAgentResource_DeletedOutOfBand(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	config := fmt.Sprintf(`
resource "kagenti_agent" "test" {
  name      = "gone"
  namespace = %q
  framework = "ag2"
  protocol  = "acp"
  image     = "ghcr.io/example/gone:1.0.0"
}
`, ns)
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("card"), knownvalue.StringRegexp(regexp.MustCompile(`"input_content_types"`))),
				},
			},
			{
				PreConfig: func() {
					ctx := context.Background()
					sel := metav1.ListOptions{LabelSelector: "kagenti.io/composite=gone"}
					_ = client.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
					_ = client.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
					_ = client.CoreV1().ServiceAccounts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
					_ = client.NetworkingV1().NetworkPolicies(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
					if err := client.CoreV1().Services(ns).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kagenti_agent.test", plancheck.ResourceActionCreate),
				}},
				Check: checkDeploymentAvailable(client, ns, "gone", 1),
			},
		},
	})
}

// An agent that runs elsewhere gets a Service, card and labels but no Deployment.
func TestAccAgentResource_Endpoint(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
resource "kagenti_agent" "remote" {
  name      = "remote"
  namespace = %q
  framework = "custom"
  endpoint  = "http://127.0.0.1:9101"
}
`, ns),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("kagenti_agent.remote", tfjsonpath.New("url"), knownvalue.StringExact("http://127.0.0.1:9101")),
				statecheck.ExpectKnownValue("kagenti_agent.remote", tfjsonpath.New("objects"), knownvalue.ListSizeExact(2)),
			},
			Check: resource.ComposeTestCheckFunc(
				checkExists(func(ctx context.Context) error {
					_, err := client.AppsV1().Deployments(ns).Get(ctx, "remote", metav1.GetOptions{})
					return err
				}, "Deployment", false),
				func(*terraformState) error {
					svc, err := client.CoreV1().Services(ns).Get(context.Background(), "remote", metav1.GetOptions{})
					if err != nil {
						return err
					}
					if svc.Annotations["kagenti.io/endpoint"] != "http://127.0.0.1:9101" || svc.Spec.Selector != nil {
						return fmt.Errorf("endpoint Service: annotations %v selector %v", svc.Annotations, svc.Spec.Selector)
					}
					return nil
				},
			),
		}},
	})
}

// Bad input fails at plan time, on the attribute, with what is allowed. No backend is needed
// (unit test under the Terraform CLI), but for the unknown tool, which is looked up.
func TestAgentResource_PlanTimeValidation(t *testing.T) {
	base := `
resource "kagenti_agent" "bad" {
  name      = %q
  namespace = "team1"
  framework = %q
  image     = %q
%s
}
`
	cases := map[string]struct {
		name, framework, image, extra string
		want                          string
	}{
		"name is not a DNS label":    {"Weather_Agent", "langgraph", "ghcr.io/x/y:1", "", `must be a DNS-1035 label`},
		"unknown framework":          {"a", "autogen", "ghcr.io/x/y:1", "", `value must be one of:`},
		"bad image reference":        {"a", "langgraph", "GHCR.io/X:latest", "", `must be an image reference`},
		"replicas with autoscaling":  {"a", "langgraph", "ghcr.io/x/y:1", `  replicas = 2` + "\n" + `  autoscaling = { min_replicas = 1, max_replicas = 2, target_cpu_utilization = 50 }`, `cannot be specified when`},
		"min above max":              {"a", "langgraph", "ghcr.io/x/y:1", `  autoscaling = { min_replicas = 5, max_replicas = 2, target_cpu_utilization = 50 }`, `max_replicas`},
		"bad env name":               {"a", "langgraph", "ghcr.io/x/y:1", `  env = { "1X" = "y" }`, `environment variable names`},
		"bad quantity":               {"a", "langgraph", "ghcr.io/x/y:1", `  persistence = { size = "lots" }`, `must be a positive quantity`},
		"unknown patch target":       {"a", "langgraph", "ghcr.io/x/y:1", `  composition = { patches = [{ target = "hpa", type = "merge", patch = "{}" }] }`, `composition.patches\[0\].target`},
		"image and endpoint":         {"a", "langgraph", "ghcr.io/x/y:1", `  endpoint = "http://127.0.0.1:1"`, `one \(and only one\) of \[image,endpoint\]`},
		"port out of range":          {"a", "langgraph", "ghcr.io/x/y:1", `  port = 70000`, `between 1 and 65535`},
		"unknown resource":           {"a", "langgraph", "ghcr.io/x/y:1", `  resources = { requests = { gpu = "1" } }`, `resources.requests`},
		"request over limit":         {"a", "langgraph", "ghcr.io/x/y:1", `  resources = { requests = { memory = "1Gi" }, limits = { memory = "512Mi" } }`, `resources.requests\[memory\]:\s+Invalid\s+value:\s+"1Gi":\s+must\s+not\s+exceed\s+the\s+limit`},
		"custom template wrong kind": {"a", "langgraph", "ghcr.io/x/y:1", `  composition = { templates = { service = "apiVersion: v1\nkind: Secret\nmetadata: {name: x}" } }`, `renders a /v1,\s+Kind=Secret`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			unitTest(t, resource.TestCase{
				Steps: []resource.TestStep{{
					Config:      fmt.Sprintf(base, tc.name, tc.framework, tc.image, tc.extra),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(tc.want),
				}},
			})
		})
	}
}

// A tool id that names no kagenti_tool fails at plan time (the only check that reads the cluster).
func TestAccAgentResource_PlanTimeUnknownTool(t *testing.T) {
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{
			Config: "resource \"kagenti_agent\" \"bad\" {\n  name = \"a\"\n  namespace = \"team1\"\n  framework = \"langgraph\"\n" +
				"  image = \"ghcr.io/x/y:1\"\n  tools = [\"team1/no-such-tool\"]\n}\n",
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`No kagenti_tool "team1/no-such-tool" exists`),
		}},
	})
}

// An agent with an identity block: its service account gets a SPIRE entry and a Keycloak client
// named by its SPIFFE ID, the Deployment gets the env to use them, an out-of-band deletion of the
// client is repaired, and destroy removes all of it.
func TestAccAgentResource_Identity(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	ns := testAccNamespace(t, client)
	spiffeID := fmt.Sprintf("spiffe://%s/ns/%s/sa/secure-agent", testAccSandbox.Spire.TrustDomain, ns)
	config := fmt.Sprintf(`
resource "kagenti_agent" "test" {
  name      = "secure-agent"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/secure-agent:1.0.0"
  identity = {
    jwt_svid_ttl    = "2m"
    keycloak_client = { token_exchange = true }
  }
}
`, ns)
	ctx := context.Background()
	testAccRun(t, resource.TestCase{
		CheckDestroy: func(s *terraformState) error {
			if entries, err := env.spire.FindEntries(ctx, spiffeID); err != nil || len(entries) > 0 {
				return fmt.Errorf("SPIRE entries left: %v %v", entries, err)
			}
			if _, err := env.keycloak.FindClient(ctx, spiffeID); err == nil {
				return fmt.Errorf("Keycloak client %s left after destroy", spiffeID)
			}
			return checkNoLabelledObjects(client, ns)(s)
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("spiffe_id"), knownvalue.StringExact(spiffeID)),
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("client_id"), knownvalue.StringExact(spiffeID)),
					// serviceaccount, card, networkpolicy, deployment, service, spire-entry, keycloak-client
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("objects"), knownvalue.ListSizeExact(7)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkContainerEnv(client, ns, "secure-agent", "SPIFFE_ID", spiffeID),
					checkContainerEnv(client, ns, "secure-agent", "TOKEN_URL", env.issuer()+"/protocol/openid-connect/token"),
					func(*terraformState) error {
						entries, err := env.spire.FindEntries(ctx, spiffeID)
						if err != nil || len(entries) != 1 || entries[0].JWTSVIDTTL != 2*time.Minute {
							return fmt.Errorf("SPIRE entries of %s: %+v %v", spiffeID, entries, err)
						}
						// The workload can log in with its JWT-SVID: no secret exists.
						_, err = env.clientToken(ctx, spiffeID)
						return err
					},
				),
			},
			{
				PreConfig: func() {
					uuid, err := env.keycloak.FindClient(ctx, spiffeID)
					if err != nil {
						t.Fatal(err)
					}
					if err := env.keycloak.DeleteClient(ctx, uuid); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kagenti_agent.test", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraformState) error {
					_, err := env.clientToken(ctx, spiffeID)
					return err
				},
			},
			{Config: config, PlanOnly: true},
		},
	})
}

// A plan of an unchanged configuration is not taken for granted: when the provider's settings
// move the identity (here the trust domain, with ClusterSPIFFEIDs, where no server pins it) the
// plan shows it.
func TestAccAgentResource_UnchangedConfigProviderMoved(t *testing.T) {
	client := testAccKube(t)
	if !testAccSandbox.Spire.ControllerManager {
		t.Fatal("the sandbox runs no SPIRE Controller Manager")
	}
	testAccSpireMode(t, testenv.SpireKubernetes)
	ns := testAccNamespace(t, client)
	trustDomain := os.Getenv("KAGENTI_SPIRE_TRUST_DOMAIN")
	config := fmt.Sprintf(`
resource "kagenti_agent" "test" {
  name      = "moved"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/moved:1.0.0"
  identity  = {}
}
`, ns)
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			// Each CLI's run starts from the sandbox's trust domain, even after the other's failed.
			{PreConfig: func() { t.Setenv("KAGENTI_SPIRE_TRUST_DOMAIN", trustDomain) }, Config: config},
			{Config: config, PlanOnly: true},
			{
				PreConfig:          func() { t.Setenv("KAGENTI_SPIRE_TRUST_DOMAIN", "moved.example.org") },
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				PreConfig: func() { t.Setenv("KAGENTI_SPIRE_TRUST_DOMAIN", trustDomain) },
				Config:    config,
				PlanOnly:  true,
			},
			{Config: config, PlanOnly: true},
		},
	})
}

// privateInput is private state holding raw as the applied input.
type privateInput []byte

func (p privateInput) GetKey(context.Context, string) ([]byte, diag.Diagnostics) { return p, nil }

// TestCompositeResource_ReadStoredSpecErrors: a stored spec that cannot be read, or a Service that
// is not the imported kind's, each get their own diagnostic, not "Kubernetes API Unreachable".
func TestCompositeResource_ReadStoredSpecErrors(t *testing.T) {
	svc := func(labels, annotations map[string]any) map[string]any {
		return map[string]any{"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": "weather", "namespace": "team1", "labels": labels, "annotations": annotations}}
	}
	const path = "/api/v1/namespaces/team1/services/weather"
	cases := map[string]struct {
		reason  string
		private []byte
		service map[string]any
		want    string // summary
		detail  string
	}{
		"private state is not an input": {
			reason: "state written by something else; the fix is a fresh import", private: []byte("{not json"),
			want: "Stored Spec Unreadable", detail: "terraform state rm",
		},
		"import of another kind's Service": {
			reason:  "a tool imported as an agent",
			service: svc(map[string]any{"kagenti.io/type": "tool"}, nil),
			want:    "Service Is Not A Kagenti Agent", detail: `import it as kagenti_tool`,
		},
		"import of a Service that is not ours": {
			reason:  "no type label: Kagenti did not create it",
			service: svc(nil, nil),
			want:    "Service Is Not A Kagenti Agent", detail: "Kagenti did not create it",
		},
		"import without the spec annotation": {
			reason:  "the annotation import reads was removed",
			service: svc(map[string]any{"kagenti.io/type": "agent"}, nil),
			want:    "Stored Spec Unreadable", detail: "annotation kagenti.io/spec of Service team1/weather",
		},
		"import with a spec that is not JSON": {
			reason:  "the annotation was edited by hand",
			service: svc(map[string]any{"kagenti.io/type": "agent"}, map[string]any{"kagenti.io/spec": "{oops"}),
			want:    "Stored Spec Unreadable", detail: "annotation kagenti.io/spec of Service team1/weather",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objects := map[string]map[string]any{}
			if tc.service != nil {
				objects[path] = tc.service
			}
			_, data := newFakeKube(t, objects)
			e := &compositeEngine{data: data, kind: composition.KindAgent}
			m := &agentResourceModel{}
			m.Name, m.Namespace = fwtypes.StringValue("weather"), fwtypes.StringValue("team1")
			resp := &fwresource.ReadResponse{}
			e.read(context.Background(), m, privateInput(tc.private), resp)
			if len(resp.Diagnostics) != 1 {
				t.Fatalf("%s: diagnostics %v, want one", tc.reason, resp.Diagnostics)
			}
			d := resp.Diagnostics[0]
			if diff := cmp.Diff(tc.want, d.Summary()); diff != "" {
				t.Errorf("%s: summary (-want +got):\n%s", tc.reason, diff)
			}
			if !strings.Contains(d.Detail(), tc.detail) {
				t.Errorf("%s: detail %q, want it to contain %q", tc.reason, d.Detail(), tc.detail)
			}
		})
	}
}

// identity.card_signer: refused at plan, on the attribute, where pods get no Workload API; with
// it, `card_signer = {}` plans the provider's own router image, applies a second container and
// the Service port the router fetches the signed card from, plans nothing more, and goes
// cleanly when removed.
func TestAccAgentResource_CardSigner(t *testing.T) {
	client := testAccKube(t)
	newIdentityTestEnv(t)
	ns := testAccNamespace(t, client)
	agent := func(signer string) string {
		return fmt.Sprintf(`
resource "kagenti_agent" "test" {
  name             = "writer"
  namespace        = %q
  framework        = "crewai"
  image            = "ghcr.io/example/writer:0.9.1"
  wait_for_rollout = false
  identity = {
    keycloak_client = {}
    %s
  }
}
`, ns, signer)
	}
	const image = "ghcr.io/kagenti/kagenti-router:dev"
	const csiEnv = "KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER"
	signerParts := func(want bool) resource.TestCheckFunc {
		return func(*terraformState) error {
			ctx := context.Background()
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "writer", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var names []string
			for _, c := range d.Spec.Template.Spec.Containers {
				names = append(names, c.Name)
				if c.Name == "card-signer" && (c.Image != image || len(c.Args) == 0 || c.Args[0] != "card-signer") {
					return fmt.Errorf("card-signer container: image %s args %v", c.Image, c.Args)
				}
			}
			svc, err := client.CoreV1().Services(ns).Get(ctx, "writer", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var ports []string
			for _, p := range svc.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
			}
			wantNames, wantPorts := []string{"agent"}, []string{"http:8000"}
			if want {
				wantNames, wantPorts = append(wantNames, "card-signer"), append(wantPorts, "kagenti-card:8099")
			}
			if !slices.Equal(names, wantNames) || !slices.Equal(ports, wantPorts) {
				return fmt.Errorf("containers %v, Service ports %v; want %v, %v", names, ports, wantNames, wantPorts)
			}
			return nil
		}
	}
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				PreConfig:   func() { t.Setenv(csiEnv, "") }, // each CLI's run starts without it
				Config:      agent("card_signer = {}"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`identity\.card_signer: Forbidden: the card signer signs with the pod's\s+X509-SVID from the SPIRE Workload API`),
			},
			{
				PreConfig: func() { t.Setenv(csiEnv, "csi.spiffe.io") },
				Config:    agent("card_signer = {}"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("identity").AtMapKey("card_signer").AtMapKey("image"), knownvalue.StringExact(image)),
				},
				Check: signerParts(true),
			},
			{Config: agent("card_signer = {}"), PlanOnly: true},
			// Import reads card_signer (and its image) back from the cluster.
			{
				ResourceName:      "kagenti_agent.test",
				ImportState:       true,
				ImportStateId:     ns + "/writer",
				ImportStateVerify: true,
				// Not part of the spec on the cluster: a setting of the apply, and a count.
				ImportStateVerifyIgnore: []string{"timeouts", "wait_for_rollout", "ready_replicas"},
			},
			// An image known only at apply stays unknown in the plan (the provider does not
			// put its default in place of a configured value), and is the one applied.
			{
				Config: agent(`card_signer = { image = terraform_data.signer_image.output }`) + `
resource "terraform_data" "signer_image" {
  input = "ghcr.io/kagenti/kagenti-router:mirror"
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("identity").AtMapKey("card_signer").AtMapKey("image"),
						knownvalue.StringExact("ghcr.io/kagenti/kagenti-router:mirror")),
				},
			},
			{
				Config: agent(""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("identity").AtMapKey("card_signer"), knownvalue.Null()),
				},
				Check: signerParts(false),
			},
			{Config: agent(""), PlanOnly: true},
		},
	})
}
