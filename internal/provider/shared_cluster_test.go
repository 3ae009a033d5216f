package provider

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// The provider is one writer among many on a real cluster. These tests let other writers touch
// the objects it applies — kubectl (the real binary), the HPA controller, a mutating admission
// webhook the API server calls — and pin that apply converges, the next plan is empty, and a
// change of our own still rolls out without undoing theirs.

func testAccSharedAgentConfig(ns, mode string, extra string) string {
	return fmt.Sprintf(`
resource "kagenti_agent" "shared" {
  name      = "planner"
  namespace = %q
  framework = "langgraph"
  image     = "ghcr.io/example/planner:1.0.0"
  env       = { MODE = %q }
%s
}
`, ns, mode, extra)
}

// testAccKubectl runs the sandbox's real kubectl (it writes under its own field managers, as a
// person would).
func testAccKubectl(t *testing.T, args ...string) {
	t.Helper()
	b := &testenv.Builder{CacheDir: testenv.DefaultCacheDir()}
	cmd := exec.Command(b.Path(testenv.Kubernetes(), "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+testAccSandbox.Kubernetes.Kubeconfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// checkDeployment reads the Deployment and checks it with f.
func checkDeployment(client kubernetes.Interface, ns, name string, f func(*appsv1.Deployment) error) resource.TestCheckFunc {
	return func(*terraformState) error {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return f(d)
	}
}

func containerEnv(d *appsv1.Deployment, container, key string) (string, bool) {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == key {
				return e.Value, true
			}
		}
	}
	return "", false
}

// agentContainer is the name the templates give the agent's container.
const agentContainer = "agent"

// kubectl set env, label and annotate add fields under their own managers: never drift, never an
// inconsistent result, kept across our own changes.
func TestAccAgentResource_SharedCluster_KubectlWriters(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	const agent = "kagenti_agent.shared"
	inSync := func(i int) statecheck.StateCheck {
		return statecheck.ExpectKnownValue(agent, tfjsonpath.New("objects").AtSliceIndex(i).AtMapKey("in_sync"), knownvalue.Bool(true))
	}
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{Config: testAccSharedAgentConfig(ns, "calm", "")},
			{
				PreConfig: func() {
					testAccKubectl(t, "-n", ns, "set", "env", "deploy/planner", "STYLE=x")
					testAccKubectl(t, "-n", ns, "label", "deploy/planner", "team=research")
					testAccKubectl(t, "-n", ns, "annotate", "deploy/planner", "example.com/owner=alice")
					testAccKubectl(t, "-n", ns, "label", "svc/planner", "team=research")
				},
				Config:   testAccSharedAgentConfig(ns, "calm", ""),
				PlanOnly: true,
			},
			{
				// A change of our own rolls out, and theirs stays.
				Config: testAccSharedAgentConfig(ns, "busy", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(agent, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{inSync(0), inSync(1), inSync(2), inSync(3), inSync(4)},
				Check: checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
					if v, _ := containerEnv(d, agentContainer, "MODE"); v != "busy" {
						return fmt.Errorf("MODE = %q, want busy", v)
					}
					if v, ok := containerEnv(d, agentContainer, "STYLE"); !ok || v != "x" {
						return fmt.Errorf("kubectl's STYLE = %q (present %v): our apply removed another manager's field", v, ok)
					}
					if d.Labels["team"] != "research" || d.Annotations["example.com/owner"] != "alice" {
						return fmt.Errorf("kubectl's label/annotation gone: labels %v annotations %v", d.Labels, d.Annotations)
					}
					return nil
				}),
			},
			{Config: testAccSharedAgentConfig(ns, "busy", ""), PlanOnly: true},
			{
				// kubectl taking a field we set is drift: the plan shows it, apply takes it back.
				PreConfig: func() {
					testAccKubectl(t, "-n", ns, "set", "env", "deploy/planner", "MODE=hijacked")
				},
				Config:             testAccSharedAgentConfig(ns, "busy", ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config:            testAccSharedAgentConfig(ns, "busy", ""),
				ConfigStateChecks: []statecheck.StateCheck{inSync(0), inSync(1), inSync(2), inSync(3), inSync(4)},
				Check: checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
					if v, _ := containerEnv(d, agentContainer, "MODE"); v != "busy" {
						return fmt.Errorf("MODE = %q after repair, want busy", v)
					}
					return nil
				}),
			},
			{Config: testAccSharedAgentConfig(ns, "busy", ""), PlanOnly: true},
		},
	})
}

// The HPA controller owns replicas of an autoscaled agent: its scaling is never drift, and our
// next change leaves its replica count alone.
func TestAccAgentResource_SharedCluster_HPA(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	const autoscaling = `  autoscaling = { min_replicas = 2, max_replicas = 4, target_cpu_utilization = 80 }`
	scaledTo := func(want int32) func() {
		return func() {
			// Without metrics the HPA still lifts replicas to min_replicas.
			err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
				d, err := client.AppsV1().Deployments(ns).Get(ctx, "planner", metav1.GetOptions{})
				return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == want, nil
			})
			if err != nil {
				t.Fatalf("the HPA did not scale planner to %d: %v", want, err)
			}
		}
	}
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{Config: testAccSharedAgentConfig(ns, "calm", autoscaling)},
			{PreConfig: scaledTo(2), Config: testAccSharedAgentConfig(ns, "calm", autoscaling), PlanOnly: true},
			{
				Config: testAccSharedAgentConfig(ns, "busy", autoscaling),
				Check: checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
					if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
						return fmt.Errorf("replicas = %v after our change, want the HPA's 2", d.Spec.Replicas)
					}
					if v, _ := containerEnv(d, agentContainer, "MODE"); v != "busy" {
						return fmt.Errorf("MODE = %q, want busy", v)
					}
					return nil
				}),
			},
			{Config: testAccSharedAgentConfig(ns, "busy", autoscaling), PlanOnly: true},
		},
	})
}

// sidecarInjector is a mutating admission webhook in the manner of Istio's or SPIRE's injectors:
// it adds a sidecar container, a volume and an annotation to every pod template it is shown.
func sidecarInjector(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	calls := new(atomic.Int64)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		var d appsv1.Deployment
		_ = json.Unmarshal(review.Request.Object.Raw, &d)
		var ops []map[string]any
		injected := false
		for _, c := range d.Spec.Template.Spec.Containers {
			injected = injected || c.Name == "injected-proxy"
		}
		if !injected {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/spec/containers/-",
				"value": map[string]any{"name": "injected-proxy", "image": "example.com/proxy:1",
					// As a well-behaved injector's sidecar: it passes Pod Security restricted.
					"securityContext": map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}},
					"volumeMounts":    []any{map[string]any{"name": "injected-certs", "mountPath": "/certs"}}}})
			if len(d.Spec.Template.Spec.Volumes) == 0 {
				ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/spec/volumes", "value": []any{}})
			}
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/spec/volumes/-",
				"value": map[string]any{"name": "injected-certs", "emptyDir": map[string]any{}}})
		}
		if d.Spec.Template.Annotations["example.com/injected"] != "true" {
			if d.Spec.Template.Annotations == nil {
				ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/metadata/annotations", "value": map[string]any{}})
			}
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/metadata/annotations/example.com~1injected", "value": "true"})
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		if len(ops) > 0 {
			patch, _ := json.Marshal(ops)
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
		review.Response, review.Request = resp, nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

// A real mutating admission webhook, called by the API server on every apply of ours, injects a
// sidecar, a volume and an annotation: apply converges, the next plan is empty, and a change of
// our own still rolls out with the injection in place.
func TestAccAgentResource_SharedCluster_MutatingWebhook(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	srv, calls := sidecarInjector(t)
	url := srv.URL + "/mutate"
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "inject-" + ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	ctx := context.Background()
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
	injected := func(mode string) resource.TestCheckFunc {
		return checkDeployment(client, ns, "planner", func(d *appsv1.Deployment) error {
			if calls.Load() == 0 {
				return fmt.Errorf("the API server never called the webhook")
			}
			names := []string{}
			for _, c := range d.Spec.Template.Spec.Containers {
				names = append(names, c.Name)
			}
			if len(names) != 2 || d.Spec.Template.Annotations["example.com/injected"] != "true" || len(d.Spec.Template.Spec.Volumes) == 0 {
				return fmt.Errorf("injection missing: containers %v, annotations %v, volumes %d", names, d.Spec.Template.Annotations, len(d.Spec.Template.Spec.Volumes))
			}
			if v, _ := containerEnv(d, agentContainer, "MODE"); v != mode {
				return fmt.Errorf("MODE = %q, want %q", v, mode)
			}
			return nil
		})
	}
	testAccRun(t, resource.TestCase{
		CheckDestroy: checkNoLabelledObjects(client, ns),
		Steps: []resource.TestStep{
			{Config: testAccSharedAgentConfig(ns, "calm", ""), Check: injected("calm")},
			{Config: testAccSharedAgentConfig(ns, "calm", ""), PlanOnly: true},
			{Config: testAccSharedAgentConfig(ns, "busy", ""), Check: injected("busy")},
			{Config: testAccSharedAgentConfig(ns, "busy", ""), PlanOnly: true},
		},
	})
}
