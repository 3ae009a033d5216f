package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// listReads serves the reads of a refresh from one LIST per kind and namespace instead of one
// GET per object: a plan of 500 agents otherwise sends 2,500 GETs, which cost the API server
// (and a shared cluster's priority and fairness budget) far more than five LISTs. Lists are of
// the objects labelled as ours (managed-by), kept as raw JSON per object and decoded only when
// read, so a listed object no one reads costs bytes, not a decoded map. An object not in the
// list is read with a GET: a label someone removed must not make an object look deleted.
//
// A list stands for ttl, and one of a kind and namespace is dropped whenever this process
// writes there, so an apply never reads its own writes from an older list.
type listReads struct {
	ttl  time.Duration
	list func(ctx context.Context, gvk schema.GroupVersionKind, namespace string) ([]byte, error)

	mu     sync.Mutex
	lists  map[listKey]*rawList
	flight singleflight.Group
}

type listKey struct {
	gvk       schema.GroupVersionKind
	namespace string
}

type rawList struct {
	at    time.Time
	items map[string]json.RawMessage
}

// get returns the object from a list younger than ttl (listing when there is none), or found
// false when the list does not have it or could not be read.
func (l *listReads) get(ctx context.Context, ref Ref) (obj *unstructured.Unstructured, found bool, err error) {
	key := listKey{gvk: ref.GVK, namespace: ref.Namespace}
	l.mu.Lock()
	cur := l.lists[key]
	l.mu.Unlock()
	if cur == nil || time.Since(cur.at) > l.ttl {
		v, _, _ := l.flight.Do(key.gvk.String()+"\x00"+key.namespace, func() (any, error) {
			at := time.Now()
			// Not the caller's cancellation: other reads wait for this list too.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			body, err := l.list(lctx, key.gvk, key.namespace)
			var items map[string]json.RawMessage
			if err == nil {
				items, err = splitList(body)
			}
			// A list that fails (RBAC may allow get but not list) leaves every read to a GET
			// until the ttl has passed.
			fresh := &rawList{at: at, items: items}
			l.mu.Lock()
			l.lists[key] = fresh
			l.mu.Unlock()
			return fresh, nil
		})
		cur = v.(*rawList)
	}
	raw, ok := cur.items[ref.Name]
	if !ok {
		return nil, false, nil
	}
	// As unstructured decodes a GET's answer (integers as int64), but items of a list carry
	// no kind of their own, which its decoder requires.
	obj = &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(raw, &obj.Object); err != nil {
		return nil, false, fmt.Errorf("decode %s from its list: %w", ref, err)
	}
	obj.SetGroupVersionKind(ref.GVK)
	return obj, true, nil
}

// forget drops the list of a kind and namespace (this process wrote there).
func (l *listReads) forget(gvk schema.GroupVersionKind, namespace string) {
	l.mu.Lock()
	delete(l.lists, listKey{gvk: gvk, namespace: namespace})
	l.mu.Unlock()
}

// splitList parses a list's items into raw objects by name, without decoding them.
func splitList(body []byte) (map[string]json.RawMessage, error) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("read a list: %w", err)
	}
	items := make(map[string]json.RawMessage, len(list.Items))
	for _, raw := range list.Items {
		var named struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &named); err != nil {
			return nil, fmt.Errorf("read a list item: %w", err)
		}
		items[named.Metadata.Name] = raw
	}
	return items, nil
}

// listRaw lists the objects of a kind in a namespace labelled as managed by kagenti, as the
// API server's JSON.
func (a *Applier) listRaw(ctx context.Context, gvk schema.GroupVersionKind, namespace string) ([]byte, error) {
	m, err := a.mapping(gvk)
	if err != nil {
		return nil, err
	}
	p := "/apis/" + gvk.Group + "/" + gvk.Version
	if gvk.Group == "" {
		p = "/api/" + gvk.Version
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		p = path.Join(p, "namespaces", namespace)
	}
	p = path.Join(p, m.Resource.Resource)
	body, err := a.typed.Discovery().RESTClient().Get().AbsPath(p).
		Param("labelSelector", "app.kubernetes.io/managed-by="+contract.ManagedBy).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", gvk.Kind, namespace, err)
	}
	return body, nil
}
