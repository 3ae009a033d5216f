package composition_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// restrictedViolations evaluates the pod template of every Deployment in objs with the API
// server's own Pod Security evaluator, at the restricted level, and returns the checks that
// forbid it.
func restrictedViolations(t *testing.T, objs []composition.Object) []string {
	t.Helper()
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var forbidden []string
	for _, o := range objs {
		if o.Object.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object.Object, &d); err != nil {
			t.Fatal(err)
		}
		for _, r := range eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
			if !r.Allowed {
				forbidden = append(forbidden, r.ForbiddenReason)
			}
		}
	}
	return forbidden
}

// TestRender_PodSecurityRestricted pins that agent, tool and router pods pass Pod Security's
// restricted profile by default, in every golden case; only a Workload API socket from a node
// directory (hostPath) is refused, and the CSI driver is the way around it.
func TestRender_PodSecurityRestricted(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := filepath.Glob("testdata/*/input.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, p := range inputs {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var gi goldenInput
			if err := yaml.UnmarshalStrict(raw, &gi); err != nil {
				t.Fatal(err)
			}
			out, err := r.Render(gi.Input)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if gi.Input.Identity != nil && gi.Input.Identity.HostPath != "" {
				want = []string{"restricted volume types"}
			}
			got := restrictedViolations(t, out.Objects)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("restricted violations (-want +got):\n%s", diff)
			}
		})
	}
	platform := map[string]composition.PlatformInput{
		"router": {Namespace: "kagenti", Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 1},
		"router with the CSI socket": {Namespace: "kagenti", Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 1, Issuer: "https://kc.example.com/realms/kagenti",
			Audience: "spiffe://example.org/ns/kagenti/sa/kagenti-router", WorkloadAPI: composition.WorkloadAPI{CSIDriver: "csi.spiffe.io"}},
	}
	for name, in := range platform {
		t.Run(name, func(t *testing.T) {
			out, err := r.RenderPlatform(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := restrictedViolations(t, out.Objects); len(got) > 0 {
				t.Errorf("the router's pod is refused by restricted: %v", got)
			}
		})
	}
}
