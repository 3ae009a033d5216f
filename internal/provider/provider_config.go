package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
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
		// Configured paths beat KUBE_CONFIG_PATH from the environment (the two conflict in the
		// configuration itself).
		c.ConfigPath = ""
		if !kc.ConfigPath.IsNull() && !kc.ConfigPath.IsUnknown() {
			c.ConfigPath = kc.ConfigPath.ValueString()
		}
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

// resolveKeycloak turns the keycloak block into connection settings, each unset field falling
// back to its KAGENTI_KEYCLOAK_* variable.
func resolveKeycloak(kcc *keycloakConfigModel) (keycloak.Config, diag.Diagnostics) {
	var diags diag.Diagnostics
	if kcc == nil {
		kcc = &keycloakConfigModel{}
	}
	managed := kcc.ManagedRealm
	if managed.IsNull() {
		// The deprecated name; validateKeycloakRealms has made sure it comes with auth_realm.
		managed = kcc.Realm
	}
	c := keycloak.Config{
		URL:      stringOr(kcc.URL, "KAGENTI_KEYCLOAK_URL", ""),
		BasePath: stringOr(kcc.BasePath, "KAGENTI_KEYCLOAK_BASE_PATH", ""),
		Realm: stringOr(managed, "KAGENTI_KEYCLOAK_MANAGED_REALM",
			stringOr(types.StringNull(), "KAGENTI_KEYCLOAK_REALM", "kagenti")),
		AuthRealm:             stringOr(kcc.AuthRealm, "KAGENTI_KEYCLOAK_AUTH_REALM", "master"),
		ClientID:              stringOr(kcc.ClientID, "KAGENTI_KEYCLOAK_CLIENT_ID", "admin-cli"),
		ClientSecret:          stringOr(kcc.ClientSecret, "KAGENTI_KEYCLOAK_CLIENT_SECRET", ""),
		Username:              stringOr(kcc.Username, "KAGENTI_KEYCLOAK_USERNAME", ""),
		Password:              stringOr(kcc.Password, "KAGENTI_KEYCLOAK_PASSWORD", ""),
		RootCACertificate:     stringOr(kcc.RootCACertificate, "KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE", ""),
		TLSInsecureSkipVerify: boolOr(kcc.TLSInsecureSkipVerify, "KAGENTI_KEYCLOAK_TLS_INSECURE_SKIP_VERIFY"),
	}
	caPath := path.Root("keycloak").AtName("root_ca_certificate")
	if file := os.Getenv("KAGENTI_KEYCLOAK_ROOT_CA_FILE"); c.RootCACertificate == "" && file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			diags.AddAttributeError(caPath, "Invalid Provider Setting",
				"KAGENTI_KEYCLOAK_ROOT_CA_FILE names a file that cannot be read: set it to a PEM file of the CA that signs "+
					"Keycloak's certificate.\n\nOriginal Error: "+err.Error())
		}
		c.RootCACertificate = string(pem)
	}
	if _, err := keycloak.TLSConfig(c.RootCACertificate, false); err != nil {
		diags.AddAttributeError(caPath, "Invalid Provider Setting",
			"The value of keycloak.root_ca_certificate (or KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE, KAGENTI_KEYCLOAK_ROOT_CA_FILE) "+
				"must hold PEM certificates (-----BEGIN CERTIFICATE-----).")
	}
	timeoutPath := path.Root("keycloak").AtName("client_timeout")
	switch v := os.Getenv("KAGENTI_KEYCLOAK_CLIENT_TIMEOUT"); {
	case !kcc.ClientTimeout.IsNull() && !kcc.ClientTimeout.IsUnknown():
		c.ClientTimeout = time.Duration(kcc.ClientTimeout.ValueInt64()) * time.Second
	case v != "":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3600 {
			diags.AddAttributeError(timeoutPath, "Invalid Provider Setting",
				"KAGENTI_KEYCLOAK_CLIENT_TIMEOUT must be a number of seconds between 1 and 3600, got "+strconv.Quote(v)+".")
		}
		c.ClientTimeout = time.Duration(n) * time.Second
	}
	if c.BasePath != "" && !basePathRe.MatchString(c.BasePath) {
		diags.AddAttributeError(path.Root("keycloak").AtName("base_path"), "Invalid Provider Setting",
			"The value of keycloak.base_path (or KAGENTI_KEYCLOAK_BASE_PATH) must be a path such as /auth, got "+strconv.Quote(c.BasePath)+".")
	}
	return c, diags
}

// validateKeycloakRealms keeps the realm unambiguous next to keycloak/keycloak's provider, where
// `realm` is the realm to log in to. Here the managed realm is `managed_realm`; the old name
// `realm` is still read as the managed realm, but only next to an explicit `auth_realm`, which
// only a block written for this provider has. Alone, `realm` is refused rather than guessed.
func validateKeycloakRealms(kcc *keycloakConfigModel) diag.Diagnostics {
	var diags diag.Diagnostics
	if kcc == nil || kcc.Realm.IsNull() || kcc.Realm.IsUnknown() {
		return diags
	}
	if kcc.AuthRealm.IsNull() && kcc.ManagedRealm.IsNull() {
		realm := kcc.Realm.ValueString()
		diags.AddAttributeError(path.Root("keycloak").AtName("realm"), "Ambiguous Keycloak Realm",
			"keycloak.realm is the realm to log in to in the keycloak/keycloak provider, but was the realm to manage here. "+
				"Say which one "+strconv.Quote(realm)+" is:\n"+
				"  - the realm that holds agent and tool clients: managed_realm = "+strconv.Quote(realm)+"\n"+
				"  - the realm the admin user or client logs in to: auth_realm = "+strconv.Quote(realm)+"\n"+
				"and remove realm. (managed_realm defaults to \"kagenti\", auth_realm to \"master\".)")
	}
	return diags
}

// memoryLimitEnv sets the provider's soft memory limit, and the provider's alone: Terraform and
// OpenTofu hand their environment to the provider, so GOMEMLIMIT would set theirs as well.
const memoryLimitEnv = "KAGENTI_PROVIDER_MEMORY_LIMIT"

// memoryLimit reads KAGENTI_PROVIDER_MEMORY_LIMIT: "off" for no limit (math.MaxInt64, as
// runtime/debug takes it) or a quantity of bytes as Kubernetes writes them (512Mi, 1Gi). set is
// false when it is unset.
func memoryLimit() (limit int64, set bool, err error) {
	v := os.Getenv(memoryLimitEnv)
	switch v {
	case "":
		return 0, false, nil
	case "off":
		return math.MaxInt64, true, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 || q.Value() < 64<<20 {
		return 0, false, fmt.Errorf("%s is %q: set it to off or to a size of at least 64Mi, such as 512Mi or 1Gi", memoryLimitEnv, v)
	}
	return q.Value(), true, nil
}
