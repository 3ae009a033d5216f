// Command kagenti-discovery-bench (`make bench-discovery`) measures kagenti-router's discovery at
// scale against the sandbox's real kube-apiserver: N agents in M namespaces, created as the
// provider composes them (their card ConfigMap and Service), with kagenti-router running as its
// own process, watching. It reports the router's RSS, the time from an agent's apply to its first
// routable call (p50, p99), the time for a deleted agent to stop being routed, and the catalog's
// answer time.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-discovery-bench:", err)
		os.Exit(1)
	}
}

const sendBody = `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`

func run(ctx context.Context) error {
	agents := flag.Int("agents", 1000, "agents")
	namespaces := flag.Int("namespaces", 20, "namespaces they are spread over")
	deleted := flag.Int("delete", 100, "agents deleted at the end, each timed until it is no longer routed")
	flag.Parse()

	sb, err := testenv.Start(ctx, testenv.Options{Components: []string{testenv.ComponentKubernetes}, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer sb.Stop()
	cfg, err := clientcmd.BuildConfigFromFlags("", sb.Kubernetes.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	applier, err := kube.NewApplier(cfg)
	if err != nil {
		return err
	}
	for i := range *namespaces {
		if _, err := applier.Typed().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	// Every agent runs "elsewhere", at one loopback backend that answers message/send.
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(backend, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"kind":"message","messageId":"r","role":"agent","parts":[{"kind":"text","text":"ok"}]}}`)
	}))

	work, err := os.MkdirTemp("", "kagenti-discovery-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "kagenti-router")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kagenti-router")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build kagenti-router: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	// No issuer: authentication off, so that what is measured is discovery and routing.
	router := exec.CommandContext(ctx, bin, "-listen", addr, "-public-url", "http://"+addr, "-kubeconfig", sb.Kubernetes.Kubeconfig, "-log-level", "warn", "-drain-delay", "0s")
	router.Stderr = os.Stderr
	if err := router.Start(); err != nil {
		return err
	}
	defer func() { _ = router.Process.Kill(); _ = router.Wait() }()
	if err := waitUp("http://" + addr + "/readyz"); err != nil {
		return err
	}
	idle, err := rss(router.Process.Pid)
	if err != nil {
		return err
	}

	renderer, err := composition.NewRenderer()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	routable := func(ns, name string) bool {
		resp, err := client.Post("http://"+addr+"/a2a/"+ns+"/"+name, "application/json", bytes.NewReader([]byte(sendBody)))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"result"`))
	}
	// Each agent is applied in turn; from the moment its apply returns, a prober calls it every
	// 10 ms until the router routes it.
	var mu sync.Mutex
	var toRoutable []time.Duration
	var wg sync.WaitGroup
	probes := make(chan struct{}, 64) // at most 64 probers at once
	start := time.Now()
	for i := range *agents {
		ns, name := nsName(i%*namespaces), fmt.Sprintf("agent-%d", i)
		out, err := renderer.Render(composition.Input{Kind: composition.KindAgent, Name: name, Namespace: ns, Framework: "custom", Protocol: "a2a",
			Endpoint: "http://" + backend.Addr().String() + "/" + name})
		if err != nil {
			return err
		}
		for _, o := range out.Objects {
			if _, err := applier.Apply(ctx, o.Object); err != nil {
				return fmt.Errorf("apply %s: %w", name, err)
			}
		}
		applied := time.Now()
		probes <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-probes; wg.Done() }()
			for !routable(ns, name) {
				if time.Since(applied) > time.Minute {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			toRoutable = append(toRoutable, time.Since(applied))
			mu.Unlock()
		}()
	}
	wg.Wait()
	applyAll := time.Since(start)
	if len(toRoutable) != *agents {
		return fmt.Errorf("%d of %d agents never became routable within a minute", *agents-len(toRoutable), *agents)
	}
	full, err := rss(router.Process.Pid)
	if err != nil {
		return err
	}

	// The catalog: every agent with its card, 20 times.
	var catalog []time.Duration
	for range 20 {
		t := time.Now()
		resp, err := client.Get("http://" + addr + "/agents")
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			return fmt.Errorf("GET /agents: %s", resp.Status)
		}
		catalog = append(catalog, time.Since(t))
	}

	// Deleted agents: from the delete's return until a call is no longer routed.
	var toGone []time.Duration
	for i := range min(*deleted, *agents) {
		ns, name := nsName(i%*namespaces), fmt.Sprintf("agent-%d", i)
		if err := applier.Typed().CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		t := time.Now()
		for routable(ns, name) {
			if time.Since(t) > time.Minute {
				return fmt.Errorf("%s/%s is still routed a minute after its Service was deleted", ns, name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		toGone = append(toGone, time.Since(t))
	}

	fmt.Printf("\nkagenti-discovery-bench: %d agents in %d namespaces applied one after another (%.1f s in all) to a real kube-apiserver; kagenti-router watching as its own process\n\n", *agents, *namespaces, applyAll.Seconds())
	fmt.Println("| agents | router RSS idle | router RSS with all agents | apply → routable p50 | p99 | max | delete → not routed p50 | p99 | catalog (GET /agents) p50 | p99 |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	fmt.Printf("| %d | %.1f MiB | %.1f MiB | %s | %s | %s | %s | %s | %s | %s |\n", *agents, idle, full,
		ms(pct(toRoutable, 50)), ms(pct(toRoutable, 99)), ms(pct(toRoutable, 100)), ms(pct(toGone, 50)), ms(pct(toGone, 99)), ms(pct(catalog, 50)), ms(pct(catalog, 99)))
	return nil
}

func nsName(i int) string { return fmt.Sprintf("discovery-%d", i) }

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func waitUp(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// rss is a process's resident set in MiB.
func rss(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		return 0, fmt.Errorf("no VmRSS for %d", pid)
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb / 1024, nil
}
