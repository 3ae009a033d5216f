package provider

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

const testAccEnvironmentData = `
data "kagenti_environment" "test" {}
`

// environmentChecks asserts the values the sandbox really serves: the version the apiserver was
// built as, the trust domain SPIRE was started with and the issuer Keycloak derives from its URL.
func environmentChecks(withSpire, withKeycloak bool) []statecheck.StateCheck {
	sb := testAccSandbox
	ds := "data.kagenti_environment.test"
	checks := []statecheck.StateCheck{
		statecheck.ExpectKnownValue(ds, tfjsonpath.New("kubernetes").AtMapKey("version"), knownvalue.StringExact(testenv.KubernetesVersion)),
		statecheck.ExpectKnownValue(ds, tfjsonpath.New("kubernetes").AtMapKey("host"), knownvalue.StringExact(sb.Kubernetes.Server)),
		statecheck.ExpectKnownValue(ds, tfjsonpath.New("label_domain"), knownvalue.StringExact("kagenti.io")),
	}
	if withSpire {
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("spire").AtMapKey("trust_domain"), knownvalue.StringExact(sb.Spire.TrustDomain)),
			// A SPIFFE bundle carries the X.509 CA and at least one JWT signing key.
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("spire").AtMapKey("bundle_jwks"),
				knownvalue.StringRegexp(regexp.MustCompile(`"use":"x509-svid".*"use":"jwt-svid"|"use":"jwt-svid".*"use":"x509-svid"`))),
		)
	} else {
		checks = append(checks, statecheck.ExpectKnownValue(ds, tfjsonpath.New("spire"), knownvalue.Null()))
	}
	if withKeycloak {
		issuer := sb.Keycloak.URL + "/realms/" + sb.Keycloak.Realm
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("keycloak").AtMapKey("realm"), knownvalue.StringExact(sb.Keycloak.Realm)),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("keycloak").AtMapKey("issuer"), knownvalue.StringExact(issuer)),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("keycloak").AtMapKey("token_url"), knownvalue.StringExact(issuer+"/protocol/openid-connect/token")),
		)
	} else {
		checks = append(checks, statecheck.ExpectKnownValue(ds, tfjsonpath.New("keycloak"), knownvalue.Null()))
	}
	return checks
}

// The provider configured by environment variables only (KUBECONFIG, KAGENTI_SPIRE_*,
// KAGENTI_KEYCLOAK_*) reads all three systems.
func TestAccEnvironmentDataSource_EnvOnly(t *testing.T) {
	testAccPreCheck(t)
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{
			Config:            testAccEnvironmentData,
			ConfigStateChecks: environmentChecks(true, true),
		}},
	})
}

// An explicit kubeconfig file and context, with SPIRE and Keycloak set in the provider block.
func TestAccEnvironmentDataSource_KubeconfigFile(t *testing.T) {
	testAccPreCheck(t)
	sb := testAccSandbox
	t.Setenv("KUBECONFIG", "")
	for _, k := range []string{"KAGENTI_SPIRE_ADDRESS", "KAGENTI_SPIRE_TRUST_DOMAIN", "KAGENTI_KEYCLOAK_URL", "KAGENTI_KEYCLOAK_USERNAME",
		"KAGENTI_KEYCLOAK_PASSWORD", "KAGENTI_KEYCLOAK_ROOT_CA_FILE", "KAGENTI_KEYCLOAK_MANAGED_REALM"} {
		t.Setenv(k, "")
	}
	config := fmt.Sprintf(`
provider "kagenti" {
  kubernetes {
    config_path    = %s
    config_context = "kagenti-sandbox-token"
  }
  spire {
    address      = "unix://%s"
    trust_domain = %q
  }
  keycloak {
    url                 = %q
    managed_realm       = %q
    username            = %q
    password            = %q
    root_ca_certificate = file(%s)
  }
}
`, hclPath(sb.Kubernetes.Kubeconfig), sb.Spire.Socket, sb.Spire.TrustDomain, sb.Keycloak.URL, sb.Keycloak.Realm,
		sb.Keycloak.AdminUser, sb.Keycloak.AdminPassword, hclPath(sb.Keycloak.CAFile)) + testAccEnvironmentData
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{Config: config, ConfigStateChecks: environmentChecks(true, true)}},
	})
}

// host + token + CA, with no kubeconfig anywhere, and no SPIRE or Keycloak settings: the
// provider must work with Kubernetes alone and read the other two as null.
func TestAccEnvironmentDataSource_HostTokenKubernetesOnly(t *testing.T) {
	testAccPreCheck(t)
	sb := testAccSandbox
	for _, k := range []string{"KUBECONFIG", "KAGENTI_SPIRE_ADDRESS", "KAGENTI_SPIRE_TRUST_DOMAIN", "KAGENTI_KEYCLOAK_URL", "KAGENTI_KEYCLOAK_USERNAME", "KAGENTI_KEYCLOAK_PASSWORD"} {
		t.Setenv(k, "")
	}
	config := fmt.Sprintf(`
provider "kagenti" {
  kubernetes {
    host                   = %q
    token                  = %q
    cluster_ca_certificate = file(%s)
  }
}
`, sb.Kubernetes.Server, sb.Kubernetes.Token, hclPath(sb.Kubernetes.CAFile)) + testAccEnvironmentData
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{Config: config, ConfigStateChecks: environmentChecks(false, false)}},
	})
}

// Each backend that is configured but unreachable or wrong gives one clear error naming it.
func TestAccEnvironmentDataSource_BackendErrors(t *testing.T) {
	testAccPreCheck(t)
	sb := testAccSandbox
	missingSocket := filepath.Join(t.TempDir(), "nothing.sock")
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				Config:      fmt.Sprintf("provider \"kagenti\" {\n  spire {\n    address = \"unix://%s\"\n  }\n}\n", missingSocket) + testAccEnvironmentData,
				ExpectError: regexp.MustCompile(`SPIRE Server Unreachable`),
			},
			{
				Config:      "provider \"kagenti\" {\n  spire {\n    trust_domain = \"other.example\"\n  }\n}\n" + testAccEnvironmentData,
				ExpectError: regexp.MustCompile(`serves\s+trust\s+domain\s+"` + regexp.QuoteMeta(sb.Spire.TrustDomain) + `",\s+not\s+the\s+configured\s+"other.example"`),
			},
			{
				Config:      "provider \"kagenti\" {\n  keycloak {\n    password = \"wrong\"\n    username = \"admin\"\n  }\n}\n" + testAccEnvironmentData,
				ExpectError: regexp.MustCompile(`Keycloak Unreachable(.|\n)*Invalid user credentials`),
			},
			{
				Config:      "provider \"kagenti\" {\n  kubernetes {\n    host = \"https://127.0.0.1:1\"\n    insecure = true\n  }\n}\n" + testAccEnvironmentData,
				ExpectError: regexp.MustCompile(`Kubernetes API Unreachable`),
			},
		},
	})
}

// Bad settings fail at plan time with an error on the attribute, before anything is contacted
// (a unit test: no backend is needed).
func TestProvider_PlanTimeValidation(t *testing.T) {
	cases := map[string]struct {
		block string
		want  string
	}{
		"host must be a URL":                          {`kubernetes { host = "127.0.0.1:6443" }`, `must be an http\(s\) URL`},
		"spire address must be a socket or host:port": {`spire { address = "https://spire:8081" }`, `must be a unix socket address`},
		"trust domain without scheme":                 {`spire { trust_domain = "spiffe://example.org" }`, `must be a trust domain name`},
		"client certificate needs its key":            {`kubernetes { client_certificate = "x" }`, `client_key`},
		"keycloak password needs the username":        {`keycloak { password = "x" }`, `username`},
		"label domain must be a DNS subdomain":        {`label_domain = "Kagenti IO"`, `must be a DNS subdomain`},
		"keycloak realm alone is ambiguous":           {`keycloak { realm = "master" }`, `Ambiguous Keycloak Realm`},
		"managed_realm conflicts with realm":          {`keycloak {` + "\n" + `managed_realm = "a"` + "\n" + `realm = "b"` + "\n" + `auth_realm = "master"` + "\n}", `managed_realm`},
		"proxy_url must be a proxy URL":               {`kubernetes { proxy_url = "127.0.0.1:3128" }`, `must be an http, https or socks5 URL`},
		"config_path conflicts with paths":            {`kubernetes {` + "\n" + `config_path = "a"` + "\n" + `config_paths = ["b"]` + "\n}", `config_paths`},
		"keycloak CA must be PEM":                     {`keycloak { root_ca_certificate = "x" }`, `must be a PEM certificate`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			unitTest(t, resource.TestCase{
				Steps: []resource.TestStep{{
					Config:      "provider \"kagenti\" {\n  " + tc.block + "\n}\n" + testAccEnvironmentData,
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(tc.want),
				}},
			})
		})
	}
}
