package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// The platform: its namespace, the router with read-only RBAC in the agent namespace, the
// router's identity in SPIRE and Keycloak (client secret in a Secret); scaling adds a PDB;
// destroy removes all of it, namespace and Keycloak client included.
func TestAccPlatformResource_Lifecycle(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			agents := testAccNamespace(t, client)
			ns := "kagenti-" + rand.String(5)
			routerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/kagenti-router", testAccSandbox.Spire.TrustDomain, ns)
			config := func(replicas int) string {
				return fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %q
  agent_namespaces = [%q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  router_replicas  = %d
  public_url       = "https://agents.example.com"
  token_exchange   = true
}
`, ns, agents, replicas)
			}
			ctx := context.Background()
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				CheckDestroy: func(*terraformState) error {
					if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
						return fmt.Errorf("namespace %s left after destroy", ns)
					}
					if _, err := client.RbacV1().Roles(agents).Get(ctx, "kagenti-router", metav1.GetOptions{}); err == nil {
						return fmt.Errorf("Role left in %s", agents)
					}
					if _, err := env.keycloak.FindClient(ctx, routerID); !errors.Is(err, keycloak.ErrNotFound) {
						return fmt.Errorf("router client left in Keycloak (%v)", err)
					}
					if n, err := client.CoreV1().Namespaces().Get(ctx, agents, metav1.GetOptions{}); err != nil || n.Labels["kagenti.io/platform"] != "" {
						return fmt.Errorf("agent namespace after destroy: labels %v (%v); the enrolment label must be gone, the namespace kept", n.Labels, err)
					}
					return nil
				},
				Steps: []resource.TestStep{
					{
						Config: config(1),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("kagenti_platform.main", tfjsonpath.New("router_url"), knownvalue.StringExact("https://agents.example.com")),
							statecheck.ExpectKnownValue("kagenti_platform.main", tfjsonpath.New("router_client_id"), knownvalue.StringExact(routerID)),
						},
						Check: resource.ComposeTestCheckFunc(
							checkDeploymentAvailable(client, ns, "kagenti-router", 1),
							func(*terraformState) error {
								role, err := client.RbacV1().Roles(agents).Get(ctx, "kagenti-router", metav1.GetOptions{})
								if err != nil {
									return err
								}
								for _, rule := range role.Rules {
									if fmt.Sprint(rule.Verbs) != "[get list watch]" {
										return fmt.Errorf("router Role rules %v: want read-only", role.Rules)
									}
								}
								if _, err := client.CoreV1().Secrets(ns).Get(ctx, "kagenti-router-keycloak", metav1.GetOptions{}); err != nil {
									return fmt.Errorf("router client secret: %w", err)
								}
								d, err := client.AppsV1().Deployments(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
								if err != nil {
									return err
								}
								args := fmt.Sprint(d.Spec.Template.Spec.Containers[0].Args)
								for _, want := range []string{"-audience=" + routerID, "-issuer=" + env.issuer(), "-namespaces=" + agents} {
									if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(args) {
										return fmt.Errorf("router args %s lack %s", args, want)
									}
								}
								if n, err := client.CoreV1().Namespaces().Get(ctx, agents, metav1.GetOptions{}); err != nil || n.Labels["kagenti.io/platform"] != ns {
									return fmt.Errorf("agent namespace not enrolled: labels %v (%v)", n.Labels, err)
								}
								_, err = env.keycloak.FindClient(ctx, routerID)
								return err
							},
						),
					},
					{
						Config: config(2),
						Check: resource.ComposeTestCheckFunc(
							checkDeploymentAvailable(client, ns, "kagenti-router", 2),
							// The router's default resources; it keeps its Go heap under 90% of the memory limit.
							checkContainerResource(client, ns, "kagenti-router", false, "cpu", "100m"),
							checkContainerResource(client, ns, "kagenti-router", true, "memory", "256Mi"),
							checkExists(func(ctx context.Context) error {
								_, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
								return err
							}, "router PodDisruptionBudget", true),
						),
					},
					{Config: config(2), PlanOnly: true},
					{
						// Autoscaling replaces the fixed count; resources given override the defaults key by key.
						Config: strings.Replace(config(2), "router_replicas  = 2", "router_autoscaling = { min_replicas = 2, max_replicas = 5, target_cpu_utilization = 60 }\n"+
							`  router_resources = { requests = { cpu = "250m" }, limits = { memory = "512Mi" } }`, 1),
						Check: resource.ComposeTestCheckFunc(
							checkExists(func(ctx context.Context) error {
								_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
								return err
							}, "router HorizontalPodAutoscaler", true),
							checkContainerResource(client, ns, "kagenti-router", false, "cpu", "250m"),
							checkContainerResource(client, ns, "kagenti-router", false, "memory", "64Mi"),
							checkContainerResource(client, ns, "kagenti-router", true, "memory", "512Mi"),
						),
					},
					{
						// Import reads the platform back from the cluster, autoscaling and resources included.
						ResourceName: "kagenti_platform.main", ImportState: true, ImportStateId: ns, ImportStateVerify: true,
						ImportStateVerifyIgnore: []string{"wait_for_rollout", "timeouts"},
					},
				},
			})
		})
	}
}

// A platform never takes over an existing namespace (destroy would delete it).
func TestAccPlatformResource_ExistingNamespaceRefused(t *testing.T) {
	client := testAccKube(t)
	ns := testAccNamespace(t, client)
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{{
			Config:      fmt.Sprintf("resource \"kagenti_platform\" \"main\" {\n  namespace = %q\n}\n", ns),
			ExpectError: regexp.MustCompile(`already exists and is not a Kagenti platform's`),
		}},
	})
}

// Gateway API and Istio ambient: without the CRDs the gateway option fails at apply with a clear
// error; with them the router gets an HTTPRoute on the Gateway (its URL follows from it), the
// agent namespace is enrolled in ambient mode with a waypoint that the router's Service uses and
// a NetworkPolicy admitting the mesh; dropping the options removes exactly the label, the
// waypoint and the policy.
func TestAccPlatformResource_GatewayAndMesh(t *testing.T) {
	client := testAccKube(t)
	agents := testAccNamespace(t, client)
	ctx := context.Background()
	ns := "kagenti-gw-" + rand.String(4)
	withOptions := fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %q
  agent_namespaces = [%q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  router_replicas  = 1
  gateway = {
    parent_name      = "public"
    parent_namespace = "gateways"
    hostnames        = ["agents.example.com"]
    path_prefix      = "/kagenti"
  }
  mesh     = "istio-ambient"
  waypoint = true
}
`, ns, agents)
	without := fmt.Sprintf(`
resource "kagenti_platform" "main" {
  namespace        = %q
  agent_namespaces = [%q]
  router_image     = "ghcr.io/kagenti/kagenti-router:0.1.0"
  router_replicas  = 1
}
`, ns, agents)
	dyn := testAccDynamic(t)
	crds, err := testenv.GatewayAPICRDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	httpRoutes := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"})
	gateways := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"})
	label := func(want string) resource.TestCheckFunc {
		return func(*terraformState) error {
			n, err := client.CoreV1().Namespaces().Get(ctx, agents, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := n.Labels["istio.io/dataplane-mode"]; got != want {
				return fmt.Errorf("namespace %s label istio.io/dataplane-mode = %q, want %q", agents, got, want)
			}
			return nil
		}
	}
	// A reused sandbox (KAGENTI_SANDBOX_DIR) may have the CRDs already; then the missing-CRD
	// step cannot run.
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(ctx, "httproutes.gateway.networking.k8s.io", metav1.GetOptions{})
	crdsInstalled := err == nil
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			steps := []resource.TestStep{}
			if !crdsInstalled {
				steps = append(steps, resource.TestStep{
					Config:      withOptions,
					ExpectError: regexp.MustCompile(`does not serve\s+gateway.networking.k8s.io/v1,\s+Kind=HTTPRoute\s+\(is its CRD\s+installed\?\)`),
				})
			}
			steps = append(steps,
				resource.TestStep{
					PreConfig: func() {
						if crdsInstalled {
							return
						}
						crdsInstalled = true
						applyCRDs(t, dyn, crds)
					},
					Config: withOptions,
					ConfigStateChecks: []statecheck.StateCheck{
						statecheck.ExpectKnownValue("kagenti_platform.main", tfjsonpath.New("router_url"), knownvalue.StringExact("https://agents.example.com/kagenti")),
					},
					Check: resource.ComposeTestCheckFunc(
						label("ambient"),
						func(*terraformState) error {
							route, err := httpRoutes.Namespace(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
							if err != nil {
								return err
							}
							parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
							if len(parents) != 1 || parents[0].(map[string]any)["name"] != "public" || parents[0].(map[string]any)["namespace"] != "gateways" {
								return fmt.Errorf("HTTPRoute parentRefs %v", parents)
							}
							if _, err = gateways.Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err != nil {
								return err
							}
							svc, err := client.CoreV1().Services(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
							if err != nil {
								return err
							}
							if got := svc.Labels["istio.io/use-waypoint"]; got != "waypoint" {
								return fmt.Errorf("router Service label istio.io/use-waypoint = %q, want waypoint", got)
							}
							// The mesh's policy: ambient's probes and the waypoint reach the
							// isolated pods.
							np, err := client.NetworkingV1().NetworkPolicies(agents).Get(ctx, "kagenti.mesh", metav1.GetOptions{})
							if err != nil {
								return err
							}
							if got := np.Spec.PodSelector.MatchLabels; len(got) != 1 || got["kagenti.io/isolated"] != "true" {
								return fmt.Errorf("mesh policy selects %v, want the isolated pods", got)
							}
							isWaypoint := func(peers []networkingv1.NetworkPolicyPeer) bool {
								return len(peers) == 1 && peers[0].PodSelector != nil && peers[0].NamespaceSelector != nil &&
									peers[0].PodSelector.MatchLabels["gateway.networking.k8s.io/gateway-name"] == "waypoint" &&
									peers[0].NamespaceSelector.MatchLabels["kagenti.io/router-namespace"] == "true"
							}
							in := np.Spec.Ingress
							if len(in) != 2 || len(in[0].From) != 1 || in[0].From[0].IPBlock == nil || in[0].From[0].IPBlock.CIDR != "169.254.7.127/32" || !isWaypoint(in[1].From) {
								return fmt.Errorf("mesh policy ingress %+v, want ambient's probe address and the waypoint", in)
							}
							if out := np.Spec.Egress; len(out) != 1 || !isWaypoint(out[0].To) {
								return fmt.Errorf("mesh policy egress %+v, want the waypoint", out)
							}
							return nil
						},
					),
				},
				resource.TestStep{
					Config: without,
					Check: resource.ComposeTestCheckFunc(
						label(""),
						func(*terraformState) error {
							if _, err := httpRoutes.Namespace(ns).Get(ctx, "kagenti-router", metav1.GetOptions{}); err == nil {
								return fmt.Errorf("HTTPRoute left after the gateway option was removed")
							}
							if _, err := gateways.Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err == nil {
								return fmt.Errorf("waypoint left after the mesh option was removed")
							}
							if _, err := client.NetworkingV1().NetworkPolicies(agents).Get(ctx, "kagenti.mesh", metav1.GetOptions{}); err == nil {
								return fmt.Errorf("mesh policy left after the mesh option was removed")
							}
							return nil
						},
					),
				},
			)
			resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
		})
	}
}

// With the SPIRE agents' Workload API on the nodes (a node directory, or the SPIFFE CSI driver),
// the router gets the socket mounted and logs in with its JWT-SVID: no secret is generated
// anywhere.
func TestAccPlatformResource_WorkloadAPI(t *testing.T) {
	client := testAccKube(t)
	env := newIdentityTestEnv(t)
	ctx := context.Background()
	sources := map[string]struct {
		env    map[string]string
		socket string
		volume func(corev1.Volume) bool
	}{
		"host path": {
			env:    map[string]string{"KAGENTI_SPIRE_WORKLOAD_API_HOST_PATH": "/run/spire/agent-sockets"},
			socket: "/spiffe-workload-api/agent.sock",
			volume: func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == "/run/spire/agent-sockets" },
		},
		"csi driver": {
			env:    map[string]string{"KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER": "csi.spiffe.io", "KAGENTI_SPIRE_WORKLOAD_API_SOCKET_NAME": "spire-agent.sock"},
			socket: "/spiffe-workload-api/spire-agent.sock",
			volume: func(v corev1.Volume) bool {
				return v.CSI != nil && v.CSI.Driver == "csi.spiffe.io" && v.CSI.ReadOnly != nil && *v.CSI.ReadOnly
			},
		},
	}
	for _, cli := range testAccCLIs {
		for source, src := range sources {
			t.Run(cli.name+"/"+source, func(t *testing.T) {
				t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
				for k, v := range src.env {
					t.Setenv(k, v)
				}
				ns := "kagenti-wl-" + rand.String(4)
				routerID := fmt.Sprintf("spiffe://%s/ns/%s/sa/kagenti-router", testAccSandbox.Spire.TrustDomain, ns)
				resource.Test(t, resource.TestCase{
					ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
					Steps: []resource.TestStep{{
						Config: fmt.Sprintf("resource \"kagenti_platform\" \"main\" {\n  namespace = %q\n  router_replicas = 1\n  token_exchange = true\n}\n", ns),
						Check: func(*terraformState) error {
							d, err := client.AppsV1().Deployments(ns).Get(ctx, "kagenti-router", metav1.GetOptions{})
							if err != nil {
								return err
							}
							spec := d.Spec.Template.Spec
							args := fmt.Sprint(spec.Containers[0].Args)
							if !strings.Contains(args, "-spiffe-socket="+src.socket) || strings.Contains(args, "client-secret") {
								return fmt.Errorf("router args %s: want the Workload API socket %s and no secret file", args, src.socket)
							}
							var socket, ca bool
							for _, v := range spec.Volumes {
								socket = socket || (v.Name == "spiffe-workload-api" && src.volume(v))
								ca = ca || (v.Name == "issuer-ca" && v.ConfigMap != nil)
							}
							if !socket || !ca || len(spec.Volumes) != 2 {
								return fmt.Errorf("router volumes %+v: want the agent socket directory and the sandbox Keycloak's CA", spec.Volumes)
							}
							if !strings.Contains(args, "-issuer-ca-file=/etc/kagenti/issuer-ca/ca.crt") {
								return fmt.Errorf("router args %s: want the issuer's CA", args)
							}
							if _, err := client.CoreV1().Secrets(ns).Get(ctx, "kagenti-router-keycloak", metav1.GetOptions{}); err == nil {
								return fmt.Errorf("a client secret was generated for the router")
							}
							uuid, err := env.keycloak.FindClient(ctx, routerID)
							if err != nil {
								return err
							}
							st, err := env.keycloak.GetClient(ctx, uuid)
							if err != nil || st.Authentication != keycloak.AuthFederatedJWT {
								return fmt.Errorf("router client authentication %+v (%v), want federated-jwt", st, err)
							}
							return nil
						},
					}},
				})
			})
		}
	}
}

// TestPlatformResource_PlanTimeChecks: bad platform input fails at plan, needing no backend, on
// the attribute the configuration names (router_image, not router.image), and router_replicas
// is refused next to router_autoscaling instead of being ignored.
func TestPlatformResource_PlanTimeChecks(t *testing.T) {
	cases := map[string]struct {
		reason string
		body   string
		want   string
	}{
		"bad router image": {
			"the error names the attribute",
			`router_image = "GHCR.io/X:latest"`, `router_image: Invalid value: "GHCR.io/X:latest"`,
		},
		"router replicas with autoscaling": {
			"the HorizontalPodAutoscaler owns the count: a fixed one would be silently ignored",
			"router_replicas = 3\n  router_autoscaling = { min_replicas = 2, max_replicas = 4, target_cpu_utilization = 70 }",
			`(?s)router_replicas = 3.*Attribute "router_autoscaling" cannot be specified when "router_replicas" is specified`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			unitTest(t, resource.TestCase{Steps: []resource.TestStep{{
				Config:      fmt.Sprintf("resource \"kagenti_platform\" \"bad\" {\n  namespace = \"kagenti\"\n  %s\n}\n", tc.body),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`)),
			}}})
		})
	}
}
