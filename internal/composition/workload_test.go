package composition_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// TestValidate_Workload pins the errors of the pod settings, each on the attribute path the
// provider reports it at.
func TestValidate_Workload(t *testing.T) {
	secs := int64(30)
	cases := map[string]struct {
		reason string
		w      composition.Workload
		want   []string
	}{
		"valid settings": {w: composition.Workload{Labels: map[string]string{"team": "a"}, NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"},
			Tolerations: []composition.Toleration{{Operator: "Exists"}}, EnvFrom: []composition.EnvFrom{{Secret: "keys", Prefix: "K_"}}}},
		"a label the provider owns": {
			reason: "selectors and discovery depend on it",
			w:      composition.Workload{Labels: map[string]string{"app.kubernetes.io/name": "x"}, PodLabels: map[string]string{"kagenti.io/type": "tool"}},
			want:   []string{"labels[app.kubernetes.io/name]", "pod.labels[kagenti.io/type]"},
		},
		"an invalid label value": {
			w:    composition.Workload{Labels: map[string]string{"team": "not valid!"}},
			want: []string{"labels"},
		},
		"an annotation under the provider's domain": {
			w:    composition.Workload{Annotations: map[string]string{"kagenti.io/spec": "{}"}},
			want: []string{"annotations[kagenti.io/spec]"},
		},
		"tolerations": {
			w: composition.Workload{Tolerations: []composition.Toleration{{Operator: "Equal"}, {Key: "a", Operator: "Exists", Value: "v"},
				{Key: "a", Operator: "Maybe"}, {Key: "a", Effect: "NoSchedule", TolerationSeconds: &secs}}},
			want: []string{"pod.tolerations[0].key", "pod.tolerations[1].value", "pod.tolerations[2].operator", "pod.tolerations[3].toleration_seconds"},
		},
		"env_from needs one source": {
			w:    composition.Workload{EnvFrom: []composition.EnvFrom{{}, {ConfigMap: "a", Secret: "b"}, {ConfigMap: "a", Prefix: "1X"}}},
			want: []string{"pod.env_from[0]", "pod.env_from[1]", "pod.env_from[2].prefix"},
		},
		"annotations for an account the provider does not create": {
			w:    composition.Workload{ServiceAccount: "shared", ServiceAccountAnnotations: map[string]string{"a": "b"}},
			want: []string{"pod.service_account_annotations"},
		},
		"bad names": {
			w:    composition.Workload{ImagePullSecrets: []string{"Not_Valid"}, ServiceAccount: "UPPER"},
			want: []string{"pod.image_pull_secrets[0]", "pod.service_account"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := composition.Input{Kind: composition.KindTool, Name: "web", Namespace: "research", Transport: "sse", Image: "example.com/web:1", Workload: tc.w}
			var got []string
			for _, e := range composition.Validate(in) {
				got = append(got, e.Field)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestInput_Published pins what the Service carries for discovery and import: no env values,
// patches or custom templates (the router, which reads Services, must not see them).
func TestInput_Published(t *testing.T) {
	in := composition.Input{Name: "a", Env: map[string]string{"TOKEN": "s3cret"},
		Patches:   []composition.Patch{{Target: "deployment", Type: "merge", Patch: `{"metadata":{"annotations":{"k":"s3cret"}}}`}},
		Templates: map[string]string{"service": "s3cret"}}
	got := in.Published()
	want := composition.Input{Name: "a", Env: map[string]string{"TOKEN": ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("published input (-want +got):\n%s", diff)
	}
	if in.Env["TOKEN"] != "s3cret" || len(in.Patches) != 1 {
		t.Errorf("Published changed the input itself: %+v", in)
	}
}
