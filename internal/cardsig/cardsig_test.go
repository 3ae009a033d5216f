package cardsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// authority is a throw-away SPIFFE trust domain CA.
type authority struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
}

func newAuthority(t *testing.T, td string) *authority {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: td}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{{Scheme: "spiffe", Host: td}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &authority{td: spiffeid.RequireTrustDomainFromString(td), cert: cert, key: key}
}

func (a *authority) svid(t *testing.T, path string) *x509svid.SVID {
	t.Helper()
	id := spiffeid.RequireFromPath(a.td, path)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, URIs: []*url.URL{id.URL()}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

func (a *authority) bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(a.td, []*x509.Certificate{a.cert})
}

const card = `{"name":"writer","description":"Writes","url":"http://kagenti-router/a2a/research/writer","version":"1.0.0","skills":[{"id":"write","name":"Write"}]}`

func TestSignAndVerify(t *testing.T) {
	ca := newAuthority(t, "example.org")
	writer := ca.svid(t, "/ns/research/sa/writer")
	signed, err := Sign([]byte(card), writer)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signed, ca.bundle(), writer.ID); err != nil {
		t.Fatalf("a card signed by its agent: %v", err)
	}
	// JSON that says the same (members reordered, spaces) verifies too: the payload is canonical.
	var v map[string]any
	_ = json.Unmarshal(signed, &v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	if err := Verify(buf.Bytes(), ca.bundle(), writer.ID); err != nil {
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
	ca := newAuthority(t, "example.org")
	writer := ca.svid(t, "/ns/research/sa/writer")
	signed, err := Sign([]byte(card), writer)
	if err != nil {
		t.Fatal(err)
	}
	byOther, _ := Sign([]byte(card), ca.svid(t, "/ns/research/sa/planner"))
	foreign := newAuthority(t, "example.org") // same name, another key: not the bundle's
	byForeign, _ := Sign([]byte(card), foreign.svid(t, "/ns/research/sa/writer"))
	var tampered map[string]any
	_ = json.Unmarshal(signed, &tampered)
	tampered["url"] = "http://evil.example.com/"
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
			err := Verify(tc.card, ca.bundle(), writer.ID)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
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
