package kube

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Drift compares what was applied with what the cluster holds, looking only at the fields the
// desired object sets: fields the server or other controllers add (status, defaults,
// annotations of others) are not drift. It returns the paths that differ, sorted.
func Drift(desired, live map[string]any) []string {
	var paths []string
	diffValue("", desired, live, &paths)
	sort.Strings(paths)
	return paths
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
