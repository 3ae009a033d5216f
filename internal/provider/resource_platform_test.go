package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
)

// The platform: its namespace, the router with read-only RBAC in the agent namespace, the
// router's identity in SPIRE and Keycloak (client secret in a Secret); scaling adds a PDB;
// destroy removes all of it, namespace and Keycloak client included.
func TestAccPlatformResource_Lifecycle(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			agents := testAccNamespace(t, client)
			ns := "kagenti-" + rand.String(5)
			routerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/kagenti-router", testAccSandbox.Spire.TrustDomain, ns)
			config := func(replicas int) string {
				return fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %q
  agent_namespaces = [%q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  router_replicas  = %d
  public_url       = "https://agents.example.com"
  token_exchange   = true
}
`, ns, agents, replicas)
			}
			ctx := context.Background()
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				CheckDestroy: func(*terraformState) error {
					if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
						return fmt.Errorf("namespace %s left after destroy", ns)
					}
					if _, err := client.RbacV1().Roles(agents).Get(ctx, "kagenti-router", metav1.GetOptions{}); err == nil {
						return fmt.Errorf("Role left in %s", agents)
					}
					if _, err := env.keycloak.FindClient(ctx, routerID); !errors.Is(err, keycloak.ErrNotFound) {
						return fmt.Errorf("router client left in Keycloak (%v)", err)
					}
					return nil
				},
				Steps: []resource.TestStep{
					{
						Config: config(1),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("kagenti_platform.main", tfjsonpath.New("router_url"), knownvalue.StringExact("https://agents.example.com")),
							statecheck.ExpectKnownValue("kagenti_platform.main", tfjsonpath.New("router_client_id"), knownvalue.StringExact(routerID)),
						},
						Check: resource.ComposeTestCheckFunc(
							checkDeploymentAvailable(client, ns, "kagenti-router", 1),
							func(*terraformState) error {
								role, err := client.RbacV1().Roles(agents).Get(ctx, "kagenti-router", metav1.GetOptions{})
								if err != nil {
									return err
								}
								if len(role.Rules) != 1 || fmt.Sprint(role.Rules[0].Verbs) != "[get list watch]" {
									return fmt.Errorf("router Role rules %v: want read-only", role.Rules)
								}
								if _, err := client.CoreV1().Secrets(ns).Get(ctx, "kagenti-router-keycloak", metav1.GetOptions{}); err != nil {
									return fmt.Errorf("router client secret: %w", err)
								}
								d, err := client.AppsV1().Deployments(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
								if err != nil {
									return err
								}
								args := fmt.Sprint(d.Spec.Template.Spec.Containers[0].Args)
								for _, want := range []string{"-audience=" + routerID, "-issuer=" + env.issuer(), "-namespaces=" + agents} {
									if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(args) {
										return fmt.Errorf("router args %s lack %s", args, want)
									}
								}
								_, err = env.keycloak.FindClient(ctx, routerID)
								return err
							},
						),
					},
					{
						Config: config(2),
						Check: resource.ComposeTestCheckFunc(
							checkDeploymentAvailable(client, ns, "kagenti-router", 2),
							checkExists(func(ctx context.Context) error {
								_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
								return err
							}, "router PodDisruptionBudget", true),
						),
					},
					{Config: config(2), PlanOnly: true},
				},
			})
		})
	}
}

// A platform never takes over an existing namespace (destroy would delete it).
func TestAccPlatformResource_ExistingNamespaceRefused(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{
			Config:      fmt.Sprintf("resource \"kagenti_platform\" \"main\" {\n  namespace = %q\n}\n", ns),
			ExpectError: regexp.MustCompile(`already exists and is not a Kagenti platform's`),
		}},
	})
}
