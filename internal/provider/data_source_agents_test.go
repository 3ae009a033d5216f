package provider

import (
	"fmt"
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
