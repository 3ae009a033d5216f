package composition_test

import (
	"bytes"
	"flag"
	"fmt"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.yaml from the current rendering")

// goldenInput is a testdata input: the composition input plus the provider-level label domain.
type goldenInput struct {
	LabelDomain string `json:"label_domain"`
	// IdentityProviderURL is the provider's Keycloak URL (not part of the stored spec).
	IdentityProviderURL string `json:"identity_provider_url"`
	composition.Input
}

// render renders an output as the golden text: one YAML document per object, headed by its key,
// then the URL, revision and card.
func render(t *testing.T, r *composition.Renderer, in composition.Input) []byte {
	t.Helper()
	out, err := r.Render(in)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# url: %s\n# revision: %s\n", out.URL, out.Revision)
	if out.Card != "" {
		fmt.Fprintf(&buf, "# card: %s\n", out.Card)
	}
	for _, o := range out.Objects {
		y, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&buf, "---\n# key: %s\n%s", o.Key, y)
	}
	return buf.Bytes()
}

// TestRenderGolden renders every testdata case and compares with its want.yaml; rendering twice
// must give identical bytes. Regenerate with `go test ./internal/composition -update` and read
// the diff.
func TestRenderGolden(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob("testdata/*/input.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, inputPath := range dirs {
		dir := filepath.Dir(inputPath)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(inputPath)
			if err != nil {
				t.Fatal(err)
			}
			var gi goldenInput
			if err := yaml.UnmarshalStrict(raw, &gi); err != nil {
				t.Fatalf("%s: %v", inputPath, err)
			}
			in := gi.Input
			in.LabelDomain, in.IdentityProviderURL = gi.LabelDomain, gi.IdentityProviderURL
			got := render(t, r, in)
			if again := render(t, r, in); !bytes.Equal(got, again) {
				t.Fatalf("rendering is not deterministic:\n%s", cmp.Diff(string(got), string(again)))
			}
			wantPath := filepath.Join(dir, "want.yaml")
			if *update {
				if err := os.WriteFile(wantPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("rendering of %s changed (-want +got):\n%s", dir, diff)
			}
		})
	}
}

func validAgent() composition.Input {
	return composition.Input{
		Kind: composition.KindAgent, Name: "weather", Namespace: "team1",
		Framework: "langgraph", Protocol: "a2a", Image: "ghcr.io/example/weather:1.0.0",
	}
}

// TestValidate pins the error path and message of each kind of bad input.
func TestValidate(t *testing.T) {
	cases := map[string]struct {
		reason string
		change func(*composition.Input)
		want   []string // "path: message fragment"
	}{
		"a valid agent has no errors": {
			reason: "the baseline must pass",
			change: func(*composition.Input) {},
		},
		"name must be a DNS-1035 label": {
			reason: "the Service takes the name",
			change: func(in *composition.Input) { in.Name = "Weather_Agent" },
			want:   []string{"name: Invalid value: \"Weather_Agent\": a DNS-1035 label must consist of lower case"},
		},
		"name too long": {
			reason: "derived names must stay within 63 characters",
			change: func(in *composition.Input) { in.Name = strings.Repeat("a", 51) },
			want:   []string{"name: Too long: may not be more than 50"},
		},
		"unknown framework": {
			reason: "each framework needs a preset",
			change: func(in *composition.Input) { in.Framework = "autogen" },
			want:   []string{`framework: Unsupported value: "autogen": supported values: "langgraph", "crewai"`},
		},
		"resources: names, quantities, request within limit": {
			reason: "a bad quantity or a request over its limit would fail at apply, after other objects were written",
			change: func(in *composition.Input) {
				in.Resources = &composition.Resources{
					Requests: map[string]string{"cpu": "2", "gpu": "1", "memory": "lots", "ephemeral-storage": "-1Gi"},
					Limits:   map[string]string{"cpu": "500m"},
				}
			},
			want: []string{
				`resources.requests[ephemeral-storage]: Invalid value: "-1Gi": must not be negative`,
				`resources.requests[gpu]: Unsupported value: "gpu": supported values: "cpu", "memory", "ephemeral-storage"`,
				`resources.requests[memory]: Invalid value: "lots": not a Kubernetes quantity`,
				`resources.requests[cpu]: Invalid value: "2": must not exceed the limit (500m)`,
			},
		},
		"no resources for an endpoint agent": {
			reason: "it runs elsewhere: resources would be silently ignored",
			change: func(in *composition.Input) {
				in.Image, in.Endpoint = "", "http://127.0.0.1:9000"
				in.Resources = &composition.Resources{Limits: map[string]string{"memory": "1Gi"}}
			},
			want: []string{"resources: Forbidden: an agent registered by endpoint runs elsewhere"},
		},
		"autoscaling's default cpu request within the limit": {
			reason: "autoscaling adds a 100m cpu request when none is set; a lower cpu limit conflicts with it",
			change: func(in *composition.Input) {
				in.Autoscaling = &composition.Autoscaling{MinReplicas: 1, MaxReplicas: 3, TargetCPUUtilization: 80}
				in.Resources = &composition.Resources{Limits: map[string]string{"cpu": "50m"}}
			},
			want: []string{`resources.requests[cpu]: Invalid value: "100m": the default request exceeds the limit (50m): set requests.cpu too`},
		},
		"image or endpoint required": {
			change: func(in *composition.Input) { in.Image = "" },
			want:   []string{"image: Required value: set image (run it in the cluster) or endpoint"},
		},
		"image and endpoint conflict": {
			change: func(in *composition.Input) { in.Endpoint = "http://127.0.0.1:9000" },
			want:   []string{"endpoint: Invalid value: \"http://127.0.0.1:9000\": set either image or endpoint"},
		},
		"bad image reference": {
			change: func(in *composition.Input) { in.Image = "GHCR.io/Example/Agent:latest" },
			want:   []string{"image: Invalid value: \"GHCR.io/Example/Agent:latest\": must be an image reference"},
		},
		"port out of range": {
			change: func(in *composition.Input) { in.Port = 70000 },
			want:   []string{"port: Invalid value: 70000: must be between 1 and 65535"},
		},
		"replicas with autoscaling": {
			reason: "the HPA owns the count",
			change: func(in *composition.Input) {
				in.Replicas = 2
				in.Autoscaling = &composition.Autoscaling{MinReplicas: 1, MaxReplicas: 3, TargetCPUUtilization: 80}
			},
			want: []string{"replicas: Forbidden: set either replicas or autoscaling"},
		},
		"min above max": {
			change: func(in *composition.Input) {
				in.Autoscaling = &composition.Autoscaling{MinReplicas: 5, MaxReplicas: 3, TargetCPUUtilization: 80}
			},
			want: []string{"autoscaling.max_replicas: Invalid value: 3: must be at least min_replicas (5)"},
		},
		"bad env name": {
			change: func(in *composition.Input) { in.Env = map[string]string{"1BAD": "x"} },
			want:   []string{"env[1BAD]: Invalid value"},
		},
		"secret env also in env": {
			change: func(in *composition.Input) {
				in.Env = map[string]string{"KEY": "x"}
				in.SecretEnv = map[string]composition.SecretRef{"KEY": {Secret: "s", Key: "k"}}
			},
			want: []string{"secret_env[KEY]: Duplicate value"},
		},
		"bad quantity": {
			change: func(in *composition.Input) { in.Persistence = &composition.Persistence{Size: "lots"} },
			want:   []string{"persistence.size: Invalid value: \"lots\": must be a positive quantity"},
		},
		"unknown patch target": {
			reason: "no HPA is rendered without autoscaling",
			change: func(in *composition.Input) {
				in.Patches = []composition.Patch{{Target: "hpa", Type: "merge", Patch: "{}"}}
			},
			want: []string{`composition.patches[0].target: Unsupported value: "hpa": supported values: "serviceaccount", "card", "networkpolicy", "deployment", "service"`},
		},
		"bad egress rules": {
			change: func(in *composition.Input) {
				in.Egress = []composition.EgressRule{{CIDR: "10.0.0.0/33", Port: 443}, {Port: 0}, {Port: 53, Protocol: "ICMP"}}
			},
			want: []string{
				`network_policy.egress[0].cidr: Invalid value: "10.0.0.0/33": must be a CIDR`,
				`network_policy.egress[1].port: Invalid value: 0: must be a port number`,
				`network_policy.egress[2].protocol: Unsupported value: "ICMP"`,
			},
		},
		"egress without the NetworkPolicy": {
			change: func(in *composition.Input) {
				in.NoNetworkPolicy, in.Egress = true, []composition.EgressRule{{Port: 443}}
			},
			want: []string{`network_policy.egress: Invalid value: 1: egress rules need the NetworkPolicy`},
		},
		"otel endpoint is not a URL": {
			reason: "OTEL_EXPORTER_OTLP_ENDPOINT must be a URL the SDK can dial",
			change: func(in *composition.Input) { in.OTELEndpoint = "::::" },
			want:   []string{`otel_endpoint: Invalid value: "::::": must be an absolute http(s) URL with a host`},
		},
		"otel endpoint without a host": {
			reason: "a scheme alone names no collector",
			change: func(in *composition.Input) { in.OTELEndpoint = "http://" },
			want:   []string{`otel_endpoint: Invalid value: "http://": must be an absolute http(s) URL with a host`},
		},
		"card signer without the Workload API": {
			reason: "the signer signs with the pod's X509-SVID, which only the Workload API socket gives it",
			change: func(in *composition.Input) {
				in.Identity = &composition.Identity{SPIFFEID: "spiffe://example.org/ns/team1/sa/weather",
					CardSigner: &composition.CardSigner{Image: "ghcr.io/kagenti/kagenti-router:0.1.0"}, Client: &composition.IdentityClient{}}
			},
			want: []string{"identity.card_signer: Forbidden: the card signer signs with the pod's X509-SVID from the SPIRE Workload API: set the provider's spire.workload_api_csi_driver"},
		},
		"card signer without a Keycloak client": {
			reason: "the router binds the card to the identity of the agent's policy, which only a keycloak_client gives it",
			change: func(in *composition.Input) {
				in.Identity = &composition.Identity{SPIFFEID: "spiffe://example.org/ns/team1/sa/weather",
					WorkloadAPI: composition.WorkloadAPI{CSIDriver: "csi.spiffe.io"}, CardSigner: &composition.CardSigner{Image: "ghcr.io/kagenti/kagenti-router:0.1.0"}}
			},
			want: []string{"identity.keycloak_client: Required value: the router binds a signed card to the identity"},
		},
		"card signer on an ACP agent, without an image, on the signer's port": {
			reason: "ACP agents have manifests, not cards; the signer needs an image and its port",
			change: func(in *composition.Input) {
				in.Protocol, in.Port = "acp", 8099
				in.Identity = &composition.Identity{SPIFFEID: "spiffe://example.org/ns/team1/sa/weather",
					WorkloadAPI: composition.WorkloadAPI{CSIDriver: "csi.spiffe.io"}, CardSigner: &composition.CardSigner{}, Client: &composition.IdentityClient{}}
			},
			want: []string{
				"identity.card_signer: Forbidden: only A2A agents have cards to sign",
				"identity.card_signer.image: Required value",
				"port: Invalid value: 8099: port 8099 is the card signer's",
			},
		},
		"card signer of an agent registered by endpoint": {
			reason: "the signer runs in the agent's pod; an endpoint agent has none here",
			change: func(in *composition.Input) {
				in.Image, in.Endpoint = "", "http://10.0.0.5:8000"
				in.Identity = &composition.Identity{SPIFFEID: "spiffe://example.org/ns/team1/sa/weather",
					WorkloadAPI: composition.WorkloadAPI{CSIDriver: "csi.spiffe.io"}, CardSigner: &composition.CardSigner{Image: "ghcr.io/kagenti/kagenti-router:0.1.0"}, Client: &composition.IdentityClient{}}
			},
			want: []string{"identity.card_signer: Forbidden: an agent registered by endpoint runs elsewhere"},
		},
		"duplicate skill ids": {
			change: func(in *composition.Input) {
				in.Skills = []composition.Skill{{ID: "a", Name: "A"}, {ID: "a", Name: "B"}}
			},
			want: []string{`skills[1].id: Duplicate value: "a"`},
		},
		"an A2A agent serves some binding": {
			reason: "a card with no interface leaves clients nothing to call",
			change: func(in *composition.Input) { in.NoJSONRPC = true },
			want:   []string{"a2a_jsonrpc: Invalid value: false: an A2A agent serves at least one binding: set a2a_rest = true"},
		},
		"REST alone is a binding": {
			reason: "an agent that serves only HTTP+JSON is valid",
			change: func(in *composition.Input) { in.NoJSONRPC, in.A2AREST = true, true },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := validAgent()
			tc.change(&in)
			var got []string
			for _, e := range composition.Validate(in) {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s: got %d errors %q, want %d matching %q", tc.reason, len(got), got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("%s: error %d = %q, want it to contain %q", tc.reason, i, got[i], w)
				}
			}
		})
	}
}

// TestValidatePlatform: each error names the kagenti_platform attribute it is about, so that the
// provider reports it there.
func TestValidatePlatform(t *testing.T) {
	valid := func() composition.PlatformInput {
		return composition.PlatformInput{Namespace: "kagenti", Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 2}
	}
	cases := map[string]struct {
		reason string
		change func(*composition.PlatformInput)
		want   []string
	}{
		"a valid platform has no errors": {reason: "the baseline must pass", change: func(*composition.PlatformInput) {}},
		"bad router image": {
			reason: "the attribute is router_image",
			change: func(in *composition.PlatformInput) { in.Image = "GHCR.io/X:latest" },
			want:   []string{`router_image: Invalid value: "GHCR.io/X:latest": must be an image reference`},
		},
		"router replicas out of range": {
			reason: "the attribute is router_replicas",
			change: func(in *composition.PlatformInput) { in.Replicas = 0 },
			want:   []string{`router_replicas: Invalid value: 0: must be between 1 and 100`},
		},
		"bad public URL": {
			reason: "the attribute is public_url",
			change: func(in *composition.PlatformInput) { in.PublicURL = "agents.example.com" },
			want:   []string{`public_url: Invalid value: "agents.example.com": must be an http(s) URL`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := valid()
			tc.change(&in)
			var got []string
			for _, e := range composition.ValidatePlatform(in) {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s: got %d errors %q, want %d matching %q", tc.reason, len(got), got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("%s: error %d = %q, want it to start with %q", tc.reason, i, got[i], w)
				}
			}
		})
	}
}

// TestRenderPatchErrors: a patch that fails names the patch's attribute path.
func TestRenderPatchErrors(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	in := validAgent()
	in.Patches = []composition.Patch{{Target: "deployment", Type: "json", Patch: `[{"op":"remove","path":"/spec/nothing"}]`}}
	_, err = r.Render(in)
	if err == nil || !strings.Contains(err.Error(), "composition.patches[0].patch") {
		t.Fatalf("Render error = %v, want one about composition.patches[0].patch", err)
	}
	in.Patches = []composition.Patch{{Target: "deployment", Type: "merge", Patch: `{"kind": "StatefulSet"}`}}
	_, err = r.Render(in)
	if err == nil || !strings.Contains(err.Error(), "may not change the object's apiVersion, kind or name") {
		t.Fatalf("Render error = %v, want a refusal to change the kind", err)
	}
}

// TestRevision: the revision changes with a custom template and is stable otherwise.
func TestRevision(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	in := validAgent()
	base := r.Revision(in)
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("revision %q is not sha256:<64 hex>", base)
	}
	in.Name = "other"
	if r.Revision(in) != base {
		t.Errorf("the revision depends on the template set only, not on the spec")
	}
	in.Templates = map[string]string{"service": "x"}
	if r.Revision(in) == base {
		t.Errorf("a custom template must change the revision")
	}
}

// TestRenderPlatformGolden: the platform's objects for a namespaced and a cluster-wide router.
func TestRenderPlatformGolden(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]composition.PlatformInput{
		"namespaced-with-exchange": {Namespace: "kagenti-system", AgentNamespaces: []string{"team2", "team1"}, Image: "ghcr.io/kagenti/kagenti-router:0.1.0",
			Replicas: 2, PublicURL: "https://agents.example.com", Issuer: "https://kc.example.com/realms/kagenti",
			Audience: "spiffe://example.org/ns/kagenti-system/sa/kagenti-router", ClientSecretName: "kagenti-router-keycloak",
			IssuerCA: "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"},
		"cluster-wide": {Namespace: "kagenti", Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 1},
		// An OpenShift project or a namespace managed by policy: adopted, not created; the
		// router's settings, its pod's, and a patch.
		"adopted-with-settings": {Namespace: "agents-prod", AdoptNamespace: true, AgentNamespaces: []string{"team1"}, Image: "registry.example.com/kagenti-router:0.1.0", Replicas: 2,
			Router: &composition.RouterSettings{MaxHeaderBytes: 16384, UpstreamTimeout: "5m", Drain: "45s", LogLevel: "debug"},
			Workload: composition.Workload{Labels: map[string]string{"team": "platform"}, PodAnnotations: map[string]string{"prometheus.io/scrape": "true"},
				NodeSelector: map[string]string{"node-role.kubernetes.io/infra": ""}, ImagePullSecrets: []string{"mirror"}, Args: []string{"-debug-listen=127.0.0.1:6060"},
				ServiceAccountAnnotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/kagenti-router"}},
			Patches: []composition.Patch{{Target: "deployment", Type: "strategic", Patch: "spec:\n  template:\n    spec:\n      priorityClassName: system-cluster-critical\n"}}},
		"gateway-and-ambient": {Namespace: "kagenti", AgentNamespaces: []string{"team1"}, Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 1,
			Gateway: &composition.GatewayRef{ParentName: "public", ParentNamespace: "gateways", SectionName: "https", Hostnames: []string{"agents.example.com"}, PathPrefix: "/kagenti"},
			Mesh:    composition.MeshIstioAmbient, Waypoint: true, Issuer: "https://kc.example.com/realms/kagenti",
			Audience: "spiffe://example.org/ns/kagenti/sa/kagenti-router", WorkloadAPI: composition.WorkloadAPI{HostPath: "/run/spire/agent-sockets"},
			Autoscaling: &composition.Autoscaling{MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilization: 70}},
		// Ambient without a waypoint: the mesh's policy admits the kubelet's probes only.
		"ambient-no-waypoint": {Namespace: "kagenti", AgentNamespaces: []string{"team1", "team2"}, Image: "ghcr.io/kagenti/kagenti-router:0.1.0", Replicas: 1,
			Mesh: composition.MeshIstioAmbient},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := r.RenderPlatform(in)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			fmt.Fprintf(&buf, "# url: %s\n", out.URL)
			for _, o := range out.Objects {
				y, err := yaml.Marshal(o.Object.Object)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&buf, "---\n# key: %s\n%s", o.Key, y)
			}
			path := filepath.Join("testdata-platform", name+".yaml")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("platform rendering changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderIsolatedLabel: only the pods that their own NetworkPolicy isolates carry the label
// the mesh's policy selects; a pod that opted out must stay unselected, or the mesh's policy
// would isolate it.
func TestRenderIsolatedLabel(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, optOut := range []bool{false, true} {
		in := validAgent()
		in.NoNetworkPolicy = optOut
		out, err := r.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		var policies int
		for _, o := range out.Objects {
			if o.Key == composition.KeyNetworkPolicy {
				policies++
			}
			if o.Key != composition.KeyDeployment {
				continue
			}
			labels, _, _ := unstructured.NestedStringMap(o.Object.Object, "spec", "template", "metadata", "labels")
			if got, want := labels["kagenti.io/isolated"] == "true", !optOut; got != want {
				t.Errorf("opted out %v: pod labelled isolated %v, want %v (labels %v)", optOut, got, want, labels)
			}
		}
		if want := map[bool]int{false: 1, true: 0}[optOut]; policies != want {
			t.Errorf("opted out %v: %d NetworkPolicies, want %d", optOut, policies, want)
		}
	}
}
