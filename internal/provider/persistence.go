package provider

// A checkpoint volume holds an agent's data: the provider plans only what Kubernetes can do to a
// PersistentVolumeClaim, and never deletes one because an attribute went away.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// claimOf returns the volume persistence of an input, nil when it has none.
func claimOf(in *composition.Input) *composition.Persistence {
	if in == nil || in.Persistence == nil || in.Persistence.Size == "" {
		return nil
	}
	return in.Persistence
}

// priorInput reads the input last applied from private state, nil when there is none.
func priorInput(ctx context.Context, p privateGetter) *composition.Input {
	if p == nil {
		return nil
	}
	raw, _ := p.GetKey(ctx, privateInputKey)
	if len(raw) == 0 {
		return nil
	}
	var in composition.Input
	if json.Unmarshal(raw, &in) != nil {
		return nil
	}
	return &in
}

// checkPersistenceChange refuses, at plan time, the changes a claim cannot take (its storage
// class is immutable, it never shrinks), and warns that a claim whose persistence is removed is
// kept, with its data, rather than deleted.
func checkPersistenceChange(prior, next *composition.Input) diag.Diagnostics {
	var diags diag.Diagnostics
	was, now := claimOf(prior), claimOf(next)
	if was == nil {
		return diags
	}
	claim := next.Namespace + "/" + next.Name + "-data"
	if now == nil {
		diags.AddAttributeWarning(path.Root("persistence"), "Checkpoint Volume Kept",
			fmt.Sprintf("persistence is removed, but PersistentVolumeClaim %s holds the agent's checkpoints: the apply keeps it, "+
				"with its data, and stops managing it. Delete it yourself (kubectl delete pvc -n %s %s-data) when the data is no "+
				"longer needed; destroying the agent while persistence is set deletes it too.", claim, next.Namespace, next.Name))
		return diags
	}
	if now.StorageClass != was.StorageClass {
		diags.AddAttributeError(path.Root("persistence").AtName("storage_class"), "Storage Class Cannot Change",
			fmt.Sprintf("PersistentVolumeClaim %s was created with storage class %q; Kubernetes cannot change a claim's class. Keep %q, "+
				"or copy the data to a new volume yourself and replace the agent (terraform apply -replace=<address>), which deletes the "+
				"claim and its data.", claim, was.StorageClass, was.StorageClass))
	}
	oldSize, err1 := resource.ParseQuantity(was.Size)
	newSize, err2 := resource.ParseQuantity(now.Size)
	if err1 == nil && err2 == nil && newSize.Cmp(oldSize) < 0 {
		diags.AddAttributeError(path.Root("persistence").AtName("size"), "Volume Cannot Shrink",
			fmt.Sprintf("PersistentVolumeClaim %s is %s; Kubernetes only grows claims (and only where the storage class allows "+
				"expansion). Keep %s or more.", claim, was.Size, was.Size))
	}
	return diags
}

// releasedClaim is the claim an earlier apply created for prior, stripped of the labels that
// make it the composite's, when next no longer has persistence: applying it under the provider's
// field manager removes those labels (and nothing else, the spec is unchanged), so pruning leaves
// the claim and its data alone.
func (e *compositeEngine) releasedClaim(prior, next *composition.Input) (*unstructured.Unstructured, error) {
	if claimOf(prior) == nil || claimOf(next) != nil {
		return nil, nil
	}
	out, err := e.render(*prior)
	if err != nil {
		return nil, err
	}
	for _, o := range out.Objects {
		if o.Key != composition.KeyPVC {
			continue
		}
		pvc := o.Object.DeepCopy()
		pvc.SetLabels(nil)
		pvc.SetAnnotations(nil)
		return pvc, nil
	}
	return nil, nil
}

// release applies the stripped claim.
func (e *compositeEngine) release(ctx context.Context, pvc *unstructured.Unstructured) error {
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	_, err = applier.Apply(ctx, pvc)
	return err
}
