package testenv

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Pinned versions of everything the sandbox runs. Changing one of these is the only thing that
// makes the cache rebuild that tool: each tool is cached under a directory named after it and its
// version, see Tool.Dir.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.0"
	KwokVersion       = "v0.8.0"
	TofuVersion       = "v1.12.6"
	// TerraformVersion is the last MPL-licensed release, and the newest one that builds from the
	// Go module proxy (later releases replace nested modules that are not in the module zip).
	TerraformVersion = "v1.5.7"
	SpireVersion     = "v1.13.3"
	// SpireControllerManagerVersion is the newest spire-controller-manager the Go module proxy
	// serves (it lists no versions; v0.7.0 is found by asking for it).
	SpireControllerManagerVersion = "v0.7.0"
	// KeycloakVersion: 26.6+ fixes an NPE on unknown SPIFFE ids and has federated client
	// authentication without a preview flag.
	KeycloakVersion = "26.7.3"
	// ACPSDKVersion is the Python ACP SDK the router's ACP tests use as a peer. Its server needs a
	// uvicorn from before 0.36 (it imports uvicorn.config.LoopSetupType).
	ACPSDKVersion = "1.0.3"
	uvicornForACP = "0.35.0"
	// fastAPIForACP: newer FastAPI no longer parses the SDK server's request bodies.
	fastAPIForACP = "0.115.14"
	// MCPPythonVersion is the official Python MCP SDK the router's MCP tests use as client and
	// tool server.
	MCPPythonVersion = "1.27.2"
	// A2APython03Version and A2APython1Version are the official Python A2A SDK's two lines (0.3
	// and 1.x) whose clients call agents through the router in the acceptance tests.
	A2APython03Version = "0.3.26"
	uvicornForA2A      = "0.35.0"
	A2APython1Version  = "1.3.0"
)

//go:embed k8sbuild/go.mod.txt k8sbuild/go.sum.txt k8sbuild/tools.go.txt k8sbuild/node-tools.go.txt
var k8sBuildModule embed.FS

// Tool is one cached, versioned build product: a directory of binaries (or, for Keycloak, an
// unpacked distribution).
type Tool struct {
	Name    string
	Version string
	// Files that must all exist (relative to Dir) for the cache entry to count as complete.
	Files []string
	build func(ctx context.Context, b *Builder, out string) error
}

// Builder builds tools into a cache directory, each at most once per version.
type Builder struct {
	CacheDir string
	// Log receives progress lines; builds take minutes when cold.
	Log io.Writer
}

// DefaultCacheDir is $KAGENTI_CACHE_DIR, else the user cache dir's "kagenti" folder.
func DefaultCacheDir() string {
	if d := os.Getenv("KAGENTI_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kagenti")
	}
	return filepath.Join(os.TempDir(), "kagenti-cache")
}

// Dir is where a tool's files live once built.
func (b *Builder) Dir(t Tool) string {
	return filepath.Join(b.CacheDir, "tools", t.Name+"-"+t.Version)
}

// Path returns the cached path of one of a tool's files.
func (b *Builder) Path(t Tool, file string) string { return filepath.Join(b.Dir(t), file) }

// Cached reports whether every file of the tool is present.
func (b *Builder) Cached(t Tool) bool {
	for _, f := range t.Files {
		if st, err := os.Stat(b.Path(t, f)); err != nil || st.Size() == 0 {
			return false
		}
	}
	return true
}

// Ensure builds the tool unless it is cached. Concurrent callers (parallel test binaries, make
// targets) serialise on a lock file so the tool is built once.
func (b *Builder) Ensure(ctx context.Context, t Tool) error {
	if b.Cached(t) {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(b.CacheDir, "tools"), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(b.CacheDir, "tools", "."+t.Name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking the %s build: %w", t.Name, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if b.Cached(t) {
		return nil
	}
	tmp := b.Dir(t) + ".partial"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	start := time.Now()
	b.logf("building %s %s (cold builds take minutes; cached afterwards in %s)", t.Name, t.Version, b.Dir(t))
	if err := t.build(ctx, b, tmp); err != nil {
		return fmt.Errorf("building %s %s: %w", t.Name, t.Version, err)
	}
	_ = os.RemoveAll(b.Dir(t))
	if err := os.Rename(tmp, b.Dir(t)); err != nil {
		return err
	}
	if !b.Cached(t) {
		return fmt.Errorf("building %s %s: expected files %v missing in %s", t.Name, t.Version, t.Files, b.Dir(t))
	}
	b.logf("built %s %s in %s", t.Name, t.Version, time.Since(start).Round(time.Second))
	return nil
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		fmt.Fprintf(b.Log, "[sandbox] "+format+"\n", args...)
	}
}

// run executes a command with the builder's log as its output.
func (b *Builder) run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if b.Log != nil {
		cmd.Stdout = io.MultiWriter(&out, b.Log)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return nil
}

// moduleDir downloads module@version into the module cache and returns its directory. Modules
// whose go.mod carries replace directives cannot be `go install`ed; they are built as the main
// module from this (read-only) directory instead.
func (b *Builder) moduleDir(ctx context.Context, workDir, modVersion string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = workDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, `"Dir": "`); ok {
			return strings.TrimSuffix(v, `",`), nil
		}
	}
	return "", fmt.Errorf("go mod download %s: no module directory in %q", modVersion, out)
}

// Tools returns the full set, in the order a cold build should run them (the slowest and most
// needed first).
func Tools() []Tool {
	return []Tool{Kubernetes(), Node(), Kwok(), Tofu(), Spire(), SpireControllerManager(), Keycloak(), Terraform(), ACPSDK(), MCPPython(), A2APython03(), A2APython1(), Containerd(), CoreDNS(), SpiffeCSI(), NetworkPolicies()}
}

// ToolByName finds a tool of Tools by name.
func ToolByName(name string) (Tool, error) {
	var names []string
	for _, t := range Tools() {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return Tool{}, fmt.Errorf("unknown tool %q (known: %s)", name, strings.Join(names, ", "))
}

// Kubernetes is etcd and the control-plane binaries plus kubectl.
func Kubernetes() Tool {
	return Tool{
		Name:    "kubernetes",
		Version: KubernetesVersion + "-etcd" + EtcdVersion,
		Files:   []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"},
		build:   buildKubernetes,
	}
}

func buildKubernetes(ctx context.Context, b *Builder, out string) error {
	// k8s.io/kubernetes replaces its staging modules with ./staging/..., which `go install`
	// refuses; a scratch main module requiring it with every staging module pinned to its
	// published v0.X.Y builds it. etcd/server has relative replaces too, and k8s.io/kubernetes
	// already depends on it, so it is built in the same module and reuses compiled packages.
	src := filepath.Join(b.CacheDir, "src", "k8sbuild-"+KubernetesVersion)
	if err := writeK8sModule(src, "tools.go.txt"); err != nil {
		return err
	}
	ldflags := k8sLDFlags()
	env := []string{"CGO_ENABLED=0"}
	if err := b.run(ctx, src, env, "go", "build", "-mod=mod", "-trimpath", "-ldflags", ldflags, "-o", out+"/",
		"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
		"k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kubectl"); err != nil {
		return err
	}
	if err := b.run(ctx, src, nil, "go", "mod", "edit", "-require", "go.etcd.io/etcd/server/v3@"+EtcdVersion); err != nil {
		return err
	}
	return b.run(ctx, src, env, "go", "build", "-mod=mod", "-trimpath", "-ldflags", "-s -w",
		"-o", filepath.Join(out, "etcd"), "go.etcd.io/etcd/server/v3")
}

// writeK8sModule writes the scratch module that builds Kubernetes commands into dir, with tools
// (an embedded k8sbuild file) as its tools.go, which names the commands built.
func writeK8sModule(dir, tools string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, file := range map[string]string{"go.mod.txt": "go.mod", "go.sum.txt": "go.sum", tools: "tools.go"} {
		data, err := k8sBuildModule.ReadFile("k8sbuild/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// k8sLDFlags stamps the Kubernetes version into the binaries, as the release build does.
func k8sLDFlags() string {
	minor := strings.SplitN(strings.TrimPrefix(KubernetesVersion, "v1."), ".", 2)[0]
	return strings.Join([]string{
		"-s -w",
		"-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion,
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=" + minor,
		"-X k8s.io/component-base/version.gitTreeState=clean",
		"-X k8s.io/client-go/pkg/version.gitVersion=" + KubernetesVersion,
		"-X k8s.io/client-go/pkg/version.gitMajor=1",
		"-X k8s.io/client-go/pkg/version.gitMinor=" + minor,
	}, " ")
}

// Kwok runs fake nodes and marks their pods Ready. Its stage definitions (kwokctl normally
// generates them) are taken from the kwok module itself.
func Kwok() Tool {
	return Tool{
		Name:    "kwok",
		Version: KwokVersion,
		Files:   []string{"kwok", "kwok-stages.yaml"},
		build: func(ctx context.Context, b *Builder, out string) error {
			if err := b.run(ctx, out, []string{"CGO_ENABLED=0", "GOBIN=" + out}, "go", "install", "-trimpath",
				"-ldflags", "-s -w", "sigs.k8s.io/kwok/cmd/kwok@"+KwokVersion); err != nil {
				return err
			}
			dir, err := b.moduleDir(ctx, out, "sigs.k8s.io/kwok@"+KwokVersion)
			if err != nil {
				return err
			}
			var stages strings.Builder
			for _, f := range []string{
				"node/fast/node-initialize.yaml",
				"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
				"pod/fast/pod-ready.yaml",
				"pod/fast/pod-complete.yaml",
				"pod/fast/pod-delete.yaml",
			} {
				data, err := os.ReadFile(filepath.Join(dir, "kustomize", "stage", f))
				if err != nil {
					return fmt.Errorf("kwok stage %s: %w", f, err)
				}
				stages.WriteString("---\n")
				stages.Write(data)
				stages.WriteString("\n")
			}
			return os.WriteFile(filepath.Join(out, "kwok-stages.yaml"), []byte(stages.String()), 0o644)
		},
	}
}

// Tofu is the OpenTofu CLI, built inside its module folder (it replaces hcl/v2, so `go install`
// refuses it).
func Tofu() Tool {
	return Tool{
		Name:    "tofu",
		Version: TofuVersion,
		Files:   []string{"tofu"},
		build: func(ctx context.Context, b *Builder, out string) error {
			dir, err := b.moduleDir(ctx, out, "github.com/opentofu/opentofu@"+TofuVersion)
			if err != nil {
				return err
			}
			return b.run(ctx, dir, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath",
				"-ldflags", "-s -w -X github.com/opentofu/opentofu/version.dev=no",
				"-o", filepath.Join(out, "tofu"), "./cmd/tofu")
		},
	}
}

// Terraform is the Terraform CLI.
func Terraform() Tool {
	return Tool{
		Name:    "terraform",
		Version: TerraformVersion,
		Files:   []string{"terraform"},
		build: func(ctx context.Context, b *Builder, out string) error {
			return b.run(ctx, out, []string{"CGO_ENABLED=0", "GOBIN=" + out}, "go", "install", "-trimpath",
				"-ldflags", "-s -w", "github.com/hashicorp/terraform@"+TerraformVersion)
		},
	}
}

// Spire is spire-server, spire-agent (a Workload API on loopback for processes of the tests) and
// the OIDC discovery provider (which serves the trust bundle as a JWKS over plain http on
// loopback, for Keycloak's SPIFFE identity provider).
func Spire() Tool {
	return Tool{
		Name:    "spire",
		Version: SpireVersion,
		Files:   []string{"spire-server", "spire-agent", "oidc-discovery-provider"},
		build: func(ctx context.Context, b *Builder, out string) error {
			if _, err := exec.LookPath("gcc"); err != nil {
				return errors.New("spire-server needs gcc (cgo sqlite3): apt-get install gcc")
			}
			dir, err := b.moduleDir(ctx, out, "github.com/spiffe/spire@"+SpireVersion)
			if err != nil {
				return err
			}
			// go install is refused (the proxy serves no version list for spire), so build
			// from the module folder.
			return b.run(ctx, dir, []string{"CGO_ENABLED=1"}, "go", "build", "-trimpath",
				"-ldflags", "-s -w -X github.com/spiffe/spire/pkg/common/version.gittag="+strings.TrimPrefix(SpireVersion, "v"),
				"-o", out+"/", "./cmd/spire-server", "./cmd/spire-agent", "./support/oidc-discovery-provider")
		},
	}
}

// SpireControllerManager is the SPIRE Controller Manager, which turns ClusterSPIFFEID objects
// into SPIRE entries, and the CRDs of its API from the same module (config/crd/bases).
func SpireControllerManager() Tool {
	return Tool{
		Name:    "spire-controller-manager",
		Version: SpireControllerManagerVersion,
		Files:   append([]string{"spire-controller-manager"}, spireControllerManagerCRDs...),
		build: func(ctx context.Context, b *Builder, out string) error {
			dir, err := b.moduleDir(ctx, out, "github.com/spiffe/spire-controller-manager@"+SpireControllerManagerVersion)
			if err != nil {
				return err
			}
			for _, f := range spireControllerManagerCRDs {
				data, err := os.ReadFile(filepath.Join(dir, "config", "crd", "bases", f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, f), data, 0o644); err != nil {
					return err
				}
			}
			// Its main package is ./cmd, so go install would name the binary "cmd".
			return b.run(ctx, dir, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags", "-s -w",
				"-o", filepath.Join(out, "spire-controller-manager"), "./cmd")
		},
	}
}

// spireControllerManagerCRDs are the kinds the controller manager watches; it fails to start
// without any of them.
var spireControllerManagerCRDs = []string{
	"spire.spiffe.io_clusterspiffeids.yaml",
	"spire.spiffe.io_clusterstaticentries.yaml",
	"spire.spiffe.io_clusterfederatedtrustdomains.yaml",
}

// Keycloak is the Quarkus distribution from Maven Central, fetched with Maven and unpacked.
func Keycloak() Tool {
	return Tool{
		Name:    "keycloak",
		Version: KeycloakVersion,
		Files:   []string{"bin/kc.sh", "lib/quarkus-run.jar"},
		build: func(ctx context.Context, b *Builder, out string) error {
			if _, err := exec.LookPath("mvn"); err != nil {
				return errors.New("fetching Keycloak needs Maven (mvn): apt-get install maven")
			}
			dl := out + ".download"
			_ = os.RemoveAll(dl)
			defer os.RemoveAll(dl)
			if err := b.run(ctx, out, nil, "mvn", "-B", "-q", "dependency:copy",
				"-Dartifact=org.keycloak:keycloak-quarkus-dist:"+KeycloakVersion+":tar.gz",
				"-DoutputDirectory="+dl); err != nil {
				return err
			}
			archive := filepath.Join(dl, "keycloak-quarkus-dist-"+KeycloakVersion+".tar.gz")
			return b.run(ctx, out, nil, "tar", "-xzf", archive, "--strip-components=1", "-C", out)
		},
	}
}

// ACPSDK is a Python virtualenv with the ACP SDK (server and client) from PyPI.
func ACPSDK() Tool {
	return pythonVenv("acp-sdk", ACPSDKVersion+"-uvicorn"+uvicornForACP+"-fastapi"+fastAPIForACP,
		"acp-sdk=="+ACPSDKVersion, "uvicorn=="+uvicornForACP, "fastapi=="+fastAPIForACP)
}

// pythonVenv is a tool that is a Python virtualenv (venv/bin/python) with the packages given,
// pinned, from PyPI.
func pythonVenv(name, version string, packages ...string) Tool {
	return Tool{
		Name:    name,
		Version: version,
		Files:   []string{"venv/bin/python"},
		build: func(ctx context.Context, b *Builder, out string) error {
			python, err := exec.LookPath("python3")
			if err != nil {
				return fmt.Errorf("%s needs python3: apt-get install python3 python3-venv", name)
			}
			venv := filepath.Join(out, "venv")
			if err := b.run(ctx, out, nil, python, "-m", "venv", venv); err != nil {
				return err
			}
			// "python -m pip", not bin/pip: the venv is built in a staging dir and moved, and
			// scripts' shebangs would still name the staging path.
			return b.run(ctx, out, nil, filepath.Join(venv, "bin", "python"), append([]string{"-m", "pip", "install", "-q"}, packages...)...)
		},
	}
}

// MCPPython is a Python virtualenv with the official MCP SDK from PyPI.
func MCPPython() Tool {
	return pythonVenv("mcp-python", MCPPythonVersion, "mcp=="+MCPPythonVersion)
}

// A2APython03 and A2APython1 are Python virtualenvs with the official A2A SDK's 0.3 and 1.x
// lines from PyPI: their HTTP clients, 0.3's server (the http-server extra, with uvicorn, which
// it does not bring) and 1.x's card signing (the signing extra, PyJWT). The cache directory
// names the extras, so that a venv built without them is not taken.
func A2APython03() Tool {
	return pythonVenv("a2a-python-v03", A2APython03Version+"-server", "a2a-sdk[http-server]=="+A2APython03Version, "uvicorn=="+uvicornForA2A)
}

func A2APython1() Tool {
	return pythonVenv("a2a-python-v1", A2APython1Version+"-signing", "a2a-sdk[signing]=="+A2APython1Version)
}

// Versions of the real node's runtime (see Node and Containerd): the kubelet and kube-proxy come
// from the same Kubernetes module as the control plane; containerd and runc from the Go module
// proxy. containerd 1.6 (Debian's) stops working with kubelet 1.38, so it is built instead.
const (
	ContainerdVersion = "v2.4.2"
	RuncVersion       = "v1.5.3"
)

// hostPackages are the Debian packages the real node uses from the host: the CNI plugins
// (bridge, host-local, loopback), iptables and nftables for kube-proxy and the isolation table,
// conntrack, and libseccomp for building runc.
var hostPackages = map[string]string{
	"/usr/lib/cni/bridge":    "containernetworking-plugins",
	"/usr/sbin/iptables":     "iptables",
	"/usr/sbin/nft":          "nftables",
	"/usr/sbin/conntrack":    "conntrack",
	"/usr/sbin/ipset":        "ipset", // kube-router's network policies
	"/usr/include/seccomp.h": "libseccomp-dev",
	"/usr/lib/x86_64-linux-gnu/pkgconfig/libseccomp.pc": "libseccomp-dev",
}

// ensureHostPackages installs the missing host packages with apt-get (as root, from Debian's
// archive), or says which to install.
func (b *Builder) ensureHostPackages(ctx context.Context) error {
	missing := map[string]bool{}
	for file, pkg := range hostPackages {
		if _, err := os.Stat(file); err != nil {
			missing[pkg] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pkgs := make([]string, 0, len(missing))
	for p := range missing {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return fmt.Errorf("the real node needs these Debian packages: apt-get install %s", strings.Join(pkgs, " "))
	}
	b.logf("installing %s from Debian", strings.Join(pkgs, " "))
	return b.run(ctx, "/", []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
}

// Node is the kubelet and kube-proxy of the real node, built in a copy of the control plane's
// scratch module (so most packages come from the build cache of Kubernetes).
func Node() Tool {
	return Tool{
		Name:    "kubelet",
		Version: KubernetesVersion,
		Files:   []string{"kubelet", "kube-proxy"},
		build: func(ctx context.Context, b *Builder, out string) error {
			src := filepath.Join(b.CacheDir, "src", "k8snode-"+KubernetesVersion)
			if err := writeK8sModule(src, "node-tools.go.txt"); err != nil {
				return err
			}
			return b.run(ctx, src, []string{"CGO_ENABLED=0"}, "go", "build", "-mod=mod", "-trimpath", "-ldflags", k8sLDFlags(),
				"-o", out+"/", "k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy")
		},
	}
}

// Containerd is containerd (CRI), ctr, the runc shim and runc. runc needs cgo and libseccomp
// (RuntimeDefault seccomp profiles).
func Containerd() Tool {
	return Tool{
		Name:    "containerd",
		Version: ContainerdVersion + "-runc" + RuncVersion,
		Files:   []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"},
		build: func(ctx context.Context, b *Builder, out string) error {
			if err := b.ensureHostPackages(ctx); err != nil {
				return err
			}
			const mod = "github.com/containerd/containerd/v2"
			if err := b.run(ctx, out, []string{"CGO_ENABLED=0", "GOBIN=" + out}, "go", "install", "-trimpath",
				"-tags", "no_btrfs no_devmapper no_zfs",
				"-ldflags", "-s -w -X "+mod+"/version.Version="+ContainerdVersion,
				mod+"/cmd/containerd@"+ContainerdVersion, mod+"/cmd/ctr@"+ContainerdVersion,
				mod+"/cmd/containerd-shim-runc-v2@"+ContainerdVersion); err != nil {
				return err
			}
			return b.run(ctx, out, []string{"CGO_ENABLED=1", "GOBIN=" + out}, "go", "install", "-trimpath",
				"-tags", "seccomp urfave_cli_no_docs",
				"-ldflags", "-s -w -X main.version="+strings.TrimPrefix(RuncVersion, "v"),
				"github.com/opencontainers/runc@"+RuncVersion)
		},
	}
}

// CoreDNSVersion is the cluster DNS of the real node (agents and the router reach each other by
// Service names).
const CoreDNSVersion = "v1.14.7"

//go:embed corednsbuild/main.go.txt
var coreDNSMain []byte

// CoreDNS is CoreDNS with the kubernetes plugin and little else, built in a scratch module.
func CoreDNS() Tool {
	return Tool{
		Name:    "coredns",
		Version: CoreDNSVersion,
		Files:   []string{"coredns"},
		build: func(ctx context.Context, b *Builder, out string) error {
			goMod := "module kagenti.local/coredns\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns " + CoreDNSVersion + "\n"
			return b.buildScratchModule(ctx, "coredns-"+CoreDNSVersion, goMod, coreDNSMain, filepath.Join(out, "coredns"))
		},
	}
}

// SpiffeCSIVersion is the SPIFFE CSI driver that gives the real node's pods the Workload API
// socket as an inline CSI volume, which the restricted Pod Security profile allows (a hostPath
// volume it does not). v0.2.3 is the newest the Go module proxy serves.
const SpiffeCSIVersion = "v0.2.3"

//go:embed spiffecsibuild/main.go.txt
var spiffeCSIMain []byte

// SpiffeCSI is the SPIFFE CSI driver with the kubelet plugin registration in the same binary,
// built in a scratch module.
func SpiffeCSI() Tool {
	return Tool{
		Name:    "spiffe-csi",
		Version: SpiffeCSIVersion,
		Files:   []string{"spiffe-csi-driver"},
		build: func(ctx context.Context, b *Builder, out string) error {
			// genproto is pinned past its split into submodules: spiffe-csi's older one makes
			// errdetails an ambiguous import next to grpc's.
			goMod := "module kagenti.local/spiffe-csi\n\ngo 1.26.0\n\nrequire (\n" +
				"\tgithub.com/spiffe/spiffe-csi " + SpiffeCSIVersion + "\n" +
				"\tk8s.io/kubelet v0" + strings.TrimPrefix(KubernetesVersion, "v1") + "\n" +
				"\tgoogle.golang.org/genproto v0.0.0-20261026165753-2ffab32bce7e\n)\n"
			return b.buildScratchModule(ctx, "spiffe-csi-"+SpiffeCSIVersion, goMod, spiffeCSIMain, filepath.Join(out, "spiffe-csi-driver"))
		},
	}
}

// KubeRouterVersion is the kube-router whose network policy controller (iptables and ipsets)
// enforces the real node's NetworkPolicies. It is the only version the Go module proxy serves,
// and flaws are reported for it; the sandbox runs its firewall alone, on a bridge inside the
// machine. SIG Network's kube-network-policies (v0.8.0) builds too, but it needs nftables'
// queue expression (CONFIG_NFT_QUEUE), which these machines' kernels lack.
const KubeRouterVersion = "v2.1.0"

// NetworkPolicies is kube-router, built from its module folder.
func NetworkPolicies() Tool {
	return Tool{
		Name:    "kube-router",
		Version: KubeRouterVersion,
		Files:   []string{"kube-router"},
		build: func(ctx context.Context, b *Builder, out string) error {
			dir, err := b.moduleDir(ctx, out, "github.com/cloudnativelabs/kube-router/v2@"+KubeRouterVersion)
			if err != nil {
				return err
			}
			return b.run(ctx, dir, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags", "-s -w",
				"-o", filepath.Join(out, "kube-router"), "./cmd/kube-router")
		},
	}
}

// buildScratchModule builds a main package (its source embedded in this tree) in a module of
// its own under the cache's src folder, whose go.mod names what it needs from the Go module
// proxy, into the binary bin.
func (b *Builder) buildScratchModule(ctx context.Context, name, goMod string, main []byte, bin string) error {
	src := filepath.Join(b.CacheDir, "src", name)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(goMod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), main, 0o644); err != nil {
		return err
	}
	if err := b.run(ctx, src, nil, "go", "mod", "tidy"); err != nil {
		return err
	}
	return b.run(ctx, src, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
}
