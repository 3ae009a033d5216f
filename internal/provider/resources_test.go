package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// TestResourcesFromModel: a resources attribute reads into the composition's form, and one with
// a value not known at plan time (say, from another resource) reads as not known yet rather than
// failing the plan.
func TestResourcesFromModel(t *testing.T) {
	ctx := context.Background()
	obj := func(requests types.Map) types.Object {
		return types.ObjectValueMust(resourcesAttrTypes, map[string]attr.Value{"requests": requests, "limits": types.MapNull(types.StringType)})
	}
	r, ok, diags := resourcesFromModel(ctx, obj(types.MapValueMust(types.StringType, map[string]attr.Value{"cpu": types.StringValue("250m")})))
	if diags.HasError() || !ok || r == nil || r.Requests["cpu"] != "250m" || r.Limits != nil {
		t.Fatalf("known: %+v %v %v", r, ok, diags)
	}
	_, ok, diags = resourcesFromModel(ctx, obj(types.MapValueMust(types.StringType, map[string]attr.Value{"cpu": types.StringUnknown()})))
	if diags.HasError() || ok {
		t.Fatalf("an unknown request: ok=%v %v, want not known and no error", ok, diags)
	}
	back, diags := resourcesToModel(ctx, r)
	if diags.HasError() || !back.Equal(obj(types.MapValueMust(types.StringType, map[string]attr.Value{"cpu": types.StringValue("250m")}))) {
		t.Fatalf("read back: %v %v", back, diags)
	}
}
