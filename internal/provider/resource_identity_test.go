package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// identityTestEnv talks to the sandbox's SPIRE and Keycloak directly, as a workload would.
type identityTestEnv struct {
	spire    *spire.Client
	keycloak *keycloak.Client
	// http reaches the sandbox's Keycloak (HTTPS under the sandbox's private CA).
	http *http.Client
}

func newIdentityTestEnv(t *testing.T) *identityTestEnv {
	t.Helper()
	testAccPreCheck(t)
	sb := testAccSandbox
	sc, err := spire.Dial("unix://" + sb.Spire.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	ca, err := os.ReadFile(sb.Keycloak.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := keycloak.New(context.Background(), keycloak.Config{URL: sb.Keycloak.URL, Realm: sb.Keycloak.Realm,
		Username: sb.Keycloak.AdminUser, Password: sb.Keycloak.AdminPassword, RootCACertificate: string(ca)})
	if err != nil {
		t.Fatal(err)
	}
	hc, err := sb.Keycloak.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	return &identityTestEnv{spire: sc, keycloak: kc, http: hc}
}

func (e *identityTestEnv) issuer() string {
	return testAccSandbox.Keycloak.URL + "/realms/" + testAccSandbox.Keycloak.Realm
}

// clientToken logs a workload in with a JWT-SVID minted for it as the client assertion: no
// secret is involved anywhere.
func (e *identityTestEnv) clientToken(ctx context.Context, spiffeID string) (string, error) {
	return e.clientTokenWithScope(ctx, spiffeID, "")
}

// clientTokenWithScope is clientToken asking for a scope (e.g. an audience scope).
func (e *identityTestEnv) clientTokenWithScope(ctx context.Context, spiffeID, scope string) (string, error) {
	svid, err := e.spire.MintJWTSVID(ctx, spiffeID, []string{e.issuer()}, 2*time.Minute)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"},
		"client_assertion":      {svid},
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	return e.tokenRequest(ctx, form)
}

// exchange is an RFC 8693 token exchange by the workload spiffeID (authenticated by a fresh
// JWT-SVID) of subjectToken for a token to audience.
func (e *identityTestEnv) exchange(ctx context.Context, spiffeID, subjectToken, audience string) (string, error) {
	svid, err := e.spire.MintJWTSVID(ctx, spiffeID, []string{e.issuer()}, 2*time.Minute)
	if err != nil {
		return "", err
	}
	return e.tokenRequest(ctx, url.Values{
		"grant_type":            {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"},
		"client_assertion":      {svid},
		"subject_token":         {subjectToken},
		"subject_token_type":    {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":              {audience},
		"scope":                 {keycloak.AudienceScopeName(audience)},
	})
}

func (e *identityTestEnv) tokenRequest(ctx context.Context, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.issuer()+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s: %s", resp.Status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: no access_token in %s", body)
	}
	return tok.AccessToken, nil
}

// claims decodes a JWT's payload (the token came straight from Keycloak over loopback).
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func audiences(c map[string]any) []string {
	switch a := c["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

func testAccIdentityConfig(ns, jwtTTL string, extraCallee string) string {
	return fmt.Sprintf(`
resource "kagenti_identity" "caller" {
  namespace       = %[1]q
  service_account = "ui"
  keycloak_client = { token_exchange = true }
}

resource "kagenti_identity" "other" {
  namespace       = %[1]q
  service_account = "intruder"
  keycloak_client = { token_exchange = true }
}

resource "kagenti_identity" "callee" {
  namespace       = %[1]q
  service_account = "weather-service"
  x509_svid_ttl   = "1h"
  jwt_svid_ttl    = %[2]q
  keycloak_client = {
    allowed_callers = [kagenti_identity.caller.keycloak_client_id]
  }
%[3]s
}
`, ns, jwtTTL, extraCallee)
}

// The seed's promise end to end: SPIRE entries and Keycloak clients from Terraform; a real
// JWT-SVID logs the caller in with no secret; the caller exchanges its token for one to the
// callee (allowed); a workload not on the list is refused; drift in either system is repaired;
// destroy leaves neither entry nor client. The provider registers over the SPIRE server API on
// TCP (mutual TLS with the sandbox's admin X509-SVID): it gets no socket.
func TestAccIdentityResource_TokenExchange(t *testing.T) {
	env := newIdentityTestEnv(t)
	testAccSpireMode(t, testenv.SpireTCP)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			testAccIdentityTokenExchange(t, env, testenv.SpireTCP)
		})
	}
}

// TestAccIdentityResource_TokenExchange_Kubernetes is the same story with Kubernetes-native
// registration: the provider writes ClusterSPIFFEIDs and has no access to SPIRE at all; the
// sandbox's SPIRE Controller Manager creates the entries for the pods they select, which the test
// checks in SPIRE itself.
func TestAccIdentityResource_TokenExchange_Kubernetes(t *testing.T) {
	env := newIdentityTestEnv(t)
	if !testAccSandbox.Spire.ControllerManager {
		t.Skip("the sandbox runs no SPIRE Controller Manager (it needs the kubernetes and spire components)")
	}
	testAccSpireMode(t, testenv.SpireKubernetes)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			testAccIdentityTokenExchange(t, env, testenv.SpireKubernetes)
		})
	}
}

// testAccSpireModes are the ways of registering identities without SPIRE's socket that the
// sandbox runs: the server API over mutual TLS, and ClusterSPIFFEIDs when its SPIRE Controller
// Manager runs.
func testAccSpireModes() []testenv.SpireMode {
	modes := []testenv.SpireMode{testenv.SpireTCP}
	if testAccSandbox.Spire.ControllerManager {
		modes = append(modes, testenv.SpireKubernetes)
	}
	return modes
}

// testAccSpireMode points the in-process provider at the sandbox's SPIRE the way mode says, for
// the rest of the test.
func testAccSpireMode(t *testing.T, mode testenv.SpireMode) {
	t.Helper()
	for _, k := range testenv.SpireEnvKeys {
		t.Setenv(k, "")
	}
	for k, v := range testAccSandbox.EnvFor(mode) {
		t.Setenv(k, v)
	}
}

// waitEntry polls SPIRE until an entry of spiffeID satisfies ok (the controller manager
// reconciles asynchronously), and returns it.
func (e *identityTestEnv) waitEntry(ctx context.Context, spiffeID string, ok func([]spire.Entry) bool) ([]spire.Entry, error) {
	var last []spire.Entry
	var lastErr error
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		last, lastErr = e.spire.FindEntries(ctx, spiffeID)
		if lastErr == nil && ok(last) {
			return last, nil
		}
		time.Sleep(time.Second)
	}
	return last, fmt.Errorf("SPIRE entries of %s did not converge in 90s: %+v (last error %v)", spiffeID, last, lastErr)
}

// testAccWorkloadPod runs a pod of the service account on a kwok node, so that a ClusterSPIFFEID
// that selects it gets an entry.
func testAccWorkloadPod(t *testing.T, client kubernetes.Interface, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeSelector:       map[string]string{"type": "kwok"},
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func testAccIdentityTokenExchange(t *testing.T, env *identityTestEnv, mode testenv.SpireMode) {
	ctx := context.Background()
	k8s := mode == testenv.SpireKubernetes
	ns := "idacc-" + rand.String(5)
	td := testAccSandbox.Spire.TrustDomain
	callerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/ui", td, ns)
	calleeID := fmt.Sprintf("spiffe://%s/ns/%s/sa/weather-service", td, ns)
	otherID := fmt.Sprintf("spiffe://%s/ns/%s/sa/intruder", td, ns)
	callee := "kagenti_identity.callee"
	var calleeEntryID string
	var kube kubernetes.Interface
	var crs dynamic.NamespaceableResourceInterface
	if k8s {
		kube = testAccKube(t)
		crs = testAccDynamic(t).Resource(schema.GroupVersionResource{Group: "spire.spiffe.io", Version: "v1alpha1", Resource: "clusterspiffeids"})
		// Pods of the callee and the caller, for the controller manager to register.
		testAccWorkloadPod(t, kube, ns, "weather-service")
		testAccWorkloadPod(t, kube, ns, "ui")
		t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	}
	// entryOf finds the SPIRE entry of a SPIFFE ID: by id over the server API; with
	// ClusterSPIFFEIDs, the one the controller manager created once it has the wanted JWT TTL.
	entryOf := func(spiffeID, id string, jwtTTL time.Duration) (spire.Entry, error) {
		if !k8s {
			return env.spire.GetEntry(ctx, id)
		}
		// A ClusterSPIFFEID selects the namespace's pods, and the controller manager makes an
		// entry per pod, each with the identity's k8s:sa selector: only the entry of the pod
		// that runs as that account can ever be issued. That one is checked.
		sa := spiffeID[strings.LastIndex(spiffeID, "/")+1:]
		pod, err := kube.CoreV1().Pods(ns).Get(ctx, sa, metav1.GetOptions{})
		if err != nil {
			return spire.Entry{}, err
		}
		ofPod := func(es []spire.Entry) []spire.Entry {
			var mine []spire.Entry
			for _, e := range es {
				if slices.Contains(e.Selectors, "k8s:pod-uid:"+string(pod.UID)) {
					mine = append(mine, e)
				}
			}
			return mine
		}
		entries, err := env.waitEntry(ctx, spiffeID, func(es []spire.Entry) bool {
			mine := ofPod(es)
			return len(mine) == 1 && mine[0].JWTSVIDTTL == jwtTTL
		})
		if err != nil {
			return spire.Entry{}, err
		}
		entries = ofPod(entries)
		parent := "spiffe://" + td + "/spire/agent/k8s_psat/" + testenv.ControllerManagerClusterName + "/"
		if e := entries[0]; !strings.HasPrefix(e.ParentID, parent) || !strings.HasPrefix(e.ID, testenv.ControllerManagerEntryPrefix) {
			return e, fmt.Errorf("entry of %s is not the controller manager's for a node: %+v", spiffeID, e)
		}
		return entries[0], nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			for _, id := range []string{callerID, calleeID, otherID} {
				if k8s {
					if _, err := crs.Get(ctx, spire.ClusterSPIFFEIDName(id), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
						return fmt.Errorf("ClusterSPIFFEID of %s left after destroy (err %v)", id, err)
					}
				}
				entries, err := env.waitEntry(ctx, id, func(es []spire.Entry) bool { return len(es) == 0 })
				if err != nil {
					return err
				}
				if len(entries) > 0 {
					return fmt.Errorf("SPIRE entries of %s left after destroy: %v", id, entries)
				}
				if _, err := env.keycloak.FindClient(ctx, id); !errors.Is(err, keycloak.ErrNotFound) {
					return fmt.Errorf("Keycloak client %s left after destroy (err %v)", id, err)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: testAccIdentityConfig(ns, "5m", ""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(callee, tfjsonpath.New("spiffe_id"), knownvalue.StringExact(calleeID)),
					statecheck.ExpectKnownValue(callee, tfjsonpath.New("keycloak_client_id"), knownvalue.StringExact(calleeID)),
					statecheck.ExpectKnownValue(callee, tfjsonpath.New("selectors"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("k8s:ns:" + ns), knownvalue.StringExact("k8s:sa:weather-service")})),
					statecheck.ExpectKnownValue(callee, tfjsonpath.New("issuer"), knownvalue.StringExact(env.issuer())),
					statecheck.ExpectKnownValue(callee, tfjsonpath.New("keycloak_client").AtMapKey("authentication"), knownvalue.StringExact("federated-jwt")),
				},
				Check: func(s *terraform.State) error {
					calleeEntryID = s.RootModule().Resources[callee].Primary.ID
					if k8s && calleeEntryID != spire.ClusterSPIFFEIDName(calleeID) {
						return fmt.Errorf("id = %s, want the ClusterSPIFFEID %s", calleeEntryID, spire.ClusterSPIFFEIDName(calleeID))
					}
					entry, err := entryOf(calleeID, calleeEntryID, 5*time.Minute)
					if err != nil {
						return err
					}
					if entry.SPIFFEID != calleeID || entry.JWTSVIDTTL != 5*time.Minute || entry.X509SVIDTTL != time.Hour {
						return fmt.Errorf("SPIRE entry = %+v", entry)
					}
					// 2-3: the caller logs in with a JWT-SVID: no secret exists for it.
					callerToken, err := env.clientToken(ctx, callerID)
					if err != nil {
						return fmt.Errorf("caller login with its JWT-SVID: %w", err)
					}
					if c := claims(t, callerToken); c["azp"] != callerID {
						return fmt.Errorf("caller token azp = %v, want %s", c["azp"], callerID)
					}
					// 4: exchange for the callee: granted, audience = callee, azp names the caller.
					exchanged, err := env.exchange(ctx, callerID, callerToken, calleeID)
					if err != nil {
						return fmt.Errorf("allowed exchange refused: %w", err)
					}
					c := claims(t, exchanged)
					if !slices.Contains(audiences(c), calleeID) || c["azp"] != callerID {
						return fmt.Errorf("exchanged token: aud %v azp %v, want aud %s azp %s", c["aud"], c["azp"], calleeID, callerID)
					}
					// 5: a workload not in allowed_callers is refused.
					otherToken, err := env.clientToken(ctx, otherID)
					if err != nil {
						return fmt.Errorf("other login: %w", err)
					}
					_, err = env.exchange(ctx, otherID, otherToken, calleeID)
					if err == nil {
						return fmt.Errorf("exchange by %s (not an allowed caller) was granted", otherID)
					}
					// Refused for the allow-list, not for some other failure (its login worked).
					if !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "invalid_scope") {
						return fmt.Errorf("exchange by %s refused for the wrong reason: %w", otherID, err)
					}
					return nil
				},
			},
			{
				// The grants live on the callers' clients, so an import does not read who may
				// call (keycloak_client.allowed_callers, and the access edges from them): the
				// next apply sets them from the configuration.
				ResourceName:            callee,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"keycloak_client", "access"},
			},
			{
				// Import by Keycloak client id, which is the SPIFFE ID.
				ResourceName:            callee,
				ImportState:             true,
				ImportStateId:           calleeID,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"keycloak_client", "access"},
			},
			{
				// A TTL change plans exactly that: an in-place update.
				Config: testAccIdentityConfig(ns, "2m", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(callee, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("kagenti_identity.caller", plancheck.ResourceActionNoop),
					plancheck.ExpectKnownValue(callee, tfjsonpath.New("jwt_svid_ttl"), knownvalue.StringExact("2m")),
				}},
				Check: func(*terraform.State) error {
					entry, err := entryOf(calleeID, calleeEntryID, 2*time.Minute)
					if err != nil {
						return err
					}
					if entry.JWTSVIDTTL != 2*time.Minute {
						return fmt.Errorf("jwt ttl in SPIRE = %s, want 2m", entry.JWTSVIDTTL)
					}
					return nil
				},
			},
			{
				// Out of band: the callee's client and the caller's SPIRE entry disappear.
				PreConfig: func() {
					uuid, err := env.keycloak.FindClient(ctx, calleeID)
					if err != nil {
						t.Fatal(err)
					}
					if err := env.keycloak.DeleteClient(ctx, uuid); err != nil {
						t.Fatal(err)
					}
					if k8s {
						// Its registration is the ClusterSPIFFEID; the controller manager then
						// removes the entry.
						if err := crs.Delete(ctx, spire.ClusterSPIFFEIDName(callerID), metav1.DeleteOptions{}); err != nil {
							t.Fatal(err)
						}
						return
					}
					entries, err := env.spire.FindEntries(ctx, callerID)
					if err != nil || len(entries) != 1 {
						t.Fatalf("caller entries %v, %v", entries, err)
					}
					if err := env.spire.DeleteEntry(ctx, entries[0].ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: testAccIdentityConfig(ns, "2m", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(callee, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("kagenti_identity.caller", plancheck.ResourceActionCreate),
				}},
				Check: func(*terraform.State) error {
					// Over the server API, the one entry; with ClusterSPIFFEIDs, the one of the pod
					// that runs as the caller's account (see entryOf).
					if k8s {
						if e, err := entryOf(callerID, "", 5*time.Minute); err != nil {
							return fmt.Errorf("caller entry not re-created: %v %v", e, err)
						}
					} else if entries, err := env.waitEntry(ctx, callerID, func(es []spire.Entry) bool { return len(es) == 1 }); err != nil {
						return fmt.Errorf("caller entry not re-created: %v %v", entries, err)
					}
					// The repaired pair works again end to end.
					callerToken, err := env.clientToken(ctx, callerID)
					if err != nil {
						return err
					}
					_, err = env.exchange(ctx, callerID, callerToken, calleeID)
					return err
				},
			},
			{
				Config:   testAccIdentityConfig(ns, "2m", ""),
				PlanOnly: true,
			},
		},
	})
}

// An identity imported with TTLs that Go spells differently ("30s", "10m0s", "1h30m0s") plans
// nothing against the configuration it was created from: the TTLs read back from SPIRE are
// valid durations, and one equal to the configured TTL keeps the state's spelling. In both
// socket-free registration modes: read back from SPIRE's entry, or from the ClusterSPIFFEID.
func TestAccIdentityResource_ImportTTLSpelling(t *testing.T) {
	testAccPreCheck(t)
	for _, mode := range testAccSpireModes() {
		t.Run(string(mode), func(t *testing.T) {
			testAccSpireMode(t, mode)
			testAccIdentityImportTTLSpelling(t)
		})
	}
}

func testAccIdentityImportTTLSpelling(t *testing.T) {
	cases := map[string]struct{ x509, jwt string }{
		"30s": {x509: "1h", jwt: "30s"},
		"10m": {x509: "10m", jwt: "10m"},
		"90m": {x509: "90m", jwt: "90m"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := "idttl-" + rand.String(5)
			config := fmt.Sprintf(`
resource "kagenti_identity" "ttl" {
  namespace       = %q
  service_account = "ttl"
  x509_svid_ttl   = %q
  jwt_svid_ttl    = %q
}
`, ns, tc.x509, tc.jwt)
			testAccRun(t, resource.TestCase{
				Steps: []resource.TestStep{
					{Config: config},
					{
						// Imported, the TTLs read back as valid durations equal to the configured
						// ones (the spelling may differ: 90m reads 1h30m, which plans nothing).
						ResourceName: "kagenti_identity.ttl",
						ImportState:  true,
						ImportStateCheck: func(states []*terraform.InstanceState) error {
							if len(states) != 1 {
								return fmt.Errorf("imported %d instances", len(states))
							}
							for attr, want := range map[string]string{"x509_svid_ttl": tc.x509, "jwt_svid_ttl": tc.jwt} {
								got, err := time.ParseDuration(states[0].Attributes[attr])
								wantD, _ := time.ParseDuration(want)
								if err != nil || got != wantD {
									return fmt.Errorf("imported %s = %q, want a duration equal to %s", attr, states[0].Attributes[attr], want)
								}
							}
							return nil
						},
					},
					{Config: config, PlanOnly: true},
				},
			})
		})
	}
}

// Bad input fails at plan time, on the attribute.
func TestAccIdentityResource_PlanTimeValidation(t *testing.T) {
	testAccPreCheck(t)
	td := testAccSandbox.Spire.TrustDomain
	cases := map[string]struct {
		body string
		want string
	}{
		"malformed SPIFFE id":      {`spiffe_id = "spiffe:/bad"`, `must be a SPIFFE ID`},
		"other trust domain":       {`spiffe_id = "spiffe://other.example/ns/a/sa/b"`, `not in the trust\s+domain`},
		"empty selectors":          {`selectors = []`, `list must contain at least 1`},
		"selector without type":    {`selectors = ["team1"]`, `must be type:value`},
		"x509 TTL out of range":    {`x509_svid_ttl = "10s"`, `must be a duration between 1m and 720h`},
		"JWT TTL too long for KC":  {`jwt_svid_ttl = "10m"` + "\n" + `keycloak_client = {}`, `Keycloak accepts a JWT-SVID only`},
		"caller not a SPIFFE id":   {`keycloak_client = { allowed_callers = ["ui"] }`, `must be a Keycloak client id`},
		"unknown authentication":   {`keycloak_client = { authentication = "password" }`, `value must be one of`},
		"duration is not duration": {`jwt_svid_ttl = "five minutes"`, `must be a duration`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			testAccRun(t, resource.TestCase{
				Steps: []resource.TestStep{{
					Config:      fmt.Sprintf("resource \"kagenti_identity\" \"bad\" {\n  namespace = \"team1\"\n  service_account = \"sa\"\n  %s\n}\n", tc.body),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(tc.want),
				}},
			})
		})
	}
	// Whether a named caller exists is Keycloak's to say, so it is checked at apply (plans read a
	// backend only for state), before anything is created.
	t.Run("unknown caller", func(t *testing.T) {
		testAccRun(t, resource.TestCase{
			Steps: []resource.TestStep{{
				Config: fmt.Sprintf("resource \"kagenti_identity\" \"bad\" {\n  namespace = \"team1\"\n  service_account = \"sa\"\n"+
					"  keycloak_client = { allowed_callers = [\"spiffe://%s/ns/x/sa/nobody\"] }\n}\n", td),
				ExpectError: regexp.MustCompile(`no Keycloak client`),
			}},
		})
	})
}

// TestFormatDuration pins the spelling of TTLs read back from SPIRE (import, drift): a valid
// duration that reads as the same one, and validator messages that name the bounds correctly.
func TestFormatDuration(t *testing.T) {
	cases := map[string]struct {
		reason string
		in     time.Duration
		want   string
	}{
		"seconds only":        {"a trailing 0s is a unit, not a zero: 30s must not lose its 0", 30 * time.Second, "30s"},
		"whole minutes":       {"10m0s drops the zero seconds, and only them", 10 * time.Minute, "10m"},
		"hours and minutes":   {"90m is 1h30m, not 1h3", 90 * time.Minute, "1h30m"},
		"whole hour":          {"1h0m0s drops both zero units", time.Hour, "1h"},
		"whole hours":         {"24h0m0s drops both zero units", 24 * time.Hour, "24h"},
		"minutes and seconds": {"nothing is zero: kept as is", 5*time.Minute + 30*time.Second, "5m30s"},
		"hours and seconds":   {"a zero minute between non-zero units stays", time.Hour + 30*time.Second, "1h0m30s"},
		"zero":                {"zero is 0s, a valid duration", 0, "0s"},
		"sub-second":          {"units below a second are Go's own", 1500 * time.Millisecond, "1.5s"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := formatDuration(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: formatDuration(%s) (-want +got):\n%s", tc.reason, tc.in, diff)
			}
			if back, err := time.ParseDuration(got); err != nil || back != tc.in {
				t.Errorf("%s: %q parses as %s (%v), want %s", tc.reason, got, back, err, tc.in)
			}
		})
	}
	// The validators' messages are built from it.
	want := "must be a duration between 30s and 24h, e.g. 5m or 1h"
	if diff := cmp.Diff(want, durationBetween(30*time.Second, 24*time.Hour).Description(context.Background())); diff != "" {
		t.Errorf("jwt_svid_ttl validator message (-want +got):\n%s", diff)
	}
}

// TestSameDuration: a TTL spelled differently from the state but equal to it plans the state's
// spelling (so an import of "90m", read back as "1h30m", plans nothing); any other value plans
// as configured.
func TestSameDuration(t *testing.T) {
	cases := map[string]struct {
		reason      string
		state, plan types.String
		want        types.String
	}{
		"same duration, other spelling": {"90m is what SPIRE holds as 1h30m", types.StringValue("1h30m"), types.StringValue("90m"), types.StringValue("1h30m")},
		"same spelling":                 {"nothing to do", types.StringValue("10m"), types.StringValue("10m"), types.StringValue("10m")},
		"another duration":              {"a real change must plan", types.StringValue("1h"), types.StringValue("90m"), types.StringValue("90m")},
		"no state (create)":             {"nothing to keep", types.StringNull(), types.StringValue("90m"), types.StringValue("90m")},
		"unknown plan":                  {"decided at apply", types.StringValue("1h"), types.StringUnknown(), types.StringUnknown()},
		"not a duration":                {"left to the validator", types.StringValue("1h"), types.StringValue("soon"), types.StringValue("soon")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := planmodifier.StringRequest{StateValue: tc.state, PlanValue: tc.plan, ConfigValue: tc.plan}
			resp := &planmodifier.StringResponse{PlanValue: tc.plan}
			sameDuration{}.PlanModifyString(context.Background(), req, resp)
			if !resp.PlanValue.Equal(tc.want) {
				t.Errorf("%s: planned %s, want %s", tc.reason, resp.PlanValue, tc.want)
			}
		})
	}
}

// TestIdentityResource_PlanWithoutBackends: a plan decides from configuration alone what
// configuration can decide, with every backend unreachable (nothing listens on the addresses,
// the SVID files do not exist): trust domains of SPIFFE IDs against spire.trust_domain, client
// ids, TTLs, and the spire block's own combinations. A config that sets only spire.trust_domain
// plans identities, and checks foreign SPIFFE IDs against it.
func TestIdentityResource_PlanWithoutBackends(t *testing.T) {
	for _, k := range append(append([]string{}, testenv.SpireEnvKeys...), "KAGENTI_SPIRE_TRUST_DOMAIN", "KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL",
		"KAGENTI_SPIRE_DEFAULT_PARENT_ID", "KAGENTI_SPIRE_CLASS_NAME", "KAGENTI_KEYCLOAK_URL", "KAGENTI_KEYCLOAK_USERNAME",
		"KAGENTI_KEYCLOAK_PASSWORD", "KAGENTI_KEYCLOAK_CLIENT_SECRET", "KUBECONFIG", "KUBE_HOST", "KUBE_CONFIG_PATH") {
		t.Setenv(k, "")
	}
	const (
		kube     = "kubernetes {\n  host  = \"https://127.0.0.1:9\"\n  token = \"unused\"\n}\n"
		keycloak = "keycloak {\n  url      = \"http://127.0.0.1:9\"\n  username = \"admin\"\n  password = \"unused\"\n}\n"
		tcp      = "  address             = \"127.0.0.1:9\"\n  x509_svid_file      = \"/nonexistent/svid.pem\"\n" +
			"  x509_svid_key_file  = \"/nonexistent/key.pem\"\n  bundle_file         = \"/nonexistent/bundle.pem\"\n"
		td       = "  trust_domain        = \"example.org\"\n  bundle_endpoint_url = \"http://127.0.0.1:9/keys\"\n"
		k8sMode  = "  registration        = \"kubernetes\"\n"
		identity = "  namespace       = \"team1\"\n  service_account = \"weather\"\n"
	)
	provider := func(spireBody string) string {
		return "provider \"kagenti\" {\n" + kube + keycloak + "spire {\n" + spireBody + "}\n}\n"
	}
	cases := map[string]struct {
		reason   string
		provider string
		body     string
		want     string // empty: the plan succeeds
	}{
		"TCP, identity with a client": {"nothing to read: the plan needs no SPIRE and no Keycloak",
			provider(td + tcp), `keycloak_client = { allowed_callers = ["spiffe://example.org/ns/team1/sa/ui"] }`, ""},
		"Kubernetes registration": {"a ClusterSPIFFEID plans from the configured trust domain",
			provider(td + k8sMode), `keycloak_client = {}`, ""},
		"only the trust domain": {"spire.trust_domain alone is enough to plan",
			provider(td), `spiffe_id = "spiffe://example.org/ns/team1/sa/weather"`, ""},
		"only the trust domain, foreign SPIFFE ID": {"a foreign SPIFFE ID is refused for its trust domain, not for SPIRE being unconfigured",
			provider(td), `spiffe_id = "spiffe://other.example/ns/a/sa/b"`, `not in the trust\s+domain\s+example.org`},
		"TCP, foreign SPIFFE ID": {"checked against spire.trust_domain without asking the server",
			provider(td + tcp), `spiffe_id = "spiffe://other.example/ns/a/sa/b"`, `not in the trust\s+domain\s+example.org`},
		"no SPIRE settings": {"without a trust domain or a server there is nothing to plan against",
			"provider \"kagenti\" {\n" + kube + "}\n", ``, `SPIRE Not Configured`},
		"TTL out of range":              {"TTL bounds are configuration", provider(td + tcp), `x509_svid_ttl = "10s"`, `must be a duration between 1m and 720h`},
		"JWT TTL too long for Keycloak": {"federated-jwt caps the JWT TTL", provider(td + tcp), "jwt_svid_ttl = \"10m\"\nkeycloak_client = {}", `Keycloak accepts a JWT-SVID only`},
		"caller not a client id":        {"client ids are SPIFFE IDs", provider(td + tcp), `keycloak_client = { allowed_callers = ["ui"] }`, `must be a Keycloak client id`},
		"parent with Kubernetes registration": {"the controller manager chooses parents",
			provider(td + k8sMode), `parent_id = "spiffe://example.org/node"`, `Parent ID Set By The Controller Manager`},
		"selectors without namespace, Kubernetes": {"a ClusterSPIFFEID selects one namespace",
			provider(td + k8sMode), `selectors = ["k8s:sa:weather"]`, `Namespace Selector Required`},
		"Kubernetes registration without trust domain": {"no server to ask for it",
			provider(k8sMode), ``, `Missing SPIRE Trust Domain`},
		"TCP without credentials": {"the TCP API admits only an admin X509-SVID",
			provider(td + "  address = \"spire.example.org:8081\"\n"), ``, `Missing SPIRE Client Credentials`},
		"SVID files and Workload API": {"one source of the provider's SVID",
			provider(td + tcp + "  x509_svid_workload_api = \"unix:///run/agent.sock\"\n"), ``, `cannot be specified when|Conflicting SPIRE Client Credentials`},
		"address that is neither": {"a unix socket or host:port", provider(td + "  address = \"https://spire.example.org\"\n"), ``, `must be a unix socket address`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Log(tc.reason)
			step := resource.TestStep{
				Config:   tc.provider + "resource \"kagenti_identity\" \"x\" {\n" + identity + "  " + tc.body + "\n}\n",
				PlanOnly: true,
			}
			if tc.want != "" {
				step.ExpectError = regexp.MustCompile(tc.want)
			} else {
				step.ExpectNonEmptyPlan = true
			}
			unitTest(t, resource.TestCase{Steps: []resource.TestStep{step}})
		})
	}
}
