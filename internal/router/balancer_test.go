package router

import (
	"net/url"
	"testing"
	"time"
)

// TestBalancerPick: plain-HTTP agents are balanced over their ready endpoints, skipping an
// ejected one; https agents are called by name, which their certificate is for.
func TestBalancerPick(t *testing.T) {
	b := newBalancer(time.Minute)
	plain, _ := url.Parse("http://agent.ns.svc.cluster.local:8000/rpc")
	route := &Route{Upstream: plain, Endpoints: []string{"10.0.0.1:8000", "10.0.0.2:8000"}}
	b.fail("10.0.0.1:8000")
	for range 4 {
		if got := b.pick(route, "").Host; got != "10.0.0.2:8000" {
			t.Fatalf("picked %s, want the endpoint that is not ejected", got)
		}
	}
	secure, _ := url.Parse("https://agent.ns.svc.cluster.local:8443")
	route = &Route{Upstream: secure, Endpoints: []string{"10.0.0.1:8443"}}
	if got := b.pick(route, "").Host; got != "agent.ns.svc.cluster.local:8443" {
		t.Fatalf("https agent picked as %s, want its name", got)
	}
}
