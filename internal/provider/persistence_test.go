package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// TestCheckPersistenceChange pins what a plan may do to a checkpoint volume: grow it, keep it
// when persistence goes away, never change its class or shrink it.
func TestCheckPersistenceChange(t *testing.T) {
	agent := func(p *composition.Persistence) *composition.Input {
		return &composition.Input{Name: "planner", Namespace: "team1", Persistence: p}
	}
	cases := map[string]struct {
		reason      string
		prior, next *composition.Input
		want        []string
	}{
		"no volume before":    {prior: agent(nil), next: agent(&composition.Persistence{Size: "1Gi"})},
		"growing":             {prior: agent(&composition.Persistence{Size: "1Gi"}), next: agent(&composition.Persistence{Size: "2Gi"})},
		"same size, new unit": {prior: agent(&composition.Persistence{Size: "1Gi"}), next: agent(&composition.Persistence{Size: "1024Mi"})},
		"shrinking": {
			reason: "Kubernetes refuses it at apply; the plan must say so",
			prior:  agent(&composition.Persistence{Size: "2Gi"}), next: agent(&composition.Persistence{Size: "1Gi"}),
			want: []string{"error persistence.size: Volume Cannot Shrink"},
		},
		"another storage class": {
			reason: "a claim's class is immutable",
			prior:  agent(&composition.Persistence{Size: "1Gi", StorageClass: "standard"}), next: agent(&composition.Persistence{Size: "1Gi", StorageClass: "fast"}),
			want: []string{"error persistence.storage_class: Storage Class Cannot Change"},
		},
		"persistence removed": {
			reason: "the data is kept, and the plan says so",
			prior:  agent(&composition.Persistence{Size: "1Gi"}), next: agent(nil),
			want: []string{"warning persistence: Checkpoint Volume Kept"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, d := range checkPersistenceChange(tc.prior, tc.next) {
				sev := "error"
				if d.Severity() == diag.SeverityWarning {
					sev = "warning"
				}
				p := ""
				if dp, ok := d.(diag.DiagnosticWithPath); ok {
					p = dp.Path().String()
				}
				got = append(got, fmt.Sprintf("%s %s: %s", sev, p, d.Summary()))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// Removing persistence keeps the claim and its data, unlabelled so that nothing prunes it; a
// smaller size is refused at plan.
func TestAccAgentResource_PersistenceKeptOnRemoval(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	config := func(persistence string) string {
		return fmt.Sprintf(`
resource "kagenti_agent" "keeper" {
  name      = "keeper"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/keeper:1.0.0"
%s
}
`, ns, persistence)
	}
	ctx := context.Background()
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{Config: config(`  persistence = { size = "1Gi" }`)},
			{
				Config:      config(`  persistence = { size = "512Mi" }`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Volume Cannot Shrink`),
			},
			{
				Config: config(""),
				Check: func(*terraformState) error {
					pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "keeper-data", metav1.GetOptions{})
					if err != nil {
						return fmt.Errorf("the claim was deleted with persistence: %v", err)
					}
					if len(pvc.Labels) != 0 {
						return fmt.Errorf("the kept claim still carries labels %v: a later prune or destroy would delete it", pvc.Labels)
					}
					return nil
				},
			},
			{Config: config(""), PlanOnly: true},
		},
		CheckDestroy: func(*terraformState) error {
			if _, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "keeper-data", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("destroying the agent deleted the claim it no longer manages: %v", err)
			}
			return nil
		},
	})
	_ = client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "keeper-data", metav1.DeleteOptions{})
}
