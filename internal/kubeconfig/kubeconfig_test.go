package kubeconfig_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
)

// clusters.yaml: two clusters, two users, two contexts; current-context a.
const clustersYAML = `apiVersion: v1
kind: Config
current-context: a
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: a
  user: {token: token-a}
- name: b
  user: {token: token-b}
contexts:
- name: a
  context: {cluster: a, user: a}
- name: b
  context: {cluster: b, user: b}
`

// override.yaml only switches the current context: merged before clusters.yaml, it wins.
const overrideYAML = `apiVersion: v1
kind: Config
current-context: b
`

// resolved is what a test compares of a REST config.
type resolved struct {
	Host, Token, ServerName, Proxy string
	Insecure                       bool
	Exec                           string
	Err                            string
}

func summarize(t *testing.T, c kubeconfig.Config) resolved {
	t.Helper()
	cfg, err := kubeconfig.RESTConfig(c)
	if err != nil {
		return resolved{Err: err.Error()}
	}
	r := resolved{Host: cfg.Host, Token: cfg.BearerToken, ServerName: cfg.TLSClientConfig.ServerName, Insecure: cfg.Insecure}
	if cfg.Proxy != nil {
		req, _ := http.NewRequest(http.MethodGet, cfg.Host, nil)
		u, err := cfg.Proxy(req)
		if err != nil {
			t.Fatal(err)
		}
		if u != nil {
			r.Proxy = u.String()
		}
	}
	if cfg.ExecProvider != nil {
		r.Exec = cfg.ExecProvider.Command + " " + strings.Join(cfg.ExecProvider.Args, " ")
	}
	return r
}

func TestRESTConfig(t *testing.T) {
	dir := t.TempDir()
	clusters := filepath.Join(dir, "clusters.yaml")
	override := filepath.Join(dir, "override.yaml")
	for path, content := range map[string]string{clusters: clustersYAML, override: overrideYAML} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		reason     string
		kubeconfig string // $KUBECONFIG
		in         kubeconfig.Config
		want       resolved
	}{
		"a config_path uses the file's current context": {
			in:   kubeconfig.Config{ConfigPath: clusters},
			want: resolved{Host: "https://a.example:6443", Token: "token-a"},
		},
		"config_context picks another context": {
			in:   kubeconfig.Config{ConfigPath: clusters, ConfigContext: "b"},
			want: resolved{Host: "https://b.example:6443", Token: "token-b"},
		},
		"config_context_cluster replaces the context's cluster only": {
			in:   kubeconfig.Config{ConfigPath: clusters, ConfigContextCluster: "b"},
			want: resolved{Host: "https://b.example:6443", Token: "token-a"},
		},
		"config_context_auth_info replaces the context's user only": {
			in:   kubeconfig.Config{ConfigPath: clusters, ConfigContextAuthInfo: "b"},
			want: resolved{Host: "https://a.example:6443", Token: "token-b"},
		},
		"config_paths are merged, the first file winning": {
			in:   kubeconfig.Config{ConfigPaths: []string{override, clusters}},
			want: resolved{Host: "https://b.example:6443", Token: "token-b"},
		},
		"config_path wins over config_paths": {
			reason: "as in hashicorp/kubernetes, where the two conflict and KUBE_CONFIG_PATH is read first",
			in:     kubeconfig.Config{ConfigPath: clusters, ConfigPaths: []string{override, clusters}},
			want:   resolved{Host: "https://a.example:6443", Token: "token-a"},
		},
		"a missing kubeconfig file is an error naming it": {
			in:   kubeconfig.Config{ConfigPaths: []string{clusters, filepath.Join(dir, "missing.yaml")}},
			want: resolved{Err: "kubeconfig " + filepath.Join(dir, "missing.yaml") + ": stat " + filepath.Join(dir, "missing.yaml") + ": no such file or directory"},
		},
		"host and token alone read no file": {
			kubeconfig: clusters,
			in:         kubeconfig.Config{Host: "https://c.example:6443", Token: "token-c"},
			want:       resolved{Host: "https://c.example:6443", Token: "token-c"},
		},
		"host overrides the file's server": {
			in:   kubeconfig.Config{ConfigPath: clusters, Host: "https://tunnel.example:443"},
			want: resolved{Host: "https://tunnel.example:443", Token: "token-a"},
		},
		"tls_server_name and proxy_url apply to the file's cluster": {
			in: kubeconfig.Config{ConfigPath: clusters, TLSServerName: "kubernetes.default.svc", ProxyURL: "socks5://127.0.0.1:1080"},
			want: resolved{Host: "https://a.example:6443", Token: "token-a", ServerName: "kubernetes.default.svc",
				Proxy: "socks5://127.0.0.1:1080"},
		},
		"tls_server_name and proxy_url apply to a configured host": {
			in: kubeconfig.Config{Host: "https://10.0.0.1:6443", Token: "t", TLSServerName: "api.internal", ProxyURL: "http://proxy.example:3128"},
			want: resolved{Host: "https://10.0.0.1:6443", Token: "t", ServerName: "api.internal",
				Proxy: "http://proxy.example:3128"},
		},
		"an exec plugin is added to the file's user": {
			in: kubeconfig.Config{ConfigPath: clusters, Exec: &kubeconfig.ExecConfig{APIVersion: "client.authentication.k8s.io/v1",
				Command: "aws", Args: []string{"eks", "get-token"}}},
			want: resolved{Host: "https://a.example:6443", Token: "token-a", Exec: "aws eks get-token"},
		},
		"$KUBECONFIG is read when nothing is configured": {
			reason:     "a deliberate difference from hashicorp/kubernetes: runners that work with kubectl need no settings",
			kubeconfig: override + string(filepath.ListSeparator) + clusters,
			in:         kubeconfig.Config{},
			want:       resolved{Host: "https://b.example:6443", Token: "token-b"},
		},
		"$KUBECONFIG is ignored when a config_path is set": {
			kubeconfig: override + string(filepath.ListSeparator) + clusters,
			in:         kubeconfig.Config{ConfigPath: clusters},
			want:       resolved{Host: "https://a.example:6443", Token: "token-a"},
		},
		"nothing configured outside a cluster is ErrNoConfig": {
			in:   kubeconfig.Config{},
			want: resolved{Err: kubeconfig.ErrNoConfig.Error()},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.kubeconfig)
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			got := summarize(t, tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\n-want +got:\n%s", tc.reason, diff)
			}
		})
	}
}
