// Command kagenti-bench measures the provider against the sandbox (`make bench`): for N agents
// it times `tofu apply` and a no-op `tofu plan`, counts the provider's Kubernetes API requests
// from the apiserver's audit log, samples the provider's peak RSS, and times `kubectl apply
// --server-side` of the same rendered objects for comparison.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/prometheus/procfs"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-bench:", err)
		os.Exit(1)
	}
}

type result struct {
	n                                                 int
	apply, applyNoWait, plan, refresh, kubectl, kwait time.Duration
	requestsPerAgent                                  float64
	peakRSSMiB                                        float64
}

func run(ctx context.Context) error {
	sizes := flag.String("n", "1,10,50", "numbers of agents")
	parallelism := flag.Int("parallelism", 10, "tofu -parallelism")
	providerEnv := flag.String("provider-env", "", "comma-separated KEY=VALUE pairs set for the provider alone, not tofu or kubectl "+
		"(GOGC=200,GOMEMLIMIT=384MiB: the provider's own GC tuning yields to them)")
	profileDir := flag.String("profile", "", "a directory for the CPU profiles of each no-op plan, the provider's (plan-N.pprof) and tofu's (tofu-plan-N.pprof); "+
		"each size also times a plan without refresh, printed on stderr, to part the plan walk from the refresh")
	flag.Parse()
	envPrefix, err := shellEnv(*providerEnv)
	if err != nil {
		return err
	}
	if *profileDir != "" {
		if *profileDir, err = filepath.Abs(*profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
	}

	cacheDir := testenv.DefaultCacheDir()
	builder := &testenv.Builder{CacheDir: cacheDir, Log: os.Stderr}
	for _, t := range []testenv.Tool{testenv.Tofu(), testenv.Kubernetes()} {
		if err := builder.Ensure(ctx, t); err != nil {
			return err
		}
	}
	tofu := builder.Path(testenv.Tofu(), "tofu")
	kubectl := builder.Path(testenv.Kubernetes(), "kubectl")

	work, err := os.MkdirTemp("", "kagenti-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// Room for the largest run, so that no pod waits for a node: its agents have two replicas
	// each, and the pods of the run before it may still be terminating (the kubectl namespace is
	// deleted without waiting), on nodes of 250 pods each.
	largest := 0
	for _, s := range strings.Split(*sizes, ",") {
		if n, err := strconv.Atoi(s); err == nil && n > largest {
			largest = n
		}
	}
	const podsPerNode = 250
	sb, err := testenv.Start(ctx, testenv.Options{Components: []string{testenv.ComponentKubernetes}, AuditLog: true, Volumes: 1, Log: os.Stderr,
		Nodes: max(2, (4*largest+podsPerNode-1)/podsPerNode+1), PodsPerNode: podsPerNode})
	if err != nil {
		return err
	}
	defer sb.Stop()

	// The provider binary behind a wrapper that samples its peak RSS (VmHWM) while it runs.
	plugins := filepath.Join(work, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return err
	}
	real := filepath.Join(work, "terraform-provider-kagenti.real")
	build := exec.CommandContext(ctx, "go", "build", "-o", real, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build provider: %w", err)
	}
	rssFile := filepath.Join(work, "rss")
	wrapper := fmt.Sprintf(`#!/bin/sh
%s%q "$@" &
pid=$!
trap 'kill $pid 2>/dev/null' TERM INT
while kill -0 $pid 2>/dev/null; do
  awk '/VmHWM/ {print $2}' /proc/$pid/status >> %q 2>/dev/null
  sleep 0.05
done
wait $pid
`, envPrefix, real, rssFile)
	if err := os.WriteFile(filepath.Join(plugins, "terraform-provider-kagenti"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	mirror := filepath.Join(work, "mirror")
	_ = os.MkdirAll(mirror, 0o755)
	rc := filepath.Join(work, "tofurc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides { "kagenti/kagenti" = %q }
  filesystem_mirror {
    path    = %q
    include = ["*/*/*"]
  }
}
`, plugins, mirror)), 0o644); err != nil {
		return err
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "KUBECONFIG="+sb.Kubernetes.Kubeconfig, "TF_IN_AUTOMATION=1")

	var results []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		r, err := benchN(ctx, n, *parallelism, work, tofu, kubectl, env, sb, rssFile, *profileDir)
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		results = append(results, r)
	}
	fmt.Printf("\nkagenti-bench: tofu apply/plan with the provider vs kubectl apply --server-side, sandbox on loopback, -parallelism=%d\n\n", *parallelism)
	fmt.Println("| agents | tofu apply (wait for rollout) | tofu apply (no wait) | no-op plan | refresh | kubectl apply --server-side | kubectl apply + wait Available | API requests / agent (apply) | provider peak RSS |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %.1f | %.0f MiB |\n", r.n, secs(r.apply), secs(r.applyNoWait), secs(r.plan), secs(r.refresh), secs(r.kubectl), secs(r.kwait), r.requestsPerAgent, r.peakRSSMiB)
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func agentsConfig(ns string, n int, wait bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "terraform {\n  required_providers {\n    kagenti = { source = \"kagenti/kagenti\" }\n  }\n}\nprovider \"kagenti\" {}\n")
	for i := range n {
		fmt.Fprintf(&b, `
resource "kagenti_agent" "a%[1]d" {
  name             = "agent-%[1]d"
  namespace        = %[2]q
  framework        = "langgraph"
  image            = "ghcr.io/example/agent:1.0.0"
  description      = "benchmark agent %[1]d"
  skills           = [{ id = "s", name = "Skill", tags = ["bench"] }]
  replicas         = 2
  env              = { LOG_LEVEL = "info" }
  wait_for_rollout = %[3]t
}
`, i, ns, wait)
	}
	return b.String()
}

func benchN(ctx context.Context, n, parallelism int, work, tofu, kubectl string, env []string, sb *testenv.Sandbox, rssFile, profileDir string) (result, error) {
	r := result{n: n}
	k := func(args ...string) error {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", sb.Kubernetes.Kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, wait := range []bool{true, false} {
		ns := fmt.Sprintf("bench-%d-%t", n, wait)
		if err := k("create", "namespace", ns); err != nil {
			return r, err
		}
		dir := filepath.Join(work, ns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return r, err
		}
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(agentsConfig(ns, n, wait)), 0o644); err != nil {
			return r, err
		}
		tfEnv := func(extraEnv []string, args ...string) (time.Duration, error) {
			cmd := exec.CommandContext(ctx, tofu, append([]string{"-chdir=" + dir}, args...)...)
			cmd.Env = append(slices.Clone(env), extraEnv...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			if err != nil {
				return 0, fmt.Errorf("tofu %s: %w\n%s", strings.Join(args, " "), err, out.String())
			}
			return time.Since(start), nil
		}
		tf := func(args ...string) (time.Duration, error) { return tfEnv(nil, args...) }
		_ = os.Remove(rssFile)
		auditBefore, _, err := countAudit(sb.Kubernetes.AuditLog)
		if err != nil {
			return r, err
		}
		settle(n, "the apply")
		d, err := tf("apply", "-auto-approve", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism))
		if err != nil {
			return r, err
		}
		auditAfter, _, err := countAudit(sb.Kubernetes.AuditLog)
		if err != nil {
			return r, err
		}
		if wait {
			r.apply = d
			r.requestsPerAgent = float64(auditAfter-auditBefore) / float64(n)
			r.peakRSSMiB = peakRSS(rssFile) / 1024
			// A no-op plan: refresh of every agent, nothing to change (exit code 0).
			var profile []string
			if profileDir != "" {
				// tofu hands its environment to the provider it starts.
				profile = []string{"KAGENTI_PROVIDER_CPU_PROFILE=" + filepath.Join(profileDir, fmt.Sprintf("plan-%d.pprof", n)),
					"TOFU_CPU_PROFILE=" + filepath.Join(profileDir, fmt.Sprintf("tofu-plan-%d.pprof", n))}
			}
			settle(n, "the no-op plan")
			_, listsBefore, err := countAudit(sb.Kubernetes.AuditLog)
			if err != nil {
				return r, err
			}
			if r.plan, err = tfEnv(profile, "plan", "-detailed-exitcode", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism)); err != nil {
				return r, err
			}
			// Each kind's objects are read from one LIST while it is fresh: more LISTs than
			// kinds say a plan took its lists again.
			_, listsAfter, err := countAudit(sb.Kubernetes.AuditLog)
			if err != nil {
				return r, err
			}
			fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: the no-op plan took %s and made %d LIST requests\n", n, secs(r.plan), listsAfter-listsBefore)
			if profileDir != "" {
				walk, err := tf("plan", "-refresh=false", "-detailed-exitcode", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism))
				if err != nil {
					return r, err
				}
				fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: no-op plan %s, of which the plan without refresh %s; CPU profiles of the provider and of tofu in %s\n",
					n, secs(r.plan), secs(walk), profileDir)
			}
			// A refresh: every agent read back from the cluster into the state, no plan.
			settle(n, "the refresh")
			if r.refresh, err = tf("apply", "-refresh-only", "-auto-approve", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism)); err != nil {
				return r, err
			}
		} else {
			r.applyNoWait = d
		}
		if _, err := tf("destroy", "-auto-approve", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism)); err != nil {
			return r, err
		}
	}

	// kubectl with the very objects the provider renders.
	renderer, err := composition.NewRenderer()
	if err != nil {
		return r, err
	}
	ns := fmt.Sprintf("bench-%d-kubectl", n)
	if err := k("create", "namespace", ns); err != nil {
		return r, err
	}
	var docs bytes.Buffer
	for i := range n {
		out, err := renderer.Render(composition.Input{
			Kind: composition.KindAgent, Name: fmt.Sprintf("agent-%d", i), Namespace: ns, Framework: "langgraph", Protocol: "a2a",
			Image: "ghcr.io/example/agent:1.0.0", Description: fmt.Sprintf("benchmark agent %d", i),
			Skills: []composition.Skill{{ID: "s", Name: "Skill", Tags: []string{"bench"}}}, Replicas: 2, Env: map[string]string{"LOG_LEVEL": "info"},
		})
		if err != nil {
			return r, err
		}
		for _, o := range out.Objects {
			y, err := yaml.Marshal(o.Object.Object)
			if err != nil {
				return r, err
			}
			docs.WriteString("---\n")
			docs.Write(y)
		}
	}
	file := filepath.Join(work, ns+".yaml")
	if err := os.WriteFile(file, docs.Bytes(), 0o644); err != nil {
		return r, err
	}
	settle(n, "kubectl apply")
	start := time.Now()
	if err := k("apply", "--server-side", "--field-manager", "bench", "-f", file); err != nil {
		return r, err
	}
	r.kubectl = time.Since(start)
	if err := k("wait", "--for=condition=Available", "deployment", "--all", "-n", ns, "--timeout=300s"); err != nil {
		return r, err
	}
	r.kwait = time.Since(start)
	return r, k("delete", "namespace", ns, "--wait=false")
}

// countAudit counts the provider's completed requests in the audit log, and of those the LISTs.
func countAudit(path string) (requests, lists int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			UserAgent string `json:"userAgent"`
			Verb      string `json:"verb"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Stage == "ResponseComplete" && strings.HasPrefix(ev.UserAgent, "terraform-provider-kagenti") {
			requests++
			if ev.Verb == "list" {
				lists++
			}
		}
	}
	return requests, lists, sc.Err()
}

// peakRSS is the largest VmHWM sample (KiB).
func peakRSS(path string) float64 {
	data, _ := os.ReadFile(path)
	peak := 0.0
	for _, l := range strings.Fields(string(data)) {
		if v, err := strconv.ParseFloat(l, 64); err == nil && v > peak {
			peak = v
		}
	}
	return peak
}

// shellEnv is -provider-env as the prefix of a shell command ("env K='v' ... "), empty when
// none is given.
func shellEnv(pairs string) (string, error) {
	if pairs == "" {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("env ")
	for _, pair := range strings.Split(pairs, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || !envName.MatchString(k) || strings.Contains(v, "'") {
			return "", fmt.Errorf("-provider-env: %q is not KEY=VALUE (a value without quotes)", pair)
		}
		fmt.Fprintf(&b, "%s='%s' ", k, v)
	}
	return b.String(), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// settle waits, before a timed command, until the machine is quiet: after an apply or a
// delete the sandbox's controllers, scheduler and kwok go on working through thousands of pods
// for a while, on the very two cores the command would run on, and a plan timed then measured
// them (1.5 to 2 cores busy with no command running, a 500-agent plan taking 24 s instead of
// 7.5). It gives up after three minutes and says so.
func settle(n int, before string) {
	const quiet, limit = 0.3, 3 * time.Minute
	start := time.Now()
	for {
		busy, err := busyCores(2 * time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kagenti-bench: %v\n", err)
			return
		}
		switch {
		case busy < quiet:
			fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: %.0f s for the machine to settle (%.2f cores busy) before %s\n",
				n, time.Since(start).Seconds(), busy, before)
			return
		case time.Since(start) > limit:
			fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: still %.2f cores busy after %s, timing %s anyway\n", n, busy, limit, before)
			return
		}
	}
}

// busyCores is how many cores the machine kept busy over d (/proc/stat, read with procfs).
func busyCores(d time.Duration) (float64, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	read := func() (busy, total float64, err error) {
		stat, err := fs.Stat()
		c := stat.CPUTotal // guest time is counted in user already
		busy = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
		return busy, busy + c.Idle + c.Iowait, err
	}
	b0, t0, err := read()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b1, t1, err := read()
	if err != nil {
		return 0, err
	}
	return (b1 - b0) / (t1 - t0) * float64(runtime.NumCPU()), nil
}
