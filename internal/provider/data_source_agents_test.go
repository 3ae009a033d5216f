package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// Agents and tools made in one configuration are found by another, with filters.
func TestAccDiscoveryDataSources(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	made := fmt.Sprintf(`
resource "kagenti_tool" "search" {
  name      = "search"
  namespace = %[1]q
  image     = "ghcr.io/example/search:1.0.0"
  transport = "sse"
}

resource "kagenti_agent" "weather" {
  name        = "weather"
  namespace   = %[1]q
  framework   = "langgraph"
  image       = "ghcr.io/example/weather:1.0.0"
  description = "Weather answers"
  skills      = [{ id = "forecast", name = "Forecast", tags = ["weather"] }]
}

resource "kagenti_agent" "summarizer" {
  name      = "summarizer"
  namespace = %[1]q
  framework = "beeai"
  protocol  = "acp"
  image     = "ghcr.io/example/summarizer:1.0.0"
}
`, ns)
	found := fmt.Sprintf(`
data "kagenti_agents" "all" { namespace = %[1]q }
data "kagenti_agents" "weather" {
  namespace = %[1]q
  skill_tag = "weather"
}
data "kagenti_agents" "acp" {
  namespace = %[1]q
  protocol  = "acp"
}
data "kagenti_tools" "sse" {
  namespace = %[1]q
  transport = "sse"
}
`, ns)
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{Config: made},
			{
				Config: made + found,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.kagenti_agents.all", tfjsonpath.New("items"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue("data.kagenti_agents.weather", tfjsonpath.New("items"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("data.kagenti_agents.weather", tfjsonpath.New("items").AtSliceIndex(0).AtMapKey("id"), knownvalue.StringExact(ns+"/weather")),
					statecheck.ExpectKnownValue("data.kagenti_agents.weather", tfjsonpath.New("items").AtSliceIndex(0).AtMapKey("description"), knownvalue.StringExact("Weather answers")),
					statecheck.ExpectKnownValue("data.kagenti_agents.acp", tfjsonpath.New("items").AtSliceIndex(0).AtMapKey("name"), knownvalue.StringExact("summarizer")),
					statecheck.ExpectKnownValue("data.kagenti_agents.acp", tfjsonpath.New("items"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("data.kagenti_tools.sse", tfjsonpath.New("items").AtSliceIndex(0).AtMapKey("url"),
						knownvalue.StringExact(fmt.Sprintf("http://search.%s.svc.cluster.local:8000/sse", ns))),
				},
			},
		},
	})
}

// TestDiscoveryDataSources_Filters: each data source takes the filters of what it lists, with the
// values those carry: tools speak mcp (the protocol filter accepted only a2a/acp before, so it
// matched no tool), and neither documents the other's filters. A filter that passes validation
// reaches the cluster, here an unreachable one.
func TestDiscoveryDataSources_Filters(t *testing.T) {
	provider := "provider \"kagenti\" {\n  kubernetes {\n    host     = \"https://127.0.0.1:1\"\n    insecure = true\n  }\n}\n"
	cases := map[string]struct {
		reason string
		config string
		want   string
	}{
		"tools by protocol mcp":  {"every tool speaks mcp", `data "kagenti_tools" "x" { protocol = "mcp" }`, `Kubernetes API Unreachable`},
		"tools by protocol a2a":  {"no tool speaks a2a", `data "kagenti_tools" "x" { protocol = "a2a" }`, `value must be one of: \["mcp"\]`},
		"tools by transport":     {"tools carry their transport", `data "kagenti_tools" "x" { transport = "sse" }`, `Kubernetes API Unreachable`},
		"tools by framework":     {"tools have no framework", `data "kagenti_tools" "x" { framework = "langgraph" }`, `An argument named "framework" is not expected here`},
		"tools by skill tag":     {"tools publish no skills", `data "kagenti_tools" "x" { skill_tag = "weather" }`, `An argument named "skill_tag" is not expected here`},
		"agents by protocol":     {"agents speak a2a or acp", `data "kagenti_agents" "x" { protocol = "acp" }`, `Kubernetes API Unreachable`},
		"agents by protocol mcp": {"no agent speaks mcp", `data "kagenti_agents" "x" { protocol = "mcp" }`, `value must be one of: \["a2a" "acp"\]`},
		"agents by transport":    {"agents have no MCP transport", `data "kagenti_agents" "x" { transport = "sse" }`, `An argument named "transport" is not expected here`},
		"agents by skill tag":    {"agents publish skills", `data "kagenti_agents" "x" { skill_tag = "weather" }`, `Kubernetes API Unreachable`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
				Config:      provider + tc.config,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`)),
			}}})
		})
	}
}
