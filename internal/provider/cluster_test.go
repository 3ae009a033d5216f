package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// Helpers that assert directly against the sandbox cluster, next to the state checks.

func testAccKube(t *testing.T) kubernetes.Interface {
	t.Helper()
	testAccPreCheck(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", testAccSandbox.Kubernetes.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// testAccNamespace creates a namespace for one test and deletes it afterwards. It enforces Pod
// Security's restricted profile, as a well-run cluster's agent namespaces do: the API server then
// refuses a non-compliant pod at its ReplicaSet, and the rollout wait fails on it.
func testAccNamespace(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	name := "acc-" + rand.String(6)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	_, err := client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// checkNoLabelledObjects fails when anything with the composite's labels is left in the
// namespace: destroy must leave nothing behind.
func checkNoLabelledObjects(client kubernetes.Interface, namespace string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		ctx := context.Background()
		sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kagenti"}
		var left []string
		if l, err := client.AppsV1().Deployments(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "Deployment "+o.Name)
			}
		}
		if l, err := client.CoreV1().Services(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "Service "+o.Name)
			}
		}
		if l, err := client.CoreV1().ConfigMaps(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "ConfigMap "+o.Name)
			}
		}
		if l, err := client.CoreV1().ServiceAccounts(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "ServiceAccount "+o.Name)
			}
		}
		if l, err := client.CoreV1().PersistentVolumeClaims(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "PersistentVolumeClaim "+o.Name)
			}
		}
		if l, err := client.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "PodDisruptionBudget "+o.Name)
			}
		}
		if l, err := client.AutoscalingV2().HorizontalPodAutoscalers(namespace).List(ctx, sel); err == nil {
			for _, o := range l.Items {
				left = append(left, "HorizontalPodAutoscaler "+o.Name)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("objects left in %s after destroy: %s", namespace, strings.Join(left, ", "))
		}
		return nil
	}
}

// checkDeploymentAvailable checks the Deployment's rollout is complete with want ready pods.
func checkDeploymentAvailable(client kubernetes.Interface, namespace, name string, want int32) resource.TestCheckFunc {
	return func(*terraform.State) error {
		d, err := client.AppsV1().Deployments(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != want || d.Status.UpdatedReplicas != want {
			return fmt.Errorf("Deployment %s/%s: %d available, %d updated, want %d", namespace, name, d.Status.AvailableReplicas, d.Status.UpdatedReplicas, want)
		}
		return nil
	}
}

// checkContainerResource checks one request or limit of a Deployment's first container.
func checkContainerResource(client kubernetes.Interface, namespace, name string, limit bool, resourceName, want string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		d, err := client.AppsV1().Deployments(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		list := d.Spec.Template.Spec.Containers[0].Resources.Requests
		if limit {
			list = d.Spec.Template.Spec.Containers[0].Resources.Limits
		}
		q, ok := list[corev1.ResourceName(resourceName)]
		if !ok || q.String() != want {
			return fmt.Errorf("Deployment %s/%s %s (limit: %v) = %v, want %s", namespace, name, resourceName, limit, list, want)
		}
		return nil
	}
}

// checkContainerEnv checks one env var of the Deployment's first container.
func checkContainerEnv(client kubernetes.Interface, namespace, name, key, want string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		d, err := client.AppsV1().Deployments(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == key {
				if e.Value != want {
					return fmt.Errorf("Deployment %s/%s env %s = %q, want %q", namespace, name, key, e.Value, want)
				}
				return nil
			}
		}
		return fmt.Errorf("Deployment %s/%s has no env %s", namespace, name, key)
	}
}

// checkExists checks an object exists (exists=true) or not.
func checkExists(get func(ctx context.Context) error, what string, exists bool) resource.TestCheckFunc {
	return func(*terraform.State) error {
		err := get(context.Background())
		switch {
		case exists && err != nil:
			return fmt.Errorf("%s: %w", what, err)
		case !exists && err == nil:
			return fmt.Errorf("%s exists, want it gone", what)
		case !exists && !apierrors.IsNotFound(err):
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

type terraformState = terraform.State

func testAccDynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", testAccSandbox.Kubernetes.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// applyCRDs installs CRDs and waits until the API server serves them.
func applyCRDs(t *testing.T, d dynamic.Interface, crds []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	res := d.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	force := true
	for _, crd := range crds {
		data, err := crd.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Patch(ctx, crd.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "kagenti-tests", Force: &force}); err != nil {
			t.Fatalf("install CRD %s: %v", crd.GetName(), err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, crd := range crds {
		for {
			got, err := res.Get(ctx, crd.GetName(), metav1.GetOptions{})
			established := false
			if err == nil {
				conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
				for _, c := range conds {
					m := c.(map[string]any)
					established = established || (m["type"] == "Established" && m["status"] == "True")
				}
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established", crd.GetName())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
