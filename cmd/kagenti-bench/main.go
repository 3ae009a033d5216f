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
	planVariants := flag.String("plan-variants", "", "semicolon-separated -provider-env alternatives under which each no-op plan round is also timed, "+
		"in turns with -provider-env on the same applied state (GOGC=200;GOGC=800,GOMEMLIMIT=off), each median printed on stderr")
	planRounds := flag.Int("plan-rounds", 3, "no-op plans timed for each size, of which the median is reported")
	profileDir := flag.String("profile", "", "a directory for the CPU profiles of each no-op plan, the provider's (plan-N-ROUND.pprof) and tofu's (tofu-plan-N-ROUND.pprof), "+
		"the provider's heap at its end (heap-plan-N-ROUND.pprof), "+
		"and the provider's GC trace (gctrace-plan-N-ROUND.log, summed up on stderr), each name ending in -VARIANT with -plan-variants; "+
		"each size also times a plan without refresh, printed on stderr, to part the plan walk from the refresh")
	flag.Parse()
	if *planRounds < 1 {
		return fmt.Errorf("-plan-rounds %d: at least one plan is timed", *planRounds)
	}
	baseEnv, err := envWords(*providerEnv)
	if err != nil {
		return err
	}
	base := "the provider's own GC tuning"
	if *providerEnv != "" {
		base = *providerEnv
	}
	variants := []planVariant{{name: base, env: baseEnv}}
	if *planVariants != "" {
		for _, v := range strings.Split(*planVariants, ";") {
			words, err := envWords(v)
			if err != nil {
				return fmt.Errorf("-plan-variants: %w", err)
			}
			variants = append(variants, planVariant{name: v, env: words})
		}
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
	// tofu starts the wrapper with its own environment, where KAGENTI_BENCH_PROVIDER_ENV holds
	// KEY=VALUE words for the provider alone (GOGC for tofu would measure another tofu). With
	// KAGENTI_BENCH_GCTRACE set (to a file), the provider writes the runtime's GC trace there
	// instead of to tofu, which would drop it.
	wrapper := fmt.Sprintf(`#!/bin/sh
if [ -n "$KAGENTI_BENCH_GCTRACE" ]; then
  env GODEBUG=gctrace=1 $KAGENTI_BENCH_PROVIDER_ENV %[1]q "$@" 2>>"$KAGENTI_BENCH_GCTRACE" &
else
  env $KAGENTI_BENCH_PROVIDER_ENV %[1]q "$@" &
fi
pid=$!
trap 'kill $pid 2>/dev/null' TERM INT
while kill -0 $pid 2>/dev/null; do
  awk '/VmHWM/ {print $2}' /proc/$pid/status >> %[2]q 2>/dev/null
  sleep 0.05
done
wait $pid
`, real, rssFile)
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
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "KUBECONFIG="+sb.Kubernetes.Kubeconfig, "TF_IN_AUTOMATION=1",
		"KAGENTI_BENCH_PROVIDER_ENV="+baseEnv)

	var results []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		r, err := benchN(ctx, n, *parallelism, *planRounds, variants, work, tofu, kubectl, env, sb, rssFile, *profileDir)
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

// median of durations (the mean of the middle two when their number is even).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
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

func benchN(ctx context.Context, n, parallelism, planRounds int, variants []planVariant, work, tofu, kubectl string, env []string, sb *testenv.Sandbox, rssFile, profileDir string) (result, error) {
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
			// A no-op plan: refresh of every agent, nothing to change (exit code 0). Timed in
			// rounds, the median reported: one plan of 500 agents took anywhere from 7.1 to 9.0 s
			// on a quiet machine.
			rounds := make([][]time.Duration, len(variants))
			for round := 1; round <= planRounds; round++ {
				for i, v := range variants {
					d, err := noopPlan(n, round, planRounds, v, len(variants) > 1, profileDir, sb.Kubernetes.AuditLog, rssFile, tfEnv, parallelism)
					if err != nil {
						return r, err
					}
					rounds[i] = append(rounds[i], d)
				}
			}
			r.plan = median(rounds[0])
			if len(variants) > 1 {
				for i, v := range variants {
					fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: no-op plan with %s: median %s of %d rounds %s\n", n, v.name, secs(median(rounds[i])), planRounds, durations(rounds[i]))
				}
			}
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

// noopPlan times one no-op plan (exit code 0) with the provider under variant v, after the
// machine settles, and prints its LISTs and, with a profile directory, its GC trace's sums.
// Each plan's files there are named by size, round and (when several are timed) variant.
func noopPlan(n, round, rounds int, v planVariant, named bool, profileDir, auditLog, rssFile string,
	tofu func(extraEnv []string, args ...string) (time.Duration, error), parallelism int) (time.Duration, error) {
	// tofu hands its environment to the provider it starts.
	extra := []string{"KAGENTI_BENCH_PROVIDER_ENV=" + v.env}
	label := fmt.Sprintf("no-op plan %d of %d", round, rounds)
	suffix := fmt.Sprintf("%d-%d", n, round)
	if named {
		label += " with " + v.name
		env := v.env
		if env == "" {
			env = "default"
		}
		suffix += "-" + strings.NewReplacer("=", "", " ", "-").Replace(env)
	}
	gcFile := ""
	if profileDir != "" {
		gcFile = filepath.Join(profileDir, "gctrace-plan-"+suffix+".log")
		extra = append(extra, "KAGENTI_PROVIDER_CPU_PROFILE="+filepath.Join(profileDir, "plan-"+suffix+".pprof"),
			"KAGENTI_PROVIDER_HEAP_PROFILE="+filepath.Join(profileDir, "heap-plan-"+suffix+".pprof"),
			"TOFU_CPU_PROFILE="+filepath.Join(profileDir, "tofu-plan-"+suffix+".pprof"),
			"KAGENTI_BENCH_GCTRACE="+gcFile)
	}
	settle(n, label)
	_ = os.Remove(rssFile)
	_, listsBefore, err := countAudit(auditLog)
	if err != nil {
		return 0, err
	}
	d, err := tofu(extra, "plan", "-detailed-exitcode", "-no-color", fmt.Sprintf("-parallelism=%d", parallelism))
	if err != nil {
		return 0, err
	}
	// Each kind's objects are read from one LIST while it is fresh: more LISTs than kinds say a
	// plan took its lists again.
	_, listsAfter, err := countAudit(auditLog)
	if err != nil {
		return 0, err
	}
	gc := ""
	if gcFile != "" {
		t, err := readGCTrace(gcFile)
		if err != nil {
			return 0, err
		}
		gc = fmt.Sprintf("; the provider collected %d times in %s of CPU, at most %d MB live after marking", t.cycles, secs(t.cpu), t.maxLiveMB)
	}
	fmt.Fprintf(os.Stderr, "kagenti-bench: %d agents: %s took %s and made %d LIST requests; the provider peaked at %.0f MiB%s\n",
		n, label, secs(d), listsAfter-listsBefore, peakRSS(rssFile)/1024, gc)
	return d, nil
}

// durations lists rounds' times as "(9.42 s, 9.65 s, 9.66 s)".
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = secs(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
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

type gcTrace struct {
	cycles    int
	cpu       time.Duration
	maxLiveMB int
}

// gcLine is a collection in a GODEBUG=gctrace=1 log: its CPU times (stop-the-world sweep
// termination, assist/background/idle marking, mark termination) and its heap at start, at end
// and left live after marking.
var gcLine = regexp.MustCompile(`^gc \d+ @[\d.]+s \d+%: [^,]* ms clock, ([\d.+/]+) ms cpu, (\d+)->(\d+)->(\d+) MB`)

// readGCTrace sums a provider's GC trace: the collections, their CPU time, the largest live heap.
func readGCTrace(path string) (gcTrace, error) {
	var t gcTrace
	data, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		m := gcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t.cycles++
		for _, f := range strings.FieldsFunc(m[1], func(r rune) bool { return r == '+' || r == '/' }) {
			ms, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return t, fmt.Errorf("%s: %q: %w", path, line, err)
			}
			t.cpu += time.Duration(ms * float64(time.Millisecond))
		}
		live, _ := strconv.Atoi(m[4])
		t.maxLiveMB = max(t.maxLiveMB, live)
	}
	return t, nil
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

// envWords is -provider-env (or one of -plan-variants) as the words the wrapper passes to env(1):
// "K=v K2=v2", empty when none is given.
func envWords(pairs string) (string, error) {
	if pairs == "" {
		return "", nil
	}
	var words []string
	for _, pair := range strings.Split(pairs, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || !envName.MatchString(k) || !envValue.MatchString(v) {
			return "", fmt.Errorf("%q is not KEY=VALUE (a value of letters, digits and ._-)", pair)
		}
		words = append(words, pair)
	}
	return strings.Join(words, " "), nil
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envValue = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)
)

// planVariant is an environment of the provider under which no-op plans are timed.
type planVariant struct {
	name string // as given
	env  string // envWords
}

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
