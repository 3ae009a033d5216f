package testenv

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kagenti/terraform-provider-kagenti/internal/ociimage"
)

// ComponentNode is one real Kubernetes node on this machine (containerd, runc, the CNI bridge
// plugin, the kubelet and kube-proxy) next to the kwok nodes, plus a spire-agent that attests
// its pods as on a cluster. It needs root, and there is one per machine.
const ComponentNode = "node"

// The real node's fixed names and addresses. The bridge exists only inside this machine: the
// apiserver, the kubelet and Keycloak bind to its address, so pods reach them and nothing
// outside the machine does.
const (
	NodeName = "kagenti-node"
	// NodeTaintKey taints the real node (NoSchedule): only pods that tolerate it run there, so
	// the many workloads of the kwok-backed tests never land on it.
	// The node is also labelled NodeTaintKey=true, for those pods' node selector.
	NodeTaintKey = "kagenti.dev/real-node"
	// NodeGateway is the node's address on the bridge, and the pods' gateway.
	NodeGateway     = "10.244.0.1"
	nodeBridge      = "kagenti0"
	nodePodSubnet   = "10.244.0.0/24"
	nodeClusterCIDR = "10.244.0.0/16"
	// NodeRunDir holds the machine-wide state of the real node: containerd's state and socket,
	// runc's root, the Workload API socket pods mount, and what the host looked like before.
	NodeRunDir = "/run/kagenti-node"
)

// Images the sandbox builds from this tree and imports into the real node (never pulled).
const (
	ImageRouter    = "kagenti.local/kagenti-router:dev"
	ImageDemoAgent = "kagenti.local/kagenti-demo-agent:dev"
	ImageDemoTool  = "kagenti.local/kagenti-demo-tool:dev"
	imagePause     = "kagenti.local/pause:3.10"
)

//go:embed nodeconf/*.tmpl
var nodeConfFS embed.FS

var nodeConf = template.Must(template.ParseFS(nodeConfFS, "nodeconf/*.tmpl"))

// NodeInfo is what the real node offers to tests and to `make demo`.
type NodeInfo struct {
	Name string `json:"name"`
	// Gateway is the node's bridge address: Services' NodePorts and the host's own servers.
	Gateway string `json:"gateway"`
	// WorkloadAPIDir is the host directory of the node's spire-agent socket (WorkloadAPISocket),
	// for a hostPath volume; WorkloadAPISocket is reachable from this host too.
	WorkloadAPIDir    string `json:"workload_api_dir"`
	WorkloadAPISocket string `json:"workload_api_socket"`
	// CSIDriver is the SPIFFE CSI driver that mounts WorkloadAPIDir into pods as an inline
	// volume (which Pod Security's restricted profile allows, unlike a hostPath).
	CSIDriver string `json:"csi_driver"`
	// ParentID is the node agent's alias, the parent of the entries its pods get.
	ParentID string `json:"parent_id"`
	// Images maps router, demo-agent and demo-tool to their imported references.
	Images map[string]string `json:"images"`
	// StartedIn is how long the node took from its runtime's start to Ready.
	StartedIn string `json:"started_in"`
}

// nodeHost is what the host looked like before the node changed it, so that any later command
// can put it back after a crash. It is written before the first change.
type nodeHost struct {
	// Owner is the sandbox dir the node belongs to.
	Owner     string            `json:"owner"`
	Sysctls   map[string]string `json:"sysctls"`
	HostDirs  []string          `json:"host_dirs_before"`
	NFTTables []string          `json:"nft_tables_before"`
	IPSets    []string          `json:"ipsets_before"`
	KubeProxy string            `json:"kube_proxy"`
	NodeDir   string            `json:"node_dir"`
}

var (
	// nodeSysctls are those the kubelet (panic, overcommit, keys), kube-proxy (route_localnet,
	// conntrack) or the node (ip_forward) may change.
	nodeSysctls = []string{"kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom",
		"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet",
		"net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait"}
	// nodeHostDirs are created outside the sandbox whatever the configuration says: the kubelet's
	// device-plugin socket and /var/log/containers links, libcni's result cache, containerd's
	// shim sockets, named netns, and the flex-volume dir.
	nodeHostDirs = []string{"/var/lib/kubelet", "/var/log/containers", "/var/lib/cni", "/run/containerd", "/run/netns", "/usr/libexec/kubernetes"}
)

func hostStatePath() string { return filepath.Join(NodeRunDir, "host.json") }

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// claimNode makes this sandbox the real node's owner. A node of a sandbox that still runs is
// refused; one whose sandbox is gone or crashed is cleaned first.
func (s *Sandbox) claimNode() error {
	if os.Geteuid() != 0 {
		return errors.New("the real node (sandbox component \"node\") needs root: run as root, or choose components without it (-components kubernetes,spire,keycloak)")
	}
	if h, err := readNodeHost(); err == nil {
		if h.Owner != s.Dir {
			if owner, err := Load(h.Owner); err == nil && len(owner.Stale()) == 0 && !owner.orphaned() {
				return fmt.Errorf("a real node already runs for the sandbox in %s (one per machine): stop it with "+
					"`go run ./cmd/kagenti-sandbox -dir %s down`, or use that sandbox (KAGENTI_SANDBOX_DIR=%s)", h.Owner, h.Owner, h.Owner)
			} else if err == nil {
				fmt.Fprintf(s.opts.Log, "[sandbox] the sandbox in %s that owned the real node is gone or crashed; stopping what is left of it\n", h.Owner)
				_ = owner.Stop() // cleans the node too, unless that fails
			}
		}
		// What no owner's Stop cleaned: a sandbox dir that is gone, a failed Stop, our own dir.
		if h, err := readNodeHost(); err == nil {
			if err := cleanNode(h, s.opts.Log); err != nil {
				return fmt.Errorf("cleaning up a crashed real node: %w", err)
			}
		}
	}
	h := &nodeHost{Owner: s.Dir, Sysctls: map[string]string{}, KubeProxy: s.builder.Path(Node(), "kube-proxy"),
		NodeDir: filepath.Join(s.Dir, "node")}
	for _, k := range nodeSysctls {
		if v, err := os.ReadFile(sysctlPath(k)); err == nil {
			h.Sysctls[k] = strings.TrimSpace(string(v))
		}
	}
	for _, d := range nodeHostDirs {
		if _, err := os.Stat(d); err == nil {
			h.HostDirs = append(h.HostDirs, d)
		}
	}
	tables, err := nftTables()
	if err != nil {
		return err
	}
	h.NFTTables = tables
	if h.IPSets, err = ipsets(); err != nil {
		return err
	}
	if err := os.MkdirAll(NodeRunDir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(hostStatePath(), data, 0o600)
}

func readNodeHost() (*nodeHost, error) {
	data, err := os.ReadFile(hostStatePath())
	if err != nil {
		return nil, err
	}
	h := &nodeHost{}
	if err := json.Unmarshal(data, h); err != nil {
		return nil, fmt.Errorf("%s: %w", hostStatePath(), err)
	}
	return h, nil
}

func nftTables() ([]string, error) {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %w", err)
	}
	var tables []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			tables = append(tables, l)
		}
	}
	return tables, nil
}

// isolationRules: the node's pods talk to each other and to this host over the bridge, and
// nothing is forwarded to or from any other interface. A ClusterIP that kube-proxy did not
// translate (a Service without ready endpoints) is refused, as kube-proxy's own reject would
// do on a cluster, instead of being dropped on its way out (a timeout).
const isolationRules = `table inet kagenti-node
delete table inet kagenti-node
table inet kagenti-node {
  chain isolate {
    type filter hook forward priority -10; policy accept;
    iifname "` + nodeBridge + `" ip daddr ` + serviceCIDR + ` reject
    iifname != "` + nodeBridge + `" drop
    oifname != "` + nodeBridge + `" drop
  }
}
`

// prepareNodeHost creates the bridge (before the apiserver and Keycloak bind to its address),
// the isolation table, and turns on forwarding (pod → ClusterIP → pod on the same bridge).
func (s *Sandbox) prepareNodeHost(ctx context.Context) error {
	if err := s.claimNode(); err != nil {
		return err
	}
	if exec.CommandContext(ctx, "ip", "link", "show", nodeBridge).Run() != nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "add", nodeBridge, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link add %s: %w: %s", nodeBridge, err, out)
		}
	}
	for _, args := range [][]string{{"addr", "replace", NodeGateway + "/24", "dev", nodeBridge}, {"link", "set", nodeBridge, "up"}} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	nft := exec.CommandContext(ctx, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(isolationRules)
	if out, err := nft.CombinedOutput(); err != nil {
		return fmt.Errorf("nft isolation table: %w: %s", err, out)
	}
	return os.WriteFile(sysctlPath("net.ipv4.ip_forward"), []byte("1"), 0o644)
}

// nodePKI is the node's share of the cluster PKI: the kubelet's client and serving
// certificates, kube-proxy's client certificate, the apiserver's client certificate for the
// kubelet (logs, exec), and the spire-agent's client certificate for the kubelet.
func nodePKI(ca *certAuthority, pki string) error {
	files := map[string][]byte{}
	for _, c := range []struct {
		file    string
		subject pkix.Name
		usage   x509.ExtKeyUsage
		dns     []string
		ips     []net.IP
	}{
		{"kubelet-client", pkix.Name{CommonName: "system:node:" + NodeName, Organization: []string{"system:nodes"}}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"kubelet-serving", pkix.Name{CommonName: NodeName}, x509.ExtKeyUsageServerAuth, []string{NodeName}, []net.IP{net.ParseIP(NodeGateway), net.ParseIP("127.0.0.1")}},
		{"kube-proxy", pkix.Name{CommonName: "system:kube-proxy"}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"spire-agent-kubelet-client", pkix.Name{CommonName: spireAgentKubeletUser}, x509.ExtKeyUsageClientAuth, nil, nil},
	} {
		cert, key, err := ca.issue(c.subject, c.usage, c.dns, c.ips)
		if err != nil {
			return err
		}
		files[c.file+".crt"], files[c.file+".key"] = cert, key
	}
	return writeFiles(pki, files)
}

// spireAgentKubeletUser is the user the node's spire-agent reads pods from the kubelet as.
const spireAgentKubeletUser = "kagenti-spire-agent"

// startNode starts containerd (with the images imported), the kubelet, kube-proxy and CoreDNS,
// and returns once the node is Ready and kube-proxy serves. The node's certificates are already
// in pki (nodePKI, issued with the apiserver's).
func (s *Sandbox) startNode(ctx context.Context, client kubernetes.Interface, server string, ca *certAuthority, pki string) error {
	started := time.Now()
	node, ctrd := s.builder.Dir(Node()), s.builder.Dir(Containerd())
	dir := filepath.Join(s.Dir, "node")
	for _, d := range []string{dir, filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "cni", "ipam"), filepath.Join(dir, "images"),
		filepath.Join(NodeRunDir, "containerd"), filepath.Join(NodeRunDir, "spire")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	p := func(name string) string { return filepath.Join(pki, name) }
	caPEM := ca.certPEM()
	for _, kc := range []struct{ file, user string }{{"kubelet", "kubelet-client"}, {"kube-proxy", "kube-proxy"}} {
		cert, err := os.ReadFile(p(kc.user + ".crt"))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(p(kc.user + ".key"))
		if err != nil {
			return err
		}
		if err := writeKubeconfig(filepath.Join(dir, kc.file+".kubeconfig"), server, caPEM, cert, key, ""); err != nil {
			return err
		}
	}

	// Images build (go build of this tree) while containerd starts.
	images := make(chan error, 1)
	go func() { images <- s.buildNodeImages(ctx, filepath.Join(dir, "images")) }()

	socket := filepath.Join(NodeRunDir, "containerd", "containerd.sock")
	if err := renderFile(nodeConf.Lookup("containerd.toml.tmpl"), filepath.Join(dir, "containerd.toml"), map[string]any{
		"Root": filepath.Join(dir, "containerd"), "State": filepath.Join(NodeRunDir, "containerd"), "Socket": socket,
		"PauseImage": imagePause, "Runc": filepath.Join(ctrd, "runc"), "RuncRoot": filepath.Join(NodeRunDir, "runc"),
		"CNIConfDir": filepath.Join(dir, "cni", "net.d"),
	}); err != nil {
		return err
	}
	ctr := filepath.Join(ctrd, "ctr")
	containerd := &Process{
		Name: "containerd", Path: filepath.Join(ctrd, "containerd"), LogPath: s.logPath("containerd"),
		Args: []string{"--config", filepath.Join(dir, "containerd.toml")},
		// The shim is found on PATH.
		Env: []string{"PATH=" + ctrd + ":" + os.Getenv("PATH")},
		Healthy: func(ctx context.Context) error {
			return exec.CommandContext(ctx, ctr, "-a", socket, "version").Run()
		},
		StopTimeout: 15 * time.Second,
	}
	if err := s.start(ctx, containerd); err != nil {
		return err
	}
	if err := <-images; err != nil {
		return fmt.Errorf("node images: %w", err)
	}
	tars, _ := filepath.Glob(filepath.Join(dir, "images", "*.tar"))
	for _, tar := range tars {
		if out, err := exec.CommandContext(ctx, ctr, "-a", socket, "-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr images import %s: %w: %s", tar, err, out)
		}
	}
	if err := renderFile(nodeConf.Lookup("cni.conflist.tmpl"), filepath.Join(dir, "cni", "net.d", "10-kagenti-node.conflist"), map[string]any{
		"Bridge": nodeBridge, "IPAMDir": filepath.Join(dir, "cni", "ipam"), "PodSubnet": nodePodSubnet, "Gateway": NodeGateway,
		"ClusterCIDR": nodeClusterCIDR, "ServiceCIDR": serviceCIDR,
	}); err != nil {
		return err
	}
	if err := renderFile(nodeConf.Lookup("kubelet.yaml.tmpl"), filepath.Join(dir, "kubelet.yaml"), map[string]any{
		"RuntimeSocket": socket, "Gateway": NodeGateway, "ServingCert": p("kubelet-serving.crt"), "ServingKey": p("kubelet-serving.key"),
		"ClientCA": p("ca.crt"), "PodLogsDir": filepath.Join(dir, "pod-logs"), "VolumePluginDir": filepath.Join(dir, "volume-plugins"),
		"TaintKey": NodeTaintKey,
	}); err != nil {
		return err
	}
	kubelet := &Process{
		Name: "kubelet", Path: filepath.Join(node, "kubelet"), LogPath: s.logPath("kubelet"),
		Args: []string{"--config", filepath.Join(dir, "kubelet.yaml"), "--kubeconfig", filepath.Join(dir, "kubelet.kubeconfig"),
			"--root-dir", filepath.Join(dir, "kubelet"), "--hostname-override", NodeName, "--node-ip", NodeGateway,
			"--node-labels", NodeTaintKey + "=true", "--v=1"},
		Healthy:      httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://127.0.0.1:10248/healthz"),
		StartTimeout: 2 * time.Minute,
		StopTimeout:  15 * time.Second,
	}
	if err := s.start(ctx, kubelet); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	if err := renderFile(nodeConf.Lookup("kube-proxy.yaml.tmpl"), filepath.Join(dir, "kube-proxy.yaml"), map[string]any{
		"Kubeconfig": filepath.Join(dir, "kube-proxy.kubeconfig"), "NodeName": NodeName, "ClusterCIDR": nodeClusterCIDR,
		"HealthzPort": ports[0], "MetricsPort": ports[1], "Gateway": NodeGateway,
	}); err != nil {
		return err
	}
	proxy := &Process{
		Name: "kube-proxy", Path: filepath.Join(node, "kube-proxy"), LogPath: s.logPath("kube-proxy"),
		Args:    []string{"--config", filepath.Join(dir, "kube-proxy.yaml"), "--v=1"},
		Healthy: httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz"),
	}
	if err := s.start(ctx, proxy); err != nil {
		return err
	}
	dnsPorts, err := freePorts(2)
	if err != nil {
		return err
	}
	if err := renderFile(nodeConf.Lookup("Corefile.tmpl"), filepath.Join(dir, "Corefile"), map[string]any{
		"Gateway": NodeGateway, "ReadyPort": dnsPorts[0], "HealthPort": dnsPorts[1], "Kubeconfig": s.Kubernetes.Kubeconfig,
	}); err != nil {
		return err
	}
	coredns := &Process{
		Name: "coredns", Path: s.builder.Path(CoreDNS(), "coredns"), LogPath: s.logPath("coredns"),
		Args:    []string{"-conf", filepath.Join(dir, "Corefile")},
		Healthy: httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(dnsPorts[0])+"/ready"),
	}
	if err := s.start(ctx, coredns); err != nil {
		return err
	}
	if err := grantSpireAgentKubelet(ctx, client); err != nil {
		return err
	}
	if err := s.startSpiffeCSI(ctx, client, filepath.Join(dir, "kubelet")); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("node %s not Ready: %w; kubelet log:\n%s", NodeName, err, tailFile(s.logPath("kubelet"), 30))
	}
	s.Node = NodeInfo{Name: NodeName, Gateway: NodeGateway, WorkloadAPIDir: filepath.Join(NodeRunDir, "spire"), CSIDriver: SpiffeCSIDriver,
		Images:    map[string]string{"router": ImageRouter, "demo-agent": ImageDemoAgent, "demo-tool": ImageDemoTool},
		StartedIn: time.Since(started).Round(10 * time.Millisecond).String()}
	return nil
}

// startNodeNetworkPolicies runs kube-router's network policy controller for the real node. It
// starts once everything else is up: at its start it saves and restores the iptables filter
// table, and twice a sandbox whose Keycloak made its first admin login at that moment saw the
// connection refused.
func (s *Sandbox) startNodeNetworkPolicies(ctx context.Context) error {
	netpolPorts, err := freePorts(1)
	if err != nil {
		return err
	}
	netpol := &Process{
		Name: "kube-router", Path: s.builder.Path(NetworkPolicies(), "kube-router"), LogPath: s.logPath("kube-router"),
		// Its network policy controller only: kube-proxy serves Services, the bridge plugin
		// routes.
		Args: []string{"--kubeconfig", s.Kubernetes.Kubeconfig, "--hostname-override", NodeName,
			"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
			"--service-cluster-ip-range", serviceCIDR, "--health-port", strconv.Itoa(netpolPorts[0]), "--v=1"},
		Healthy: httpHealthy(&http.Client{Timeout: 2 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(netpolPorts[0])+"/healthz"),
	}
	return s.start(ctx, netpol)
}

// SpiffeCSIDriver is the name of the CSI driver that mounts the node's Workload API socket
// directory into pods (the provider's spire.workload_api_csi_driver).
const SpiffeCSIDriver = "csi.spiffe.io"

// startSpiffeCSI registers the SPIFFE CSI driver with the cluster (its CSIDriver object: inline
// ephemeral volumes only, nothing to attach) and starts it; it is healthy once the kubelet lists
// it on the node's CSINode, i.e. once pods can mount it.
func (s *Sandbox) startSpiffeCSI(ctx context.Context, client kubernetes.Interface, kubeletRoot string) error {
	podInfo, attach := true, false
	driver := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: SpiffeCSIDriver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: &attach, PodInfoOnMount: &podInfo,
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}}}
	if _, err := client.StorageV1().CSIDrivers().Create(ctx, driver, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	csiDir := filepath.Join(NodeRunDir, "csi")
	if err := os.MkdirAll(csiDir, 0o700); err != nil {
		return err
	}
	csi := &Process{
		Name: "spiffe-csi-driver", Path: s.builder.Path(SpiffeCSI(), "spiffe-csi-driver"), LogPath: s.logPath("spiffe-csi-driver"),
		Args: []string{"-node-id", NodeName, "-plugin-name", SpiffeCSIDriver,
			"-csi-socket-path", filepath.Join(csiDir, "csi.sock"),
			"-registration-socket-path", filepath.Join(kubeletRoot, "plugins_registry", SpiffeCSIDriver+"-reg.sock"),
			"-workload-api-socket-dir", filepath.Join(NodeRunDir, "spire")},
		Healthy: func(ctx context.Context) error {
			n, err := client.StorageV1().CSINodes().Get(ctx, NodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, d := range n.Spec.Drivers {
				if d.Name == SpiffeCSIDriver {
					return nil
				}
			}
			return fmt.Errorf("the kubelet has not registered %s yet", SpiffeCSIDriver)
		},
	}
	return s.start(ctx, csi)
}

// grantSpireAgentKubelet lets the spire-agent read the kubelet's pod list (nodes/proxy, and
// nodes/pods where the kubelet authorizes fine-grained) and nothing else.
func grantSpireAgentKubelet(ctx context.Context, client kubernetes.Interface) error {
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: spireAgentKubeletUser},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy", "nodes/pods"}, Verbs: []string{"get"}}}}
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: spireAgentKubeletUser},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: spireAgentKubeletUser},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: spireAgentKubeletUser}}}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// nodeImage is an image built from a main package of this tree.
type nodeImage struct {
	pkg, ref, user string
	port           int
}

var nodeImages = []nodeImage{
	{"./internal/testenv/pause", imagePause, "65535:65535", 0},
	{"./cmd/kagenti-router", ImageRouter, "", 8080},
	{"./cmd/kagenti-demo-agent", ImageDemoAgent, "", 8080},
	{"./cmd/kagenti-demo-tool", ImageDemoTool, "", 8080},
}

// buildNodeImages builds the binaries of this tree the node runs and packs each as an image
// tarball (no container daemon; the Go build cache makes this seconds when warm).
func (s *Sandbox) buildNodeImages(ctx context.Context, out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out + "/"}
	for _, img := range nodeImages {
		args = append(args, img.pkg)
	}
	if err := s.builder.run(ctx, root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}, "go", args...); err != nil {
		return err
	}
	for _, img := range nodeImages {
		bin := filepath.Join(out, filepath.Base(img.pkg))
		image, err := ociimage.Build(ociimage.Spec{Binary: bin, OS: "linux", Arch: runtime.GOARCH, User: img.user, Port: img.port})
		if err != nil {
			return err
		}
		ref, err := name.NewTag(img.ref)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(bin+".tar", ref, image); err != nil {
			return err
		}
	}
	return nil
}

// moduleRoot finds this module's root from the working directory (the sandbox command runs
// from the repository, tests from their package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/kagenti/terraform-provider-kagenti\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the real node's images are built from this repository: run from inside it")
		}
		dir = parent
	}
}

// cleanNode puts the host back as h recorded it, after the node's processes were stopped (or
// killed: it also runs after a crash). Each step is best-effort; the errors are returned joined.
func cleanNode(h *nodeHost, log io.Writer) error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// kube-proxy's own rules.
	if h.KubeProxy != "" {
		_ = exec.Command(h.KubeProxy, "--cleanup").Run()
	}
	// Shims of our containerd, and the containers they ran: a killed shim leaves its container
	// processes running, so whatever is left in the kubelet's cgroups is killed by PID.
	socket := filepath.Join(NodeRunDir, "containerd", "containerd.sock")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		if cmd, err := os.ReadFile(f); err == nil && bytes.Contains(cmd, []byte("-address\x00"+socket)) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for range 5 {
		pids := kubepodsPIDs()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Mounts under the node's dirs (rootfs overlays, netns, volumes), deepest first.
	note(unmountUnder(h.NodeDir, NodeRunDir))
	// KUBE-* chains the kubelet made (kube-proxy --cleanup leaves them), iptables-nft tables
	// that are new and empty, our isolation table, the bridge.
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			note(removeKubeChains(ipt, table))
		}
	}
	// The network policy controller's ipsets, once no rule refers to them.
	if sets, err := ipsets(); err == nil {
		for _, set := range sets {
			if !slices.Contains(h.IPSets, set) {
				note(exec.Command("ipset", "destroy", set).Run())
			}
		}
	}
	_ = exec.Command("nft", "delete", "table", "inet", "kagenti-node").Run()
	if tables, err := nftTables(); err == nil {
		before := map[string]bool{}
		for _, t := range h.NFTTables {
			before[t] = true
		}
		for _, t := range tables {
			if before[t] {
				continue
			}
			f := strings.Fields(t) // table <family> <name>
			if len(f) != 3 {
				continue
			}
			if out, err := exec.Command("nft", "list", "table", f[1], f[2]).Output(); err == nil && !nftHasRules(string(out)) {
				note(exec.Command("nft", "delete", "table", f[1], f[2]).Run())
			}
		}
	}
	if exec.Command("ip", "link", "show", nodeBridge).Run() == nil {
		note(exec.Command("ip", "link", "delete", nodeBridge).Run())
	}
	for k, v := range h.Sysctls {
		cur, err := os.ReadFile(sysctlPath(k))
		if err == nil && strings.TrimSpace(string(cur)) != v {
			note(os.WriteFile(sysctlPath(k), []byte(v), 0o644))
		}
	}
	// The kubelet's cgroups (cgroupfs driver: /kubepods in every hierarchy), deepest first.
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		roots = append(roots, "/sys/fs/cgroup/kubepods")
	}
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
	existed := map[string]bool{}
	for _, d := range h.HostDirs {
		existed[d] = true
	}
	for _, d := range nodeHostDirs {
		if !existed[d] {
			note(os.RemoveAll(d))
		}
	}
	note(os.RemoveAll(NodeRunDir))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(log, "[sandbox] real node cleaned: bridge, netfilter rules, mounts, cgroups, sysctls and host dirs as before\n")
	return nil
}

// kubepodsPIDs are the processes in the kubelet's cgroups.
func kubepodsPIDs() []int {
	var pids []int
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	roots = append(roots, "/sys/fs/cgroup/kubepods")
	seen := map[int]bool{}
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// unmountUnder detaches every mount at or below the given dirs, deepest first.
func unmountUnder(dirs ...string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var targets []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		target := unescapeMount(f[4])
		for _, d := range dirs {
			if d != "" && (target == d || strings.HasPrefix(target, d+"/")) {
				targets = append(targets, target)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	var errs []error
	for _, t := range targets {
		if err := syscall.Unmount(t, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ipsets are the names of the host's ipsets.
func ipsets() ([]string, error) {
	out, err := exec.Command("ipset", "list", "-n").Output()
	if err != nil {
		return nil, fmt.Errorf("ipset list -n: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// removeKubeChains deletes the jumps into KUBE-* chains from other chains of a table, then the
// KUBE-* chains themselves.
func removeKubeChains(ipt, table string) error {
	out, err := exec.Command(ipt+"-save", "-t", table).Output()
	if err != nil {
		return nil // no such table: nothing to remove
	}
	var chains []string
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":KUBE-"):
			chains = append(chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A ") && !strings.HasPrefix(line, "-A KUBE-") && strings.Contains(line, "-j KUBE-"):
			rule := strings.Fields(strings.TrimPrefix(line, "-A "))
			if msg, err := exec.Command(ipt, append([]string{"-t", table, "-D"}, unquoteArgs(rule)...)...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s -D %s: %w: %s", ipt, table, strings.Join(rule, " "), err, msg))
			}
		}
	}
	for _, op := range []string{"-F", "-X"} {
		for _, c := range chains {
			if msg, err := exec.Command(ipt, "-t", table, op, c).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s %s %s: %w: %s", ipt, table, op, c, err, msg))
			}
		}
	}
	return errors.Join(errs...)
}

// unquoteArgs joins iptables-save's quoted words ("-m comment --comment \"a b\"") back into
// single arguments.
func unquoteArgs(words []string) []string {
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, `"`) {
			for !strings.HasSuffix(w, `"`) || len(w) == 1 {
				if i+1 >= len(words) {
					break
				}
				i++
				w += " " + words[i]
			}
			w = strings.Trim(w, `"`)
		}
		args = append(args, w)
	}
	return args
}

// nftHasRules reports whether `nft list table` output holds anything but empty chains.
func nftHasRules(listing string) bool {
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") ||
			strings.HasPrefix(l, "type ") || strings.HasPrefix(l, "policy ") || strings.HasPrefix(l, "#") {
			continue
		}
		return true
	}
	return false
}

// startNodeSpireAgent runs a spire-agent for the real node with the Kubernetes workload attestor.
// It is attested with a join token whose alias is the provider's default parent ID, so the
// entries the provider registers (k8s:ns and k8s:sa selectors) are served to the node's pods.
func (s *Sandbox) startNodeSpireAgent(ctx context.Context) error {
	serverBin := s.builder.Path(Spire(), "spire-server")
	agentBin := s.builder.Path(Spire(), "spire-agent")
	dir := filepath.Join(s.Dir, "node", "spire-agent")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	parentID := "spiffe://" + s.Spire.TrustDomain + "/kagenti/cluster"
	token, err := joinToken(ctx, serverBin, s.Spire.Socket, parentID)
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(s.Spire.Address)
	if err != nil {
		return err
	}
	socket := filepath.Join(s.Node.WorkloadAPIDir, "agent.sock")
	pki := filepath.Join(s.Dir, "kubernetes", "pki")
	conf := filepath.Join(dir, "agent.conf")
	if err := renderFile(nodeConf.Lookup("spire-agent.conf.tmpl"), conf, map[string]any{
		"DataDir": filepath.Join(dir, "data"), "Port": port, "Socket": socket, "Bundle": filepath.Join(s.Dir, "spire", "bundle.pem"),
		"TrustDomain": s.Spire.TrustDomain, "Token": token, "KubeletHost": NodeGateway, "KubeletCA": filepath.Join(pki, "ca.crt"),
		"ClientCert": filepath.Join(pki, "spire-agent-kubelet-client.crt"), "ClientKey": filepath.Join(pki, "spire-agent-kubelet-client.key"),
	}); err != nil {
		return err
	}
	agent := &Process{
		Name: "spire-agent-node", Path: agentBin, LogPath: s.logPath("spire-agent-node"),
		Args: []string{"run", "-config", conf},
		Healthy: func(ctx context.Context) error {
			return exec.CommandContext(ctx, agentBin, "healthcheck", "-socketPath", socket).Run()
		},
	}
	if err := s.start(ctx, agent); err != nil {
		return err
	}
	s.Node.WorkloadAPISocket, s.Node.ParentID = socket, parentID
	return nil
}
