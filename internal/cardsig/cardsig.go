// Package cardsig signs A2A agent cards with a workload's X509-SVID and verifies them against a
// SPIFFE trust bundle, binding a card to the workload identity that published it.
//
// A signature is an A2A AgentCardSignature: a JWS (RFC 7515) with a detached payload, the card
// canonicalized as A2A 1.0 (section 8.4.1) has it and the official SDKs read it (see Payload).
// Its protected header carries the SVID's certificate chain in x5c, and the key's RFC 7638
// thumbprint as kid. A verifier checks the chain against the trust domain's X.509 bundle (the
// leaf is an X509-SVID), the signature with the leaf's key, and that the leaf's SPIFFE ID is
// the identity registered for the card's agent.
package cardsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"github.com/go-jose/go-jose/v4"
	"github.com/gowebpki/jcs"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/encoding/protojson"
)

// Why a card does not verify; errors.Is tells them apart (the router counts them by reason).
var (
	ErrUnsigned      = errors.New("the card is not signed")
	ErrBadSignature  = errors.New("no signature of the card verifies")
	ErrWrongIdentity = errors.New("the card is signed by another identity")
)

// signature is an A2A AgentCardSignature.
type signature struct {
	Protected string         `json:"protected"`
	Signature string         `json:"signature"`
	Header    map[string]any `json:"header,omitempty"`
}

// algorithms are the JWS algorithms a signature may use: those of the keys SPIRE issues SVIDs
// with (EC P-256/P-384, RSA).
var algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA}

// Canonical is the card as it is, without "signatures", canonicalized per RFC 8785 (JCS): what
// tells two cards apart, every member counted.
func Canonical(card []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(card, &members); err != nil {
		return nil, fmt.Errorf("the card is not a JSON object: %w", err)
	}
	delete(members, "signatures")
	raw, err := json.Marshal(members)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// Payload is what a card's signatures sign, as A2A 1.0 has it (section 8.4.1) and its official
// SDKs compute it (@a2a-js/sdk's canonicalizeAgentCard, a2a-sdk's in Python): the card read
// through the 1.0 schema (a2a-go's AgentCard message: members outside it, such as 0.3's url,
// are dropped and not signed), fields at their default value omitted unless the schema tracks
// their presence, empty strings, lists and objects removed, "signatures" excluded, then JCS.
// (The specification's own example keeps an empty description and skills, which are required;
// both SDKs remove them, and a signature that neither verifies is of no use.)
func Payload(card []byte) ([]byte, error) {
	var pb a2apb.AgentCard
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(card, &pb); err != nil {
		return nil, fmt.Errorf("the card is not an A2A agent card: %w", err)
	}
	pb.Signatures = nil
	raw, err := protojson.Marshal(&pb)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	cleaned, err := json.Marshal(withoutEmpty(doc))
	if err != nil {
		return nil, err
	}
	return jcs.Transform(cleaned)
}

// withoutEmpty removes empty strings, lists and objects from a JSON document, recursively (a
// member whose value becomes empty goes too), and returns nil for an empty one.
func withoutEmpty(v any) any {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
	case []any:
		var kept []any
		for _, e := range v {
			if e = withoutEmpty(e); e != nil {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return kept
	case map[string]any:
		kept := map[string]any{}
		for k, e := range v {
			if e = withoutEmpty(e); e != nil {
				kept[k] = e
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return kept
	}
	return v
}

// Sign returns the card with one signature made with the SVID's key (replacing any it had).
func Sign(card []byte, svid *x509svid.SVID) ([]byte, error) {
	return signReading(card, svid, Payload)
}

// signReading is Sign over a reading of the card.
func signReading(card []byte, svid *x509svid.SVID, read func([]byte) ([]byte, error)) ([]byte, error) {
	payload, err := read(card)
	if err != nil {
		return nil, err
	}
	alg, err := algorithmOf(svid.PrivateKey.Public())
	if err != nil {
		return nil, err
	}
	chain := make([]string, len(svid.Certificates))
	for i, c := range svid.Certificates {
		chain[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	// A2A asks for a kid: the key's thumbprint names it without a registry of key ids.
	thumbprint, err := (&jose.JSONWebKey{Key: svid.PrivateKey.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: svid.PrivateKey},
		(&jose.SignerOptions{}).WithHeader("x5c", chain).WithHeader("kid", base64.RawURLEncoding.EncodeToString(thumbprint)).WithType("JOSE"))
	if err != nil {
		return nil, err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	compact, err := jws.DetachedCompactSerialize()
	if err != nil {
		return nil, err
	}
	protected, sig, _ := strings.Cut(compact, "..")
	var members map[string]json.RawMessage
	if err := json.Unmarshal(card, &members); err != nil {
		return nil, err
	}
	members["signatures"], err = json.Marshal([]signature{{Protected: protected, Signature: sig}})
	if err != nil {
		return nil, err
	}
	return json.Marshal(members)
}

func algorithmOf(key any) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("no JWS algorithm for an SVID key of type %T", key)
}

// Verify checks that a signature of the card verifies with an X509-SVID of want that chains
// to the bundles. It returns an error wrapping ErrUnsigned, ErrBadSignature or
// ErrWrongIdentity. A signature over the 1.0 reading (Payload) leaves the members outside the
// 1.0 schema unsigned: a caller that relies on those checks them apart (see VerifyFor).
func Verify(card []byte, bundles x509bundle.Source, want spiffeid.ID) error {
	return VerifyFor(card, card, bundles, want)
}

// VerifyFor checks that a signature of signed (a card as its agent serves it) verifies over
// card, with an X509-SVID of want that chains to the bundles: the agent attests card, however
// it writes its own (an SDK's server writes it anew, leaving out empty members and moving 0.3's
// members). Errors are Verify's.
func VerifyFor(card, signed []byte, bundles x509bundle.Source, want spiffeid.ID) error {
	var parsed struct {
		Signatures []signature `json:"signatures"`
	}
	if err := json.Unmarshal(signed, &parsed); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(parsed.Signatures) == 0 {
		return ErrUnsigned
	}
	// A signature over either reading of the card is taken: the A2A 1.0 payload, which this
	// package signs, and the whole card canonicalized (what it signed before, and what readers
	// that canonicalize the card as it is sign). A reading the card does not allow (a member
	// of the wrong type for the 1.0 schema) is skipped.
	var payloads [][]byte
	var readErrs []error
	for _, read := range []func([]byte) ([]byte, error){Payload, Canonical} {
		p, err := read(card)
		if err != nil {
			readErrs = append(readErrs, err)
			continue
		}
		payloads = append(payloads, p)
	}
	if len(payloads) == 0 {
		return fmt.Errorf("%w: %w", ErrBadSignature, errors.Join(readErrs...))
	}
	var errs []error
	for _, s := range parsed.Signatures {
		id, err := verifyOne(s, payloads, bundles)
		switch {
		case err != nil:
			errs = append(errs, err)
		case id != want:
			return fmt.Errorf("%w: signed by %s, registered for %s", ErrWrongIdentity, id, want)
		default:
			return nil
		}
	}
	return fmt.Errorf("%w: %w", ErrBadSignature, errors.Join(errs...))
}

// verifyOne verifies one signature over one of the payloads and returns the SPIFFE ID of its
// signer.
func verifyOne(s signature, payloads [][]byte, bundles x509bundle.Source) (spiffeid.ID, error) {
	jws, err := jose.ParseDetached(s.Protected+".."+s.Signature, payloads[0], algorithms)
	if err != nil {
		return spiffeid.ID{}, err
	}
	header, err := base64.RawURLEncoding.DecodeString(s.Protected)
	if err != nil {
		return spiffeid.ID{}, err
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(header, &h); err != nil || len(h.X5C) == 0 {
		return spiffeid.ID{}, errors.New("the signature's header has no certificate chain (x5c)")
	}
	certs := make([]*x509.Certificate, len(h.X5C))
	for i, c := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("x5c[%d]: %w", i, err)
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return spiffeid.ID{}, fmt.Errorf("x5c[%d]: %w", i, err)
		}
	}
	id, _, err := x509svid.Verify(certs, bundles)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("the signing certificate is no X509-SVID of a trusted domain: %w", err)
	}
	for _, p := range payloads {
		if err = jws.DetachedVerify(p, certs[0].PublicKey); err == nil {
			return id, nil
		}
	}
	return spiffeid.ID{}, err
}
