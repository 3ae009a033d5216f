package cardsig

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig/cardsigtest"
)

const card = `{"name":"writer","description":"Writes","url":"http://kagenti-router/a2a/research/writer","version":"1.0.0","skills":[{"id":"write","name":"Write"}]}`

func TestSignAndVerify(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	signed, err := Sign([]byte(card), writer)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signed, ca.Bundle(), writer.ID); err != nil {
		t.Fatalf("a card signed by its agent: %v", err)
	}
	// JSON that says the same (members reordered, spaces) verifies too: the payload is canonical.
	var v map[string]any
	_ = json.Unmarshal(signed, &v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	if err := Verify(buf.Bytes(), ca.Bundle(), writer.ID); err != nil {
		t.Fatalf("the same card reformatted: %v", err)
	}
	// Signing again replaces the signature rather than adding one.
	again, _ := Sign(signed, writer)
	var sigs struct{ Signatures []json.RawMessage }
	_ = json.Unmarshal(again, &sigs)
	if len(sigs.Signatures) != 1 {
		t.Fatalf("%d signatures after signing a signed card, want 1", len(sigs.Signatures))
	}
}

func TestVerifyRefuses(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	signed, err := Sign([]byte(card), writer)
	if err != nil {
		t.Fatal(err)
	}
	byOther, _ := Sign([]byte(card), ca.SVID(t, "/ns/research/sa/planner"))
	foreign := cardsigtest.NewAuthority(t, "example.org") // same name, another key: not the bundle's
	byForeign, _ := Sign([]byte(card), foreign.SVID(t, "/ns/research/sa/writer"))
	var tampered map[string]any
	_ = json.Unmarshal(signed, &tampered)
	tampered["description"] = "Writes, and also wires money"
	tamperedJSON, _ := json.Marshal(tampered)

	for name, tc := range map[string]struct {
		card []byte
		want error
	}{
		"unsigned":                         {[]byte(card), ErrUnsigned},
		"signed by another workload":       {byOther, ErrWrongIdentity},
		"signed under another CA":          {byForeign, ErrBadSignature},
		"changed after signing":            {tamperedJSON, ErrBadSignature},
		"a signature that is not base64":   {[]byte(`{"name":"x","signatures":[{"protected":"!!","signature":"!!"}]}`), ErrBadSignature},
		"a header without its chain (x5c)": {headerWithoutChain(t, writer), ErrBadSignature},
	} {
		t.Run(name, func(t *testing.T) {
			err := Verify(tc.card, ca.Bundle(), writer.ID)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestPayloadReadsTheA2A10Schema: what a signature covers is the card as A2A 1.0 reads it
// (section 8.4.1, as @a2a-js/sdk and the Python a2a-sdk compute it): members outside the 1.0
// schema, such as 0.3's url, are not signed (the router compares the whole card with the
// registered one apart, with Canonical); default values and empty members are left out; member
// order and spacing do not count.
func TestPayloadReadsTheA2A10Schema(t *testing.T) {
	got, err := Payload([]byte(`{"url":"http://a","preferredTransport":"JSONRPC","name":"a","description":"",` +
		`"capabilities":{"streaming":false,"extensions":[]},"skills":[{"id":"s","name":"S","tags":[]}],"signatures":[{"protected":"x","signature":"y"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// streaming is optional in the schema, so an explicit false is kept; the rest of the empty
	// members go.
	if want := `{"capabilities":{"streaming":false},"name":"a","skills":[{"id":"s","name":"S"}]}`; string(got) != want {
		t.Fatalf("payload %s, want %s", got, want)
	}
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	signed, _ := Sign([]byte(card), writer)
	var moved map[string]any
	_ = json.Unmarshal(signed, &moved)
	moved["url"] = "http://elsewhere.example.com/"
	movedJSON, _ := json.Marshal(moved)
	if err := Verify(movedJSON, ca.Bundle(), writer.ID); err != nil {
		t.Fatalf("a member outside the 1.0 schema changed: %v (it is not signed)", err)
	}
	if a, b := mustCanonical(t, signed), mustCanonical(t, movedJSON); bytes.Equal(a, b) {
		t.Fatal("Canonical does not tell the two cards apart")
	}
}

// TestVerifyTakesBothReadings: a signature over the whole card canonicalized (what this package
// signed before, and what some readers sign) still verifies; VerifyFor checks a served card's
// signatures over the card it should be, however the served one is written.
func TestVerifyTakesBothReadings(t *testing.T) {
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/research/sa/writer")
	whole, err := signReading([]byte(card), writer, Canonical)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(whole, ca.Bundle(), writer.ID); err != nil {
		t.Fatalf("a signature over the whole card: %v", err)
	}
	signed, _ := Sign([]byte(card), writer)
	var rewritten map[string]any
	_ = json.Unmarshal(signed, &rewritten)
	rewritten["skills"] = []any{map[string]any{"name": "Write", "id": "write", "tags": []any{}}}
	rewrittenJSON, _ := json.Marshal(rewritten)
	if err := VerifyFor([]byte(card), rewrittenJSON, ca.Bundle(), writer.ID); err != nil {
		t.Fatalf("the card written anew (an empty member added): %v", err)
	}
	other := bytes.Replace([]byte(card), []byte("Writes"), []byte("Writes anything"), 1)
	if err := VerifyFor(other, signed, ca.Bundle(), writer.ID); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signatures of one card over another: %v, want %v", err, ErrBadSignature)
	}
}

func mustCanonical(t *testing.T, card []byte) []byte {
	t.Helper()
	c, err := Canonical(card)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// headerWithoutChain is a card whose signature verifies with the writer's key but names no
// certificate: nothing binds it to an identity.
func headerWithoutChain(t *testing.T, svid *x509svid.SVID) []byte {
	t.Helper()
	bare := &x509svid.SVID{ID: svid.ID, PrivateKey: svid.PrivateKey}
	signed, err := Sign([]byte(card), bare)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
