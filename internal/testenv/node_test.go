package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// hostSnapshot is what the real node may change on the host, as text to compare.
func hostSnapshot(t *testing.T) map[string]string {
	t.Helper()
	snap := map[string]string{}
	run := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		return string(out)
	}
	var kube []string
	for _, l := range strings.Split(run("iptables-save"), "\n") {
		if strings.Contains(l, "KUBE") {
			kube = append(kube, l)
		}
	}
	snap["iptables KUBE lines"] = strings.Join(kube, "\n")
	snap["nft tables"] = run("nft", "list", "tables")
	snap["ipsets"] = run("ipset", "list", "-n")
	snap["bridge"] = fmt.Sprint(exec.Command("ip", "link", "show", nodeBridge).Run() == nil)
	snap["veths"] = run("ip", "-o", "link", "show", "type", "veth")
	var mounts []string
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, NodeRunDir) || strings.Contains(l, "/node/") {
			mounts = append(mounts, l)
		}
	}
	snap["mounts"] = strings.Join(mounts, "\n")
	for _, k := range nodeSysctls {
		v, _ := os.ReadFile(sysctlPath(k))
		snap["sysctl "+k] = strings.TrimSpace(string(v))
	}
	for _, d := range append(nodeHostDirs, NodeRunDir) {
		_, err := os.Stat(d)
		snap["dir "+d] = fmt.Sprint(err == nil)
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	sort.Strings(cg)
	snap["kubepods cgroups"] = strings.Join(cg, " ")
	return snap
}

// TestNodeCrashCleanup starts a sandbox with the real node, runs pods on it, then SIGKILLs every
// process of the sandbox as a crash would (the containers and their shims keep running). The next
// Start must see the crashed owner, stop what is left and clean the host, and its own Stop must
// leave the host exactly as it was before the first.
//
// It needs root and the cached tools, and the real node is one per machine, so it runs on its
// own: `make test-node-crash` (part of `make test`) sets KAGENTI_NODE_CRASH_TEST.
func TestNodeCrashCleanup(t *testing.T) {
	if os.Getenv("KAGENTI_NODE_CRASH_TEST") == "" {
		t.Skip("run by `make test-node-crash`: it needs root, the cached tools and the machine's one real node")
	}
	before := hostSnapshot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := Options{Components: []string{ComponentKubernetes, ComponentNode}, Nodes: 1, Volumes: 1, Log: testLog{t}, Ephemeral: true}
	opts.Dir = filepath.Join(t.TempDir(), "crashed")
	crashed, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	client, err := crashed.kubeClient()
	if err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "crash"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "crash"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{NodeTaintKey: "true"},
					Tolerations:  []corev1.Toleration{{Key: NodeTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{Name: "tool", Image: ImageDemoTool, ImagePullPolicy: corev1.PullNever,
						Args:         []string{"-listen=:8080"},
						VolumeMounts: []corev1.VolumeMount{{Name: "spiffe", MountPath: "/spiffe-workload-api", ReadOnly: true}}}},
					// The SPIFFE CSI driver's bind mount must be undone after the crash too.
					Volumes: []corev1.Volume{{Name: "spiffe", VolumeSource: corev1.VolumeSource{
						CSI: &corev1.CSIVolumeSource{Driver: SpiffeCSIDriver, ReadOnly: ptr.To(true)}}}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A NetworkPolicy on them: the enforcer's chains and ipsets must go too.
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "default"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "crash"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "crash"}}}}}},
		},
	}
	if _, err := client.NetworkingV1().NetworkPolicies("default").Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "crash", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 2, nil
	}); err != nil {
		t.Fatalf("pods on the real node: %v\n%s", err, crashed.Logs(20))
	}

	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		out, _ := exec.Command("ipset", "list", "-n").Output()
		return string(out) != before["ipsets"], nil
	}); err != nil {
		t.Fatalf("the NetworkPolicy made no ipset: the test would not show their cleanup (%v)\n%s", err, crashed.Logs(20))
	}

	// The crash: every process of the sandbox killed at once; the shims and containers live on.
	for _, p := range crashed.Processes {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	time.Sleep(time.Second)
	if len(kubepodsPIDs()) == 0 {
		t.Fatal("no container survived the crash: the test would not show any cleanup")
	}

	// The next sandbox finds the node of a crashed one, cleans it, and starts its own.
	opts.Dir = filepath.Join(t.TempDir(), "next")
	next, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("a sandbox after a crashed one: %v", err)
	}
	if next.Node.Name == "" {
		t.Fatal("the next sandbox has no real node")
	}
	// While it runs, a third is refused: one real node per machine.
	opts.Dir = filepath.Join(t.TempDir(), "third")
	if third, err := Start(ctx, opts); err == nil {
		_ = third.Stop()
		t.Fatal("a second real node started beside a running one")
	} else if !strings.Contains(err.Error(), "already runs for the sandbox in "+next.Dir) {
		t.Fatalf("a second real node: want the running one named, got %v", err)
	}
	if err := next.Stop(); err != nil {
		t.Fatal(err)
	}
	after := hostSnapshot(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s after the sandboxes: %q, before: %q", k, after[k], v)
		}
	}
	if _, err := os.Stat(crashed.Dir); err == nil {
		t.Errorf("the crashed sandbox's dir %s is still there", crashed.Dir)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
