package provider

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
)

// defaultExecAPIVersion is the ExecCredential version of a credential plugin that names none.
const defaultExecAPIVersion = "client.authentication.k8s.io/v1"

// resolveKubernetes turns the kubernetes block into connection settings, each unset field
// falling back to the environment variable hashicorp/kubernetes reads for it. A credential
// plugin comes from the exec block or, field by field, from KUBE_EXEC_*.
func resolveKubernetes(ctx context.Context, kc *kubernetesConfigModel) (kubeconfig.Config, diag.Diagnostics) {
	var diags diag.Diagnostics
	if kc == nil {
		kc = &kubernetesConfigModel{}
	}
	c := kubeconfig.Config{
		ConfigPath:            stringOr(kc.ConfigPath, "KUBE_CONFIG_PATH", ""),
		ConfigContext:         stringOr(kc.ConfigContext, "KUBE_CTX", ""),
		ConfigContextAuthInfo: stringOr(kc.ConfigContextAuthInfo, "KUBE_CTX_AUTH_INFO", ""),
		ConfigContextCluster:  stringOr(kc.ConfigContextCluster, "KUBE_CTX_CLUSTER", ""),
		Host:                  stringOr(kc.Host, "KUBE_HOST", ""),
		Token:                 stringOr(kc.Token, "KUBE_TOKEN", ""),
		ClusterCACertificate:  stringOr(kc.ClusterCACertificate, "KUBE_CLUSTER_CA_CERT_DATA", ""),
		ClientCertificate:     stringOr(kc.ClientCertificate, "KUBE_CLIENT_CERT_DATA", ""),
		ClientKey:             stringOr(kc.ClientKey, "KUBE_CLIENT_KEY_DATA", ""),
		Insecure:              boolOr(kc.Insecure, "KUBE_INSECURE"),
		TLSServerName:         stringOr(kc.TLSServerName, "KUBE_TLS_SERVER_NAME", ""),
		ProxyURL:              stringOr(kc.ProxyURL, "KUBE_PROXY_URL", ""),
	}
	if !kc.ConfigPaths.IsNull() && !kc.ConfigPaths.IsUnknown() {
		diags.Append(kc.ConfigPaths.ElementsAs(ctx, &c.ConfigPaths, false)...)
	} else if v := os.Getenv("KUBE_CONFIG_PATHS"); v != "" {
		for _, p := range filepath.SplitList(v) {
			if p != "" {
				c.ConfigPaths = append(c.ConfigPaths, p)
			}
		}
	}

	execPath := path.Root("kubernetes").AtName("exec")
	var block execConfigModel
	if kc.Exec != nil {
		block = *kc.Exec
	}
	exec := &kubeconfig.ExecConfig{
		APIVersion: stringOr(block.APIVersion, "KUBE_EXEC_API_VERSION", defaultExecAPIVersion),
		Command:    stringOr(block.Command, "KUBE_EXEC_COMMAND", ""),
	}
	if !block.Args.IsNull() && !block.Args.IsUnknown() {
		diags.Append(block.Args.ElementsAs(ctx, &exec.Args, false)...)
	} else if v := os.Getenv("KUBE_EXEC_ARGS"); v != "" {
		if err := json.Unmarshal([]byte(v), &exec.Args); err != nil {
			diags.AddAttributeError(execPath.AtName("args"), "Invalid Provider Setting",
				"KUBE_EXEC_ARGS must be a JSON list of strings such as [\"eks\", \"get-token\", \"--cluster-name\", \"prod\"].\n\nOriginal Error: "+err.Error())
		}
	}
	if !block.Env.IsNull() && !block.Env.IsUnknown() {
		diags.Append(block.Env.ElementsAs(ctx, &exec.Env, false)...)
	} else if v := os.Getenv("KUBE_EXEC_ENV"); v != "" {
		if err := json.Unmarshal([]byte(v), &exec.Env); err != nil {
			diags.AddAttributeError(execPath.AtName("env"), "Invalid Provider Setting",
				"KUBE_EXEC_ENV must be a JSON object of strings such as {\"AWS_PROFILE\": \"ci\"}.\n\nOriginal Error: "+err.Error())
		}
	}
	switch {
	case exec.Command != "":
		if exec.APIVersion != "client.authentication.k8s.io/v1" && exec.APIVersion != "client.authentication.k8s.io/v1beta1" {
			diags.AddAttributeError(execPath.AtName("api_version"), "Invalid Provider Setting",
				"The value of kubernetes.exec.api_version (or KUBE_EXEC_API_VERSION) must be client.authentication.k8s.io/v1 or "+
					"client.authentication.k8s.io/v1beta1, got "+exec.APIVersion+".")
		}
		c.Exec = exec
	case exec.Args != nil || exec.Env != nil:
		diags.AddAttributeError(execPath.AtName("command"), "Missing Exec Command",
			"Arguments or environment for a credential plugin are set (kubernetes.exec or KUBE_EXEC_ARGS/KUBE_EXEC_ENV) but no "+
				"command is: set kubernetes.exec.command or KUBE_EXEC_COMMAND.")
	}
	return c, diags
}
