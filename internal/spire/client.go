// Package spire talks to a SPIRE server's API, on its admin socket or over TCP with mutual TLS:
// the trust bundle, registration entries and JWT-SVIDs. It knows nothing of Terraform.
package spire

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Client is a connection to the SPIRE server admin API.
type Client struct {
	conn    *grpc.ClientConn
	bundles bundlev1.BundleClient
	address string
	// source is the Workload API X509Source the client's SVID comes from, if any; closed with
	// the client.
	source io.Closer
}

// Dial connects to the admin API at a unix socket address ("unix:///run/spire/server.sock"),
// which needs no TLS: access to the socket is the authorization. For the API over TCP, use
// Connect with the client's X509-SVID.
func Dial(address string) (*Client, error) {
	if !IsUnixAddress(address) {
		return nil, fmt.Errorf("spire address %q: Dial takes a unix socket (unix:///path/to/server.sock); the TCP API needs an X509-SVID, see Connect", address)
	}
	return dial(address, insecure.NewCredentials(), nil)
}

func dial(address string, creds credentials.TransportCredentials, source io.Closer) (*Client, error) {
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connect to SPIRE server at %s: %w", address, err)
	}
	return &Client{conn: conn, bundles: bundlev1.NewBundleClient(conn), address: address, source: source}, nil
}

// IsUnixAddress says whether the admin API address is a unix socket.
func IsUnixAddress(address string) bool { return strings.HasPrefix(address, "unix://") }

// dialTLS connects to the server API over TCP with mutual TLS: the client presents an X509-SVID
// whose SPIFFE ID is one of the server's admin_ids (or of an admin entry), and accepts only a
// server that proves serverID with a certificate of the trust bundle.
func dialTLS(ctx context.Context, cfg Config) (*Client, error) {
	var (
		svids   x509svid.Source
		bundles x509bundle.Source
		closer  io.Closer
	)
	switch {
	case cfg.X509SVIDWorkloadAPI != "":
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(cfg.X509SVIDWorkloadAPI)))
		if err != nil {
			return nil, fmt.Errorf("fetch the provider's X509-SVID from the Workload API at %s: %w", cfg.X509SVIDWorkloadAPI, err)
		}
		svids, bundles, closer = src, src, src
	case cfg.X509SVIDFile != "" && cfg.X509SVIDKeyFile != "":
		svid, err := x509svid.Load(cfg.X509SVIDFile, cfg.X509SVIDKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load the provider's X509-SVID from %s and %s: %w", cfg.X509SVIDFile, cfg.X509SVIDKeyFile, err)
		}
		// The bundle is the server's trust domain's, which issued the provider's admin SVID: a
		// configured trust domain that differs is reported below, by name, not as a failed
		// handshake.
		td := svid.ID.TrustDomain()
		if cfg.BundleFile == "" {
			return nil, errors.New("the SPIRE server API over TCP needs the trust bundle that verifies the server (bundle_file)")
		}
		bundle, err := x509bundle.Load(td, cfg.BundleFile)
		if err != nil {
			return nil, fmt.Errorf("load the trust bundle of %s from %s: %w", td, cfg.BundleFile, err)
		}
		svids, bundles = svid, bundle
	default:
		return nil, fmt.Errorf("the SPIRE server API at %s is TCP, which needs the provider's X509-SVID: from files (x509_svid_file, "+
			"x509_svid_key_file, bundle_file) or from a Workload API (x509_svid_workload_api)", cfg.Address)
	}
	own, err := svids.GetX509SVID()
	if err != nil {
		closeQuietly(closer)
		return nil, fmt.Errorf("the provider's X509-SVID: %w", err)
	}
	if served := own.ID.TrustDomain().Name(); cfg.TrustDomain != "" && cfg.TrustDomain != served && cfg.ServerID == "" {
		closeQuietly(closer)
		return nil, fmt.Errorf("SPIRE server at %s serves trust domain %q, not the configured %q (the provider's admin X509-SVID %s is "+
			"the server's): fix spire.trust_domain, or set spire.server_id for a server of another trust domain", cfg.Address, served, cfg.TrustDomain, own.ID)
	}
	serverID, err := ServerID(cfg, own.ID.TrustDomain())
	if err != nil {
		closeQuietly(closer)
		return nil, err
	}
	tlsConfig := tlsconfig.MTLSClientConfig(svids, bundles, tlsconfig.AuthorizeID(serverID))
	c, err := dial(cfg.Address, credentials.NewTLS(tlsConfig), closer)
	if err != nil {
		closeQuietly(closer)
		return nil, err
	}
	return c, nil
}

// ServerID is the SPIFFE ID the server must prove over TCP: the configured one, else SPIRE's
// spiffe://<trust domain>/spire/server, in the configured trust domain or the client SVID's.
func ServerID(cfg Config, clientTD spiffeid.TrustDomain) (spiffeid.ID, error) {
	if cfg.ServerID != "" {
		id, err := spiffeid.FromString(cfg.ServerID)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("server id %q: %w", cfg.ServerID, err)
		}
		return id, nil
	}
	td := clientTD
	if cfg.TrustDomain != "" {
		var err error
		if td, err = spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil {
			return spiffeid.ID{}, err
		}
	}
	return spiffeid.FromPath(td, "/spire/server")
}

func closeQuietly(c io.Closer) {
	if c != nil {
		_ = c.Close()
	}
}

// Close closes the connection (and the Workload API source of its SVID).
func (c *Client) Close() error {
	err := c.conn.Close()
	closeQuietly(c.source)
	return err
}

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
	// Address is the server API: its admin socket, unix:///path, or host:port (dns:///host:port)
	// over TCP with mutual TLS.
	Address string
	// TrustDomain, when set, must equal the server's.
	TrustDomain string
	// DefaultParentID is the parent of entries that name none.
	DefaultParentID string
	// BundleEndpointURL serves the bundle's JWT keys (JWKS) to relying parties such as Keycloak.
	BundleEndpointURL string

	// Over TCP the provider presents an X509-SVID whose SPIFFE ID the server admits as an admin:
	// from PEM files (the SVID with its chain, its key, and the bundle that verifies the
	// server), or from a Workload API socket (unix:///path) that serves it.
	X509SVIDFile        string
	X509SVIDKeyFile     string
	BundleFile          string
	X509SVIDWorkloadAPI string
	// ServerID is the SPIFFE ID the server must present; spiffe://<trust domain>/spire/server
	// when empty.
	ServerID string
}

// Connect dials the server and checks that it answers and serves the expected trust domain, so
// that a wrong address or trust domain fails once, here, with a clear error.
func Connect(ctx context.Context, cfg Config) (*Client, spiffeid.TrustDomain, error) {
	var c *Client
	var err error
	if IsUnixAddress(cfg.Address) {
		c, err = Dial(cfg.Address)
	} else {
		c, err = dialTLS(ctx, cfg)
	}
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
