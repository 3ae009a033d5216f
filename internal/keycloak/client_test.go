package keycloak

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeKeycloak answers the login and the discovery document under basePath, over TLS with
// httptest's own CA.
func fakeKeycloak(t *testing.T, basePath string, delay time.Duration) (*httptest.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+basePath+"/realms/master/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "admin-token", "expires_in": 60})
	})
	mux.HandleFunc("GET "+basePath+"/realms/kagenti/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://" + r.Host + basePath + "/realms/kagenti"})
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	return srv, ca
}

// TestNew_TLSAndBasePath pins how the connection settings reach gocloak's HTTP client: a private
// CA is trusted only when given, verification can be turned off, the base path prefixes every
// URL, and the timeout bounds each request.
func TestNew_TLSAndBasePath(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		basePath string // served under
		delay    time.Duration
		cfg      func(url, ca string) Config
		wantErr  string
		issuer   string // suffix of the issuer RealmInfo reads
	}{
		"a private CA is trusted through root_ca_certificate": {
			cfg: func(url, ca string) Config {
				return Config{URL: url, Realm: "kagenti", Username: "admin", Password: "pw", RootCACertificate: ca}
			},
			issuer: "/realms/kagenti",
		},
		"without the CA the login fails on the certificate": {
			cfg: func(url, ca string) Config {
				return Config{URL: url, Realm: "kagenti", Username: "admin", Password: "pw"}
			},
			wantErr: "certificate",
		},
		"tls_insecure_skip_verify accepts any certificate": {
			cfg: func(url, ca string) Config {
				return Config{URL: url, Realm: "kagenti", Username: "admin", Password: "pw", TLSInsecureSkipVerify: true}
			},
			issuer: "/realms/kagenti",
		},
		"base_path prefixes every request": {
			basePath: "/auth",
			cfg: func(url, ca string) Config {
				return Config{URL: url + "/", BasePath: "/auth/", Realm: "kagenti", Username: "admin", Password: "pw", RootCACertificate: ca}
			},
			issuer: "/auth/realms/kagenti",
		},
		"client_timeout bounds a slow login": {
			delay: 2 * time.Second,
			cfg: func(url, ca string) Config {
				return Config{URL: url, Realm: "kagenti", Username: "admin", Password: "pw", RootCACertificate: ca, ClientTimeout: 200 * time.Millisecond}
			},
			wantErr: "Client.Timeout",
		},
		"a root_ca_certificate without a certificate is refused": {
			cfg: func(url, ca string) Config {
				return Config{URL: url, Realm: "kagenti", Username: "admin", Password: "pw", RootCACertificate: "junk"}
			},
			wantErr: "holds no PEM certificate",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv, ca := fakeKeycloak(t, tc.basePath, tc.delay)
			c, err := New(ctx, tc.cfg(srv.URL, ca))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.RealmInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(info.Issuer, tc.issuer) {
				t.Fatalf("issuer %q, want it to end in %q", info.Issuer, tc.issuer)
			}
		})
	}
}
