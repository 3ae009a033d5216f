package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v14"
)

// KeycloakInfo is what a started Keycloak exposes.
type KeycloakInfo struct {
	URL   string `json:"url"`
	Realm string `json:"realm"`
	// The bootstrap admin of the master realm. The state file holding it is readable by its
	// owner only, and the sandbox is thrown away with it.
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	// CAFile is the PEM of the private CA that signs Keycloak's HTTPS certificate: Keycloak is
	// served over HTTPS only, as in production, and clients trust it through this file.
	CAFile string `json:"ca_file"`
}

// TLSConfig trusts the sandbox's Keycloak CA (and nothing else).
func (k KeycloakInfo) TLSConfig() (*tls.Config, error) {
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("keycloak CA %s holds no certificate", k.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// HTTPClient is an HTTP client that reaches the sandbox's Keycloak.
func (k KeycloakInfo) HTTPClient() (*http.Client, error) {
	cfg, err := k.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// keycloakFeatures turns on what Kagenti needs: SPIFFE identity providers for secret-free client
// authentication (federated-jwt is supported without a flag from 26.6; standard token exchange
// v2 is on by default since 26.2).
const keycloakFeatures = "spiffe"

// startKeycloak runs Keycloak in dev mode with an in-memory database and creates the realm.
func (s *Sandbox) startKeycloak(ctx context.Context) error {
	home := s.builder.Dir(Keycloak())
	javaHome, err := findJavaHome()
	if err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	dataDir := filepath.Join(s.Dir, "keycloak")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	// A token's issuer is the host the request named, and SPIFFE client assertions must name the
	// issuer exactly, so everyone uses one URL: localhost, or with a real node its bridge address
	// (which its pods reach, and this host too).
	host, urlHost := "127.0.0.1", "localhost"
	if s.opts.has(ComponentNode) {
		host, urlHost = NodeGateway, NodeGateway
	}
	info := KeycloakInfo{
		URL:           "https://" + urlHost + ":" + strconv.Itoa(ports[0]),
		Realm:         s.opts.KeycloakRealm,
		AdminUser:     "admin",
		AdminPassword: hex.EncodeToString(pw),
		CAFile:        filepath.Join(dataDir, "ca.crt"),
	}
	if err := writeKeycloakTLS(dataDir); err != nil {
		return fmt.Errorf("keycloak TLS certificate: %w", err)
	}
	proc := &Process{
		Name: "keycloak", Path: filepath.Join(home, "bin", "kc.sh"), LogPath: s.logPath("keycloak"), Dir: dataDir,
		Args: []string{"start-dev",
			"--http-enabled=false", "--http-host=" + host, "--https-port=" + strconv.Itoa(ports[0]),
			"--https-certificate-file=" + filepath.Join(dataDir, "tls.crt"),
			"--https-certificate-key-file=" + filepath.Join(dataDir, "tls.key"),
			// The health endpoint stays plain HTTP on loopback: only the readiness probe uses it.
			"--http-management-port=" + strconv.Itoa(ports[1]), "--http-management-scheme=http",
			"--health-enabled=true", "--db=dev-mem", "--features=" + keycloakFeatures},
		Env: []string{
			"JAVA_HOME=" + javaHome,
			"KC_BOOTSTRAP_ADMIN_USERNAME=" + info.AdminUser,
			"KC_BOOTSTRAP_ADMIN_PASSWORD=" + info.AdminPassword,
		},
		Healthy:      httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://"+host+":"+strconv.Itoa(ports[1])+"/health/ready"),
		StartTimeout: 3 * time.Minute,
		StopTimeout:  20 * time.Second,
	}
	if err := s.start(ctx, proc); err != nil {
		return err
	}
	if err := createRealm(ctx, info); err != nil {
		return fmt.Errorf("create Keycloak realm %q: %w", info.Realm, err)
	}
	s.Keycloak = info
	return nil
}

// writeKeycloakTLS writes a throw-away CA (ca.crt) and a server certificate for localhost and
// 127.0.0.1 (and the real node's bridge address) signed by it (tls.crt, tls.key as PKCS#8, which Keycloak reads).
func writeKeycloakTLS(dir string) error {
	ca, err := newCA("kagenti-sandbox keycloak CA")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.issue(pkix.Name{CommonName: "localhost"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(NodeGateway)})
	if err != nil {
		return err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return errors.New("issued key is not PEM")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFiles(dir, map[string][]byte{
		"ca.crt":  ca.certPEM(),
		"tls.crt": certPEM,
		"tls.key": pemBlock("PRIVATE KEY", pkcs8),
	})
}

func createRealm(ctx context.Context, info KeycloakInfo) error {
	tlsConfig, err := info.TLSConfig()
	if err != nil {
		return err
	}
	client := gocloak.NewClient(info.URL)
	client.RestyClient().SetTLSClientConfig(tlsConfig)
	// Ready by its health endpoint, Keycloak has refused the first connection to its HTTPS
	// port: a refused login is tried again for a while.
	var token *gocloak.JWT
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		token, err = client.LoginAdmin(ctx, info.AdminUser, info.AdminPassword, "master")
		if err == nil || !strings.Contains(err.Error(), "connection refused") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	_, err = client.CreateRealm(ctx, token.AccessToken, gocloak.RealmRepresentation{
		Realm:   gocloak.StringP(info.Realm),
		Enabled: gocloak.BoolP(true),
	})
	if err != nil && !strings.Contains(err.Error(), "409") {
		return err
	}
	return nil
}

// findJavaHome prefers $JAVA_HOME, then the newest JDK under /usr/lib/jvm (Keycloak 26.6+ runs on
// Java 25; 17 still works).
func findJavaHome() (string, error) {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		return h, nil
	}
	entries, _ := filepath.Glob("/usr/lib/jvm/*/bin/java")
	type jdk struct {
		home    string
		version int
	}
	var jdks []jdk
	for _, java := range entries {
		home := filepath.Dir(filepath.Dir(java))
		if st, err := os.Lstat(home); err != nil || st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		jdks = append(jdks, jdk{home, jdkMajor(filepath.Base(home))})
	}
	if len(jdks) == 0 {
		return "", fmt.Errorf("keycloak needs a Java 17+ runtime: set JAVA_HOME or apt-get install openjdk-17-jre-headless")
	}
	sort.Slice(jdks, func(i, j int) bool { return jdks[i].version > jdks[j].version })
	return jdks[0].home, nil
}

// jdkMajor reads the major version from a directory name such as "temurin-25-jdk-amd64" or
// "java-17-openjdk-amd64".
func jdkMajor(name string) int {
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '.' }) {
		if n, err := strconv.Atoi(part); err == nil && n >= 8 {
			return n
		}
	}
	return 0
}
