package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	serviceCIDR = "10.96.0.0/16"
	// The kubernetes Service's ClusterIP, which must be in the serving cert.
	serviceAPIIP = "10.96.0.1"
	// kwok manages only nodes with this annotation, so real nodes (none here) are left alone.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// KubernetesInfo is what a started control plane exposes to its users.
type KubernetesInfo struct {
	Server     string `json:"server"`
	Kubeconfig string `json:"kubeconfig"`
	// Token is a static bearer token in system:masters (the kubeconfig's token context).
	Token  string `json:"token"`
	CAFile string `json:"ca_file"`
	// ClientCertFile/ClientKeyFile are the admin client certificate (system:masters).
	ClientCertFile string `json:"client_cert_file"`
	ClientKeyFile  string `json:"client_key_file"`
	// AuditLog is the apiserver's JSON audit log, when Options.AuditLog asked for one.
	AuditLog string `json:"audit_log,omitempty"`
}

// auditPolicy records every request once, at Metadata level (user, verb, resource, user agent).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`

// startKubernetes brings up etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok with fake nodes, and returns once nodes are Ready and the default ServiceAccount exists.
func (s *Sandbox) startKubernetes(ctx context.Context) error {
	k8s, kwok := s.builder.Dir(Kubernetes()), s.builder.Dir(Kwok())
	dir := filepath.Join(s.Dir, "kubernetes")
	pki := filepath.Join(dir, "pki")
	for _, d := range []string{pki, filepath.Join(dir, "etcd"), filepath.Join(dir, "kcm"), filepath.Join(dir, "scheduler")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	apiPort, etcdPort, etcdPeerPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	// etcd needs no certificates: start it first and let it boot while the PKI is generated.
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort)
	etcd := &Process{
		Name: "etcd", Path: filepath.Join(k8s, "etcd"), LogPath: s.logPath("etcd"),
		Args: []string{"--name", "kagenti-sandbox", "--data-dir", filepath.Join(dir, "etcd"),
			"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "kagenti-sandbox=" + peerURL,
			// State is thrown away with the sandbox; fsync only slows tests down.
			"--unsafe-no-fsync", "--quota-backend-bytes", "2147483648", "--log-level", "warn"},
		Healthy: httpHealthy(http.DefaultClient, etcdURL+"/health"),
	}
	if err := s.start(ctx, etcd); err != nil {
		return err
	}

	ca, err := newCA("kagenti-sandbox-ca")
	if err != nil {
		return err
	}
	frontProxyCA, err := newCA("kagenti-sandbox-front-proxy-ca")
	if err != nil {
		return err
	}
	// With a real node, the apiserver listens on the node's bridge, so that pods reach it through
	// the kubernetes Service; otherwise on loopback only.
	withNode := s.opts.has(ComponentNode)
	apiHost := "127.0.0.1"
	if withNode {
		apiHost = NodeGateway
	}
	apiCert, apiKey, err := ca.issue(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceAPIIP), net.ParseIP(NodeGateway)})
	if err != nil {
		return err
	}
	adminCert, adminKey, err := ca.issue(pkix.Name{CommonName: "kagenti-admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return err
	}
	proxyCert, proxyKey, err := frontProxyCA.issue(pkix.Name{CommonName: "front-proxy-client"}, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return err
	}
	saCA, err := newCA("service-account-signer") // only its key is used
	if err != nil {
		return err
	}
	saKey, err := saCA.keyPEM()
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saCA.key.PublicKey)
	if err != nil {
		return err
	}
	caKey, err := ca.keyPEM()
	if err != nil {
		return err
	}
	tokenBytes := make([]byte, 16)
	if _, err := rand.Read(tokenBytes); err != nil {
		return err
	}
	token := hex.EncodeToString(tokenBytes)
	if err := writeFiles(pki, map[string][]byte{
		"ca.crt": ca.certPEM(), "ca.key": caKey,
		"apiserver.crt": apiCert, "apiserver.key": apiKey,
		"admin.crt": adminCert, "admin.key": adminKey,
		"front-proxy-ca.crt":     frontProxyCA.certPEM(),
		"front-proxy-client.crt": proxyCert, "front-proxy-client.key": proxyKey,
		"sa.key": saKey, "sa.pub": pemBlock("PUBLIC KEY", saPub),
		"tokens.csv": []byte(token + ",kagenti-admin-token,kagenti-admin-token-uid,system:masters\n"),
	}); err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(pki, name) }

	server := "https://" + apiHost + ":" + strconv.Itoa(apiPort)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, ca.certPEM(), adminCert, adminKey, token); err != nil {
		return err
	}
	s.Kubernetes = KubernetesInfo{Server: server, Kubeconfig: kubeconfig, Token: token, CAFile: p("ca.crt"),
		ClientCertFile: p("admin.crt"), ClientKeyFile: p("admin.key")}

	adminTLS, err := tls.X509KeyPair(adminCert, adminKey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	adminHTTP := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{adminTLS}}}}

	apiserver := &Process{
		Name: "kube-apiserver", Path: filepath.Join(k8s, "kube-apiserver"), LogPath: s.logPath("kube-apiserver"),
		Args: []string{"--etcd-servers", etcdURL,
			"--bind-address", apiHost, "--secure-port", strconv.Itoa(apiPort), "--advertise-address", apiHost,
			"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
			"--client-ca-file", p("ca.crt"), "--token-auth-file", p("tokens.csv"),
			"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file", p("sa.pub"), "--service-account-signing-key-file", p("sa.key"),
			"--service-cluster-ip-range", serviceCIDR,
			"--requestheader-client-ca-file", p("front-proxy-ca.crt"), "--requestheader-allowed-names", "front-proxy-client",
			"--requestheader-username-headers", "X-Remote-User", "--requestheader-group-headers", "X-Remote-Group",
			"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
			"--proxy-client-cert-file", p("front-proxy-client.crt"), "--proxy-client-key-file", p("front-proxy-client.key"),
			"--authorization-mode", "Node,RBAC", "--allow-privileged=true", "--profiling=false", "--v=1"},
		Healthy:      httpHealthy(adminHTTP, server+"/readyz"),
		StartTimeout: 2 * time.Minute,
	}
	if withNode {
		if err := nodePKI(ca, pki); err != nil {
			return err
		}
		apiserver.Args = append(apiserver.Args, "--enable-admission-plugins", "NodeRestriction",
			"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"), "--kubelet-client-key", p("apiserver-kubelet-client.key"),
			"--kubelet-certificate-authority", p("ca.crt"), "--kubelet-preferred-address-types", "InternalIP")
	} else {
		// The endpoint reconciler refuses a loopback advertise address; nothing runs in pods,
		// so the kubernetes Service needs no endpoints.
		apiserver.Args = append(apiserver.Args, "--endpoint-reconciler-type", "none")
	}
	if s.opts.AuditLog {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return err
		}
		s.Kubernetes.AuditLog = filepath.Join(dir, "audit.log")
		apiserver.Args = append(apiserver.Args, "--audit-policy-file", policy,
			"--audit-log-path", s.Kubernetes.AuditLog, "--audit-log-format", "json", "--audit-log-maxsize", "0")
	}
	if err := s.start(ctx, apiserver); err != nil {
		return err
	}

	kcm := &Process{
		Name: "kube-controller-manager", Path: filepath.Join(k8s, "kube-controller-manager"), LogPath: s.logPath("kube-controller-manager"),
		Args: []string{"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
			"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(kcmPort), "--cert-dir", filepath.Join(dir, "kcm"),
			"--leader-elect=false", "--use-service-account-credentials=true",
			"--service-account-private-key-file", p("sa.key"), "--root-ca-file", p("ca.crt"),
			"--cluster-signing-cert-file", p("ca.crt"), "--cluster-signing-key-file", p("ca.key"),
			"--service-cluster-ip-range", serviceCIDR,
			"--kube-api-qps", "100", "--kube-api-burst", "200", "--profiling=false", "--v=1",
			// HPAs act within seconds rather than the default 15 s, for the tests that share
			// replicas with one.
			"--horizontal-pod-autoscaler-sync-period", "2s",
			// Else it creates /usr/libexec/kubernetes/kubelet-plugins on the host.
			"--flex-volume-plugin-dir", filepath.Join(dir, "volume-plugins")},
		Healthy: httpHealthy(insecureHTTP(), "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz"),
	}
	scheduler := &Process{
		Name: "kube-scheduler", Path: filepath.Join(k8s, "kube-scheduler"), LogPath: s.logPath("kube-scheduler"),
		Args: []string{"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
			"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort), "--cert-dir", filepath.Join(dir, "scheduler"),
			"--leader-elect=false", "--profiling=false", "--v=1"},
		Healthy: httpHealthy(insecureHTTP(), "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz"),
	}
	kwokProc := &Process{
		Name: "kwok", Path: filepath.Join(kwok, "kwok"), LogPath: s.logPath("kwok"),
		Args: []string{"--kubeconfig", kubeconfig, "--config", filepath.Join(kwok, "kwok-stages.yaml"),
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", kwokNodeAnnotation + "=fake",
			"--node-ip", "127.0.0.1", "--node-lease-duration-seconds", "40",
			"--server-address", "127.0.0.1:" + strconv.Itoa(kwokPort), "--node-port", strconv.Itoa(kwokPort),
			"--tls-cert-file", p("admin.crt"), "--tls-private-key-file", p("admin.key")},
	}
	if withNode {
		kcm.Args = append(kcm.Args, "--allocate-node-cidrs", "--cluster-cidr", nodeClusterCIDR, "--node-cidr-mask-size", "24")
	}
	for _, proc := range []*Process{kcm, scheduler, kwokProc} {
		if err := s.start(ctx, proc); err != nil {
			return err
		}
	}

	client, err := s.kubeClient()
	if err != nil {
		return err
	}
	if withNode {
		if err := s.startNode(ctx, client, server, ca, pki); err != nil {
			return err
		}
	}
	for i := range s.opts.Nodes {
		if err := createFakeNode(ctx, client, fmt.Sprintf("kwok-node-%d", i), s.opts.PodsPerNode); err != nil {
			return err
		}
	}
	if err := createStorage(ctx, client, s.opts.Volumes); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < s.opts.Nodes {
			return false, nil
		}
		// The controller-manager creates the default ServiceAccount; until then no Pod can be
		// created in the namespace.
		_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// kubeClient is a client of the sandbox's apiserver as its admin.
func (s *Sandbox) kubeClient() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubernetes.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func createFakeNode(ctx context.Context, client kubernetes.Interface, name string, pods int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
		Status: corev1.NodeStatus{Allocatable: capacity, Capacity: capacity},
	}
	_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// createStorage makes a default StorageClass without a provisioner and a pool of static
// PersistentVolumes for it: the PV controller binds claims to them, so pods with volumes get
// scheduled (there is no storage provisioner here). Nothing is ever written to them.
func createStorage(ctx context.Context, client kubernetes.Interface, volumes int) error {
	immediate := storagev1.VolumeBindingImmediate
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{
			"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &immediate,
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	for i := range volumes {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sandbox-pv-%03d", i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              "standard",
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: fmt.Sprintf("/var/lib/kagenti-sandbox/pv-%03d", i)},
				},
			},
		}
		if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

func writeKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kagenti-sandbox"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["kagenti-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.AuthInfos["kagenti-admin-token"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kagenti-sandbox"] = &clientcmdapi.Context{Cluster: "kagenti-sandbox", AuthInfo: "kagenti-admin"}
	cfg.Contexts["kagenti-sandbox-token"] = &clientcmdapi.Context{Cluster: "kagenti-sandbox", AuthInfo: "kagenti-admin-token"}
	cfg.CurrentContext = "kagenti-sandbox"
	return clientcmd.WriteToFile(*cfg, path)
}

func httpHealthy(client *http.Client, url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// insecureHTTP is for the health endpoints of the controller-manager and scheduler, which serve
// self-signed certificates generated at start.
func insecureHTTP() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health check only
}
