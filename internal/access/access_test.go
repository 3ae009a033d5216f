package access

import (
	"slices"
	"testing"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

const (
	router  = "spiffe://example.org/ns/kagenti-system/sa/kagenti-router"
	planner = "spiffe://example.org/ns/research/sa/planner"
	ui      = "spiffe://example.org/ns/web/sa/ui"
)

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		planner:                              "research/planner",
		"spiffe://example.org/ns/a/sa/b/c":   "spiffe://example.org/ns/a/sa/b/c",
		"spiffe://example.org/kagenti/agent": "spiffe://example.org/kagenti/agent",
		"account-console":                    "account-console",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCallers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		callee Callee
		want   []string
	}{{
		name:   "through the router, sorted, the router itself not an edge",
		callee: Callee{Namespace: "research", Name: "web-search", Routed: true, Protocol: "mcp", Client: true, AllowedCallers: []string{ui, router, planner}},
		want: []string{
			"research/planner → research/web-search (MCP via router, token exchange)",
			"web/ui → research/web-search (MCP via router, token exchange)",
		},
	}, {
		name:   "an A2A agent offered as a tool",
		callee: Callee{Namespace: "research", Name: "writer", Routed: true, Protocol: "a2a", ExposeAsTool: true, Client: true, AllowedCallers: []string{router, planner}},
		want:   []string{"research/planner → research/writer (A2A and MCP via router, token exchange)"},
	}, {
		name:   "without the router the caller exchanges its token itself",
		callee: Callee{Namespace: "research", Name: "writer", Routed: true, Protocol: "acp", Client: true, AllowedCallers: []string{planner}},
		want:   []string{"research/planner → research/writer (token exchange by the caller)"},
	}, {
		name:   "an identity is never routed",
		callee: Callee{Namespace: "web", Name: "ui", Client: true, AllowedCallers: []string{router, planner}},
		want:   []string{"research/planner → web/ui (token exchange by the caller)"},
	}, {
		name:   "no client: any authenticated caller, through the router",
		callee: Callee{Namespace: "research", Name: "web-search", Routed: true, Protocol: "mcp"},
		want:   []string{"any authenticated caller → research/web-search (MCP via router, caller's token not passed on)"},
	}, {
		name:   "a client nobody may obtain tokens for",
		callee: Callee{Namespace: "research", Name: "web-search", Routed: true, Protocol: "mcp", Client: true},
		want:   []string{},
	}, {
		name:   "an identity without a client",
		callee: Callee{Namespace: "web", Name: "ui"},
		want:   []string{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lines(Callers(tc.callee, "kagenti-router")); !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	allows := func(ids ...string) contract.Policy {
		return contract.Policy{Audience: "spiffe://example.org/ns/research/sa/web-search", AllowedCallers: ids}
	}
	for _, tc := range []struct {
		name    string
		policy  contract.Policy
		caller  string
		refused bool
	}{
		{"allowed, router allowed", allows(router, planner), planner, false},
		{"no client: anyone authenticated", contract.Policy{}, "", false},
		{"not listed", allows(router, ui), planner, true},
		{"router not listed", allows(planner), planner, true},
		{"nobody listed", allows(), planner, true},
		{"caller without identity", allows(router, planner), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Refusal(tc.policy, tc.caller, "kagenti-router"); (got != "") != tc.refused {
				t.Errorf("Refusal = %q, want refused %v", got, tc.refused)
			}
		})
	}
}
