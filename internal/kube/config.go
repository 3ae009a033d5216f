// Package kube connects to a Kubernetes cluster and applies, prunes and waits for the objects a
// composition renders. It knows nothing of Terraform.
package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// ServerVersion asks the API server for its version ("v1.37.2").
func ServerVersion(ctx context.Context, cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	raw, err := dc.RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", fmt.Errorf("get server version from %s: %w", cfg.Host, err)
	}
	var info version.Info
	if err := json.Unmarshal(raw, &info); err != nil {
		return "", fmt.Errorf("get server version from %s: %w", cfg.Host, err)
	}
	return info.GitVersion, nil
}
