package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// expectAccessChange is a plan check on the access graph: the access lines of every resource
// in the plan, before and after, must differ by exactly added and removed; access must be
// known at plan in every resource but those listed in unknown.
type expectAccessChange struct{ added, removed, unknown []string }

func (e expectAccessChange) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	var before, after, unknown []string
	for _, rc := range req.Plan.ResourceChanges {
		if !strings.HasPrefix(rc.Type, "kagenti_") || rc.Change == nil {
			continue
		}
		if u, ok := rc.Change.AfterUnknown.(map[string]any); ok && u["access"] == true {
			unknown = append(unknown, rc.Address)
		}
		before = append(before, accessLines(rc.Change.Before)...)
		after = append(after, accessLines(rc.Change.After)...)
	}
	if slices.Sort(unknown); !slices.Equal(unknown, e.unknown) {
		resp.Error = fmt.Errorf("access unknown at plan in %q, want %q", unknown, e.unknown)
		return
	}
	added, removed := minus(after, before), minus(before, after)
	slices.Sort(added)
	slices.Sort(removed)
	want := func(l []string) []string { l = slices.Clone(l); slices.Sort(l); return l }
	if !slices.Equal(added, want(e.added)) || !slices.Equal(removed, want(e.removed)) {
		resp.Error = fmt.Errorf("access lines added %q, removed %q;\nwant added %q, removed %q", added, removed, want(e.added), want(e.removed))
	}
}

func accessLines(v any) []string {
	obj, _ := v.(map[string]any)
	list, _ := obj["access"].([]any)
	var out []string
	for _, l := range list {
		out = append(out, fmt.Sprint(l))
	}
	return out
}

// TestAccAccess_PlanShowsEdges: the access graph is in the plan, known before apply, and a
// change of permissions changes exactly its edge lines: creating the environment adds them all,
// adding a caller adds one, removing a tool removes the tool's, renaming an agent replaces the
// lines that name it. An agent using a tool that this same plan makes refuse it fails at plan.
func TestAccAccess_PlanShowsEdges(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	ns := testAccNamespace(t, client)
	type settings struct {
		planner      string // the planner agent's name
		writerAllows string // extra caller of the writer
		tool         bool   // the web-search tool exists and the planner uses it
		toolCallers  string // the tool's allowed callers
	}
	config := func(e settings) string {
		tool, tools := "", ""
		if e.tool {
			tools = "tools = [kagenti_tool.web_search.id]"
			tool = fmt.Sprintf(`
resource "kagenti_tool" "web_search" {
  name      = "web-search"
  namespace = %[1]q
  image     = "ghcr.io/example/web-search:1.0.0"
  identity  = { keycloak_client = { allowed_callers = [%[2]s] } }
}
`, ns, e.toolCallers)
		}
		return fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %[1]q
  create_namespace = false
  agent_namespaces = [%[1]q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  token_exchange   = true
}

resource "kagenti_identity" "ui" {
  namespace       = %[1]q
  service_account = "ui"
  keycloak_client = {}
}
%[4]s
resource "kagenti_agent" "planner" {
  name      = %[2]q
  namespace = %[1]q
  framework = "langgraph"
  image     = "ghcr.io/example/planner:1.0.0"
  %[5]s
  identity = {
    keycloak_client = {
      token_exchange  = true
      audiences       = [kagenti_platform.main.router_client_id]
      allowed_callers = [kagenti_identity.ui.keycloak_client_id, kagenti_platform.main.router_client_id]
    }
  }
}

resource "kagenti_agent" "writer" {
  name      = "writer"
  namespace = %[1]q
  framework = "crewai"
  image     = "ghcr.io/example/writer:1.0.0"
  identity = {
    keycloak_client = {
      allowed_callers = [kagenti_agent.planner.client_id, kagenti_platform.main.router_client_id%[3]s]
    }
  }
}
`, ns, e.planner, e.writerAllows, tool, tools)
	}
	edge := func(caller, callee, how string) string {
		return fmt.Sprintf("%s/%s → %s/%s (%s)", ns, caller, ns, callee, how)
	}
	a2a, mcp := "A2A via router, token exchange", "MCP via router, token exchange"
	// The tool names the planner by its SPIFFE ID: a reference would be a cycle (the planner
	// references the tool's id).
	td := testAccSandbox.Spire.TrustDomain
	plannerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/planner", td, ns)
	plannerAndRouter := fmt.Sprintf("%q, kagenti_platform.main.router_client_id", plannerID)
	base := settings{planner: "planner", tool: true, toolCallers: plannerAndRouter}
	withUI := base
	withUI.writerAllows = ", kagenti_identity.ui.keycloak_client_id"
	toolRefuses := withUI
	toolRefuses.toolCallers = "kagenti_platform.main.router_client_id"
	noTool := withUI
	noTool.tool = false
	renamed := noTool
	renamed.planner = "lead"
	plan := func(added, removed []string) resource.ConfigPlanChecks {
		return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectAccessChange{added: added, removed: removed}}}
	}
	graph := []string{edge("ui", "planner", a2a), edge("planner", "writer", a2a), edge("planner", "web-search", mcp)}
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				// The first plan holds the graph but for the planner's edge from the ui, whose
				// client id is known once it exists (the ui's identity allows nobody).
				Config: config(base),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectAccessChange{
					added: graph[1:], unknown: []string{"kagenti_agent.planner"},
				}}},
				ConfigStateChecks: []statecheck.StateCheck{expectAccessGraph(graph)},
				// The tool, applied before the planner existed, deferred the planner's grant;
				// the planner's client claimed it when created.
				Check: func(*terraformState) error {
					ok, err := env.keycloak.HasAudience(context.Background(), plannerID, fmt.Sprintf("spiffe://%s/ns/%s/sa/web-search", td, ns))
					if err != nil || !ok {
						return fmt.Errorf("the planner may not obtain tokens for the tool (%v): the deferred grant was not claimed", err)
					}
					return nil
				},
			},
			{Config: config(withUI), ConfigPlanChecks: plan([]string{edge("ui", "writer", a2a)}, nil)},
			{
				// The cluster still lets the planner call the tool; this plan would not, and
				// fails before anything is applied.
				Config:      config(toolRefuses),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Tool Refuses This Agent[\s\S]*do\s+not\s+include[\s\S]*/sa/planner`),
			},
			{Config: config(noTool), ConfigPlanChecks: plan(nil, []string{edge("planner", "web-search", mcp)})},
			{
				Config: config(renamed),
				ConfigPlanChecks: plan(
					[]string{edge("ui", "lead", a2a), edge("lead", "writer", a2a)},
					[]string{edge("ui", "planner", a2a), edge("planner", "writer", a2a)}),
			},
		},
	})
}

// expectAccessGraph is a state check: the access lines of every resource in the state are
// exactly lines.
type expectAccessGraph []string

func (lines expectAccessGraph) CheckState(_ context.Context, req statecheck.CheckStateRequest, resp *statecheck.CheckStateResponse) {
	var got []string
	if req.State != nil && req.State.Values != nil && req.State.Values.RootModule != nil {
		for _, r := range req.State.Values.RootModule.Resources {
			got = append(got, accessLines(r.AttributeValues)...)
		}
	}
	want := slices.Clone(lines)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		resp.Error = fmt.Errorf("access graph in state %q, want %q", got, want)
	}
}
