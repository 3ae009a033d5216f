package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A rollout that does not complete is held back by something: the scheduler finds no node, an
// image cannot be pulled, a container crashes, a probe fails, or the ReplicaSet may not even
// create its pods (quota, Pod Security). The wait reports that cause while it waits and in its
// error, and gives up at once on a cause that cannot clear by itself, instead of waiting out the
// timeout in silence.

// holdup is why a rollout is not complete yet.
type holdup struct {
	// reason reads as a sentence fragment: `2 pods unschedulable: 0/2 nodes are available: ...`.
	reason string
	// permanent: the cause cannot clear without a change (a missing image, a quota, a policy).
	permanent bool
}

// replicaFailure reads the Deployment's ReplicaFailure condition: the controller could not
// create pods. Quota and admission refusals (Pod Security, webhooks) stay until someone acts.
func replicaFailure(d *appsv1.Deployment) (holdup, bool) {
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return holdup{reason: "pods cannot be created: " + c.Message, permanent: true}, true
		case c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded":
			return holdup{reason: "progress deadline exceeded: " + c.Message, permanent: true}, true
		}
	}
	return holdup{}, false
}

// podHoldup looks at the pods of a rollout and says what keeps them from being ready. Pods
// that are ready are ignored; causes are counted, the commonest first.
func podHoldup(pods []corev1.Pod) (holdup, bool) {
	type cause struct {
		text      string
		permanent bool
		pods      int
	}
	causes := map[string]*cause{}
	add := func(text string, permanent bool) {
		if c, ok := causes[text]; ok {
			c.pods++
			return
		}
		causes[text] = &cause{text: text, permanent: permanent, pods: 1}
	}
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || podReady(p) {
			continue
		}
		if text, permanent, ok := podCause(p); ok {
			add(text, permanent)
		}
	}
	if len(causes) == 0 {
		return holdup{}, false
	}
	list := make([]*cause, 0, len(causes))
	for _, c := range causes {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].pods != list[j].pods {
			return list[i].pods > list[j].pods
		}
		return list[i].text < list[j].text
	})
	var h holdup
	parts := make([]string, 0, len(list))
	for _, c := range list {
		noun := "pod"
		if c.pods > 1 {
			noun = "pods"
		}
		parts = append(parts, fmt.Sprintf("%d %s %s", c.pods, noun, c.text))
		h.permanent = h.permanent || c.permanent
	}
	h.reason = strings.Join(parts, "; ")
	return h, true
}

// podCause is why one pod is not ready, if it says.
func podCause(p *corev1.Pod) (text string, permanent, ok bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			// Nodes can be added or freed: worth waiting for, and worth saying.
			return "unschedulable: " + c.Message, false, true
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, s := range statuses {
		if w := s.State.Waiting; w != nil {
			switch w.Reason {
			case "InvalidImageName":
				return fmt.Sprintf("cannot pull image %q of container %s: %s", s.Image, s.Name, w.Message), true, true
			case "ErrImagePull", "ImagePullBackOff":
				// A registry that says the image does not exist will keep saying so; auth and
				// network errors may clear.
				return fmt.Sprintf("cannot pull image %q of container %s: %s", s.Image, s.Name, w.Message), imageMissing(w.Message), true
			case "CrashLoopBackOff":
				text := fmt.Sprintf("container %s is crash-looping (%d restarts)", s.Name, s.RestartCount)
				if t := s.LastTerminationState.Terminated; t != nil {
					text += fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
				}
				return text, false, true
			case "CreateContainerConfigError", "CreateContainerError":
				return fmt.Sprintf("container %s cannot be created: %s", s.Name, w.Message), false, true
			}
		}
		if s.State.Running != nil && !s.Ready {
			return fmt.Sprintf("container %s is running but not ready (its readiness probe fails)", s.Name), false, true
		}
	}
	return "", false, false
}

// imageMissing reports a pull error that says the image or its tag does not exist.
func imageMissing(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"not found", "manifest unknown", "name unknown", "repository does not exist", "404"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolloutHoldup asks the cluster what holds a Deployment's rollout back: its ReplicaFailure
// condition, else its pods.
func (a *Applier) rolloutHoldup(ctx context.Context, d *appsv1.Deployment) (holdup, bool) {
	if h, ok := replicaFailure(d); ok {
		return h, true
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return holdup{}, false
	}
	pods, err := a.typed.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return holdup{}, false
	}
	return podHoldup(pods.Items)
}
