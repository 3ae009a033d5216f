package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
)

// kubeEnv is every variable resolveKubernetes reads; each case starts with all of them empty.
var kubeEnv = []string{
	"KUBE_CONFIG_PATH", "KUBE_CONFIG_PATHS", "KUBE_CTX", "KUBE_CTX_AUTH_INFO", "KUBE_CTX_CLUSTER", "KUBE_HOST",
	"KUBE_TOKEN", "KUBE_CLUSTER_CA_CERT_DATA", "KUBE_CLIENT_CERT_DATA", "KUBE_CLIENT_KEY_DATA", "KUBE_INSECURE",
	"KUBE_TLS_SERVER_NAME", "KUBE_PROXY_URL", "KUBE_EXEC_API_VERSION", "KUBE_EXEC_COMMAND", "KUBE_EXEC_ARGS", "KUBE_EXEC_ENV",
}

func testStringList(v ...string) types.List {
	var elems []attr.Value
	for _, s := range v {
		elems = append(elems, types.StringValue(s))
	}
	return types.ListValueMust(types.StringType, elems)
}

func TestResolveKubernetes(t *testing.T) {
	tests := map[string]struct {
		reason   string
		env      map[string]string
		in       *kubernetesConfigModel
		want     kubeconfig.Config
		wantDiag string
	}{
		"no block and no environment resolve to nothing": {
			in:   nil,
			want: kubeconfig.Config{},
		},
		"every new setting falls back to its hashicorp/kubernetes variable": {
			env: map[string]string{"KUBE_CONFIG_PATHS": "/a.yaml:/b.yaml", "KUBE_CTX_AUTH_INFO": "ci", "KUBE_CTX_CLUSTER": "prod",
				"KUBE_TLS_SERVER_NAME": "api.internal", "KUBE_PROXY_URL": "socks5://127.0.0.1:1080"},
			in: &kubernetesConfigModel{},
			want: kubeconfig.Config{ConfigPaths: []string{"/a.yaml", "/b.yaml"}, ConfigContextAuthInfo: "ci",
				ConfigContextCluster: "prod", TLSServerName: "api.internal", ProxyURL: "socks5://127.0.0.1:1080"},
		},
		"configured values win over the environment": {
			env: map[string]string{"KUBE_CONFIG_PATHS": "/env.yaml", "KUBE_TLS_SERVER_NAME": "env", "KUBE_PROXY_URL": "http://env:3128"},
			in: &kubernetesConfigModel{ConfigPaths: testStringList("/cfg.yaml"), TLSServerName: types.StringValue("cfg"),
				ProxyURL: types.StringValue("http://cfg:3128")},
			want: kubeconfig.Config{ConfigPaths: []string{"/cfg.yaml"}, TLSServerName: "cfg", ProxyURL: "http://cfg:3128"},
		},
		"a credential plugin comes from KUBE_EXEC_* without a block": {
			reason: "a runner sets the plugin in its environment, the configuration stays the same for every runner",
			env: map[string]string{"KUBE_HOST": "https://eks.example", "KUBE_EXEC_COMMAND": "aws",
				"KUBE_EXEC_ARGS": `["eks","get-token","--cluster-name","prod"]`, "KUBE_EXEC_ENV": `{"AWS_PROFILE":"ci"}`},
			in: nil,
			want: kubeconfig.Config{Host: "https://eks.example", Exec: &kubeconfig.ExecConfig{APIVersion: defaultExecAPIVersion,
				Command: "aws", Args: []string{"eks", "get-token", "--cluster-name", "prod"}, Env: map[string]string{"AWS_PROFILE": "ci"}}},
		},
		"the exec block's fields win field by field": {
			env: map[string]string{"KUBE_EXEC_COMMAND": "aws", "KUBE_EXEC_ARGS": `["from-env"]`, "KUBE_EXEC_API_VERSION": "client.authentication.k8s.io/v1beta1"},
			in:  &kubernetesConfigModel{Exec: &execConfigModel{Command: types.StringValue("gke-gcloud-auth-plugin")}},
			want: kubeconfig.Config{Exec: &kubeconfig.ExecConfig{APIVersion: "client.authentication.k8s.io/v1beta1",
				Command: "gke-gcloud-auth-plugin", Args: []string{"from-env"}}},
		},
		"KUBE_EXEC_ARGS that is not a JSON list is an error on exec.args": {
			env:      map[string]string{"KUBE_EXEC_COMMAND": "aws", "KUBE_EXEC_ARGS": "eks get-token"},
			wantDiag: "KUBE_EXEC_ARGS must be a JSON list of strings",
		},
		"arguments without a command are an error": {
			env:      map[string]string{"KUBE_EXEC_ARGS": `["eks"]`},
			wantDiag: "no command is",
		},
		"an unknown ExecCredential version from the environment is an error": {
			env:      map[string]string{"KUBE_EXEC_COMMAND": "aws", "KUBE_EXEC_API_VERSION": "client.authentication.k8s.io/v1alpha1"},
			wantDiag: "must be client.authentication.k8s.io/v1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, k := range kubeEnv {
				t.Setenv(k, tc.env[k])
			}
			got, diags := resolveKubernetes(context.Background(), tc.in)
			if tc.wantDiag != "" {
				if !diags.HasError() || !containsDiag(diags.Errors()[0].Detail(), tc.wantDiag) {
					t.Fatalf("diagnostics %v, want an error containing %q", diags, tc.wantDiag)
				}
				return
			}
			if diags.HasError() {
				t.Fatalf("unexpected diagnostics: %v", diags)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\n-want +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func containsDiag(detail, want string) bool {
	return want != "" && strings.Contains(detail, want)
}
