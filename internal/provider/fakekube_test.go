package provider

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// fakeKube is a Kubernetes API server for unit tests of the provider's own paths: discovery of
// the kinds composites use, and get, list (label selector) and delete of the objects it holds.
// It records every delete.
type fakeKube struct {
	mu      sync.Mutex
	objects map[string]map[string]any // by object path, e.g. /api/v1/namespaces/team1/services/x
	deleted []string
}

var fakeDiscovery = map[string]string{
	"/api":  `{"kind":"APIVersions","versions":["v1"]}`,
	"/apis": `{"kind":"APIGroupList","apiVersion":"v1","groups":[` + fakeGroup("apps", "v1") + `,` + fakeGroup("autoscaling", "v2") + `,` + fakeGroup("policy", "v1") + `]}`,
	"/api/v1": fakeResources("v1", "services:Service", "secrets:Secret", "configmaps:ConfigMap", "serviceaccounts:ServiceAccount",
		"persistentvolumeclaims:PersistentVolumeClaim"),
	"/apis/apps/v1":        fakeResources("apps/v1", "deployments:Deployment"),
	"/apis/autoscaling/v2": fakeResources("autoscaling/v2", "horizontalpodautoscalers:HorizontalPodAutoscaler"),
	"/apis/policy/v1":      fakeResources("policy/v1", "poddisruptionbudgets:PodDisruptionBudget"),
}

var fakeCollections = map[string]bool{"services": true, "secrets": true, "configmaps": true, "serviceaccounts": true,
	"persistentvolumeclaims": true, "deployments": true, "horizontalpodautoscalers": true, "poddisruptionbudgets": true}

func fakeGroup(group, version string) string {
	gv := `{"groupVersion":"` + group + `/` + version + `","version":"` + version + `"}`
	return `{"name":"` + group + `","versions":[` + gv + `],"preferredVersion":` + gv + `}`
}

func fakeResources(gv string, resources ...string) string {
	var rs []string
	for _, r := range resources {
		name, kind, _ := strings.Cut(r, ":")
		rs = append(rs, `{"name":"`+name+`","namespaced":true,"kind":"`+kind+`","verbs":["get","list","delete","patch"]}`)
	}
	return `{"kind":"APIResourceList","groupVersion":"` + gv + `","resources":[` + strings.Join(rs, ",") + `]}`
}

// newFakeKube starts the server with objects (by path) and returns it with provider data that
// talks to it.
func newFakeKube(t *testing.T, objects map[string]map[string]any) (*fakeKube, *providerData) {
	t.Helper()
	f := &fakeKube{objects: objects}
	if f.objects == nil {
		f.objects = map[string]map[string]any{}
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	return f, &providerData{labelDomain: DefaultLabelDomain, renderer: r, rest: &rest.Config{Host: srv.URL}}
}

func (f *fakeKube) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if d, ok := fakeDiscovery[r.URL.Path]; ok {
		_, _ = w.Write([]byte(d))
		return
	}
	if obj, ok := f.objects[r.URL.Path]; ok {
		switch r.Method {
		case http.MethodGet:
			_ = json.NewEncoder(w).Encode(obj)
		case http.MethodDelete:
			delete(f.objects, r.URL.Path)
			f.deleted = append(f.deleted, r.URL.Path)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Success"}`))
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
		return
	}
	if last := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]; r.Method == http.MethodGet && fakeCollections[last] {
		f.list(w, r)
		return
	}
	if r.Method == http.MethodDelete {
		f.deleted = append(f.deleted, r.URL.Path)
	}
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
}

// list answers a collection GET with the objects under it that match the label selector.
func (f *fakeKube) list(w http.ResponseWriter, r *http.Request) {
	want := map[string]string{}
	for _, kv := range strings.Split(r.URL.Query().Get("labelSelector"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			want[k] = v
		}
	}
	items := []any{}
	for p, obj := range f.objects {
		if !strings.HasPrefix(p, r.URL.Path+"/") || strings.Contains(strings.TrimPrefix(p, r.URL.Path+"/"), "/") {
			continue
		}
		labels, _ := obj["metadata"].(map[string]any)["labels"].(map[string]any)
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if match {
			items = append(items, obj)
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "List", "apiVersion": "v1", "metadata": map[string]any{}, "items": items})
}
