package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// GatewayAPIVersion is the Gateway API release whose CRDs tests install.
const GatewayAPIVersion = "v1.6.3"

// GatewayAPICRDs returns the standard-channel CRDs of GatewayClass, Gateway and HTTPRoute. They
// are plain YAML in the Gateway API Go module, so the Go module proxy serves them.
func GatewayAPICRDs(ctx context.Context) ([]*unstructured.Unstructured, error) {
	tmp, err := os.MkdirTemp("", "gateway-api-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir, err := (&Builder{}).moduleDir(ctx, tmp, "sigs.k8s.io/gateway-api@"+GatewayAPIVersion)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes"} {
		files = append(files, filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	return readObjects(files)
}

// readObjects reads every YAML document of the files.
func readObjects(files []string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			if strings.TrimSpace(doc) == "" || strings.TrimSpace(doc) == "---" {
				continue
			}
			j, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
			}
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(j); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
			}
			out = append(out, obj)
		}
	}
	return out, nil
}
