// Package kubeconfig turns connection settings into a client-go REST configuration. It is
// apart from internal/kube so that kagenti-router links client-go's REST and kubeconfig
// packages without the typed clients and every API group they bring.
package kubeconfig

import (
	"errors"
	"fmt"
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
	ConfigPath           string
	ConfigContext        string
	Host                 string
	Token                string
	ClusterCACertificate string
	ClientCertificate    string
	ClientKey            string
	Insecure             bool
	Exec                 *ExecConfig
}

// ExecConfig runs a credential plugin (client.authentication.k8s.io).
type ExecConfig struct {
	APIVersion string
	Command    string
	Args       []string
	Env        map[string]string
}

// ErrNoConfig says no way to reach a cluster was found.
var ErrNoConfig = errors.New("no Kubernetes configuration: set kubernetes.config_path or kubernetes.host in the provider, or KUBECONFIG, or run inside a cluster")

// RESTConfig resolves a Config in the order the hashicorp/kubernetes provider uses: an explicit
// kubeconfig file (with the other fields as overrides), else an explicit host, else $KUBECONFIG,
// else the in-cluster service account.
func RESTConfig(c Config) (*rest.Config, error) {
	overrides := &clientcmd.ConfigOverrides{}
	if c.ConfigContext != "" {
		overrides.CurrentContext = c.ConfigContext
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

	var rules *clientcmd.ClientConfigLoadingRules
	switch {
	case c.ConfigPath != "":
		path, err := expandHome(c.ConfigPath)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
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
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "terraform-provider-kagenti"
	// Composite applies send a burst of small requests, and Terraform applies many composites
	// at once through one provider process; the client-go default (5 qps) or kubectl's (50)
	// would make a 50-agent apply wait on the client's own rate limiter. The API server's
	// priority and fairness still protects it.
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg, nil
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
