package router

import (
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// balancer spreads requests over a route's endpoints round robin and ejects an endpoint whose
// connection failed for a while (passive health checking): no probe traffic, the failures of
// real requests decide.
type balancer struct {
	ejectFor time.Duration
	next     atomic.Uint64
	mu       sync.Mutex
	ejected  map[string]time.Time
}

func newBalancer(ejectFor time.Duration) *balancer {
	return &balancer{ejectFor: ejectFor, ejected: map[string]time.Time{}}
}

// pick returns the URL to send a request to: the route's Upstream with the host of the next
// healthy endpoint (all endpoints ejected: any, rather than none).
func (b *balancer) pick(route *Route, avoid string) *url.URL {
	u := *route.Upstream
	u.Host = b.pickHost(route, avoid)
	return &u
}

// pickHost is pick's host (host:port), without a URL to allocate.
func (b *balancer) pickHost(route *Route, avoid string) string {
	// An https agent is called by its name, which its certificate is for, not by pod address:
	// its Service balances.
	if len(route.Endpoints) == 0 || route.Upstream.Scheme == "https" {
		return route.Upstream.Host
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(route.Endpoints)
	start := int(b.next.Add(1) % uint64(n))
	for i := range n {
		ep := route.Endpoints[(start+i)%n]
		if until, bad := b.ejected[ep]; (bad && now.Before(until)) || ep == avoid {
			continue
		}
		return ep
	}
	return route.Endpoints[start]
}

// fail ejects an endpoint.
func (b *balancer) fail(host string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ejected[host] = time.Now().Add(b.ejectFor)
}
