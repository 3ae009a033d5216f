// Package testenv builds, starts and stops a sandbox of the real systems the provider drives —
// a Kubernetes control plane with kwok fake nodes, a SPIRE server and Keycloak — on loopback,
// from binaries it builds and caches itself. It is imported only by tests and dev commands.
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Component names, for Options.Components.
const (
	ComponentKubernetes = "kubernetes"
	ComponentSpire      = "spire"
	ComponentKeycloak   = "keycloak"
)

// Options configure a sandbox. Zero values mean the defaults.
type Options struct {
	// Dir holds state, logs and sockets; a new temp dir when empty. Keep it short: SPIRE's
	// socket path must stay under 100 bytes.
	Dir string
	// CacheDir holds built tools (DefaultCacheDir when empty).
	CacheDir string
	// Components to start (all when empty).
	Components []string
	// Nodes is the number of simulated (kwok) nodes (default 2) and PodsPerNode the pods each
	// holds (default 110, the kubelet's); a benchmark sets them to fit its largest run.
	Nodes       int
	PodsPerNode int
	// Volumes is the number of static PersistentVolumes to offer (a claim binds one for good).
	Volumes       int
	TrustDomain   string
	KeycloakRealm string
	// AuditLog makes the apiserver write a JSON audit log (Metadata level) to
	// <dir>/kubernetes/audit.log, so that benchmarks can count requests per client.
	AuditLog bool
	// Log receives build progress and component start lines.
	Log io.Writer
	// Ephemeral says the sandbox lives only as long as this process (a test binary's): if the
	// process dies without stopping it, the next sandbox that needs the real node stops it.
	Ephemeral bool
}

// Sandbox is a running set of components. Its exported fields are saved as JSON in the state file
// so that another command can use or stop it.
type Sandbox struct {
	Dir        string          `json:"dir"`
	Kubernetes KubernetesInfo  `json:"kubernetes"`
	Spire      SpireInfo       `json:"spire"`
	Keycloak   KeycloakInfo    `json:"keycloak"`
	Node       NodeInfo        `json:"node"`
	Processes  []ProcessRecord `json:"processes"`
	// OwnerPID is the process a sandbox of Options.Ephemeral belongs to: once it is gone, the
	// sandbox is orphaned, and the next Start stops it.
	OwnerPID  int    `json:"owner_pid,omitempty"`
	StartedIn string `json:"started_in"`

	opts    Options
	builder *Builder
	mu      sync.Mutex
	procs   []*Process
}

// ProcessRecord identifies a started process for Stop and for logs.
type ProcessRecord struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	Path string `json:"path"`
	Log  string `json:"log"`
}

// StateFile is the name of the JSON state file in a sandbox dir.
const StateFile = "sandbox.json"

func (o Options) withDefaults() Options {
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir()
	}
	if len(o.Components) == 0 {
		o.Components = []string{ComponentKubernetes, ComponentNode, ComponentSpire, ComponentKeycloak}
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 110
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Volumes == 0 {
		o.Volumes = 40
	}
	if o.TrustDomain == "" {
		o.TrustDomain = "sandbox.kagenti.test"
	}
	if o.KeycloakRealm == "" {
		o.KeycloakRealm = "kagenti"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

func (o Options) has(component string) bool {
	for _, c := range o.Components {
		if c == component {
			return true
		}
	}
	return false
}

// Start builds what is missing from the cache, then starts the components in parallel and waits
// until each is healthy. On any error everything already started is stopped again.
func Start(ctx context.Context, opts Options) (sb *Sandbox, err error) {
	opts = opts.withDefaults()
	builder := &Builder{CacheDir: opts.CacheDir, Log: opts.Log}
	tools := map[string][]Tool{
		ComponentKubernetes: {Kubernetes(), Kwok()},
		ComponentSpire:      {Spire()},
		ComponentKeycloak:   {Keycloak()},
		ComponentNode:       {Node(), Containerd(), CoreDNS(), SpiffeCSI(), NetworkPolicies()},
	}
	if opts.has(ComponentNode) && !opts.has(ComponentKubernetes) {
		return nil, errors.New("the sandbox component \"node\" needs \"kubernetes\"")
	}
	if opts.has(ComponentKubernetes) && opts.has(ComponentSpire) {
		tools[ComponentSpire] = append(tools[ComponentSpire], SpireControllerManager())
	}
	for _, c := range opts.Components {
		ts, ok := tools[c]
		if !ok {
			return nil, fmt.Errorf("unknown sandbox component %q (kubernetes, node, spire, keycloak)", c)
		}
		for _, t := range ts {
			if err := builder.Ensure(ctx, t); err != nil {
				return nil, err
			}
		}
	}
	if opts.has(ComponentNode) {
		// The node also uses the host's CNI plugins, iptables and nftables (not only to build).
		if err := builder.ensureHostPackages(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "kagenti-sb-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o700); err != nil {
		return nil, err
	}
	sb = &Sandbox{Dir: opts.Dir, opts: opts, builder: builder}
	if opts.Ephemeral {
		sb.OwnerPID = os.Getpid()
	}
	defer func() {
		if err != nil {
			_ = sb.Stop()
			sb = nil
		}
	}()
	started := time.Now()
	if opts.has(ComponentNode) {
		// The bridge comes first: the apiserver, the kubelet and Keycloak bind to its address.
		if err := sb.prepareNodeHost(ctx); err != nil {
			return sb, err
		}
		// Saved now, so that a crash before the end of Start can still be cleaned by the next.
		if err := sb.save(); err != nil {
			return sb, err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	if opts.has(ComponentKeycloak) { // slowest: start it first
		g.Go(func() error { return sb.startKeycloak(gctx) })
	}
	if opts.has(ComponentKubernetes) {
		g.Go(func() error { return sb.startKubernetes(gctx) })
	}
	if opts.has(ComponentSpire) {
		g.Go(func() error { return sb.startSpire(gctx) })
	}
	if err := g.Wait(); err != nil {
		return sb, err
	}
	if opts.has(ComponentKubernetes) && opts.has(ComponentSpire) {
		if err := sb.startSpireControllerManager(ctx); err != nil {
			return sb, err
		}
	}
	if opts.has(ComponentNode) && opts.has(ComponentSpire) {
		if err := sb.startNodeSpireAgent(ctx); err != nil {
			return sb, err
		}
	}
	if opts.has(ComponentNode) {
		if err := sb.startNodeNetworkPolicies(ctx); err != nil {
			return sb, err
		}
	}
	sb.StartedIn = time.Since(started).Round(10 * time.Millisecond).String()
	return sb, sb.save()
}

func (s *Sandbox) logPath(name string) string { return filepath.Join(s.Dir, "logs", name+".log") }

// start starts a process and records it, so that Stop stops it even if it never became healthy.
func (s *Sandbox) start(ctx context.Context, p *Process) error {
	fmt.Fprintf(s.opts.Log, "[sandbox] starting %s\n", p.Name)
	err := p.Start(ctx)
	s.mu.Lock()
	if p.Pid != 0 {
		s.procs = append(s.procs, p)
		s.Processes = append(s.Processes, ProcessRecord{Name: p.Name, Pid: p.Pid, Path: p.Path, Log: p.LogPath})
	}
	s.mu.Unlock()
	return err
}

func (s *Sandbox) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, StateFile), data, 0o600)
}

// Load reads a sandbox started by another process from its dir.
func Load(dir string) (*Sandbox, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("no sandbox in %s (start one with `make sandbox-up`): %w", dir, err)
	}
	sb := &Sandbox{}
	if err := json.Unmarshal(data, sb); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, StateFile), err)
	}
	return sb, nil
}

// Stale names the recorded processes that no longer run (a reboot, a crash, a kill): a sandbox
// with any is not usable, and `up` replaces it.
func (s *Sandbox) Stale() []string {
	var gone []string
	for _, p := range s.Processes {
		if !Running(p.Pid, filepath.Dir(p.Path)) {
			gone = append(gone, p.Name)
		}
	}
	return gone
}

// orphaned reports whether the process an ephemeral sandbox belongs to is gone.
func (s *Sandbox) orphaned() bool {
	return s.OwnerPID != 0 && !alive(s.OwnerPID)
}

// Stop stops every process in reverse start order, each by its own PID, and removes the dir.
// It works both on a sandbox this process started and on one loaded from its state file.
func (s *Sandbox) Stop() error {
	var errs []error
	if len(s.procs) > 0 {
		for i := len(s.procs) - 1; i >= 0; i-- {
			errs = append(errs, s.procs[i].Stop())
		}
	} else {
		for i := len(s.Processes) - 1; i >= 0; i-- {
			p := s.Processes[i]
			errs = append(errs, StopPID(p.Pid, filepath.Dir(p.Path), 20*time.Second))
		}
	}
	// The real node's host changes are undone once its processes are stopped (before the dir
	// goes: pods' volumes are mounted below it).
	if h, err := readNodeHost(); err == nil && h.Owner == s.Dir {
		log := s.opts.Log
		if log == nil {
			log = io.Discard
		}
		errs = append(errs, cleanNode(h, log))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if os.Getenv("KAGENTI_SANDBOX_KEEP") != "" {
		return nil
	}
	return os.RemoveAll(s.Dir)
}

// Logs returns the tail of every component's log, for a failing test to print.
func (s *Sandbox) Logs(lines int) string {
	var b strings.Builder
	recs := append([]ProcessRecord(nil), s.Processes...)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	for _, p := range recs {
		fmt.Fprintf(&b, "==> %s (pid %d, %s)\n%s\n", p.Name, p.Pid, p.Log, tailFile(p.Log, lines))
	}
	return b.String()
}

// SpireMode is how the provider registers identities in the sandbox (see EnvFor).
type SpireMode string

const (
	// SpireTCP: the SPIRE server API over TCP with mutual TLS, the provider presenting the
	// sandbox's admin X509-SVID from files. The default: it works from anywhere, as from a CI
	// runner.
	SpireTCP SpireMode = "tcp"
	// SpireKubernetes: ClusterSPIFFEID objects through the Kubernetes API, which the sandbox's
	// SPIRE Controller Manager turns into entries.
	SpireKubernetes SpireMode = "kubernetes"
	// SpireSocket: the server's admin unix socket, as on the server's host.
	SpireSocket SpireMode = "socket"
)

// Env is the environment under which the provider, tofu/terraform and kubectl reach this
// sandbox: the provider's documented environment variables, with SPIRE over TCP.
func (s *Sandbox) Env() map[string]string { return s.EnvFor(SpireTCP) }

// SpireEnvKeys are the provider's SPIRE variables EnvFor may set; a test that switches modes
// clears the others.
var SpireEnvKeys = []string{
	"KAGENTI_SPIRE_REGISTRATION", "KAGENTI_SPIRE_ADDRESS", "KAGENTI_SPIRE_X509_SVID_FILE", "KAGENTI_SPIRE_X509_SVID_KEY_FILE",
	"KAGENTI_SPIRE_BUNDLE_FILE", "KAGENTI_SPIRE_X509_SVID_WORKLOAD_API", "KAGENTI_SPIRE_SERVER_ID",
}

// EnvFor is Env with the provider registering identities as mode says. No mode but SpireSocket
// gives the provider the server's socket.
func (s *Sandbox) EnvFor(mode SpireMode) map[string]string {
	env := map[string]string{}
	if s.Kubernetes.Kubeconfig != "" {
		env["KUBECONFIG"] = s.Kubernetes.Kubeconfig
	}
	if s.Spire.Socket != "" {
		env["KAGENTI_SPIRE_TRUST_DOMAIN"] = s.Spire.TrustDomain
		env["KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL"] = s.Spire.JWKSURL
		switch mode {
		case SpireSocket:
			env["KAGENTI_SPIRE_ADDRESS"] = "unix://" + s.Spire.Socket
		case SpireKubernetes:
			env["KAGENTI_SPIRE_REGISTRATION"] = "kubernetes"
		default:
			env["KAGENTI_SPIRE_ADDRESS"] = s.Spire.Address
			env["KAGENTI_SPIRE_X509_SVID_FILE"] = s.Spire.AdminSVIDFile
			env["KAGENTI_SPIRE_X509_SVID_KEY_FILE"] = s.Spire.AdminKeyFile
			env["KAGENTI_SPIRE_BUNDLE_FILE"] = s.Spire.BundleFile
		}
	}
	if s.Keycloak.URL != "" {
		env["KAGENTI_KEYCLOAK_URL"] = s.Keycloak.URL
		env["KAGENTI_KEYCLOAK_MANAGED_REALM"] = s.Keycloak.Realm
		env["KAGENTI_KEYCLOAK_ROOT_CA_FILE"] = s.Keycloak.CAFile
		env["KAGENTI_KEYCLOAK_AUTH_REALM"] = "master"
		env["KAGENTI_KEYCLOAK_CLIENT_ID"] = "admin-cli"
		env["KAGENTI_KEYCLOAK_USERNAME"] = s.Keycloak.AdminUser
		env["KAGENTI_KEYCLOAK_PASSWORD"] = s.Keycloak.AdminPassword
	}
	return env
}

// Summary is a human-readable description of what runs, for `make sandbox-up`.
func (s *Sandbox) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sandbox in %s (started in %s)\n", s.Dir, s.StartedIn)
	for _, p := range s.Processes {
		fmt.Fprintf(&b, "  %-26s pid %-7d log %s\n", p.Name, p.Pid, p.Log)
	}
	if s.Kubernetes.Kubeconfig != "" {
		fmt.Fprintf(&b, "kubernetes: %s\n", s.Kubernetes.Server)
	}
	if s.Spire.Socket != "" {
		fmt.Fprintf(&b, "spire:      %s over mTLS as %s, unix://%s on this host (trust domain %s, JWKS %s)\n",
			s.Spire.Address, s.Spire.AdminID, s.Spire.Socket, s.Spire.TrustDomain, s.Spire.JWKSURL)
		if s.Spire.ControllerManager {
			fmt.Fprintf(&b, "            spire-controller-manager serves ClusterSPIFFEIDs (KAGENTI_SPIRE_REGISTRATION=kubernetes)\n")
		}
	}
	if s.Keycloak.URL != "" {
		fmt.Fprintf(&b, "keycloak:   %s (realm %s; CA %s; admin credentials in %s)\n", s.Keycloak.URL, s.Keycloak.Realm, s.Keycloak.CAFile, filepath.Join(s.Dir, "env"))
	}
	if s.Kubernetes.Kubeconfig != "" {
		fmt.Fprintf(&b, "KUBECONFIG=%s\n", s.Kubernetes.Kubeconfig)
	}
	return b.String()
}

// WriteEnvFile writes `export K=V` lines for a shell to source (owner-only: it holds the Keycloak
// admin password of this throw-away sandbox).
func (s *Sandbox) WriteEnvFile(path string) error {
	env := s.Env()
	if s.Node.CSIDriver != "" {
		// For a shell's applies (make demo): pods of the real node mount the SPIRE agent's
		// socket with the SPIFFE CSI driver. Tests choose for themselves, only where pods run
		// for real.
		env["KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER"] = s.Node.CSIDriver
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%q\n", k, env[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
