package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func pod(name string, conds []corev1.PodCondition, statuses ...corev1.ContainerStatus) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team1", Labels: map[string]string{"app": "planner"}},
		Status: corev1.PodStatus{Conditions: conds, ContainerStatuses: statuses}}
}

var (
	unschedulable = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/2 nodes are available: 2 Too many pods."}}
	notReady = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	ready    = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
)

func waiting(reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "agent", Image: "ghcr.io/example/planner:9", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

// TestPodHoldup pins what the wait says about pods that are not ready, and which causes end the
// wait at once.
func TestPodHoldup(t *testing.T) {
	cases := map[string]struct {
		reason string
		pods   []corev1.Pod
		want   holdup
		found  bool
	}{
		"all ready": {pods: []corev1.Pod{pod("a", ready)}},
		"unschedulable pods are counted and quoted": {
			reason: "nodes may be added: keep waiting, but say why",
			pods:   []corev1.Pod{pod("a", unschedulable), pod("b", unschedulable), pod("c", ready)},
			want:   holdup{reason: "2 pods unschedulable: 0/2 nodes are available: 2 Too many pods."}, found: true,
		},
		"an image that does not exist": {
			reason: "the registry will keep saying so",
			pods:   []corev1.Pod{pod("a", notReady, waiting("ErrImagePull", `rpc error: ghcr.io/example/planner:9: not found`))},
			want:   holdup{reason: `1 pod cannot pull image "ghcr.io/example/planner:9" of container agent: rpc error: ghcr.io/example/planner:9: not found`, permanent: true}, found: true,
		},
		"an image pull that may clear": {
			reason: "auth and network errors can be fixed outside",
			pods:   []corev1.Pod{pod("a", notReady, waiting("ImagePullBackOff", `Back-off pulling image: 401 Unauthorized`))},
			want:   holdup{reason: `1 pod cannot pull image "ghcr.io/example/planner:9" of container agent: Back-off pulling image: 401 Unauthorized`}, found: true,
		},
		"an invalid image name": {
			pods:  []corev1.Pod{pod("a", notReady, waiting("InvalidImageName", `couldn't parse image name "UPPER"`))},
			want:  holdup{reason: `1 pod cannot pull image "ghcr.io/example/planner:9" of container agent: couldn't parse image name "UPPER"`, permanent: true},
			found: true,
		},
		"a crash loop": {
			pods: []corev1.Pod{pod("a", notReady, corev1.ContainerStatus{Name: "agent", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}})},
			want:  holdup{reason: "1 pod container agent is crash-looping (4 restarts), last exit code 1 (Error)"},
			found: true,
		},
		"a failing readiness probe": {
			pods: []corev1.Pod{pod("a", notReady, corev1.ContainerStatus{Name: "agent",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})},
			want:  holdup{reason: "1 pod container agent is running but not ready (its readiness probe fails)"},
			found: true,
		},
		"the commonest cause first; permanent if any is": {
			pods: []corev1.Pod{pod("a", unschedulable), pod("b", unschedulable),
				pod("c", notReady, waiting("ErrImagePull", "manifest unknown"))},
			want: holdup{reason: `2 pods unschedulable: 0/2 nodes are available: 2 Too many pods.; 1 pod cannot pull image "ghcr.io/example/planner:9" of container agent: manifest unknown`,
				permanent: true},
			found: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, found := podHoldup(tc.pods)
			if found != tc.found {
				t.Fatalf("%s: found = %v, want %v", tc.reason, found, tc.found)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(holdup{})); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestWaitDeploymentAvailable_Blocked pins that a quota refusal (the ReplicaFailure condition)
// ends the wait at once with the controller's message, long before the deadline.
func TestWaitDeploymentAvailable_Blocked(t *testing.T) {
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "planner", Namespace: "team1", Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "planner"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
			Message: `pods "planner-7d9f" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0`}}}}
	a := &Applier{typed: fake.NewClientset(d)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	var reported []string
	_, err := a.WaitDeploymentAvailable(ctx, "team1", "planner", func(s DeploymentStatus) { reported = append(reported, s.HeldBy) })
	var werr *WaitError
	if !errors.As(err, &werr) || !werr.Blocked {
		t.Fatalf("err = %v, want a blocked WaitError", err)
	}
	if !strings.Contains(err.Error(), "exceeded quota") || !strings.Contains(err.Error(), "gave up waiting") {
		t.Errorf("error %q does not say the quota blocks the rollout", err)
	}
	if len(reported) == 0 || !strings.Contains(reported[len(reported)-1], "exceeded quota") {
		t.Errorf("progress reports %q, want the quota", reported)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %s for a cause that cannot clear", waited)
	}
}

// TestWaitDeploymentAvailable_ReportsHoldup pins that a stalled rollout's pods are asked why,
// and that the answer reaches the progress report and the timeout error.
func TestWaitDeploymentAvailable_ReportsHoldup(t *testing.T) {
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "planner", Namespace: "team1", Generation: 1},
		Spec:   appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "planner"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1}}
	p := pod("planner-1", unschedulable)
	a := &Applier{typed: fake.NewClientset(d, &p)}
	ctx, cancel := context.WithTimeout(context.Background(), holdupAfter+3*time.Second)
	defer cancel()
	var reported []string
	_, err := a.WaitDeploymentAvailable(ctx, "team1", "planner", func(s DeploymentStatus) {
		if s.HeldBy != "" {
			reported = append(reported, s.HeldBy)
		}
	})
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "1 pod unschedulable: 0/2 nodes are available") {
		t.Errorf("err = %v, want a timeout that names the unschedulable pod", err)
	}
	if len(reported) == 0 || !strings.Contains(reported[0], "unschedulable") {
		t.Errorf("progress reports %q, want the unschedulable pod", reported)
	}
}
