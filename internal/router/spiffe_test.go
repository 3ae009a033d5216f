package router

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeWorkloadAPI answers FetchJWTSVID with PermissionDenied ("no identity issued", as a SPIRE
// agent does before it has synced the caller's entry) until deniedFor calls have been made.
type fakeWorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	calls     atomic.Int32
	deniedFor int32
	code      codes.Code
	token     string
}

func (f *fakeWorkloadAPI) FetchJWTSVID(context.Context, *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if f.calls.Add(1) <= f.deniedFor {
		return nil, status.Error(f.code, "no identity issued")
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: "spiffe://td.test/ns/a/sa/agent", Svid: f.token}}}, nil
}

func serveWorkloadAPI(t *testing.T, f *fakeWorkloadAPI) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	f.token, err = jwt.Signed(signer).Claims(jwt.Claims{Subject: "spiffe://td.test/ns/a/sa/agent", Audience: jwt.Audience{"https://issuer.test/realms/r"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return socket
}

// TestSPIFFEAssertion_WaitsForTheIdentity: a workload that asks before its SPIRE agent has its
// entry is denied at first; the assertion asks again until the identity is issued, and gives up
// at once on any other error.
func TestSPIFFEAssertion_WaitsForTheIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := &fakeWorkloadAPI{deniedFor: 3, code: codes.PermissionDenied}
	assertion := SPIFFEAssertion(serveWorkloadAPI(t, f), "https://issuer.test/realms/r", "")
	got, err := assertion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != f.token || f.calls.Load() != 4 {
		t.Fatalf("assertion %q after %d calls; want the SVID after 4", got, f.calls.Load())
	}

	other := &fakeWorkloadAPI{deniedFor: 3, code: codes.Unavailable}
	if _, err := SPIFFEAssertion(serveWorkloadAPI(t, other), "https://issuer.test/realms/r", "")(ctx); err == nil || other.calls.Load() != 1 {
		t.Fatalf("another error: err %v after %d calls; want it returned after 1", err, other.calls.Load())
	}
}
