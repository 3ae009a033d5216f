package kube

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// Drift compares what manager applied with what the cluster holds, and returns the paths of
// the fields manager set that have changed or gone, sorted.
//
// The provider is one writer among many: kubectl, HPAs, admission webhooks and injectors add
// env entries, containers, volumes, labels and annotations next to ours. Those are never drift.
// What decides is the server's own record of ownership (metadata.managedFields): a field
// manager applied is drift when its value differs, when it is gone, or when another manager has
// taken it (the path then says who: the next apply, which forces, takes it back). Lists are
// matched the way the server merges them, by the keys it recorded (containers and env by name,
// ports by port and protocol), so that an element someone else added is not drift and an
// element of ours is compared with its namesake wherever it sits.
//
// An object that carries no record of manager's apply (created by someone else, or by a server
// that does not track ownership) is compared field by field, as a whole.
func Drift(desired, live *unstructured.Unstructured, manager string) []string {
	var paths []string
	owned := ownedBy(live, manager)
	if owned == nil {
		diffValue("", desired.Object, live.Object, &paths)
	} else {
		d := ownedDiff{live: live, manager: manager, out: &paths}
		d.fields("", desired.Object, live.Object, owned)
	}
	sort.Strings(paths)
	return paths
}

// ownedBy parses the set of fields manager applied to live (nil when it applied nothing). It runs
// on every refresh of every object, so only that manager's records are parsed; the others are
// read only when a field of ours is missing, to name who took it (takenBy).
func ownedBy(live *unstructured.Unstructured, manager string) *fieldpath.Set {
	var owned *fieldpath.Set
	for _, e := range live.GetManagedFields() {
		if e.FieldsV1 == nil || e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.Subresource != "" {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			continue // a record we cannot read names nothing
		}
		if owned == nil {
			owned = s
		} else {
			owned = owned.Union(s)
		}
	}
	return owned
}

// ownedDiff walks the desired object alongside the live one and the set of fields the manager
// owns in it.
type ownedDiff struct {
	live    *unstructured.Unstructured
	manager string
	out     *[]string
	// at is the fieldpath of the node being walked, to look up who took a field.
	at fieldpath.Path
}

// fields compares a desired map with its live counterpart; owned is manager's set at this map.
func (d *ownedDiff) fields(path string, want map[string]any, got any, owned *fieldpath.Set) {
	g, _ := got.(map[string]any)
	for _, k := range sortedKeys(want) {
		wv := want[k]
		if identityField(path, k) {
			// The server records no owner for what names the object: compared by value.
			diffValue(join(path, k), wv, g[k], d.out)
			continue
		}
		pe := fieldpath.PathElement{FieldName: &k}
		d.element(join(path, k), pe, wv, g[k], owned)
	}
}

// identityField reports the fields that name an object, which managedFields leave out.
func identityField(path, key string) bool {
	switch path {
	case "":
		return key == "apiVersion" || key == "kind"
	case "metadata":
		return key == "name" || key == "namespace"
	}
	return false
}

// element compares one desired value, reached through pe from a node whose owned set is owned.
func (d *ownedDiff) element(path string, pe fieldpath.PathElement, want, got any, owned *fieldpath.Set) {
	here := append(append(fieldpath.Path{}, d.at...), pe)
	switch {
	case hasChild(owned, pe):
		child, _ := owned.Children.Get(pe)
		saved := d.at
		d.at = here
		defer func() { d.at = saved }()
		switch w := want.(type) {
		case map[string]any:
			if got == nil && len(w) > 0 {
				*d.out = append(*d.out, path)
				return
			}
			d.fields(path, w, got, child)
		case []any:
			d.list(path, w, got, child)
		default:
			diffValue(path, want, got, d.out)
		}
	case owned.Members.Has(pe):
		// A leaf of ours: a scalar, or an atomic map or list, compared whole. (An element of
		// ours that also has children is walked above; its member mark only says it is ours.)
		diffValue(path, want, got, d.out)
	default:
		if isEmpty(want) {
			return // the server keeps no record of empty values
		}
		if by := d.takenBy(here); by != "" {
			*d.out = append(*d.out, fmt.Sprintf("%s (now managed by %q)", path, by))
			return
		}
		*d.out = append(*d.out, path)
	}
}

// list compares a desired list with the live one. Associative lists (the server recorded keys)
// are matched element by element on those keys; lists of values as sets; others by index.
func (d *ownedDiff) list(path string, want []any, got any, owned *fieldpath.Set) {
	g, _ := got.([]any)
	for i, w := range want {
		wm, isMap := w.(map[string]any)
		if !isMap {
			v := value.NewValueInterface(normalizeNumber(w))
			if vpe := (fieldpath.PathElement{Value: &v}); owned.Members.Has(vpe) || hasChild(owned, vpe) {
				// A set of values: ours needs to be there, wherever it sits.
				if !containsValue(g, w) {
					*d.out = append(*d.out, fmt.Sprintf("%s[%v]", path, w))
				}
				continue
			}
			d.element(fmt.Sprintf("%s[%d]", path, i), fieldpath.PathElement{Index: &i}, w, elemAt(g, i), owned)
			continue
		}
		pe, ok := keyOf(owned, wm)
		if !ok {
			pe = fieldpath.PathElement{Index: &i}
			d.element(fmt.Sprintf("%s[%d]", path, i), pe, w, elemAt(g, i), owned)
			continue
		}
		label := fmt.Sprintf("%s[%s]", path, keyLabel(*pe.Key))
		live := findKeyed(g, *pe.Key)
		if live == nil {
			*d.out = append(*d.out, label)
			continue
		}
		d.element(label, pe, w, live, owned)
	}
}

// keyOf finds the key the server recorded for a desired element of an associative list: the
// first recorded key whose fields all match the element's.
func keyOf(owned *fieldpath.Set, elem map[string]any) (fieldpath.PathElement, bool) {
	var found fieldpath.PathElement
	ok := false
	match := func(pe fieldpath.PathElement) {
		if ok || pe.Key == nil {
			return
		}
		if keyMatches(*pe.Key, elem) {
			found, ok = pe, true
		}
	}
	owned.Members.Iterate(match)
	owned.Children.Iterate(match)
	if ok {
		return found, true
	}
	// The element is not among ours any more: find its key's shape from a sibling, so that
	// the path names it and says who took it.
	var shape *value.FieldList
	find := func(pe fieldpath.PathElement) {
		if shape == nil && pe.Key != nil {
			shape = pe.Key
		}
	}
	owned.Members.Iterate(find)
	owned.Children.Iterate(find)
	if shape == nil {
		return fieldpath.PathElement{}, false
	}
	key := value.FieldList{}
	for _, f := range *shape {
		v, present := elem[f.Name]
		if !present {
			return fieldpath.PathElement{}, false
		}
		key = append(key, value.Field{Name: f.Name, Value: value.NewValueInterface(v)})
	}
	return fieldpath.PathElement{Key: &key}, true
}

func keyMatches(key value.FieldList, elem map[string]any) bool {
	for _, f := range key {
		v, present := elem[f.Name]
		if !present || !value.Equals(f.Value, value.NewValueInterface(normalizeNumber(v))) {
			return false
		}
	}
	return true
}

func findKeyed(list []any, key value.FieldList) map[string]any {
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && keyMatches(key, m) {
			return m
		}
	}
	return nil
}

func keyLabel(key value.FieldList) string {
	parts := make([]string, 0, len(key))
	for _, f := range key {
		v := value.ToString(f.Value)
		if f.Value.IsString() {
			v = f.Value.AsString()
		}
		parts = append(parts, f.Name+"="+v)
	}
	return strings.Join(parts, ",")
}

// takenBy names another manager whose record holds the path now, if any.
func (d *ownedDiff) takenBy(p fieldpath.Path) string {
	for _, e := range d.live.GetManagedFields() {
		if e.FieldsV1 == nil || (e.Manager == d.manager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == "") {
			continue
		}
		s := &fieldpath.Set{}
		if s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)) == nil && s.Has(p) {
			return e.Manager
		}
	}
	return ""
}

func hasChild(s *fieldpath.Set, pe fieldpath.PathElement) bool {
	_, ok := s.Children.Get(pe)
	return ok
}

func containsValue(list []any, v any) bool {
	for _, e := range list {
		if scalarEqual(v, e) {
			return true
		}
	}
	return false
}

func elemAt(list []any, i int) any {
	if i < len(list) {
		return list[i]
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isEmpty reports a value the server stores no trace of: null, zero scalars, empty maps and lists.
func isEmpty(v any) bool {
	switch w := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(w) == 0
	case []any:
		return len(w) == 0
	}
	return reflect.ValueOf(v).IsZero()
}

// normalizeNumber makes desired numbers (int from templates) compare with the server's int64.
func normalizeNumber(v any) any {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int32:
		return int64(n)
	}
	return v
}

func diffValue(path string, want, got any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if len(w) == 0 && got == nil {
				return
			}
			*out = append(*out, path)
			return
		}
		for k, wv := range w {
			diffValue(join(path, k), wv, g[k], out)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			if len(w) == 0 && got == nil {
				return
			}
			*out = append(*out, path)
			return
		}
		if len(g) != len(w) {
			*out = append(*out, path)
			return
		}
		for i := range w {
			diffValue(path+"["+strconv.Itoa(i)+"]", w[i], g[i], out)
		}
	default:
		if !scalarEqual(want, got) {
			*out = append(*out, path)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalarEqual treats a zero value the server omits as equal to its absence, numbers of either
// JSON representation as equal, and quantities by value ("1000m" == "1").
func scalarEqual(want, got any) bool {
	if got == nil {
		return want == nil || reflect.ValueOf(want).IsZero()
	}
	if wn, ok := number(want); ok {
		gn, ok := number(got)
		return ok && wn == gn
	}
	if ws, ok := want.(string); ok {
		gs, ok := got.(string)
		if !ok {
			return fmt.Sprint(want) == fmt.Sprint(got)
		}
		if ws == gs {
			return true
		}
		wq, err1 := resource.ParseQuantity(ws)
		gq, err2 := resource.ParseQuantity(gs)
		return err1 == nil && err2 == nil && wq.Cmp(gq) == 0
	}
	return reflect.DeepEqual(want, got)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
