package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// SpireInfo is what a started SPIRE server exposes.
type SpireInfo struct {
	// Socket is the server's admin API (unix socket), for the sandbox's own tools and tests'
	// checks; the provider gets Address instead.
	Socket      string `json:"socket"`
	TrustDomain string `json:"trust_domain"`
	// Address is the server API over TCP (host:port): mutual TLS, where AdminID (one of the
	// server's admin_ids) is admitted with the X509-SVID in AdminSVIDFile/AdminKeyFile, and
	// BundleFile verifies the server.
	Address       string `json:"address"`
	AdminID       string `json:"admin_id"`
	AdminSVIDFile string `json:"admin_svid_file"`
	AdminKeyFile  string `json:"admin_key_file"`
	BundleFile    string `json:"bundle_file"`
	// ControllerManager says that a SPIRE Controller Manager turns ClusterSPIFFEIDs into entries
	// (when Kubernetes runs too); its entry ids start with ControllerManagerEntryPrefix.
	ControllerManager bool `json:"controller_manager"`
	// JWKSURL serves the trust bundle's JWT keys over plain http on loopback (SPIRE's OIDC
	// discovery provider); Keycloak's SPIFFE identity provider reads it.
	JWKSURL string `json:"jwks_url"`
	// AgentSocket is a spire-agent's Workload API (unix attestor: processes of this machine);
	// AgentID is its node alias, the parent for workload entries it serves.
	AgentSocket string `json:"agent_socket"`
	AgentID     string `json:"agent_id"`
}

var spireServerConf = template.Must(template.New("server.conf").Parse(`server {
    bind_address = "127.0.0.1"
    bind_port = "{{.Port}}"
    socket_path = "{{.Socket}}"
    trust_domain = "{{.TrustDomain}}"
    admin_ids = ["{{.AdminID}}"]
    data_dir = "{{.DataDir}}"
    log_level = "INFO"
    ca_ttl = "24h"
    default_x509_svid_ttl = "1h"
    default_jwt_svid_ttl = "5m"
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "{{.DataDir}}/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
}
`))

var oidcProviderConf = template.Must(template.New("oidc.conf").Parse(`log_level = "INFO"
domains = ["localhost"]
insecure_addr = "127.0.0.1:{{.Port}}"
allow_insecure_scheme = true
server_api {
    address = "unix://{{.Socket}}"
}
`))

// startSpire brings up spire-server (sqlite datastore, join_token attestor, admin API on a unix
// socket) and the OIDC discovery provider that serves its JWT keys.
func (s *Sandbox) startSpire(ctx context.Context) error {
	bin := s.builder.Dir(Spire())
	dir := filepath.Join(s.Dir, "spire")
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	socket := filepath.Join(dir, "server.sock")
	if len(socket) > 100 {
		return fmt.Errorf("sandbox dir %s is too long for a unix socket path; choose a shorter one", s.Dir)
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	serverConf := filepath.Join(dir, "server.conf")
	adminID := "spiffe://" + s.opts.TrustDomain + "/kagenti-provider"
	if err := renderFile(spireServerConf, serverConf, map[string]any{
		"Port": ports[0], "Socket": socket, "TrustDomain": s.opts.TrustDomain, "DataDir": dataDir, "AdminID": adminID,
	}); err != nil {
		return err
	}
	serverBin := filepath.Join(bin, "spire-server")
	server := &Process{
		Name: "spire-server", Path: serverBin, LogPath: s.logPath("spire-server"),
		Args: []string{"run", "-config", serverConf},
		Healthy: func(ctx context.Context) error {
			return exec.CommandContext(ctx, serverBin, "healthcheck", "-socketPath", socket).Run()
		},
	}
	if err := s.start(ctx, server); err != nil {
		return err
	}

	oidcConf := filepath.Join(dir, "oidc-discovery-provider.conf")
	if err := renderFile(oidcProviderConf, oidcConf, map[string]any{"Port": ports[1], "Socket": socket}); err != nil {
		return err
	}
	// The provider answers only for its configured domains, so the URL says localhost.
	jwksURL := "http://localhost:" + strconv.Itoa(ports[1]) + "/keys"
	oidc := &Process{
		Name: "oidc-discovery-provider", Path: filepath.Join(bin, "oidc-discovery-provider"), LogPath: s.logPath("oidc-discovery-provider"),
		Args:    []string{"-config", oidcConf},
		Healthy: httpHealthy(&http.Client{Timeout: 2 * time.Second}, jwksURL),
	}
	if err := s.start(ctx, oidc); err != nil {
		return err
	}
	s.Spire = SpireInfo{Socket: socket, TrustDomain: s.opts.TrustDomain, JWKSURL: jwksURL,
		Address: "127.0.0.1:" + strconv.Itoa(ports[0]), AdminID: adminID}
	if err := s.mintAdminSVID(ctx, serverBin, dir, socket, adminID); err != nil {
		return err
	}
	return s.startSpireAgent(ctx, serverBin, dir, socket, ports[0])
}

// mintAdminSVID has the server sign an X509-SVID for the admin ID, which the provider presents
// on the server API over TCP, and writes it with its key and the trust bundle.
func (s *Sandbox) mintAdminSVID(ctx context.Context, serverBin, dir, socket, adminID string) error {
	out := filepath.Join(dir, "admin")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, serverBin, "x509", "mint", "-socketPath", socket, "-spiffeID", adminID, "-ttl", "24h", "-write", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("spire-server x509 mint: %w: %s", err, msg)
	}
	info := &s.Spire
	info.AdminSVIDFile, info.AdminKeyFile, info.BundleFile = filepath.Join(out, "svid.pem"), filepath.Join(out, "key.pem"), filepath.Join(out, "bundle.pem")
	for _, f := range []string{info.AdminSVIDFile, info.AdminKeyFile, info.BundleFile} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("spire-server x509 mint wrote no %s: %w", filepath.Base(f), err)
		}
	}
	return nil
}

var spireAgentConf = template.Must(template.New("agent.conf").Parse(`agent {
    data_dir = "{{.DataDir}}"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "{{.Port}}"
    socket_path = "{{.Socket}}"
    trust_bundle_path = "{{.Bundle}}"
    trust_domain = "{{.TrustDomain}}"
    join_token = "{{.Token}}"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
`))

// startSpireAgent attests an agent with a join token whose alias is AgentID, so that tests can
// register workloads (unix:uid selectors) under it and fetch real SVIDs from its Workload API.
func (s *Sandbox) startSpireAgent(ctx context.Context, serverBin, dir, serverSocket string, serverPort int) error {
	agentID := "spiffe://" + s.opts.TrustDomain + "/kagenti-sandbox-agent"
	bundle, err := exec.CommandContext(ctx, serverBin, "bundle", "show", "-socketPath", serverSocket).Output()
	if err != nil {
		return fmt.Errorf("spire-server bundle show: %w", err)
	}
	bundlePath := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundlePath, bundle, 0o600); err != nil {
		return err
	}
	token, err := joinToken(ctx, serverBin, serverSocket, agentID)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "agent-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	socket := filepath.Join(dir, "agent.sock")
	conf := filepath.Join(dir, "agent.conf")
	if err := renderFile(spireAgentConf, conf, map[string]any{"DataDir": dataDir, "Port": serverPort, "Socket": socket,
		"Bundle": bundlePath, "TrustDomain": s.opts.TrustDomain, "Token": token}); err != nil {
		return err
	}
	agentBin := filepath.Join(filepath.Dir(serverBin), "spire-agent")
	agent := &Process{
		Name: "spire-agent", Path: agentBin, LogPath: s.logPath("spire-agent"),
		Args: []string{"run", "-config", conf},
		Healthy: func(ctx context.Context) error {
			return exec.CommandContext(ctx, agentBin, "healthcheck", "-socketPath", socket).Run()
		},
	}
	if err := s.start(ctx, agent); err != nil {
		return err
	}
	s.Spire.AgentSocket, s.Spire.AgentID = socket, agentID
	return nil
}

// joinToken has the server make a join token for an agent whose alias (node entry) is spiffeID.
func joinToken(ctx context.Context, serverBin, serverSocket, spiffeID string) (string, error) {
	out, err := exec.CommandContext(ctx, serverBin, "token", "generate", "-socketPath", serverSocket, "-spiffeID", spiffeID, "-ttl", "600").Output()
	if err != nil {
		return "", fmt.Errorf("spire-server token generate: %w", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Token:")), nil
}

func renderFile(t *template.Template, path string, data any) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}
