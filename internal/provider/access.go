package provider

import (
	"context"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/access"
	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// accessAttribute is the read-only list of edges into a workload, which a plan shows line by
// line when a permission changes.
func accessAttribute(noun string) rschema.ListAttribute {
	return rschema.ListAttribute{
		MarkdownDescription: "Who may call this " + noun + ", one edge per caller, `caller → callee (how)`, e.g. " +
			"`research/planner → research/web-search (MCP via router, token exchange)`, derived from " +
			"`identity.keycloak_client.allowed_callers` (callers are named `<namespace>/<service account>`) and the router's place " +
			"in them. A change of permissions shows in the plan as these lines added or removed. Without a Keycloak client, a routed " +
			"workload is open to `any authenticated caller` and the caller's token is not passed on.",
		Computed:    true,
		ElementType: types.StringType,
	}
}

// accessValue is the access attribute of a callee.
func accessValue(c access.Callee) types.List {
	lines := access.Lines(access.Callers(c, composition.RouterName))
	elems := make([]attr.Value, len(lines))
	for i, l := range lines {
		elems[i] = types.StringValue(l)
	}
	return types.ListValueMust(types.StringType, elems)
}

// plannedPolicies are the access policies of the tools planned so far by this provider process.
// Terraform plans a tool before an agent that references its id, so an agent's plan checks
// its tools against what the same plan will make of them, not what the cluster has now.
type plannedPolicies struct {
	mu sync.Mutex
	m  map[string]contract.Policy
}

func (p *plannedPolicies) record(id string, policy contract.Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]contract.Policy{}
	}
	p.m[id] = policy
}

func (p *plannedPolicies) lookup(id string) (contract.Policy, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	policy, ok := p.m[id]
	return policy, ok
}

// policyOf is the policy the router enforces for a composite (the Service's policy annotation).
func policyOf(in composition.Input) contract.Policy {
	if id := in.Identity; id != nil && id.Client != nil {
		return contract.Policy{Audience: id.SPIFFEID, AllowedCallers: id.Client.AllowedCallers}
	}
	return contract.Policy{}
}

// callersKnown says whether the allowed callers of a composite's identity are all known.
func callersKnown(ctx context.Context, identity types.Object) bool {
	if identity.IsNull() || identity.IsUnknown() {
		return !identity.IsUnknown()
	}
	kc, ok := identity.Attributes()["keycloak_client"].(types.Object)
	if !ok || kc.IsNull() {
		return true
	}
	if kc.IsUnknown() {
		return false
	}
	callers, ok := kc.Attributes()["allowed_callers"].(types.List)
	return ok && fullyKnown(ctx, callers)
}
