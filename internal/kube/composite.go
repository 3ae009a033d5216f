package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Sync applies every object in order, then (with prune) deletes the composite's objects that are
// no longer rendered. It stops at the first failure; what was applied before stays, and the next
// apply converges (apply is idempotent). It returns the objects as the server holds them after
// the apply, so that the caller need not read them again.
func (a *Applier) Sync(ctx context.Context, sel CompositeSelector, objs []*unstructured.Unstructured, prune bool) (applied map[Ref]*unstructured.Unstructured, pruned []Ref, err error) {
	if sel.Namespace != "" { // a selector across namespaces applies its own
		exists, nsErr := a.NamespaceExists(ctx, sel.Namespace)
		switch {
		case apierrors.IsForbidden(nsErr):
			// Credentials confined to the namespace (a Role, no ClusterRole) may not read it:
			// the applies below go on, and say whether the namespace exists when they may.
		case nsErr != nil:
			return nil, nil, fmt.Errorf("get namespace %s: %w", sel.Namespace, nsErr)
		case !exists:
			return nil, nil, errNoNamespace(sel.Namespace)
		}
	}
	applied = map[Ref]*unstructured.Unstructured{}
	for _, o := range objs {
		live, err := a.Apply(ctx, o)
		if err != nil {
			if ns := o.GetNamespace(); ns != "" && isNamespaceNotFound(err) {
				return applied, nil, fmt.Errorf("%w (%v)", errNoNamespace(ns), err)
			}
			return applied, nil, err
		}
		applied[RefOf(o)] = live
	}
	if !prune {
		return applied, nil, nil
	}
	pruned, err = a.Prune(ctx, sel, objs)
	return applied, pruned, err
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

// Observe reads every desired object and compares it with the live one. Objects in known (as
// returned by Sync) are not read again.
func (a *Applier) Observe(ctx context.Context, objs []*unstructured.Unstructured, known map[Ref]*unstructured.Unstructured) ([]Observation, error) {
	out := make([]Observation, 0, len(objs))
	for _, o := range objs {
		ref := RefOf(o)
		live, ok := known[ref]
		if !ok && a.reads != nil && ref.Namespace != "" {
			var err error
			if live, ok, err = a.reads.get(ctx, ref); err != nil {
				return nil, err
			}
		}
		if !ok {
			var err error
			if live, err = a.Get(ctx, ref); err != nil {
				return nil, err
			}
		}
		obs := Observation{Ref: ref, Exists: live != nil, Live: live}
		if live != nil {
			obs.Drift = Drift(o, live, contract.FieldManager)
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

func errNoNamespace(namespace string) error {
	return fmt.Errorf("namespace %q does not exist: create it first (for example with a kubernetes_namespace resource) or choose another namespace", namespace)
}

// isNamespaceNotFound tells whether an error is the API server's answer to a write into a
// namespace that does not exist (404, the details naming the namespace, not the object).
func isNamespaceNotFound(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "namespaces"
}
