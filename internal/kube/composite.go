package kube

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Sync applies every object in order, then prunes the composite's objects that are no longer
// rendered. It stops at the first failure; what was applied before stays, and the next apply
// converges (apply is idempotent).
func (a *Applier) Sync(ctx context.Context, sel CompositeSelector, objs []*unstructured.Unstructured) (pruned []Ref, err error) {
	ok, err := a.NamespaceExists(ctx, sel.Namespace)
	if err != nil {
		return nil, fmt.Errorf("get namespace %s: %w", sel.Namespace, err)
	}
	if !ok {
		return nil, fmt.Errorf("namespace %q does not exist: create it first (for example with a kubernetes_namespace resource) or choose another namespace", sel.Namespace)
	}
	for _, o := range objs {
		if _, err := a.Apply(ctx, o); err != nil {
			return nil, err
		}
	}
	return a.Prune(ctx, sel, objs)
}

// Observation is what the cluster holds for one desired object.
type Observation struct {
	Ref    Ref
	Exists bool
	// Drift lists the fields whose live value differs from the desired one.
	Drift []string
	Live  *unstructured.Unstructured
}

// InSync reports whether the object exists and matches.
func (o Observation) InSync() bool { return o.Exists && len(o.Drift) == 0 }

// Observe reads every desired object and compares it with the live one.
func (a *Applier) Observe(ctx context.Context, objs []*unstructured.Unstructured) ([]Observation, error) {
	out := make([]Observation, 0, len(objs))
	for _, o := range objs {
		ref := RefOf(o)
		live, err := a.Get(ctx, ref)
		if err != nil {
			return nil, err
		}
		obs := Observation{Ref: ref, Exists: live != nil, Live: live}
		if live != nil {
			obs.Drift = Drift(o.Object, live.Object)
		}
		out = append(out, obs)
	}
	return out, nil
}

// DeleteAll deletes every object of the composite and waits until they are gone.
func (a *Applier) DeleteAll(ctx context.Context, sel CompositeSelector) error {
	owned, err := a.Owned(ctx, sel)
	if err != nil {
		return err
	}
	for _, r := range owned {
		if err := a.Delete(ctx, r); err != nil {
			return err
		}
	}
	return a.WaitGone(ctx, owned)
}
