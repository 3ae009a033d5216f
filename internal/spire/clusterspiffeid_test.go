package spire_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

// TestClusterSPIFFEIDObject pins how an entry spec becomes a ClusterSPIFFEID: the namespace
// selector selects namespaces by name, other selectors become workload selector templates, the
// parent is left to the controller manager.
func TestClusterSPIFFEIDObject(t *testing.T) {
	cases := map[string]struct {
		reason  string
		in      spire.EntrySpec
		want    map[string]any
		wantErr bool
	}{
		"namespace and service account": {
			reason: "the default selectors of an identity",
			in: spire.EntrySpec{SPIFFEID: "spiffe://example.org/ns/team1/sa/ui", ParentID: "spiffe://example.org/ignored",
				Selectors: []string{"k8s:ns:team1", "k8s:sa:ui"}, X509SVIDTTL: time.Hour, JWTSVIDTTL: 5 * time.Minute},
			want: map[string]any{
				"spiffeIDTemplate":          "spiffe://example.org/ns/team1/sa/ui",
				"namespaceSelector":         map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "team1"}},
				"workloadSelectorTemplates": []any{"k8s:sa:ui"},
				"ttl":                       "1h0m0s",
				"jwtTtl":                    "5m0s",
				"className":                 "kagenti",
			},
		},
		"no namespace": {reason: "a ClusterSPIFFEID selects pods of namespaces", in: spire.EntrySpec{SPIFFEID: "spiffe://example.org/x",
			Selectors: []string{"k8s:sa:ui"}}, wantErr: true},
		"two namespaces": {reason: "one namespace per registration", in: spire.EntrySpec{SPIFFEID: "spiffe://example.org/x",
			Selectors: []string{"k8s:ns:a", "k8s:ns:b"}}, wantErr: true},
		"template syntax": {reason: "the controller manager would expand it", in: spire.EntrySpec{SPIFFEID: "spiffe://example.org/x",
			Selectors: []string{"k8s:ns:a", "k8s:pod-label:x:{{.PodMeta.Name}}"}}, wantErr: true},
	}
	r := &spire.ClusterSPIFFEIDs{ClassName: "kagenti"}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj, err := r.Object(spire.ClusterSPIFFEIDName(tc.in.SPIFFEID), tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("%s: no error", tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, obj.Object["spec"]); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
			if got := obj.GetName(); got != spire.ClusterSPIFFEIDName(tc.in.SPIFFEID) || len(got) > 63 {
				t.Errorf("name %q", got)
			}
		})
	}
}
