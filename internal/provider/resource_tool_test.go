package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testAccToolConfig(namespace, transport string, replicas int) string {
	return fmt.Sprintf(`
resource "kagenti_tool" "test" {
  name      = "search"
  namespace = %q
  image     = "ghcr.io/example/search:1.0.0"
  transport = %q
  replicas  = %d
  env       = { UNITS = "metric" }
}
`, namespace, transport, replicas)
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
					// serviceaccount, deployment, service: no card for tools
					statecheck.ExpectKnownValue(tool, tfjsonpath.New("objects"), knownvalue.ListSizeExact(3)),
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
		},
	})
}
