package provider

// The engine every composite runs on — agents, tools and the platform alike: the objects a plan
// expects (all in sync, so that recorded drift shows as a change), apply with pruning, the
// rollout wait that says why it is held, and the observation that turns the cluster back into
// `objects` and names what is out of sync. What differs between composites (identities, the
// platform's namespace and enrolment) happens around these steps, not inside them.

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

// plannedObjects is the `objects` value a plan expects: every rendered object, in sync.
func plannedObjects(ctx context.Context, out *composition.Output, extra ...objectModel) (types.List, diag.Diagnostics) {
	obs := make([]kube.Observation, len(out.Objects))
	for i, o := range out.Objects {
		obs[i] = kube.Observation{Ref: kube.RefOf(o.Object), Exists: true}
	}
	return objectsValue(ctx, out, obs, extra...)
}

func renderedObjects(out *composition.Output) []*unstructured.Unstructured {
	objs := make([]*unstructured.Unstructured, len(out.Objects))
	for i, o := range out.Objects {
		objs[i] = o.Object
	}
	return objs
}

// syncComposed applies a composite's rendered objects and, unless creating (a composite being
// created owns nothing yet), prunes those it owns that are no longer rendered. It returns the
// objects as the server holds them after the apply.
func syncComposed(ctx context.Context, applier *kube.Applier, sel kube.CompositeSelector, out *composition.Output, creating bool) (map[kube.Ref]*unstructured.Unstructured, error) {
	objs := renderedObjects(out)
	tflog.Debug(ctx, "applying composed objects", map[string]any{"selector": sel.Labels, "objects": len(objs), "revision": out.Revision})
	live, pruned, err := applier.Sync(ctx, sel, objs, !creating)
	for _, r := range pruned {
		tflog.Info(ctx, "pruned object no longer rendered", map[string]any{"object": r.String()})
	}
	return live, err
}

// waitRollout waits until a composite's Deployment is Available, logging its progress and, as a
// warning, what holds it back.
func waitRollout(ctx context.Context, applier *kube.Applier, namespace, name string) (kube.DeploymentStatus, error) {
	return applier.WaitDeploymentAvailable(ctx, namespace, name, func(s kube.DeploymentStatus) {
		fields := map[string]any{
			"deployment": namespace + "/" + name, "ready": s.ReadyReplicas, "updated": s.UpdatedReplicas,
			"available": s.AvailableReplicas, "waiting_for": s.Reason,
		}
		if s.HeldBy != "" {
			// What holds the rollout back is worth a warning: it is the answer to a long
			// "Still creating...".
			fields["held_by"] = s.HeldBy
			tflog.Warn(ctx, "rollout held back", fields)
			return
		}
		tflog.Info(ctx, "waiting for rollout", fields)
	})
}

// observeComposed reads a composite's rendered objects (those in known, as an apply returned
// them, are not read again) and lists the ones out of sync: "Kind ns/name: field, field".
func observeComposed(ctx context.Context, applier *kube.Applier, out *composition.Output, known map[kube.Ref]*unstructured.Unstructured) ([]kube.Observation, []string, error) {
	obs, err := applier.Observe(ctx, renderedObjects(out), known)
	if err != nil {
		return nil, nil, err
	}
	var outOfSync []string
	for _, o := range obs {
		if !o.InSync() {
			tflog.Info(ctx, "composed object out of sync", map[string]any{"object": o.Ref.String(), "exists": o.Exists, "drift": o.Drift})
			outOfSync = append(outOfSync, o.Ref.String()+": "+strings.Join(o.Drift, ", "))
		}
	}
	return obs, outOfSync, nil
}
