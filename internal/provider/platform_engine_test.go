package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func testAccAdoptedPlatformConfig(ns, agents, logLevel string) string {
	return fmt.Sprintf(`
resource "kagenti_platform" "adopted" {
  namespace        = %q
  create_namespace = false
  agent_namespaces = [%q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  router_replicas  = 1
  labels           = { team = "platform" }
  router_settings = {
    max_header_bytes = 16384
    upstream_timeout = "5m"
    drain            = "25s"
    log_level        = %q
  }
  router_pod = {
    annotations = { "prometheus.io/scrape" = "true" }
  }
  composition = {
    patches = [{
      target = "deployment"
      type   = "merge"
      patch  = jsonencode({ spec = { template = { spec = { terminationGracePeriodSeconds = 40 } } } })
    }]
  }
}
`, ns, agents, logLevel)
}

// The platform runs on the same plan as agents and tools: it adopts a namespace that exists
// (and leaves it on destroy), takes the router's settings and patches, imports to an empty
// plan, and drift of the router's Deployment shows in the plan and is repaired.
func TestAccPlatformResource_AdoptedNamespaceAndDrift(t *testing.T) {
	client := testAccKube(t)
	ctx := context.Background()
	const platform = "kagenti_platform.adopted"
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			ns := testAccNamespace(t, client) // the adopted one: restricted, made by someone else
			agents := testAccNamespace(t, client)
			router := func(f func(*appsv1.Deployment) error) resource.TestCheckFunc {
				return checkDeployment(client, ns, "kagenti-router", f)
			}
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				CheckDestroy: func(*terraformState) error {
					if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
						return fmt.Errorf("the adopted namespace is gone after destroy: %v", err)
					}
					return checkNoLabelledObjects(client, ns)(nil)
				},
				Steps: []resource.TestStep{
					{
						Config: testAccAdoptedPlatformConfig(ns, agents, "debug"),
						Check: router(func(d *appsv1.Deployment) error {
							args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
							for _, want := range []string{"-max-header-bytes=16384", "-upstream-timeout=5m", "-drain=25s", "-log-level=debug"} {
								if !strings.Contains(args, want) {
									return fmt.Errorf("router args %q lack %s", args, want)
								}
							}
							if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 40 {
								return fmt.Errorf("patch not applied: terminationGracePeriodSeconds %v", g)
							}
							if d.Labels["team"] != "platform" || d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
								return fmt.Errorf("labels %v, pod annotations %v", d.Labels, d.Spec.Template.Annotations)
							}
							return nil
						}),
					},
					{Config: testAccAdoptedPlatformConfig(ns, agents, "debug"), PlanOnly: true},
					{
						ResourceName:            platform,
						ImportState:             true,
						ImportStateId:           ns,
						ImportStateVerify:       true,
						ImportStateVerifyIgnore: []string{"timeouts"},
					},
					{
						// Out of band: the router's image is edited. The plan shows it, apply repairs it.
						PreConfig: func() {
							patch := `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/kagenti/kagenti-router:evil"}]`
							if _, err := client.AppsV1().Deployments(ns).Patch(ctx, "kagenti-router", types.JSONPatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
								t.Fatal(err)
							}
						},
						Config: testAccAdoptedPlatformConfig(ns, agents, "debug"),
						ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
							plancheck.ExpectResourceAction(platform, plancheck.ResourceActionUpdate),
						}},
						Check: router(func(d *appsv1.Deployment) error {
							if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/kagenti/kagenti-router:0.1.0" {
								return fmt.Errorf("image after repair = %s", img)
							}
							return nil
						}),
					},
					{Config: testAccAdoptedPlatformConfig(ns, agents, "debug"), PlanOnly: true},
					{
						// A setting of our own rolls out; revision and objects are known in the plan.
						Config: testAccAdoptedPlatformConfig(ns, agents, "warn"),
						ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
							plancheck.ExpectKnownValue(platform, tfjsonpath.New("revision"), knownvalue.StringRegexp(regexp.MustCompile(`^sha256:[0-9a-f]{64}$`))),
						}},
						Check: router(func(d *appsv1.Deployment) error {
							if args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "-log-level=warn") {
								return fmt.Errorf("router args %q", args)
							}
							return nil
						}),
					},
				},
			})
		})
	}
}

// A platform told to adopt a namespace that does not exist fails on the attribute, before it
// creates anything.
func TestAccPlatformResource_AdoptMissingNamespace(t *testing.T) {
	testAccPreCheck(t)
	ns := "kagenti-missing-" + rand.String(5)
	testAccRun(t, resource.TestCase{Steps: []resource.TestStep{{
		Config:      testAccAdoptedPlatformConfig(ns, "default", "info"),
		ExpectError: regexp.MustCompile(`Namespace Not Found[\s\S]*create_namespace\s+=\s+false`),
	}}})
}

// A platform without token exchange needs neither SPIRE nor Keycloak: creating and updating it
// opens no connection to either (before, every apply tried to remove a router identity it never
// had). Both "backends" are listeners that count the connections they are offered.
func TestAccPlatformResource_NoExchangeContactsNoIdentityBackend(t *testing.T) {
	testAccPreCheck(t)
	var dials atomic.Int64
	listen := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				dials.Add(1)
				_ = c.Close()
			}
		}()
		return l.Addr().String()
	}
	t.Setenv("KAGENTI_SPIRE_ADDRESS", listen())
	t.Setenv("KAGENTI_KEYCLOAK_URL", "https://"+listen())
	config := func(replicas int) string {
		return fmt.Sprintf("resource \"kagenti_platform\" \"plain\" {\n  namespace = %q\n  router_replicas = %d\n  token_exchange = false\n}\n",
			"kagenti-plain-"+strings.ToLower(rand.String(4)), replicas)
	}
	create := config(1)
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{Config: create},
			{
				Config: strings.Replace(create, "router_replicas = 1", "router_replicas = 2", 1),
				Check: func(*terraformState) error {
					if n := dials.Load(); n > 0 {
						return fmt.Errorf("%d connections to SPIRE or Keycloak for a platform without token exchange", n)
					}
					return nil
				},
			},
		},
	})
}
