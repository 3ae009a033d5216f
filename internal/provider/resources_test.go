package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
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

// TestTimeouts_ErrorOnTheAttribute: a timeout that is no duration, or not a positive one, fails
// validation on timeouts.<operation> of every resource that has timeouts, and the detail names
// it (the CLI shows a nested attribute's error at the resource).
func TestTimeouts_ErrorOnTheAttribute(t *testing.T) {
	cases := map[string]struct {
		reason string
		value  string
		want   bool
	}{
		"not a duration":  {"Go cannot parse it", "ten", true},
		"negative":        {"every wait would time out at once", "-5m", true},
		"zero":            {"every wait would time out at once", "0s", true},
		"a real duration": {"the baseline must pass", "15m", false},
	}
	for _, typeName := range []string{"kagenti_agent", "kagenti_tool", "kagenti_platform"} {
		for _, op := range []string{"create", "update", "delete"} {
			for name, tc := range cases {
				t.Run(fmt.Sprintf("%s %s %s", typeName, op, name), func(t *testing.T) {
					diags := validateConfig(t, typeName, false, func(typ tftypes.Object) map[string]tftypes.Value {
						tt := typ.AttributeTypes["timeouts"].(tftypes.Object)
						return map[string]tftypes.Value{"timeouts": nullObject(tt, map[string]tftypes.Value{op: tftypes.NewValue(tftypes.String, tc.value)})}
					})
					// Other attributes are left null, which fails on them; a timeouts error must be on
					// timeouts, never on the resource (no path).
					var got []string
					for _, d := range diags {
						if d.Severity == tfprotov6.DiagnosticSeverityError && (d.Attribute == nil || strings.HasPrefix(d.Attribute.String(), `AttributeName("timeouts")`)) {
							got = append(got, fmt.Sprintf("%s | %s | %s", d.Attribute, d.Summary, d.Detail))
						}
					}
					var want []string
					if tc.want {
						p := tftypes.NewAttributePath().WithAttributeName("timeouts").WithAttributeName(op)
						want = []string{fmt.Sprintf("%s | Invalid Timeout | timeouts.%s must be a positive duration such as 30s, 10m or 1h30m, got %q.", p, op, tc.value)}
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("%s: diagnostics (-want +got):\n%s", tc.reason, diff)
					}
				})
			}
		}
	}
}

// TestCompositeResource_PlanTimeChecks: input no backend is needed to judge fails at plan, under
// the CLI, with the attribute named.
func TestCompositeResource_PlanTimeChecks(t *testing.T) {
	cases := map[string]struct {
		reason string
		body   string
		want   string
	}{
		"otel endpoint is not a URL": {
			"OTEL_EXPORTER_OTLP_ENDPOINT must be something an SDK can dial",
			`otel_endpoint = "::::"`, `otel_endpoint must be an absolute http or https URL with a host`,
		},
		"otel endpoint without a scheme": {
			"a bare host:port is not a URL to the SDKs",
			`otel_endpoint = "collector:4317"`, `otel_endpoint must be an absolute http or https URL`,
		},
		"a label the provider owns": {
			"selectors and discovery depend on the provider's labels",
			`labels = { "app.kubernetes.io/name" = "x" }`, `the provider sets this label itself`,
		},
		"env_from with two sources": {
			"one entry takes one ConfigMap or one Secret",
			`pod = { env_from = [{ config_map = "a", secret = "b" }] }`, `(?s)Invalid Attribute Combination.*config_map`,
		},
		"a toleration with an unknown operator": {
			"Kubernetes knows Equal and Exists",
			`pod = { tolerations = [{ key = "a", operator = "Maybe" }] }`, `(?s)pod.tolerations\[0\].operator.*value must be one of`,
		},
		"annotations for an account the provider does not create": {
			"with service_account set no account is created to carry them",
			`pod = { service_account = "shared", service_account_annotations = { a = "b" } }`, `annotations go on the service account the provider creates`,
		},
		"negative create timeout": {
			"it would fail the apply at once, after a clean plan",
			"timeouts = {\n    create = \"-5m\"\n  }", `(?s)Invalid Timeout.*timeouts.create must be a positive duration`,
		},
	}
	for _, kind := range []string{"agent", "tool"} {
		for name, tc := range cases {
			t.Run(kind+" "+name, func(t *testing.T) {
				extra := ""
				if kind == "agent" {
					extra = `framework = "langgraph"`
				}
				unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
					Config: fmt.Sprintf("resource \"kagenti_%s\" \"bad\" {\n  name      = \"a\"\n  namespace = \"team1\"\n  image     = \"ghcr.io/x/y:1\"\n  %s\n  %s\n}\n",
						kind, extra, tc.body),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`)),
				}}})
			})
		}
	}
}

// TestAgentResource_CardModesPlanTime pins that a card's media types are checked at plan.
func TestAgentResource_CardModesPlanTime(t *testing.T) {
	unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
		Config: "resource \"kagenti_agent\" \"bad\" {\n  name = \"a\"\n  namespace = \"team1\"\n  framework = \"crewai\"\n" +
			"  image = \"ghcr.io/x/y:1\"\n  input_modes = [\"plain text\"]\n}\n",
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`input_modes\[0\][\s\S]*must\s+be\s+a\s+media\s+type`),
	}}})
}
