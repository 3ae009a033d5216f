package keycloak

import (
	"strings"
	"testing"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// TestAudienceScopeNameMatchesComposition: the composition writes the scope name into the
// router's policy without importing this package; both must agree.
func TestAudienceScopeNameMatchesComposition(t *testing.T) {
	r, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"spiffe://example.org/ns/team1/sa/weather", "spiffe://a.b/x//y z", "plain-client"} {
		out, err := r.Render(composition.Input{Kind: composition.KindAgent, Name: "a", Namespace: "n", Framework: "custom", Protocol: "a2a",
			Endpoint: "http://127.0.0.1:1", Identity: &composition.Identity{SPIFFEID: id, Client: &composition.IdentityClient{Authentication: AuthFederatedJWT}}})
		if err != nil {
			t.Fatal(err)
		}
		var svc map[string]any
		for _, o := range out.Objects {
			if o.Key == composition.KeyService {
				svc = o.Object.Object
			}
		}
		ann := svc["metadata"].(map[string]any)["annotations"].(map[string]any)["kagenti.io/policy"].(string)
		want := `"audience_scope":"` + AudienceScopeName(id) + `"`
		if !strings.Contains(ann, want) {
			t.Errorf("policy %s does not carry %s", ann, want)
		}
	}
}
