package provider

import (
	"math"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env   string
		limit int64
		set   bool
		err   bool
	}{
		{env: "", set: false},
		{env: "off", limit: math.MaxInt64, set: true},
		{env: "512Mi", limit: 512 << 20, set: true},
		{env: "1Gi", limit: 1 << 30, set: true},
		{env: "1073741824", limit: 1 << 30, set: true},
		{env: "512MiB", err: true}, // GOMEMLIMIT's spelling, not a Kubernetes quantity
		{env: "lots", err: true},
		{env: "0", err: true},
		{env: "-1Gi", err: true},
		{env: "32Mi", err: true}, // too small for a plan of anything
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(memoryLimitEnv, tc.env)
			limit, set, err := memoryLimit()
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "set it to off or to a size of at least 64Mi") {
					t.Fatalf("memoryLimit() error = %v, want one that says how to fix it", err)
				}
				return
			}
			if err != nil || limit != tc.limit || set != tc.set {
				t.Fatalf("memoryLimit() = %d, %t, %v; want %d, %t", limit, set, err, tc.limit, tc.set)
			}
		})
	}
}

// The provider applies KAGENTI_PROVIDER_MEMORY_LIMIT when it is configured, and a value it
// cannot read fails the plan with the fix (a unit test: no backend is needed).
func TestProvider_MemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	config := `provider "kagenti" {}
resource "kagenti_agent" "a" {
  name      = "a"
  namespace = "team1"
  framework = "langgraph"
  image     = "ghcr.io/x/y:1"
}
`

	t.Setenv(memoryLimitEnv, "512MiB")
	unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
		Config:      config,
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`(?s)Invalid KAGENTI_PROVIDER_MEMORY_LIMIT.*set it to off or to a size`),
	}}})

	t.Setenv(memoryLimitEnv, "768Mi")
	unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
		Config:             config,
		PlanOnly:           true,
		ExpectNonEmptyPlan: true,
	}}})
	if got := debug.SetMemoryLimit(-1); got != 768<<20 {
		t.Errorf("memory limit after configuring with 768Mi = %d, want %d", got, 768<<20)
	}
}
