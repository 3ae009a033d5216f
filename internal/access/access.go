// Package access derives who may call whom from the settings that configure Keycloak and the
// router: one edge per caller and callee, in words a reviewer reads in a plan. It knows nothing
// of Terraform, Kubernetes or Keycloak; the provider feeds it each workload's settings and puts
// the edges in the plan.
package access

import (
	"slices"
	"strings"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Edge is one permission: Caller may call Callee, How.
type Edge struct {
	Caller, Callee, How string
}

// String is the edge as one plan line, e.g.
// "research/planner → research/web-search (MCP via router, token exchange)".
func (e Edge) String() string { return e.Caller + " → " + e.Callee + " (" + e.How + ")" }

// Callee is what the graph needs of an agent, a tool or an identity as the one called.
type Callee struct {
	Namespace, Name string
	// Routed says the router serves it (agents and tools); an identity alone is not routed.
	Routed bool
	// Protocol is a2a, acp or mcp; ExposeAsTool adds MCP to an A2A agent.
	Protocol     string
	ExposeAsTool bool
	// Client says it has a Keycloak client: tokens sent to it are addressed to it, and only
	// AllowedCallers may obtain them. Without one the router passes calls on without the
	// caller's token, from any authenticated caller.
	Client         bool
	AllowedCallers []string
}

// AnyCaller is the caller of an edge open to every authenticated caller.
const AnyCaller = "any authenticated caller"

// Name is how a client id reads in an edge: a workload SPIFFE ID
// (spiffe://<trust domain>/ns/<namespace>/sa/<name>) as <namespace>/<name>, anything else as it
// is.
func Name(clientID string) string {
	if ns, sa, ok := workload(clientID); ok {
		return ns + "/" + sa
	}
	return clientID
}

// workload splits a workload SPIFFE ID into its namespace and service account.
func workload(clientID string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(clientID, "spiffe://")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

// IsRouter says whether a client id is a router's: the service account routerName in any
// namespace (the platform's namespace is not known to an agent's plan).
func IsRouter(clientID, routerName string) bool {
	_, sa, ok := workload(clientID)
	return ok && sa == routerName
}

// Callers lists the edges into c, sorted, one per caller. A caller reaches a routed callee
// through the router when the router may exchange tokens for it (the router's client is among
// the allowed callers); otherwise the caller exchanges its token for the callee itself.
func Callers(c Callee, routerName string) []Edge {
	callee := c.Namespace + "/" + c.Name
	via := map[string]string{"a2a": "A2A", "acp": "ACP", "mcp": "MCP"}[c.Protocol]
	if c.ExposeAsTool {
		via += " and MCP"
	}
	if !c.Client {
		if !c.Routed {
			return nil
		}
		return []Edge{{AnyCaller, callee, via + " via router, caller's token not passed on"}}
	}
	routerAllowed := c.Routed && slices.ContainsFunc(c.AllowedCallers, func(id string) bool { return IsRouter(id, routerName) })
	var edges []Edge
	for _, id := range c.AllowedCallers {
		if IsRouter(id, routerName) {
			continue
		}
		how := "token exchange by the caller"
		if routerAllowed {
			how = via + " via router, token exchange"
		}
		edges = append(edges, Edge{Name(id), callee, how})
	}
	slices.SortFunc(edges, func(a, b Edge) int { return strings.Compare(a.String(), b.String()) })
	return edges
}

// Lines are edges as plan lines.
func Lines(edges []Edge) []string {
	out := make([]string, len(edges))
	for i, e := range edges {
		out[i] = e.String()
	}
	return out
}

// Refusal says why a caller (its client id; empty when it has no identity) using a routed
// callee with policy p through the router would be refused, or "" when it would not. routerName
// names the router's service account.
func Refusal(p contract.Policy, callerID, routerName string) string {
	if p.Audience == "" {
		return "" // no client: the router passes any authenticated call on, without the token
	}
	if len(p.AllowedCallers) == 0 {
		return "its allowed_callers are empty, so Keycloak lets nobody, the router included, obtain a token for it"
	}
	if !slices.ContainsFunc(p.AllowedCallers, func(id string) bool { return IsRouter(id, routerName) }) {
		return "its allowed_callers do not include the router's client id (kagenti_platform's router_client_id), so the router cannot exchange the caller's token for it"
	}
	if callerID == "" {
		return "it allows only listed callers, and the caller has no identity (add an identity with a keycloak_client)"
	}
	if !slices.Contains(p.AllowedCallers, callerID) {
		return "its allowed_callers do not include " + callerID
	}
	return ""
}
