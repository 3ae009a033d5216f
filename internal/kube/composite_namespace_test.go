package kube

import (
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestIsNamespaceNotFound: a write into a missing namespace is told from a missing object, also
// when the apply wraps the API server's error.
func TestIsNamespaceNotFound(t *testing.T) {
	missingNamespace := apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "team-x")
	missingObject := apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "agent")
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"namespace":         {missingNamespace, true},
		"namespace wrapped": {fmt.Errorf("apply Deployment team-x/agent: %w", missingNamespace), true},
		"object":            {missingObject, false},
		"forbidden":         {apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "team-x", fmt.Errorf("no")), false},
		"other":             {fmt.Errorf("connection refused"), false},
	} {
		if got := isNamespaceNotFound(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
