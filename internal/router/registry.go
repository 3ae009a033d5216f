// Package router is the Kagenti runtime router: it discovers agents and tools from the labels
// and ConfigMaps the provider writes (internal/contract), serves their A2A cards and ACP
// manifests, and proxies A2A and ACP traffic to them after validating the caller's token and
// exchanging it for one addressed to the callee. It knows nothing of Terraform.
package router

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Route is one discovered agent or tool.
type Route struct {
	Namespace string
	Name      string
	// Type is contract.TypeAgent or contract.TypeTool.
	Type      string
	Protocol  string
	Framework string
	// Upstream is where traffic goes: the endpoint annotation of an agent that runs elsewhere,
	// else the Service's cluster DNS name and port.
	Upstream *url.URL
	// Card is the A2A agent card or ACP manifest (raw JSON), as the composition rendered it.
	Card json.RawMessage
	// A2A is what the agent serves of A2A (versions and bindings), read from Card once.
	A2A    a2aServed
	Policy contract.Policy
	// ExposeAsTool offers an A2A agent as an MCP tool at /mcp/{namespace}.
	ExposeAsTool bool
	// CardPort is the Service port of the platform's card signer beside the agent
	// (contract.CardSignerPortName), where the router fetches the signed card it verifies;
	// 0 when the agent signs and serves its card itself.
	CardPort int32
	// Endpoints are the ready pod addresses ("ip:port") behind the Service, from its
	// EndpointSlices; the router balances over them and ejects failing ones. Empty: Upstream.
	Endpoints []string
}

// Key is "namespace/name".
func (r *Route) Key() string { return r.Namespace + "/" + r.Name }

// Registry holds the routes. Reads are lock-free against an immutable snapshot, so the data
// path never waits on discovery.
type Registry struct {
	mu        sync.Mutex // serialises writers
	services  map[string]*serviceInfo
	cards     map[string]json.RawMessage
	served    map[string]a2aServed
	endpoints map[string][]string
	snapshot  atomic.Pointer[map[string]*Route]
}

// serviceInfo is what a Service contributes to a route.
type serviceInfo struct {
	route Route
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{services: map[string]*serviceInfo{}, cards: map[string]json.RawMessage{}, served: map[string]a2aServed{}, endpoints: map[string][]string{}}
	empty := map[string]*Route{}
	r.snapshot.Store(&empty)
	return r
}

// Lookup returns the route of namespace/name, or nil.
func (r *Registry) Lookup(namespace, name string) *Route {
	return (*r.snapshot.Load())[namespace+"/"+name]
}

// List returns every route, sorted by key.
func (r *Registry) List() []*Route {
	snap := *r.snapshot.Load()
	out := make([]*Route, 0, len(snap))
	for _, rt := range snap {
		out = append(out, rt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// SetService records a discovered Service (route without card).
func (r *Registry) SetService(rt Route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.services[rt.Key()] = &serviceInfo{route: rt}
	r.publish()
}

// DeleteService forgets a Service.
func (r *Registry) DeleteService(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.services, namespace+"/"+name)
	r.publish()
}

// SetCard records an agent's card or manifest.
func (r *Registry) SetCard(namespace, name string, card json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cards[namespace+"/"+name] = card
	r.served[namespace+"/"+name] = readA2ACard(card)
	r.publish()
}

// DeleteCard forgets an agent's card.
func (r *Registry) DeleteCard(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cards, namespace+"/"+name)
	delete(r.served, namespace+"/"+name)
	r.publish()
}

// SetEndpoints records the ready endpoints of a Service (nil forgets them).
func (r *Registry) SetEndpoints(namespace, name string, endpoints []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(endpoints) == 0 {
		delete(r.endpoints, namespace+"/"+name)
	} else {
		r.endpoints[namespace+"/"+name] = endpoints
	}
	r.publish()
}

// publish builds a new snapshot; callers hold mu.
func (r *Registry) publish() {
	snap := make(map[string]*Route, len(r.services))
	for key, s := range r.services {
		rt := s.route
		rt.Card = r.cards[key]
		if served, ok := r.served[key]; ok {
			rt.A2A = served
		} else {
			rt.A2A = servedWithoutCard
		}
		if eps, ok := r.endpoints[key]; ok && rt.Upstream != nil && strings.HasSuffix(rt.Upstream.Hostname(), ".svc.cluster.local") {
			// Only Services the router reaches by cluster DNS: an endpoint annotation wins.
			rt.Endpoints = eps
		}
		snap[key] = &rt
	}
	r.snapshot.Store(&snap)
}

// RouteFromService builds a route from a Service's labels and annotations. port is the Service's
// first port.
func RouteFromService(keys contract.Keys, namespace, name string, labels, annotations map[string]string, port int32) (Route, error) {
	rt := Route{
		Namespace: namespace, Name: name,
		Type: labels[keys.Type()], Protocol: labels[keys.Protocol()], Framework: labels[keys.Framework()],
	}
	if rt.Type != contract.TypeAgent && rt.Type != contract.TypeTool {
		return rt, fmt.Errorf("Service %s/%s: label %s=%q is neither agent nor tool", namespace, name, keys.Type(), rt.Type)
	}
	raw := annotations[keys.Endpoint()]
	if raw == "" {
		raw = fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", name, namespace, port)
		if rt.Type == contract.TypeTool {
			// A tool's URL annotation carries its MCP path.
			if u := annotations[keys.URL()]; u != "" {
				raw = u
			}
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return rt, fmt.Errorf("Service %s/%s: upstream %q is not an http(s) URL", namespace, name, raw)
	}
	rt.Upstream = u
	rt.ExposeAsTool = annotations[keys.ExposeAsTool()] == "true"
	if p := annotations[keys.Policy()]; p != "" {
		if err := json.Unmarshal([]byte(p), &rt.Policy); err != nil {
			return rt, fmt.Errorf("Service %s/%s: annotation %s: %w", namespace, name, keys.Policy(), err)
		}
	}
	return rt, nil
}

// cardName maps a card ConfigMap's name back to its agent ("weather-card" → "weather").
func cardName(configMap string) (string, bool) {
	return strings.CutSuffix(configMap, "-card")
}

// StaticRoute is one entry of a routes file: a route known without Kubernetes (local runs,
// benchmarks, agents outside any cluster).
type StaticRoute struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Protocol  string          `json:"protocol"`
	Framework string          `json:"framework"`
	Upstream  string          `json:"upstream"`
	Card      json.RawMessage `json:"card,omitempty"`
	Policy    contract.Policy `json:"policy"`
	// ExposeAsTool offers the agent as an MCP tool.
	ExposeAsTool bool `json:"expose_as_tool,omitempty"`
}

// LoadStatic adds routes from a routes file's content (a JSON array of StaticRoute).
func (r *Registry) LoadStatic(data []byte) error {
	var routes []StaticRoute
	if err := json.Unmarshal(data, &routes); err != nil {
		return fmt.Errorf("routes file: %w", err)
	}
	for i, s := range routes {
		u, err := url.Parse(s.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("routes file: entry %d (%s/%s): upstream %q is not an http(s) URL", i, s.Namespace, s.Name, s.Upstream)
		}
		typ := s.Type
		if typ == "" {
			typ = contract.TypeAgent
		}
		r.SetService(Route{Namespace: s.Namespace, Name: s.Name, Type: typ, Protocol: s.Protocol, Framework: s.Framework, Upstream: u, Policy: s.Policy, ExposeAsTool: s.ExposeAsTool})
		if len(s.Card) > 0 {
			r.SetCard(s.Namespace, s.Name, s.Card)
		}
	}
	return nil
}
