package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// agentDeployerToken binds examples/rbac/agent-deployer-role.yaml, the Role the docs give a
// pipeline that applies agents and tools, to a new ServiceAccount in namespace and returns a
// token of it: the provider then runs with exactly the permissions the docs name, no more.
func agentDeployerToken(t *testing.T, client kubernetes.Interface, namespace string) string {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../../examples/rbac/agent-deployer-role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(raw, &role); err != nil {
		t.Fatalf("examples/rbac/agent-deployer-role.yaml: %v", err)
	}
	role.Namespace = namespace
	if _, err := client.RbacV1().Roles(namespace).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: namespace}}
	if _, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ci", Namespace: namespace}},
	}
	if _, err := client.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expiry := int64(3600)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "ci",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// TestAccAgentResource_AgentDeployerRole: the Role the docs give a pipeline
// (examples/rbac/agent-deployer-role.yaml) is enough to create an agent and a tool, plan them
// empty, refresh them, turn autoscaling on (an HPA created, a PDB pruned), import the agent
// and destroy it all; it is not more than the docs say (the same identity may not read Secrets
// or create Namespaces); and what it lacks fails as a permission, not as an unreachable API.
func TestAccAgentResource_AgentDeployerRole(t *testing.T) {
	client := testAccKube(t)
	sb := testAccSandbox
	ns := testAccNamespace(t, client)
	token := agentDeployerToken(t, client, ns)
	for _, k := range []string{"KUBECONFIG", "KAGENTI_SPIRE_ADDRESS", "KAGENTI_SPIRE_TRUST_DOMAIN", "KAGENTI_KEYCLOAK_URL", "KAGENTI_KEYCLOAK_USERNAME", "KAGENTI_KEYCLOAK_PASSWORD"} {
		t.Setenv(k, "")
	}
	// replicas 0: autoscaling from one to three instead.
	config := func(replicas int) string {
		scale := fmt.Sprintf("replicas  = %d", replicas)
		if replicas == 0 {
			scale = "autoscaling = { min_replicas = 1, max_replicas = 3, target_cpu_utilization = 75 }"
		}
		return fmt.Sprintf(`
provider "kagenti" {
  kubernetes {
    host                   = %[1]q
    token                  = %[2]q
    cluster_ca_certificate = file(%[3]s)
  }
}

resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = %[4]q
  image     = "ghcr.io/example/weather-tool:0.3.1"
}

resource "kagenti_agent" "test" {
  name      = "weather-service"
  namespace = %[4]q
  framework = "langgraph"
  image     = "ghcr.io/example/weather-service:1.4.0"
  tools     = [kagenti_tool.weather.id]
  %[5]s
}
`, sb.Kubernetes.Server, token, hclPath(sb.Kubernetes.CAFile), ns, scale)
	}
	pdbExists := func(exists bool) resource.TestCheckFunc {
		return checkExists(func(ctx context.Context) error {
			_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "weather-service", metav1.GetOptions{})
			return err
		}, "PodDisruptionBudget", exists)
	}
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config: config(2),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kagenti_agent.test", tfjsonpath.New("ready_replicas"), knownvalue.Int64Exact(2)),
				},
				Check: resource.ComposeTestCheckFunc(checkDeploymentAvailable(client, ns, "weather-service", 2), pdbExists(true)),
			},
			{
				// A refresh reads the objects back with these credentials, and nothing changes.
				RefreshState: true,
			},
			{
				// Autoscaling from one replica: an HPA appears, and the PodDisruptionBudget is
				// pruned, found by a list.
				Config: config(0),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kagenti_agent.test", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(checkDeploymentAvailable(client, ns, "weather-service", 1), pdbExists(false),
					checkExists(func(ctx context.Context) error {
						_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "weather-service", metav1.GetOptions{})
						return err
					}, "HorizontalPodAutoscaler", true)),
			},
			{
				ResourceName:            "kagenti_agent.test",
				ImportState:             true,
				ImportStateId:           ns + "/weather-service",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
	// A tool in a namespace the Role does not reach: the plan fails on the permission.
	testAccRun(t, resource.TestCase{Steps: []resource.TestStep{{
		Config: config(1) + fmt.Sprintf(`
resource "kagenti_agent" "elsewhere" {
  name      = "elsewhere"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/weather-service:1.4.0"
  tools     = ["default/some-tool"]
}
`, ns),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`Kubernetes Permission Denied`),
	}}})
	// Not more than the docs say.
	restricted := kubernetesAs(t, sb.Kubernetes.Server, token, sb.Kubernetes.CAFile)
	if _, err := restricted.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the deployer identity may list Secrets (%v): the Role grants more than its docs say", err)
	}
	if _, err := restricted.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns + "-x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the deployer identity may create Namespaces (%v): the Role grants more than its docs say", err)
	}
}

// kubernetesAs is a client of the sandbox's apiserver with a bearer token.
func kubernetesAs(t *testing.T, server, token, caFile string) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	return client
}
