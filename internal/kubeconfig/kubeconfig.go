// Package kubeconfig turns connection settings into a client-go REST configuration. It is
// apart from internal/kube so that kagenti-router links client-go's REST and kubeconfig
// packages without the typed clients and every API group they bring.
package kubeconfig

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Config says how to reach a cluster; its fields mean what they mean in the hashicorp/kubernetes
// provider. Empty fields are not set.
type Config struct {
	ConfigPath string
	// ConfigPaths are merged as $KUBECONFIG's list is (the first file to set a value wins);
	// ConfigPath, when set, is used instead.
	ConfigPaths           []string
	ConfigContext         string
	ConfigContextAuthInfo string
	ConfigContextCluster  string
	Host                  string
	Token                 string
	ClusterCACertificate  string
	ClientCertificate     string
	ClientKey             string
	Insecure              bool
	// TLSServerName is the name checked against the API server's certificate (and sent as SNI)
	// instead of the host's, e.g. when the API server is reached through a tunnel.
	TLSServerName string
	// ProxyURL is an http, https or socks5 proxy for every request to the API server.
	ProxyURL string
	Exec     *ExecConfig
}

// ExecConfig runs a credential plugin (client.authentication.k8s.io).
type ExecConfig struct {
	APIVersion string
	Command    string
	Args       []string
	Env        map[string]string
}

// ErrNoConfig says no way to reach a cluster was found.
var ErrNoConfig = errors.New("no Kubernetes configuration: set kubernetes.config_path, config_paths or host in the provider, or KUBECONFIG, or run inside a cluster")

// RESTConfig resolves a Config in the order the hashicorp/kubernetes provider uses: explicit
// kubeconfig files (with the other fields as overrides), else an explicit host, else the
// in-cluster service account. One step differs on purpose: before the in-cluster account, the
// files in $KUBECONFIG are read as kubectl reads them, so that a runner which already works with
// kubectl needs no provider settings (hashicorp/kubernetes ignores $KUBECONFIG).
func RESTConfig(c Config) (*rest.Config, error) {
	overrides := &clientcmd.ConfigOverrides{}
	if c.ConfigContext != "" {
		overrides.CurrentContext = c.ConfigContext
	}
	if c.ConfigContextAuthInfo != "" {
		overrides.Context.AuthInfo = c.ConfigContextAuthInfo
	}
	if c.ConfigContextCluster != "" {
		overrides.Context.Cluster = c.ConfigContextCluster
	}
	if c.TLSServerName != "" {
		overrides.ClusterInfo.TLSServerName = c.TLSServerName
	}
	if c.ProxyURL != "" {
		overrides.ClusterInfo.ProxyURL = c.ProxyURL
	}
	if c.Host != "" {
		overrides.ClusterInfo.Server = c.Host
	}
	if c.ClusterCACertificate != "" {
		overrides.ClusterInfo.CertificateAuthorityData = []byte(c.ClusterCACertificate)
	}
	if c.Insecure {
		overrides.ClusterInfo.InsecureSkipTLSVerify = true
	}
	if c.Token != "" {
		overrides.AuthInfo.Token = c.Token
	}
	if c.ClientCertificate != "" {
		overrides.AuthInfo.ClientCertificateData = []byte(c.ClientCertificate)
	}
	if c.ClientKey != "" {
		overrides.AuthInfo.ClientKeyData = []byte(c.ClientKey)
	}
	if c.Exec != nil {
		exec := &clientcmdapi.ExecConfig{
			APIVersion:      c.Exec.APIVersion,
			Command:         c.Exec.Command,
			Args:            c.Exec.Args,
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		}
		for k, v := range c.Exec.Env {
			exec.Env = append(exec.Env, clientcmdapi.ExecEnvVar{Name: k, Value: v})
		}
		overrides.AuthInfo.Exec = exec
	}

	paths := c.ConfigPaths
	if c.ConfigPath != "" {
		paths = []string{c.ConfigPath}
	}
	var rules *clientcmd.ClientConfigLoadingRules
	switch {
	case len(paths) > 0:
		var expanded []string
		for _, p := range paths {
			path, err := expandHome(p)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
			}
			expanded = append(expanded, path)
		}
		if len(expanded) == 1 {
			rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: expanded[0]}
		} else {
			rules = &clientcmd.ClientConfigLoadingRules{Precedence: expanded}
		}
	case c.Host != "":
		// Everything comes from the fields: no file is read.
		rules = &clientcmd.ClientConfigLoadingRules{}
	case os.Getenv("KUBECONFIG") != "":
		rules = clientcmd.NewDefaultClientConfigLoadingRules()
	default:
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, ErrNoConfig
		}
		if err := inClusterOverrides(cfg, c); err != nil {
			return nil, err
		}
		return tune(cfg), nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client configuration: %w", err)
	}
	return tune(cfg), nil
}

// inClusterOverrides applies to the in-cluster account the settings that make sense there: a
// proxy and the TLS server name.
func inClusterOverrides(cfg *rest.Config, c Config) error {
	if c.TLSServerName != "" {
		cfg.TLSClientConfig.ServerName = c.TLSServerName
	}
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil {
			return fmt.Errorf("kubernetes proxy_url %q: %w", c.ProxyURL, err)
		}
		cfg.Proxy = http.ProxyURL(u)
	}
	return nil
}

func tune(cfg *rest.Config) *rest.Config {
	cfg.UserAgent = "terraform-provider-kagenti"
	// Composite applies send a burst of small requests, and Terraform applies many composites
	// at once through one provider process; the client-go default (5 qps) or kubectl's (50)
	// would make a 50-agent apply wait on the client's own rate limiter. The API server's
	// priority and fairness still protects it.
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg
}

func expandHome(path string) (string, error) {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, rest), nil
	}
	return path, nil
}
