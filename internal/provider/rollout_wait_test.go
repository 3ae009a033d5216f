package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// Rollout waits that say why, provoked for real on the sandbox: the apply fails with the
// cluster's own explanation, early when the cause cannot clear, and says so.

func testAccWaitAgentConfig(ns, extra string) string {
	return fmt.Sprintf(`
resource "kagenti_agent" "held" {
  name      = "held"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/held:1.0.0"
%s
}
`, ns, extra)
}

// A namespace whose quota allows no pods: the ReplicaSet cannot create one, and the apply stops
// at once (not at its 10-minute timeout) with the quota's message.
func TestAccAgentResource_Wait_QuotaFailsEarly(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	if _, err := client.CoreV1().ResourceQuotas(ns).Create(context.Background(), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testAccRun(t, tfresource.TestCase{
		Steps: []tfresource.TestStep{{
			Config:      testAccWaitAgentConfig(ns, ""),
			ExpectError: regexp.MustCompile(`Agent Cannot Become Ready[\s\S]*exceeded\s+quota:\s+no-pods`),
		}},
	})
}

// A pod template the namespace's Pod Security level refuses (restricted, here) fails the apply at
// once, naming the violation: a regression of our own defaults would fail the same way.
func TestAccAgentResource_Wait_PodSecurityFailsEarly(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	privileged := `  composition = {
    patches = [{
      target = "deployment"
      type   = "strategic"
      patch  = <<-EOT
        spec:
          template:
            spec:
              containers:
                - name: agent
                  securityContext:
                    capabilities:
                      add: ["NET_ADMIN"]
      EOT
    }]
  }`
	testAccRun(t, tfresource.TestCase{
		Steps: []tfresource.TestStep{{
			Config:      testAccWaitAgentConfig(ns, privileged),
			ExpectError: regexp.MustCompile(`Agent Cannot Become Ready[\s\S]*violates\s+PodSecurity\s+"restricted:latest"[\s\S]*capabilities`),
		}},
	})
}

// Pods no node can take keep the wait going (nodes may come), and the timeout error quotes the
// scheduler.
func TestAccAgentResource_Wait_UnschedulableExplained(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	nowhere := `  timeouts = { create = "8s" }
  composition = {
    patches = [{
      target = "deployment"
      type   = "merge"
      patch  = jsonencode({ spec = { template = { spec = { nodeSelector = { "example.com/pool" = "none" } } } } })
    }]
  }`
	testAccRun(t, tfresource.TestCase{
		Steps: []tfresource.TestStep{{
			Config:      testAccWaitAgentConfig(ns, nowhere),
			ExpectError: regexp.MustCompile(`timed\s+out\s+waiting\s+for\s+Deployment\s+\S+/held\s+to\s+become\s+Available[\s\S]*1\s+pod\s+unschedulable:\s+0/\d+\s+nodes\s+are\s+available`),
		}},
	})
}
