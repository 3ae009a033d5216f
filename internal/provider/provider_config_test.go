package provider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
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
		"configured config_paths beat KUBE_CONFIG_PATH": {
			env:  map[string]string{"KUBE_CONFIG_PATH": "/env.yaml"},
			in:   &kubernetesConfigModel{ConfigPaths: testStringList("/a.yaml", "/b.yaml")},
			want: kubeconfig.Config{ConfigPaths: []string{"/a.yaml", "/b.yaml"}},
		},
		"KUBE_CONFIG_PATH comes with KUBE_CONFIG_PATHS and wins later": {
			reason: "kubeconfig.RESTConfig reads config_path first, as hashicorp/kubernetes does",
			env:    map[string]string{"KUBE_CONFIG_PATH": "/one.yaml", "KUBE_CONFIG_PATHS": "/a.yaml"},
			want:   kubeconfig.Config{ConfigPath: "/one.yaml", ConfigPaths: []string{"/a.yaml"}},
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

// keycloakEnv is every variable resolveKeycloak reads.
var keycloakEnv = []string{
	"KAGENTI_KEYCLOAK_URL", "KAGENTI_KEYCLOAK_BASE_PATH", "KAGENTI_KEYCLOAK_MANAGED_REALM", "KAGENTI_KEYCLOAK_REALM",
	"KAGENTI_KEYCLOAK_AUTH_REALM", "KAGENTI_KEYCLOAK_CLIENT_ID", "KAGENTI_KEYCLOAK_CLIENT_SECRET", "KAGENTI_KEYCLOAK_USERNAME",
	"KAGENTI_KEYCLOAK_PASSWORD", "KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE", "KAGENTI_KEYCLOAK_ROOT_CA_FILE",
	"KAGENTI_KEYCLOAK_TLS_INSECURE_SKIP_VERIFY", "KAGENTI_KEYCLOAK_CLIENT_TIMEOUT",
}

// newTestCAPEM returns a freshly generated self-signed CA certificate.
func newTestCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestResolveKeycloak(t *testing.T) {
	testCAPEM := newTestCAPEM(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(testCAPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	defaults := keycloak.Config{Realm: "kagenti", AuthRealm: "master", ClientID: "admin-cli"}
	with := func(f func(*keycloak.Config)) keycloak.Config { c := defaults; f(&c); return c }
	tests := map[string]struct {
		reason   string
		env      map[string]string
		in       *keycloakConfigModel
		want     keycloak.Config
		wantDiag string
	}{
		"nothing set gives the defaults": {
			want: defaults,
		},
		"managed_realm names the managed realm": {
			in:   &keycloakConfigModel{ManagedRealm: types.StringValue("agents")},
			want: with(func(c *keycloak.Config) { c.Realm = "agents" }),
		},
		"the deprecated realm still names the managed realm next to auth_realm": {
			in:   &keycloakConfigModel{Realm: types.StringValue("agents"), AuthRealm: types.StringValue("ops")},
			want: with(func(c *keycloak.Config) { c.Realm, c.AuthRealm = "agents", "ops" }),
		},
		"KAGENTI_KEYCLOAK_MANAGED_REALM wins over the older KAGENTI_KEYCLOAK_REALM": {
			env:  map[string]string{"KAGENTI_KEYCLOAK_MANAGED_REALM": "new", "KAGENTI_KEYCLOAK_REALM": "old"},
			want: with(func(c *keycloak.Config) { c.Realm = "new" }),
		},
		"KAGENTI_KEYCLOAK_REALM is still read": {
			env:  map[string]string{"KAGENTI_KEYCLOAK_REALM": "old"},
			want: with(func(c *keycloak.Config) { c.Realm = "old" }),
		},
		"TLS, timeout and base path come from the block": {
			in: &keycloakConfigModel{RootCACertificate: types.StringValue(testCAPEM), TLSInsecureSkipVerify: types.BoolValue(true),
				ClientTimeout: types.Int64Value(5), BasePath: types.StringValue("/auth")},
			want: with(func(c *keycloak.Config) {
				c.RootCACertificate, c.TLSInsecureSkipVerify, c.ClientTimeout, c.BasePath = testCAPEM, true, 5*time.Second, "/auth"
			}),
		},
		"TLS, timeout and base path fall back to the environment": {
			env: map[string]string{"KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE": testCAPEM, "KAGENTI_KEYCLOAK_TLS_INSECURE_SKIP_VERIFY": "true",
				"KAGENTI_KEYCLOAK_CLIENT_TIMEOUT": "7", "KAGENTI_KEYCLOAK_BASE_PATH": "/auth"},
			want: with(func(c *keycloak.Config) {
				c.RootCACertificate, c.TLSInsecureSkipVerify, c.ClientTimeout, c.BasePath = testCAPEM, true, 7*time.Second, "/auth"
			}),
		},
		"the CA can come from a file": {
			reason: "a runner (and the sandbox's env file) holds a path more easily than a multi-line PEM",
			env:    map[string]string{"KAGENTI_KEYCLOAK_ROOT_CA_FILE": caFile},
			want:   with(func(c *keycloak.Config) { c.RootCACertificate = testCAPEM }),
		},
		"a CA file that cannot be read is an error": {
			env:      map[string]string{"KAGENTI_KEYCLOAK_ROOT_CA_FILE": caFile + ".missing"},
			wantDiag: "KAGENTI_KEYCLOAK_ROOT_CA_FILE names a file that cannot be read",
		},
		"a CA that is not PEM is an error": {
			env:      map[string]string{"KAGENTI_KEYCLOAK_ROOT_CA_CERTIFICATE": "not a certificate"},
			wantDiag: "must hold PEM certificates",
		},
		"a timeout that is not a number of seconds is an error": {
			env:      map[string]string{"KAGENTI_KEYCLOAK_CLIENT_TIMEOUT": "30s"},
			wantDiag: "KAGENTI_KEYCLOAK_CLIENT_TIMEOUT must be a number of seconds",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, k := range keycloakEnv {
				t.Setenv(k, tc.env[k])
			}
			got, diags := resolveKeycloak(tc.in)
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

func TestValidateKeycloakRealms(t *testing.T) {
	tests := map[string]struct {
		reason  string
		in      *keycloakConfigModel
		wantErr bool
	}{
		"no keycloak block is fine": {},
		"managed_realm alone is fine": {
			in: &keycloakConfigModel{ManagedRealm: types.StringValue("kagenti")},
		},
		"realm copied from keycloak/keycloak is refused": {
			reason:  "there realm = \"master\" is the login realm; taken as the managed realm it would manage master",
			in:      &keycloakConfigModel{Realm: types.StringValue("master"), Username: types.StringValue("admin")},
			wantErr: true,
		},
		"realm next to auth_realm is this provider's older spelling": {
			in: &keycloakConfigModel{Realm: types.StringValue("kagenti"), AuthRealm: types.StringValue("master")},
		},
		"a realm not yet known is left to apply": {
			in: &keycloakConfigModel{Realm: types.StringUnknown()},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			diags := validateKeycloakRealms(tc.in)
			if diags.HasError() != tc.wantErr {
				t.Fatalf("%s: error %v, want error %v (%v)", tc.reason, diags.HasError(), tc.wantErr, diags)
			}
		})
	}
}
