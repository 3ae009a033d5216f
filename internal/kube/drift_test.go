package kube

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestDrift_WithoutOwnership pins the comparison of objects that carry no record of our apply:
// every field we set is compared by value.
func TestDrift_WithoutOwnership(t *testing.T) {
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
			if diff := cmp.Diff(tc.want, Drift(&unstructured.Unstructured{Object: tc.desired}, &unstructured.Unstructured{Object: tc.live}, "kagenti")); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// deployment is a Deployment as the server returns it: live fields plus managedFields records,
// each "manager/operation[/subresource]" → FieldsV1 JSON.
func deployment(t *testing.T, body string, managed map[string]string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(body), &obj.Object); err != nil {
		t.Fatal(err)
	}
	obj.SetAPIVersion("apps/v1")
	obj.SetKind("Deployment")
	obj.SetName("planner")
	obj.SetNamespace("team1")
	var entries []metav1.ManagedFieldsEntry
	for _, who := range slices.Sorted(maps.Keys(managed)) {
		parts := strings.Split(who, "/")
		e := metav1.ManagedFieldsEntry{Manager: parts[0], Operation: metav1.ManagedFieldsOperationType(parts[1]),
			APIVersion: "apps/v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(managed[who])}}
		if len(parts) > 2 {
			e.Subresource = parts[2]
		}
		entries = append(entries, e)
	}
	obj.SetManagedFields(entries)
	return obj
}

// ours is what the provider applies, and the record the server keeps of it.
const (
	oursDesired = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"planner","namespace":"team1","labels":{"app":"planner"}},
	"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
	{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`
	oursFields = `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},
	"f:spec":{"f:containers":{"k:{\"name\":\"agent\"}":{".":{},"f:name":{},"f:image":{},"f:args":{},
	"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}},
	"f:ports":{"k:{\"containerPort\":8000,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}}}`
)

// TestDrift_Ownership pins drift as what our field manager applied: what other writers add is
// never drift, what they change or take of ours is, and names them.
func TestDrift_Ownership(t *testing.T) {
	cases := map[string]struct {
		reason  string
		live    string
		managed map[string]string
		want    []string
	}{
		"as applied": {
			reason: "the object as we applied it, with server defaults",
			live: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"planner","namespace":"team1","labels":{"app":"planner"},"generation":3},
			"spec":{"replicas":2,"strategy":{"type":"RollingUpdate"},"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","imagePullPolicy":"IfNotPresent","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": oursFields},
		},
		"kubectl set env adds an entry": {
			reason: "another manager's env entry, first in the list, is not ours to compare",
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"STYLE","value":"x"},{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": oursFields,
				"kubectl-set/Update": `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"agent\"}":{"f:env":{"k:{\"name\":\"STYLE\"}":{".":{},"f:name":{},"f:value":{}}}}}}}}}`},
		},
		"a webhook injects a sidecar, a volume and an annotation": {
			reason: "admission additions sit beside ours; our container is found by name, not index",
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"},"annotations":{"injected":"yes"}},"spec":{
			"volumes":[{"name":"spiffe","emptyDir":{}}],"containers":[{"name":"sidecar","image":"proxy:1"},
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"],"volumeMounts":[{"name":"spiffe","mountPath":"/spiffe"}]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": oursFields},
		},
		"kubectl label and annotate": {
			live: `{"metadata":{"labels":{"app":"planner","team":"x"},"annotations":{"note":"y"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": oursFields,
				"kubectl-label/Update": `{"f:metadata":{"f:labels":{"f:team":{}},"f:annotations":{"f:note":{}}}}`},
		},
		"an edit of our env value": {
			reason: "an update moves ownership of the changed field to its writer",
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"9"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": strings.Replace(oursFields, `"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}}`, `"k:{\"name\":\"A\"}":{".":{},"f:name":{}}`, 1),
				"kubectl-edit/Update": `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"agent\"}":{"f:env":{"k:{\"name\":\"A\"}":{"f:value":{}}}}}}}}}`},
			want: []string{`spec.template.spec.containers[name=agent].env[name=A].value (now managed by "kubectl-edit")`},
		},
		"replicas taken through the scale subresource": {
			reason: "an HPA (or kubectl scale) on replicas we set is a conflict the next apply takes back",
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":5,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": strings.Replace(oursFields, `"f:replicas":{},`, ``, 1),
				"kube-controller-manager/Update/scale": `{"f:spec":{"f:replicas":{}}}`},
			want: []string{`spec.replicas (now managed by "kube-controller-manager")`},
		},
		"an env entry of ours removed": {
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": strings.Replace(oursFields, `,"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}`, ``, 1),
				"kubectl-edit/Update": `{"f:metadata":{"f:annotations":{}}}`},
			want: []string{`spec.template.spec.containers[name=agent].env[name=B]`},
		},
		"an atomic list of ours changed": {
			reason: "args is owned whole: an extra element is a change",
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve","--debug"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": oursFields},
			want:    []string{`spec.template.spec.containers[name=agent].args`},
		},
		"the image changed by a manager that forced it": {
			live: `{"metadata":{"labels":{"app":"planner"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
			{"name":"agent","image":"planner:2","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`,
			managed: map[string]string{"kagenti/Apply": strings.Replace(oursFields, `"f:image":{},`, ``, 1),
				"ci/Apply": `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"agent\"}":{".":{},"f:name":{},"f:image":{}}}}}}}`},
			want: []string{`spec.template.spec.containers[name=agent].image (now managed by "ci")`},
		},
	}
	desired := &unstructured.Unstructured{}
	if err := desired.UnmarshalJSON([]byte(oursDesired)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			live := deployment(t, tc.live, tc.managed)
			if diff := cmp.Diff(tc.want, Drift(desired, live, "kagenti")); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// BenchmarkDrift measures the drift of a Deployment as a refresh sees it: ours and two other
// managers' records, nothing out of sync (the common case of a no-op plan).
func BenchmarkDrift(b *testing.B) {
	desired := &unstructured.Unstructured{}
	if err := desired.UnmarshalJSON([]byte(oursDesired)); err != nil {
		b.Fatal(err)
	}
	live := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(`{"metadata":{"labels":{"app":"planner","team":"x"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"planner"}},"spec":{"containers":[
		{"name":"agent","image":"planner:1","env":[{"name":"STYLE","value":"x"},{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":8000,"protocol":"TCP"}],"args":["serve"]}]}}}}`), &live.Object); err != nil {
		b.Fatal(err)
	}
	live.SetAPIVersion("apps/v1")
	live.SetKind("Deployment")
	live.SetName("planner")
	live.SetNamespace("team1")
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "kagenti", Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(oursFields)}},
		{Manager: "kubectl-set", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"agent\"}":{"f:env":{"k:{\"name\":\"STYLE\"}":{".":{},"f:name":{},"f:value":{}}}}}}}}}`)}},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:replicas":{},"f:readyReplicas":{},"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:type":{},"f:status":{}}}}}`)}},
	})
	b.ReportAllocs()
	for b.Loop() {
		if d := Drift(desired, live, "kagenti"); len(d) != 0 {
			b.Fatal(d)
		}
	}
}
