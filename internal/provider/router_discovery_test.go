package provider

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
)

// The router's discovery against the sandbox: an agent applied by Terraform becomes a route
// with its card and the ready pod endpoints of its Deployment (for balancing); scaling changes
// the endpoints; destroying the agent removes the route.
func TestAccRouter_Discovery(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	registry := router.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	synced := make(chan struct{})
	disc := &router.Discovery{Client: testAccDynamic(t), Keys: contract.NewKeys(""), Namespaces: []string{ns}, Registry: registry,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	go func() { _ = disc.Run(ctx, synced) }()
	<-synced
	config := func(replicas int) string {
		return fmt.Sprintf(`
resource "kagenti_agent" "a" {
  name      = "balanced"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/balanced:1.0.0"
  replicas  = %d
}
`, ns, replicas)
	}
	// eventually waits for the registry (watch events, not polling, drive it).
	eventually := func(what string, ok func(*router.Route) bool) func(*terraformState) error {
		return func(*terraformState) error {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if ok(registry.Lookup(ns, "balanced")) {
					return nil
				}
				time.Sleep(20 * time.Millisecond)
			}
			return fmt.Errorf("the router's registry never showed %s: %+v", what, registry.Lookup(ns, "balanced"))
		}
	}
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				Config: config(2),
				Check: eventually("the route with its card and 2 endpoints", func(r *router.Route) bool {
					return r != nil && len(r.Card) > 0 && len(r.Endpoints) == 2
				}),
			},
			{
				Config: config(3),
				Check: eventually("3 endpoints", func(r *router.Route) bool {
					return r != nil && len(r.Endpoints) == 3
				}),
			},
		},
		CheckDestroy: eventually("the route removed", func(r *router.Route) bool { return r == nil }),
	})
}
