package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

func testAccToolConfig(namespace, transport string, replicas int, extra ...string) string {
	return fmt.Sprintf(`
resource "kagenti_tool" "test" {
  name      = "search"
  namespace = %q
  image     = "ghcr.io/example/search:1.0.0"
  transport = %q
  replicas  = %d
  env       = { UNITS = "metric" }
  %s
}
`, namespace, transport, replicas, strings.Join(extra, "\n"))
}

// A tool: create → Available with its MCP URL; import; switching transport changes the URL and
// the wiring env; scaling adds a PodDisruptionBudget; destroy leaves nothing.
func TestAccToolResource_Lifecycle(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	tool := "kagenti_tool.test"
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config: testAccToolConfig(ns, "streamable-http", 1),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(tool, tfjsonpath.New("url"), knownvalue.StringExact(fmt.Sprintf("http://search.%s.svc.cluster.local:8000/mcp", ns))),
					statecheck.ExpectKnownValue(tool, tfjsonpath.New("ready_replicas"), knownvalue.Int64Exact(1)),
					// serviceaccount, networkpolicy, deployment, service: no card for tools
					statecheck.ExpectKnownValue(tool, tfjsonpath.New("objects"), knownvalue.ListSizeExact(4)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkDeploymentAvailable(client, ns, "search", 1),
					checkContainerEnv(client, ns, "search", "MCP_TRANSPORT", "streamable-http"),
					checkContainerEnv(client, ns, "search", "UNITS", "metric"),
				),
			},
			{
				ResourceName:            tool,
				ImportState:             true,
				ImportStateId:           ns + "/search",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				Config: testAccToolConfig(ns, "sse", 2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(tool, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(tool, tfjsonpath.New("url"), knownvalue.StringExact(fmt.Sprintf("http://search.%s.svc.cluster.local:8000/sse", ns))),
				}},
				Check: resource.ComposeTestCheckFunc(
					checkDeploymentAvailable(client, ns, "search", 2),
					checkContainerEnv(client, ns, "search", "MCP_TRANSPORT", "sse"),
					checkExists(func(ctx context.Context) error {
						_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "search", metav1.GetOptions{})
						return err
					}, "PodDisruptionBudget", true),
				),
			},
			{
				// A declared destination is one more egress rule of the NetworkPolicy.
				Config: testAccToolConfig(ns, "sse", 2, `network_policy = { egress = [{ cidr = "10.20.0.0/16", port = 5432 }] }`),
				Check: func(*terraformState) error {
					np, err := client.NetworkingV1().NetworkPolicies(ns).Get(context.Background(), "search", metav1.GetOptions{})
					if err != nil {
						return err
					}
					for _, rule := range np.Spec.Egress {
						if len(rule.To) == 1 && rule.To[0].IPBlock != nil && rule.To[0].IPBlock.CIDR == "10.20.0.0/16" &&
							len(rule.Ports) == 1 && rule.Ports[0].Port.IntValue() == 5432 {
							return nil
						}
					}
					return fmt.Errorf("no egress rule to 10.20.0.0/16:5432 in %+v", np.Spec.Egress)
				},
			},
			{
				// The opt-out prunes the NetworkPolicy.
				Config: testAccToolConfig(ns, "sse", 2, `network_policy = { enabled = false }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(tool, tfjsonpath.New("objects"), knownvalue.ListSizeExact(4)), // serviceaccount, deployment, service, pdb
				},
				Check: checkExists(func(ctx context.Context) error {
					_, err := client.NetworkingV1().NetworkPolicies(ns).Get(ctx, "search", metav1.GetOptions{})
					return err
				}, "NetworkPolicy", false),
			},
			{
				ResourceName:            tool,
				ImportState:             true,
				ImportStateId:           ns + "/search",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				Config:      testAccToolConfig(ns, "sse", 2, `network_policy = { egress = [{ cidr = "10.20.0.0/33", port = 5432 }] }`),
				ExpectError: regexp.MustCompile(`network_policy\.egress\[0\]\.cidr[\s\S]*must\s+be\s+a\s+CIDR`),
			},
		},
	})
}

// TestCompositeResource_DeleteRemovesClientSecret: destroying a composite whose identity
// authenticates with a client secret deletes the <name>-keycloak Secret the provider stored it
// in (it carries no composite labels, so deleting the composed objects left it behind); other
// identities have no Secret to delete.
func TestCompositeResource_DeleteRemovesClientSecret(t *testing.T) {
	cases := map[string]struct {
		reason         string
		authentication string
		want           []string
	}{
		"client-secret": {"the Secret holds the client's credentials", "client-secret", []string{"/api/v1/namespaces/team1/secrets/search-keycloak"}},
		"federated-jwt": {"no Secret exists, none is deleted", "federated-jwt", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "search-keycloak", "namespace": "team1"}}
			kube, data := newFakeKube(t, map[string]map[string]any{"/api/v1/namespaces/team1/secrets/search-keycloak": secret})
			e := &compositeEngine{data: data, kind: composition.KindTool}
			client := types.ObjectValueMust(keycloakClientAttrTypes, map[string]attr.Value{
				"authentication": types.StringValue(tc.authentication), "token_exchange": types.BoolValue(false),
				"audiences": types.ListNull(types.StringType), "allowed_callers": types.ListNull(types.StringType),
			})
			m := &toolResourceModel{Transport: types.StringValue("streamable-http")}
			m.Name, m.Namespace, m.Image = types.StringValue("search"), types.StringValue("team1"), types.StringValue("ghcr.io/example/search:1.0.0")
			m.Identity = types.ObjectValueMust(compositeIdentityAttrTypes, map[string]attr.Value{
				"x509_svid_ttl": types.StringNull(), "jwt_svid_ttl": types.StringNull(), "keycloak_client": client,
			})
			var diags diag.Diagnostics
			e.deleteComposite(context.Background(), m, &diags)
			if diags.HasError() {
				t.Fatalf("%s: delete: %v", tc.reason, diags)
			}
			if diff := cmp.Diff(tc.want, kube.deleted); diff != "" {
				t.Errorf("%s: deleted (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}
