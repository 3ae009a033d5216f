package testenv

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// ControllerManagerClusterName is the cluster name the SPIRE Controller Manager puts in the
// parent IDs of its entries (spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node uid>).
const ControllerManagerClusterName = "sandbox"

// ControllerManagerEntryPrefix prefixes the ids of the entries the controller manager creates.
// It manages only entries with the prefix, so it leaves alone those registered through the server
// API (tests, the sandbox's agent).
const ControllerManagerEntryPrefix = "kagenti-sandbox-cm"

// gcInterval is a Go time.Duration decoded from JSON: nanoseconds (5 s), not "5s".
var spireControllerManagerConf = template.Must(template.New("controller-manager.yaml").Parse(`apiVersion: spire.spiffe.io/v1alpha1
kind: ControllerManagerConfig
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: 127.0.0.1:{{.HealthPort}}
leaderElection:
  leaderElect: false
clusterName: ` + ControllerManagerClusterName + `
trustDomain: {{.TrustDomain}}
spireServerSocketPath: {{.Socket}}
entryIDPrefix: ` + ControllerManagerEntryPrefix + `
gcInterval: 5000000000
logLevel: info
`))

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// startSpireControllerManager installs the controller manager's CRDs and runs it against the
// sandbox's API server and SPIRE server (on the server's socket, as it runs beside the server), so
// that ClusterSPIFFEIDs become real entries for the pods they select. Its validating webhook is
// off: the API server could not reach it on loopback under its in-cluster service name.
func (s *Sandbox) startSpireControllerManager(ctx context.Context) error {
	tool := SpireControllerManager()
	var files []string
	for _, f := range spireControllerManagerCRDs {
		files = append(files, s.builder.Path(tool, f))
	}
	crds, err := readObjects(files)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubernetes.Kubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := installCRDs(ctx, dyn, crds); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.Dir, "spire")
	conf := filepath.Join(dir, "controller-manager.yaml")
	if err := renderFile(spireControllerManagerConf, conf, map[string]any{
		"HealthPort": ports[0], "TrustDomain": s.Spire.TrustDomain, "Socket": s.Spire.Socket,
	}); err != nil {
		return err
	}
	cm := &Process{
		Name: "spire-controller-manager", Path: s.builder.Path(tool, "spire-controller-manager"), LogPath: s.logPath("spire-controller-manager"),
		Args:    []string{"-config", conf},
		Env:     []string{"KUBECONFIG=" + s.Kubernetes.Kubeconfig, "ENABLE_WEBHOOKS=false"},
		Healthy: httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(ports[0])+"/readyz"),
	}
	if err := s.start(ctx, cm); err != nil {
		return err
	}
	s.Spire.ControllerManager = true
	return nil
}

// installCRDs creates the CRDs (an existing one is kept) and waits until each is established.
func installCRDs(ctx context.Context, dyn dynamic.Interface, crds []*unstructured.Unstructured) error {
	for _, crd := range crds {
		_, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.GetName(), err)
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			live, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.GetName(), err)
		}
	}
	return nil
}
