package spire_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

// testCA is a trust domain's X.509 authority that signs X509-SVIDs.
type testCA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, td string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireTrustDomainFromString(td)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{id.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{td: id, cert: cert, key: key}
}

// svid issues an X509-SVID for path and returns it with its PEM encoding (cert, key).
func (ca *testCA) svid(t *testing.T, path string) (*x509svid.SVID, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{spiffeid.RequireFromPath(ca.td, path).URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	s, err := x509svid.Parse(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s, certPEM, keyPEM
}

func (ca *testCA) bundlePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// bundleServer answers GetBundle with its trust domain.
type bundleServer struct {
	bundlev1.UnimplementedBundleServer
	td string
}

func (s *bundleServer) GetBundle(context.Context, *bundlev1.GetBundleRequest) (*types.Bundle, error) {
	return &types.Bundle{TrustDomain: s.td}, nil
}

// serveMTLS runs a bundle API on loopback that requires a client X509-SVID of the trust domain,
// as the SPIRE server's TCP API does, and presents serverSVID.
func serveMTLS(t *testing.T, ca *testCA, serverSVID *x509svid.SVID) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bundle := x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.cert})
	tlsConfig := tlsconfig.MTLSServerConfig(serverSVID, bundle, tlsconfig.AuthorizeMemberOf(ca.td))
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConfig)))
	bundlev1.RegisterBundleServer(srv, &bundleServer{td: ca.td.Name()})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConnectTCP pins the server API over TCP: the provider's SVID and the bundle come from
// files, the server must prove spiffe://<td>/spire/server (or server_id), and one of another
// trust domain or with another ID is refused before any API call succeeds.
func TestConnectTCP(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir := t.TempDir()
	_, clientCert, clientKey := ca.svid(t, "/kagenti-provider")
	svidFile, keyFile := writeFile(t, dir, "svid.pem", clientCert), writeFile(t, dir, "key.pem", clientKey)
	bundleFile := writeFile(t, dir, "bundle.pem", ca.bundlePEM())
	serverSVID, _, _ := ca.svid(t, "/spire/server")
	addr := serveMTLS(t, ca, serverSVID)
	impostorSVID, _, _ := ca.svid(t, "/not/the/server")
	impostor := serveMTLS(t, ca, impostorSVID)

	cases := map[string]struct {
		reason  string
		cfg     spire.Config
		wantErr string
	}{
		"admin SVID from files": {reason: "the CI runner's way in",
			cfg: spire.Config{Address: addr, TrustDomain: "example.org", X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile}},
		"trust domain from the SVID": {reason: "spire.trust_domain is optional over TCP too",
			cfg: spire.Config{Address: addr, X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile}},
		"dns scheme": {reason: "grpc target syntax is accepted",
			cfg: spire.Config{Address: "dns:///" + addr, X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile}},
		"server with another ID": {reason: "only spiffe://<td>/spire/server is the server",
			cfg:     spire.Config{Address: impostor, X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile},
			wantErr: "get trust bundle"},
		"server_id names it": {reason: "server_id overrides the expected ID",
			cfg: spire.Config{Address: impostor, X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile,
				ServerID: "spiffe://example.org/not/the/server"}},
		"other trust domain configured": {reason: "the server's trust domain must be the configured one",
			cfg:     spire.Config{Address: addr, TrustDomain: "other.org", X509SVIDFile: svidFile, X509SVIDKeyFile: keyFile, BundleFile: bundleFile},
			wantErr: `serves trust domain "example.org", not the configured "other.org"`},
		"no credentials": {reason: "TCP needs an SVID", cfg: spire.Config{Address: addr}, wantErr: "needs the provider's X509-SVID"},
		"missing files": {reason: "the error names the files",
			cfg:     spire.Config{Address: addr, X509SVIDFile: filepath.Join(dir, "none.pem"), X509SVIDKeyFile: keyFile, BundleFile: bundleFile},
			wantErr: "none.pem"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, td, err := spire.Connect(ctx, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s: err = %v, want one containing %q", tc.reason, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			defer c.Close()
			if td.Name() != "example.org" {
				t.Errorf("%s: trust domain %s", tc.reason, td)
			}
		})
	}
}
