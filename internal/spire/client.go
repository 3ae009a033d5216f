// Package spire talks to a SPIRE server's admin API: the trust bundle, registration entries and
// JWT-SVIDs. It knows nothing of Terraform.
package spire

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Client is a connection to the SPIRE server admin API.
type Client struct {
	conn    *grpc.ClientConn
	bundles bundlev1.BundleClient
	address string
}

// Dial connects to the admin API at a unix socket address ("unix:///run/spire/server.sock").
// The admin API is served only on the server's unix socket: access to the socket is the
// authorization, so the connection needs no TLS.
func Dial(address string) (*Client, error) {
	if !strings.HasPrefix(address, "unix://") {
		return nil, fmt.Errorf("spire address %q: the SPIRE server admin API is a unix socket; use unix:///path/to/server.sock", address)
	}
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to SPIRE server at %s: %w", address, err)
	}
	return &Client{conn: conn, bundles: bundlev1.NewBundleClient(conn), address: address}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection, for the entry and SVID API clients.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Bundle returns the server's own trust bundle.
func (c *Client) Bundle(ctx context.Context) (*spiffebundle.Bundle, error) {
	b, err := c.bundles.GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		return nil, fmt.Errorf("get trust bundle from SPIRE server at %s: %w", c.address, err)
	}
	td, err := spiffeid.TrustDomainFromString(b.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("SPIRE server at %s reports trust domain %q: %w", c.address, b.TrustDomain, err)
	}
	bundle := spiffebundle.New(td)
	for _, a := range b.X509Authorities {
		cert, err := x509.ParseCertificate(a.Asn1)
		if err != nil {
			return nil, fmt.Errorf("parse X.509 authority of %s: %w", td, err)
		}
		bundle.AddX509Authority(cert)
	}
	for _, k := range b.JwtAuthorities {
		key, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("parse JWT authority %s of %s: %w", k.KeyId, td, err)
		}
		if err := bundle.AddJWTAuthority(k.KeyId, key); err != nil {
			return nil, err
		}
	}
	if b.RefreshHint > 0 {
		bundle.SetRefreshHint(secondsDuration(b.RefreshHint))
	}
	if b.SequenceNumber > 0 {
		bundle.SetSequenceNumber(b.SequenceNumber)
	}
	return bundle, nil
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

// Config says how to reach the SPIRE server and what it is expected to be.
type Config struct {
	// Address is the admin API socket, unix:///path.
	Address string
	// TrustDomain, when set, must equal the server's.
	TrustDomain string
	// DefaultParentID is the parent of entries that name none.
	DefaultParentID string
	// BundleEndpointURL serves the bundle's JWT keys (JWKS) to relying parties such as Keycloak.
	BundleEndpointURL string
}

// Connect dials the server and checks that it answers and serves the expected trust domain, so
// that a wrong address or trust domain fails once, here, with a clear error.
func Connect(ctx context.Context, cfg Config) (*Client, spiffeid.TrustDomain, error) {
	c, err := Dial(cfg.Address)
	if err != nil {
		return nil, spiffeid.TrustDomain{}, err
	}
	bundle, err := c.Bundle(ctx)
	if err != nil {
		c.Close()
		return nil, spiffeid.TrustDomain{}, err
	}
	td := bundle.TrustDomain()
	if cfg.TrustDomain != "" && cfg.TrustDomain != td.Name() {
		c.Close()
		return nil, td, fmt.Errorf("SPIRE server at %s serves trust domain %q, not the configured %q", cfg.Address, td.Name(), cfg.TrustDomain)
	}
	return c, td, nil
}
