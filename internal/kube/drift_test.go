package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDrift(t *testing.T) {
	cases := map[string]struct {
		reason        string
		desired, live map[string]any
		want          []string
	}{
		"server additions are not drift": {
			reason:  "status and defaulted fields are not ours",
			desired: map[string]any{"spec": map[string]any{"replicas": int64(2)}},
			live:    map[string]any{"spec": map[string]any{"replicas": int64(2), "strategy": "RollingUpdate"}, "status": map[string]any{}},
		},
		"a changed value is drift": {
			desired: map[string]any{"spec": map[string]any{"replicas": int64(2)}},
			live:    map[string]any{"spec": map[string]any{"replicas": int64(5)}},
			want:    []string{"spec.replicas"},
		},
		"a removed list element is drift": {
			desired: map[string]any{"env": []any{map[string]any{"name": "A"}, map[string]any{"name": "B"}}},
			live:    map[string]any{"env": []any{map[string]any{"name": "A"}}},
			want:    []string{"env"},
		},
		"a changed list element is drift at its index": {
			desired: map[string]any{"env": []any{map[string]any{"name": "A", "value": "1"}}},
			live:    map[string]any{"env": []any{map[string]any{"name": "A", "value": "2"}}},
			want:    []string{"env[0].value"},
		},
		"zero values the server omits are not drift": {
			reason:  "an empty env value is not serialized",
			desired: map[string]any{"value": "", "flag": false, "labels": map[string]any{}},
			live:    map[string]any{},
		},
		"quantities compare by value": {
			desired: map[string]any{"cpu": "1000m", "port": int64(80)},
			live:    map[string]any{"cpu": "1", "port": float64(80)},
		},
		"a missing map is drift": {
			desired: map[string]any{"metadata": map[string]any{"labels": map[string]any{"a": "b"}}},
			live:    map[string]any{"metadata": map[string]any{}},
			want:    []string{"metadata.labels"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Drift(tc.desired, tc.live)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}
