package provider

import (
	"context"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

func testAccPodSettingsConfig(ns, arch, sa string) string {
	account := `service_account_annotations = { "iam.gke.io/gcp-service-account" = "planner@example.iam.gserviceaccount.com" }`
	if sa != "" {
		account = fmt.Sprintf("service_account = %q", sa)
	}
	return fmt.Sprintf(`
resource "kagenti_agent" "pod" {
  name        = "planner"
  namespace   = %[1]q
  framework   = "langgraph"
  image       = "registry.example.com/research/planner:2.1.0"
  labels      = { team = "research" }
  annotations = { "example.com/owner" = "alice" }
  pod = {
    labels             = { "sidecar.istio.io/inject" = "false" }
    annotations        = { "prometheus.io/scrape" = "true" }
    node_selector      = { "kubernetes.io/arch" = %[2]q }
    tolerations        = [{ key = "dedicated", value = "agents", effect = "NoSchedule" }]
    image_pull_secrets = ["registry-example"]
    command            = ["python", "-m", "planner"]
    args               = ["--port", "8000"]
    env_from           = [{ config_map = "planner-config" }, { secret = "planner-keys", prefix = "KEYS_" }]
    %[3]s
  }
}
`, ns, arch, account)
}

// The pod settings reach the cluster as a Deployment user would write them, import back, and
// change in place; an existing service account replaces the one the provider makes.
func TestAccAgentResource_PodSettings(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	ctx := context.Background()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const agent = "kagenti_agent.pod"
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{
				Config: testAccPodSettingsConfig(ns, "amd64", ""),
				Check: resource.ComposeTestCheckFunc(
					checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
						pod := d.Spec.Template
						c := pod.Spec.Containers[0]
						switch {
						case d.Labels["team"] != "research" || d.Annotations["example.com/owner"] != "alice":
							return fmt.Errorf("object metadata: labels %v annotations %v", d.Labels, d.Annotations)
						case pod.Labels["sidecar.istio.io/inject"] != "false" || pod.Annotations["prometheus.io/scrape"] != "true":
							return fmt.Errorf("pod metadata: labels %v annotations %v", pod.Labels, pod.Annotations)
						case pod.Spec.NodeSelector["kubernetes.io/arch"] != "amd64":
							return fmt.Errorf("nodeSelector %v", pod.Spec.NodeSelector)
						case len(pod.Spec.Tolerations) != 1 || pod.Spec.Tolerations[0].Key != "dedicated" || pod.Spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule:
							return fmt.Errorf("tolerations %+v", pod.Spec.Tolerations)
						case len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "registry-example":
							return fmt.Errorf("imagePullSecrets %+v", pod.Spec.ImagePullSecrets)
						case !slices.Equal(c.Command, []string{"python", "-m", "planner"}) || !slices.Equal(c.Args, []string{"--port", "8000"}):
							return fmt.Errorf("command %v args %v", c.Command, c.Args)
						case len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[1].SecretRef == nil || c.EnvFrom[1].Prefix != "KEYS_":
							return fmt.Errorf("envFrom %+v", c.EnvFrom)
						case pod.Spec.ServiceAccountName != "planner":
							return fmt.Errorf("serviceAccountName %s", pod.Spec.ServiceAccountName)
						}
						return nil
					}),
					func(*terraformState) error {
						sa, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "planner", metav1.GetOptions{})
						if err != nil {
							return err
						}
						if sa.Annotations["iam.gke.io/gcp-service-account"] == "" || sa.Labels["team"] != "research" {
							return fmt.Errorf("service account metadata: labels %v annotations %v", sa.Labels, sa.Annotations)
						}
						return nil
					},
				),
			},
			{
				ResourceName:            agent,
				ImportState:             true,
				ImportStateId:           ns + "/planner",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// An existing account: ours is pruned, the pods run as that one.
				Config: testAccPodSettingsConfig(ns, "amd64", "shared"),
				Check: resource.ComposeTestCheckFunc(
					checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
						if d.Spec.Template.Spec.ServiceAccountName != "shared" {
							return fmt.Errorf("serviceAccountName %s, want shared", d.Spec.Template.Spec.ServiceAccountName)
						}
						return nil
					}),
					checkExists(func(ctx context.Context) error {
						_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "planner", metav1.GetOptions{})
						return err
					}, "the provider's ServiceAccount", false),
				),
			},
			{Config: testAccPodSettingsConfig(ns, "amd64", "shared"), PlanOnly: true},
		},
	})
}
