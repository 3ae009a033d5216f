package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Applier applies, observes, prunes and deletes composed objects with server-side apply under
// one field manager.
type Applier struct {
	dynamic dynamic.Interface
	typed   kubernetes.Interface
	mapper  meta.RESTMapper
	// reads, when set, serves Observe from lists (ReadFromLists).
	reads *listReads
}

// ReadFromLists has Observe read objects from one LIST per kind and namespace, each standing
// for ttl (see listReads). Call it before the applier is shared.
func (a *Applier) ReadFromLists(ttl time.Duration) {
	a.reads = &listReads{ttl: ttl, list: a.listRaw, lists: map[listKey]*rawList{}}
}

// forgetLists drops what a write to ref makes stale.
func (a *Applier) forgetLists(ref Ref) {
	if a.reads != nil {
		a.reads.forget(ref.GVK, ref.Namespace)
	}
}

// NewApplier returns an applier for a cluster. Discovery is cached and lazy: the first use of a
// kind costs one request for its group.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &Applier{dynamic: dyn, typed: typed, mapper: mapper}, nil
}

// Typed is the typed clientset, for waits and events.
func (a *Applier) Typed() kubernetes.Interface { return a.typed }

// Ref names one object.
type Ref struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.GVK.Kind + " " + r.Name
	}
	return r.GVK.Kind + " " + r.Namespace + "/" + r.Name
}

// RefOf returns the ref of an object.
func RefOf(obj *unstructured.Unstructured) Ref {
	return Ref{GVK: obj.GroupVersionKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// mapping is the kind's resource and scope, from the cached discovery.
func (a *Applier) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("the cluster does not serve %s (is its CRD installed?): %w", gvk, err)
	}
	return m, err
}

func (a *Applier) resource(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, error) {
	m, err := a.mapping(gvk)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dynamic.Resource(m.Resource).Namespace(namespace), nil
	}
	return a.dynamic.Resource(m.Resource), nil
}

// Apply server-side applies an object and returns what the server holds afterwards. The
// provider owns every field it renders, so conflicts with other managers are forced: an
// out-of-band edit of one of those fields is drift, and apply repairs it.
func (a *Applier) Apply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return a.ApplyAs(ctx, obj, contract.FieldManager)
}

// ApplyAs is Apply under another field manager: for the few fields the provider sets on objects
// it does not own (a label on someone's namespace), so that applying the object without the
// field later removes exactly that field and nothing else.
func (a *Applier) ApplyAs(ctx context.Context, obj *unstructured.Unstructured, manager string) (*unstructured.Unstructured, error) {
	ref := RefOf(obj)
	ri, err := a.resource(ref.GVK, ref.Namespace)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", ref, err)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	force := true
	// Before and after: a list taken while the write is under way may hold either version.
	a.forgetLists(ref)
	defer a.forgetLists(ref)
	out, err := ri.Patch(ctx, ref.Name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: manager, Force: &force})
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", ref, explainStatus(err))
	}
	return out, nil
}

// Get returns the live object, or nil when it does not exist.
func (a *Applier) Get(ctx context.Context, ref Ref) (*unstructured.Unstructured, error) {
	ri, err := a.resource(ref.GVK, ref.Namespace)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, err)
	}
	obj, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, err)
	}
	return obj, nil
}

// List returns the objects of a kind in a namespace that match a label selector.
func (a *Applier) List(ctx context.Context, gvk schema.GroupVersionKind, namespace string, selector map[string]string) ([]unstructured.Unstructured, error) {
	ri, err := a.resource(gvk, namespace)
	if err != nil {
		return nil, err
	}
	list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", gvk.Kind, namespace, err)
	}
	return list.Items, nil
}

// Delete deletes an object; one already gone counts as deleted.
func (a *Applier) Delete(ctx context.Context, ref Ref) error {
	ri, err := a.resource(ref.GVK, ref.Namespace)
	if err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	policy := metav1.DeletePropagationBackground
	a.forgetLists(ref)
	defer a.forgetLists(ref)
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	return nil
}

// WaitGone waits until none of the objects exists any more.
func (a *Applier) WaitGone(ctx context.Context, refs []Ref) error {
	pending := append([]Ref(nil), refs...)
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var still []Ref
		for _, r := range pending {
			obj, err := a.Get(ctx, r)
			if err != nil {
				return false, err
			}
			if obj != nil {
				still = append(still, r)
			}
		}
		pending = still
		return len(pending) == 0, nil
	})
	if err != nil {
		return &WaitError{What: "deletion of " + joinRefs(pending), Err: err}
	}
	return nil
}

// CompositeSelector selects the objects of one composite in its namespace.
type CompositeSelector struct {
	Namespace string
	Labels    map[string]string
	Kinds     []schema.GroupVersionKind
}

// Owned lists every object the selector matches, across its kinds.
func (a *Applier) Owned(ctx context.Context, sel CompositeSelector) ([]Ref, error) {
	var refs []Ref
	for _, gvk := range sel.Kinds {
		if _, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); meta.IsNoMatchError(err) {
			continue // a kind the cluster does not serve has no objects
		}
		items, err := a.List(ctx, gvk, sel.Namespace, sel.Labels)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			refs = append(refs, Ref{GVK: gvk, Namespace: it.GetNamespace(), Name: it.GetName()})
		}
	}
	return refs, nil
}

// Prune deletes the composite's objects that are not in keep, and returns what it deleted.
func (a *Applier) Prune(ctx context.Context, sel CompositeSelector, keep []*unstructured.Unstructured) ([]Ref, error) {
	wanted := map[Ref]bool{}
	for _, o := range keep {
		wanted[RefOf(o)] = true
	}
	owned, err := a.Owned(ctx, sel)
	if err != nil {
		return nil, err
	}
	var pruned []Ref
	for _, r := range owned {
		if wanted[r] {
			continue
		}
		if err := a.Delete(ctx, r); err != nil {
			return pruned, err
		}
		pruned = append(pruned, r)
	}
	return pruned, nil
}

// NamespaceExists reports whether a namespace exists, so that a missing one gives a clear error
// before any object is applied.
func (a *Applier) NamespaceExists(ctx context.Context, name string) (bool, error) {
	_, err := a.typed.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// WaitError says what did not become ready and why.
type WaitError struct {
	What   string
	Reason string
	// Blocked: the wait gave up before its deadline, on a cause that cannot clear by itself.
	Blocked bool
	Err     error
}

func (e *WaitError) Error() string {
	if e.Blocked {
		return "gave up waiting for " + e.What + ", which cannot happen until this is fixed: " + e.Reason
	}
	msg := "timed out waiting for " + e.What
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil && !errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, context.Canceled) {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *WaitError) Unwrap() error { return e.Err }

// DeploymentStatus is the readiness of a Deployment.
type DeploymentStatus struct {
	Replicas, ReadyReplicas, UpdatedReplicas, AvailableReplicas int32
	Complete                                                    bool
	Reason                                                      string
	// HeldBy is what the cluster says holds the rollout back (unschedulable pods, image pull
	// errors, crash loops, failing probes, pods that may not be created), when asked.
	HeldBy string
}

// deploymentStatus decides whether a rollout is complete, as `kubectl rollout status` does.
func deploymentStatus(d *appsv1.Deployment) DeploymentStatus {
	s := DeploymentStatus{Replicas: d.Status.Replicas, ReadyReplicas: d.Status.ReadyReplicas,
		UpdatedReplicas: d.Status.UpdatedReplicas, AvailableReplicas: d.Status.AvailableReplicas}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			s.Reason = "progress deadline exceeded: " + c.Message
			return s
		}
	}
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		s.Reason = "the controller has not observed the latest spec yet"
	case d.Status.UpdatedReplicas < want:
		s.Reason = fmt.Sprintf("%d of %d replicas updated", d.Status.UpdatedReplicas, want)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		s.Reason = fmt.Sprintf("%d old replicas are pending termination", d.Status.Replicas-d.Status.UpdatedReplicas)
	case d.Status.AvailableReplicas < d.Status.UpdatedReplicas:
		s.Reason = fmt.Sprintf("%d of %d updated replicas available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas)
	default:
		s.Complete = true
	}
	return s
}

// A rollout is asked what holds it back once it has made no progress for holdupAfter, then at
// most every holdupInterval.
const (
	holdupAfter    = 2 * time.Second
	holdupInterval = 2 * time.Second
)

// DeploymentStatusOf is the readiness of a Deployment already read (as Get returns it), so
// that a refresh reads each Deployment once.
func DeploymentStatusOf(obj *unstructured.Unstructured) (*DeploymentStatus, error) {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
		return nil, fmt.Errorf("Deployment %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	s := deploymentStatus(&d)
	return &s, nil
}

// ReadDeployment returns a Deployment's readiness, or nil when it does not exist.
func (a *Applier) ReadDeployment(ctx context.Context, namespace, name string) (*DeploymentStatus, error) {
	d, err := a.typed.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := deploymentStatus(d)
	return &s, nil
}

// WaitDeploymentAvailable waits until a Deployment's rollout is complete. On timeout the error
// carries the rollout state, the Deployment's conditions and recent warning events of it and its
// pods. progress is called whenever the state changes.
//
// A rollout that makes no progress for a while is asked why (its pods, its ReplicaFailure
// condition; at most every holdupInterval, so that a healthy apply of many agents costs no
// extra requests), and the answer goes into the progress report. A cause that cannot clear by
// itself — an image that does not exist, a quota, a Pod Security refusal — ends the wait at once
// with a *WaitError whose Blocked is set.
func (a *Applier) WaitDeploymentAvailable(ctx context.Context, namespace, name string, progress func(DeploymentStatus)) (DeploymentStatus, error) {
	var last DeploymentStatus
	var blocked *holdup
	what := fmt.Sprintf("Deployment %s/%s to become Available", namespace, name)
	lastChange, lastAsked := time.Now(), time.Time{}
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := a.typed.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, fmt.Errorf("Deployment %s/%s was deleted while waiting for it", namespace, name)
			}
			return false, nil // transient; the deadline bounds retries
		}
		s := deploymentStatus(d)
		now := time.Now()
		seen := last
		seen.HeldBy = ""
		moved := s != seen
		if moved {
			lastChange = now
		}
		if !s.Complete {
			var h holdup
			var ok bool
			if h, ok = replicaFailure(d); !ok && now.Sub(lastChange) >= holdupAfter && now.Sub(lastAsked) >= holdupInterval {
				lastAsked = now
				h, ok = a.rolloutHoldup(ctx, d)
			}
			switch {
			case ok:
				s.HeldBy = h.reason
				if h.permanent {
					blocked = &h
				}
			case !moved:
				s.HeldBy = last.HeldBy // the last cause found still stands
			}
		}
		if s != last && progress != nil {
			progress(s)
		}
		last = s
		return s.Complete || blocked != nil, nil
	})
	if blocked != nil {
		return last, &WaitError{What: what, Reason: blocked.reason, Blocked: true}
	}
	if err == nil {
		return last, nil
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !wait.Interrupted(err) {
		return last, err
	}
	reason := last.Reason
	if last.HeldBy != "" {
		reason += "; " + last.HeldBy
	}
	// Use a fresh context: the operation's own has expired.
	diagCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if extra := a.explainDeployment(diagCtx, namespace, name); extra != "" {
		reason += "; " + extra
	}
	return last, &WaitError{What: what, Reason: reason, Err: err}
}

func (a *Applier) explainDeployment(ctx context.Context, namespace, name string) string {
	var parts []string
	if d, err := a.typed.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
		for _, c := range d.Status.Conditions {
			parts = append(parts, fmt.Sprintf("condition %s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	events, err := a.typed.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err == nil {
		sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].LastTimestamp.After(events.Items[j].LastTimestamp.Time) })
		n := 0
		for _, e := range events.Items {
			if !strings.HasPrefix(e.InvolvedObject.Name, name) || n == 5 {
				continue
			}
			parts = append(parts, fmt.Sprintf("event %s %s: %s", e.InvolvedObject.Kind, e.Reason, e.Message))
			n++
		}
	}
	return strings.Join(parts, "; ")
}

// explainStatus turns an API status error's causes into one readable message.
func explainStatus(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err
	}
	details := status.Status().Details
	if details == nil || len(details.Causes) == 0 {
		return err
	}
	var causes []string
	for _, c := range details.Causes {
		causes = append(causes, fmt.Sprintf("%s: %s", c.Field, c.Message))
	}
	return fmt.Errorf("%w [%s]", err, strings.Join(causes, "; "))
}

func joinRefs(refs []Ref) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// ToTyped converts an unstructured object to a typed one, for reading status fields.
func ToTyped(obj *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into)
}

// ApplySecret writes an Opaque Secret with server-side apply. Its values are never logged.
func (a *Applier) ApplySecret(ctx context.Context, namespace, name string, data map[string]string) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": namespace,
			"labels": map[string]any{"app.kubernetes.io/managed-by": contract.ManagedBy}},
		"type": "Opaque",
	}}
	sd := map[string]any{}
	for k, v := range data {
		sd[k] = v
	}
	obj.Object["stringData"] = sd
	_, err := a.Apply(ctx, obj)
	if err != nil {
		// The error of a failed apply never carries the request body.
		return fmt.Errorf("store Secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

// DeleteSecret deletes a Secret; one already gone counts as deleted.
func (a *Applier) DeleteSecret(ctx context.Context, namespace, name string) error {
	return a.Delete(ctx, Ref{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, Namespace: namespace, Name: name})
}
