package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// listServer is a list function over a namespace's Deployments that counts its calls.
type listServer struct {
	calls atomic.Int32
	fail  atomic.Bool
	mu    sync.Mutex
	names []string
}

func (s *listServer) list(_ context.Context, gvk schema.GroupVersionKind, namespace string) ([]byte, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return nil, errors.New(`deployments.apps is forbidden: User "tf" cannot list resource "deployments"`)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	body := `{"kind":"DeploymentList","apiVersion":"apps/v1","items":[`
	for i, n := range s.names {
		if i > 0 {
			body += ","
		}
		body += fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q},"spec":{"replicas":%d}}`, n, namespace, i+1)
	}
	return []byte(body + "]}"), nil
}

func TestListReads(t *testing.T) {
	srv := &listServer{names: []string{"a", "b"}}
	l := &listReads{ttl: time.Hour, list: srv.list, lists: map[listKey]*rawList{}}
	ctx := context.Background()
	ref := func(name string) Ref { return Ref{GVK: deploymentGVK, Namespace: "team1", Name: name} }

	// Reads at the same time share one list; each object decodes with its kind.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj, found, err := l.get(ctx, ref("b"))
			if err != nil || !found || obj.GetName() != "b" || obj.GetKind() != "Deployment" || obj.GetAPIVersion() != "apps/v1" {
				t.Errorf("get b: %v %v %v", obj, found, err)
			}
		}()
	}
	wg.Wait()
	if n := srv.calls.Load(); n != 1 {
		t.Fatalf("%d lists for 20 reads, want 1", n)
	}
	// Integers decode as int64, as a GET's answer does (drift compares them with rendered ones).
	b, _, _ := l.get(ctx, ref("b"))
	if replicas, ok := b.Object["spec"].(map[string]any)["replicas"].(int64); !ok || replicas != 2 {
		t.Fatalf("b decoded with replicas %#v, want int64 2", b.Object["spec"])
	}

	// Not in the list: found false (the caller GETs it), and no new list.
	if _, found, err := l.get(ctx, ref("c")); found || err != nil {
		t.Fatalf("c: found %v %v, want not found", found, err)
	}
	// A write there drops the list: the next read lists again and sees the new object.
	srv.mu.Lock()
	srv.names = append(srv.names, "c")
	srv.mu.Unlock()
	l.forget(deploymentGVK, "team1")
	if _, found, _ := l.get(ctx, ref("c")); !found {
		t.Fatal("c not found after the list was dropped")
	}
	if n := srv.calls.Load(); n != 2 {
		t.Fatalf("%d lists, want 2", n)
	}
	// Another namespace has its own list.
	if _, found, _ := l.get(ctx, Ref{GVK: deploymentGVK, Namespace: "team2", Name: "a"}); !found || srv.calls.Load() != 3 {
		t.Fatalf("team2/a: found %v after %d lists", found, srv.calls.Load())
	}
}

func TestListReads_ExpireAndFail(t *testing.T) {
	srv := &listServer{names: []string{"a"}}
	l := &listReads{ttl: 50 * time.Millisecond, list: srv.list, lists: map[listKey]*rawList{}}
	ctx := context.Background()
	a := Ref{GVK: deploymentGVK, Namespace: "team1", Name: "a"}
	l.get(ctx, a)
	time.Sleep(60 * time.Millisecond)
	srv.fail.Store(true)
	// A list that fails is no error: every read falls back to a GET until the ttl has passed.
	if _, found, err := l.get(ctx, a); found || err != nil {
		t.Fatalf("after a failed list: found %v %v, want not found and no error", found, err)
	}
	l.get(ctx, a)
	if n := srv.calls.Load(); n != 2 {
		t.Fatalf("%d lists, want 2 (the failure stands for the ttl)", n)
	}
}
