package provider

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig/cardsigtest"
	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// TestAccCardSignature_A2ASDKs: agent cards signed the way this project signs them (the
// platform's card signer, cardsig.Sign with an X509-SVID) verify with the card signing of the
// official SDKs, @a2a-js/sdk 1.3.0 and the Python a2a-sdk 1.3.0; cards those SDKs sign (with the
// SVID's key and chain in the header) verify with the router's verifier (cardsig.Verify); a card
// changed after signing verifies with none. The cards are the provider's own, rendered by the
// composition: 1.0 with an empty description and no skills, 1.0 without streaming, 1.0 and 0.3
// with REST and skills. (A card in 0.3's shape alone is not among them: the Python SDK's 1.0
// reader maps its url to an interface of its own making before canonicalizing it.)
func TestAccCardSignature_A2ASDKs(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: TF_ACC=1 (it runs the official A2A SDKs)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca := cardsigtest.NewAuthority(t, "example.org")
	svid := ca.SVID(t, "/ns/team1/sa/agent")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pub, err := x509.MarshalPKIXPublicKey(svid.PrivateKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := write("public.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	privFile := write("private.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JOSE", "kid": "agent-key",
		"x5c": []string{base64.StdEncoding.EncodeToString(svid.Certificates[0].Raw)}})
	headerFile := write("header.json", header)

	cards := map[string]composition.Input{
		"v1": {A2AVersions: []string{"1.0"}},
		// streaming is optional in the schema: its explicit false is signed.
		"v1-no-streaming": {A2AVersions: []string{"1.0"}, NoStreaming: true, Description: "Answers at once"},
		"both-rest-skills": {A2AVersions: []string{"1.0", "0.3"}, A2AREST: true, Description: "Writes reports",
			Skills: []composition.Skill{{ID: "write", Name: "Write", Description: "Writes a report", Tags: []string{"docs"}, Examples: []string{"a report on Q3"}}}},
	}
	renderer, err := composition.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	// ours: signed by cardsig; tampered: changed after signing; unsigned: the plain cards, for the
	// SDKs to sign.
	var ours, tampered []string
	unsigned := map[string]string{}
	for name, in := range cards {
		in.Kind, in.Name, in.Namespace, in.Framework, in.Protocol, in.Endpoint = composition.KindAgent, "agent", "team1", "custom", "a2a", "http://127.0.0.1:9100"
		card := renderedCard(t, renderer, in)
		unsigned[name] = write(name+".json", card)
		signed, err := cardsig.Sign(card, svid)
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, write(name+"-ours.json", signed))
		var changed map[string]any
		_ = json.Unmarshal(signed, &changed)
		changed["name"] = "impostor"
		b, _ := json.Marshal(changed)
		tampered = append(tampered, write(name+"-tampered.json", b))
	}

	python, pyDir := venvPython(t, testenv.A2APython1()), mustAbs(t, filepath.Join("testdata", "a2a-python", "v1"))
	sdks := []struct {
		name string
		run  func(args ...string) ([]map[string]any, error)
	}{
		{"@a2a-js/sdk 1.3.0", func(args ...string) ([]map[string]any, error) {
			return runClientScript(ctx, a2aJSDir(t, "v1"), append([]string{"node", "cardsig.mjs"}, args...))
		}},
		{"a2a-sdk 1.3.0 (Python)", func(args ...string) ([]map[string]any, error) {
			return runClientScript(ctx, pyDir, append([]string{python, "cardsig.py"}, args...))
		}},
	}
	for i, sdk := range sdks {
		lines, err := sdk.run(append(append([]string{"verify", pubFile}, ours...), tampered...)...)
		if err != nil {
			t.Fatalf("%s: %v", sdk.name, err)
		}
		verdicts := map[string]map[string]any{}
		for _, l := range lines {
			card, _ := l["card"].(string)
			verdicts[card] = l
		}
		for _, card := range ours {
			if verdicts[card]["ok"] != true {
				t.Errorf("%s does not verify %s, which cardsig signed: %v", sdk.name, filepath.Base(card), verdicts[card])
			}
		}
		for _, card := range tampered {
			if verdicts[card]["ok"] != false {
				t.Errorf("%s verifies %s, changed after signing: %v", sdk.name, filepath.Base(card), verdicts[card])
			}
		}
		for name, card := range unsigned {
			out := filepath.Join(dir, fmt.Sprintf("%s-sdk%d.json", name, i))
			if _, err := sdk.run("sign", privFile, headerFile, card, out); err != nil {
				t.Fatalf("%s signing %s: %v", sdk.name, name, err)
			}
			signed, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := cardsig.Verify(signed, ca.Bundle(), svid.ID); err != nil {
				t.Errorf("cardsig does not verify %s as %s signed it: %v", name, sdk.name, err)
			}
			// The router's check: the signature is of the registered card.
			registered, _ := os.ReadFile(card)
			if err := cardsig.VerifyFor(registered, signed, ca.Bundle(), svid.ID); err != nil {
				t.Errorf("the signature %s made is not of the registered card %s: %v", sdk.name, name, err)
			}
			var changed map[string]any
			_ = json.Unmarshal(signed, &changed)
			changed["name"] = "impostor"
			b, _ := json.Marshal(changed)
			if err := cardsig.Verify(b, ca.Bundle(), svid.ID); !errors.Is(err, cardsig.ErrBadSignature) {
				t.Errorf("cardsig on %s signed by %s and then changed: %v, want %v", name, sdk.name, err, cardsig.ErrBadSignature)
			}
		}
	}
}

// renderedCard is the agent card the composition writes for in.
func renderedCard(t *testing.T, r *composition.Renderer, in composition.Input) []byte {
	t.Helper()
	out, err := r.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Objects {
		if card, ok, _ := unstructured.NestedString(o.Object.Object, "data", contract.CardKey); ok {
			return []byte(card)
		}
	}
	t.Fatalf("no card among the objects of %s", in.Name)
	return nil
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
