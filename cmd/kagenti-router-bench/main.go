// Command kagenti-router-bench (`make bench-router`) measures kagenti-router against the same
// backend on loopback reached directly, through nginx and through Caddy (Debian's packages,
// installed when missing; Caddy is a Go net/http reverse proxy, the peer for what Go can do) as
// plain reverse proxies: requests/s (wrk), added p50/p99 latency of message/send at
// a fixed 1,000 requests/s, first-event latency of message/stream, and the router's RSS with
// 1,000 open streams. The router runs as its own process as a platform deploys it: it validates
// the caller's JWT and exchanges it (RFC 8693) for the agent's audience, the exchanged token
// cached after the first call as at Keycloak.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/procfs"
)

const sendBody = `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`
const streamBody = `{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{"message":{"messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`

func main() {
	duration := flag.Duration("duration", 5*time.Second, "length of each latency run")
	latencyRounds := flag.Int("latency-rounds", 3, "latency rounds; in each the targets run one after the other, and the added latency is taken against the direct run of the same round")
	roundLength := flag.Duration("round", 5*time.Second, "length of each requests/s round")
	rate := flag.Int("rate", 1000, "requests/s for the latency runs")
	streams := flag.Int("streams", 1000, "open streams for the memory run")
	rounds := flag.Int("rounds", 7, "requests/s rounds; in each the targets run one after the other")
	profile := flag.String("profile", "", "write the router's CPU profile of an extra requests/s run (not counted), and its heap profile and goroutines with the streams open, to <prefix>.cpu, <prefix>.heap and <prefix>.goroutines")
	routerArgs := flag.String("router-args", "", "more flags for kagenti-router, space-separated (e.g. -log-level=debug)")
	routerEnv := flag.String("router-env", "", "more environment for kagenti-router only, space-separated (e.g. GOGC=200)")
	flag.Parse()
	if *rounds < 1 || *latencyRounds < 1 {
		fmt.Fprintln(os.Stderr, "kagenti-router-bench: -rounds and -latency-rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(*duration, *roundLength, *rate, *streams, *rounds, *latencyRounds, *profile, strings.Fields(*routerArgs), strings.Fields(*routerEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-router-bench:", err)
		os.Exit(1)
	}
}

func listen() (net.Listener, string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return l, l.Addr().String()
}

func freeAddr() string {
	l, addr := listen()
	l.Close()
	return addr
}

func ensureTools() error {
	missing := false
	for _, tool := range []string{"nginx", "caddy", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	fmt.Fprintln(os.Stderr, "installing nginx, caddy and wrk from Debian's packages")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "nginx-light", "caddy", "wrk"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	return nil
}

// exchangedToken is what the bench's token endpoint gives the router for the agent.
const exchangedToken = "exchanged-for-bench-agent"

// backend answers message/send at once and holds message/stream open after one event. A call
// carrying a token other than the exchanged one is refused: the router must never forward the
// caller's.
func backend() string {
	l, addr := listen()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); auth != "" && auth != "Bearer "+exchangedToken {
			http.Error(w, "not the exchanged token", http.StatusForbidden)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "message/stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"kind\":\"status-update\",\"final\":false}}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"kind":"message","messageId":"r","role":"agent","parts":[{"kind":"text","text":"ok"}]}}`)
	}))
	return addr
}

// issuer serves a JWKS and a token endpoint (token exchange) and returns a token the router
// accepts.
func issuer() (baseURL, token string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	l, addr := listen()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || r.FormValue("audience") != "bench-agent" || r.FormValue("subject_token") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": exchangedToken, "token_type": "Bearer", "expires_in": 3600})
	})
	go http.Serve(l, mux)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "bench"))
	if err != nil {
		return "", "", err
	}
	token, err = jwt.Signed(signer).Claims(map[string]any{"iss": "https://bench.issuer/realms/kagenti", "sub": "bench", "azp": "bench-client",
		"aud": "kagenti-router", "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
	return "http://" + addr, token, err
}

func run(duration, roundLength time.Duration, rate, streams, rounds, latencyRounds int, profile string, routerArgs, routerEnv []string) error {
	if err := ensureTools(); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kagenti-router-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	be := backend()
	issuerURL, token, err := issuer()
	if err != nil {
		return err
	}

	// kagenti-router as its own process, static routes, JWT validation on.
	bin := filepath.Join(work, "kagenti-router")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kagenti-router")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return err
	}
	routes := fmt.Sprintf(`[{"namespace":"bench","name":"agent","protocol":"a2a","upstream":"http://%s","policy":{"audience":"bench-agent"}}]`, be)
	if err := os.WriteFile(filepath.Join(work, "routes.json"), []byte(routes), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "client-secret"), []byte("bench-secret"), 0o600); err != nil {
		return err
	}
	routerAddr, debugAddr := freeAddr(), freeAddr()
	router := exec.Command(bin, append([]string{"-listen=" + routerAddr, "-debug-listen=" + debugAddr, "-public-url=http://" + routerAddr, "-routes-file=" + filepath.Join(work, "routes.json"),
		"-issuer=https://bench.issuer/realms/kagenti", "-jwks-url=" + issuerURL + "/certs", "-audience=kagenti-router",
		"-token-url=" + issuerURL + "/token", "-client-id=kagenti-router", "-client-secret-file=" + filepath.Join(work, "client-secret")}, routerArgs...)...)
	router.Env = append(os.Environ(), routerEnv...)
	router.Stderr = io.Discard
	if err := router.Start(); err != nil {
		return err
	}
	defer router.Process.Kill()

	// nginx as a plain reverse proxy with upstream keepalive, buffering off (SSE passes). It
	// gets the caller's token as the router does and, like the router, sends the agent the
	// exchanged token, the agent's address as Host and the X-Forwarded-* headers of nginx's
	// reverse-proxy guide: the agent gets the same request from either.
	nginxAddr := freeAddr()
	conf := fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  upstream backend { server %[2]s; keepalive 128; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host %[2]s;
      proxy_set_header Authorization "Bearer %[4]s";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
    }
  }
}
`, work, be, nginxAddr, exchangedToken)
	if err := os.WriteFile(filepath.Join(work, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	nginx := exec.Command("nginx", "-c", filepath.Join(work, "nginx.conf"), "-p", work, "-g", "daemon off;")
	nginx.Stderr = os.Stderr
	if err := nginx.Start(); err != nil {
		return err
	}
	// SIGTERM, not SIGKILL: killing the master would leave its workers running.
	defer func() { _ = nginx.Process.Signal(syscall.SIGTERM); _ = nginx.Wait() }()

	// Caddy as a plain reverse proxy, set up as nginx is: the exchanged token and the agent's
	// address as Host (it adds the X-Forwarded-* headers itself), every write flushed (SSE).
	caddyAddr := freeAddr()
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	log default {
		output discard
	}
}
http://%[1]s {
	reverse_proxy %[2]s {
		header_up Host %[2]s
		header_up Authorization "Bearer %[3]s"
		flush_interval -1
	}
}
`, caddyAddr, be, exchangedToken)
	if err := os.WriteFile(filepath.Join(work, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		return err
	}
	caddy := exec.Command("caddy", "run", "--config", filepath.Join(work, "Caddyfile"), "--adapter", "caddyfile")
	caddy.Env = append(os.Environ(), "HOME="+work, "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work)
	caddy.Stderr = io.Discard
	if err := caddy.Start(); err != nil {
		return err
	}
	defer func() { _ = caddy.Process.Kill(); _ = caddy.Wait() }()

	type target struct {
		name, url, auth string
		pid             int // the proxy whose CPU time is measured (with its children)
	}
	targets := []target{
		{"direct", "http://" + be + "/", "", 0},
		{"nginx", "http://" + nginxAddr + "/a2a/bench/agent", "Bearer " + token, nginx.Process.Pid},
		{"caddy", "http://" + caddyAddr + "/a2a/bench/agent", "Bearer " + token, caddy.Process.Pid},
		{"kagenti-router", "http://" + routerAddr + "/a2a/bench/agent", "Bearer " + token, router.Process.Pid},
	}
	for _, t := range targets {
		if err := waitUp(t.url, t.auth); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	// inTurns is the order the targets run in a round: direct first, then the proxies in an
	// order that rotates, so that none always runs right after another.
	inTurns := func(targets []target, round int) []target {
		order := []target{targets[0]}
		for i := range len(targets) - 1 {
			order = append(order, targets[1+(i+round)%(len(targets)-1)])
		}
		return order
	}
	type row struct {
		rps                float64
		cpuPerRequest      time.Duration
		idle               float64 // the machine's idle share during the run
		p50, p99, first    time.Duration
		p50first, p99first time.Duration
		// added p50 and p99: the median over the latency rounds of the difference to the
		// direct run of the same round.
		added50, added99 time.Duration
	}
	rows := map[string]row{}
	// Requests/s: the targets take turns, round after round, and each keeps its median round,
	// so that a burst of load from elsewhere on the machine does not decide the comparison.
	// The router/nginx ratio is taken within each round (the two ran seconds apart, under the
	// same load from elsewhere) and its median reported.
	samples := map[string][]row{}
	var ratios, caddyRatios []float64
	// Each target's wrk script, written once.
	scripts := map[string]string{}
	for _, t := range targets {
		script := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", sendBody)
		if t.auth != "" {
			script += fmt.Sprintf("wrk.headers[\"Authorization\"] = %q\n", t.auth)
		}
		scripts[t.name] = filepath.Join(work, t.name+".lua")
		if err := os.WriteFile(scripts[t.name], []byte(script), 0o644); err != nil {
			return err
		}
	}
	// load runs wrk against a target and measures its requests/s and the proxy's CPU time.
	load := func(name, url string, pid int, length time.Duration) (row, error) {
		cpu0 := cpuTime(pid)
		busy0, total0 := machineCPU()
		out, err := exec.Command("wrk", "-t2", "-c64", "-d"+length.String(), "-s", scripts[name], url).CombinedOutput()
		cpuUsed := cpuTime(pid) - cpu0
		busy1, total1 := machineCPU()
		if err != nil {
			return row{}, fmt.Errorf("wrk %s: %w\n%s", name, err, out)
		}
		m := requestsPerSecond.FindSubmatch(out)
		if m == nil || strings.Contains(string(out), "Non-2xx") {
			return row{}, fmt.Errorf("wrk %s: unexpected output\n%s", name, out)
		}
		r := row{}
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
		if pid != 0 && r.rps > 0 {
			r.cpuPerRequest = time.Duration(float64(cpuUsed) / (r.rps * length.Seconds()))
		}
		if total1 > total0 {
			r.idle = 1 - float64(busy1-busy0)/float64(total1-total0)
		}
		return r, nil
	}
	for round := range rounds {
		got := map[string]row{}
		order := inTurns(targets, round)
		for _, t := range order {
			r, err := load(t.name, t.url, t.pid, roundLength)
			if err != nil {
				return err
			}
			samples[t.name] = append(samples[t.name], r)
			got[t.name] = r
		}
		ratios = append(ratios, got["kagenti-router"].rps/got["nginx"].rps)
		caddyRatios = append(caddyRatios, got["kagenti-router"].rps/got["caddy"].rps)
	}
	if profile != "" {
		// A run of its own, not counted: the profiler's cost stays out of the figures.
		k := targets[len(targets)-1]
		cpu := make(chan error, 1)
		go func() {
			cpu <- saveProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(duration.Seconds())-1), profile+".cpu")
		}()
		if _, err := load(k.name, k.url, k.pid, duration); err != nil {
			return err
		}
		if err := <-cpu; err != nil {
			return err
		}
	}
	// Latency: rounds as for requests/s, the targets taking turns; a proxy's added latency is
	// taken within each round, against the direct run that opens the round (5 to 15 s before
	// it), and its median reported (a single run swung from 0.6 to 1.6 ms with the machine's
	// other load).
	p50s, p99s, added50s, added99s := map[string][]time.Duration{}, map[string][]time.Duration{}, map[string][]time.Duration{}, map[string][]time.Duration{}
	for round := range latencyRounds {
		order := inTurns(targets, round)
		got50, got99 := map[string]time.Duration{}, map[string]time.Duration{}
		for _, t := range order {
			p50, p99, err := openLoop(t.url, t.auth, rate, duration)
			if err != nil {
				return fmt.Errorf("%s latency: %w", t.name, err)
			}
			got50[t.name], got99[t.name] = p50, p99
			p50s[t.name], p99s[t.name] = append(p50s[t.name], p50), append(p99s[t.name], p99)
		}
		for _, t := range targets {
			added50s[t.name] = append(added50s[t.name], got50[t.name]-got50["direct"])
			added99s[t.name] = append(added99s[t.name], got99[t.name]-got99["direct"])
		}
	}
	for _, t := range targets {
		rs := samples[t.name]
		sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
		r := rs[len(rs)/2]
		r.p50, r.p99 = median(p50s[t.name]), median(p99s[t.name])
		r.added50, r.added99 = median(added50s[t.name]), median(added99s[t.name])
		var err error
		r.p50first, r.p99first, err = firstEvent(t.url, t.auth, 200)
		if err != nil {
			return fmt.Errorf("%s first event: %w", t.name, err)
		}
		rows[t.name] = r
	}
	idle, err := rss(router.Process.Pid)
	if err != nil {
		return err
	}
	streaming, err := openStreams("http://"+routerAddr+"/a2a/bench/agent", "Bearer "+token, streams, router.Process.Pid, "http://"+debugAddr, profile)
	if err != nil {
		return err
	}
	// Caddy, Go's net/http reverse proxy, holding the same streams: what the stack costs a proxy
	// that does nothing else.
	caddyIdle, err := rss(caddy.Process.Pid)
	if err != nil {
		return err
	}
	caddyStreaming, err := openStreams("http://"+caddyAddr+"/a2a/bench/agent", "Bearer "+token, streams, caddy.Process.Pid, "", "")
	if err != nil {
		return fmt.Errorf("caddy: %w", err)
	}
	unauthenticated, err := slowBodies(routerAddr, "", 50, router.Process.Pid)
	if err != nil {
		return err
	}
	authenticated, err := slowBodies(routerAddr, "Bearer "+token, 50, router.Process.Pid)
	if err != nil {
		return err
	}
	d, n, c, k := rows["direct"], rows["nginx"], rows["caddy"], rows["kagenti-router"]
	fmt.Printf("\nkagenti-router-bench: backend on loopback; wrk -t2 -c64 -d%s for requests/s (median of %d rounds taken in turns); open loop at %d req/s for %s for latency (medians of %d rounds taken in turns); 200 streams for first event\n\n", roundLength, rounds, rate, duration, latencyRounds)
	fmt.Println("| path | requests/s | proxy CPU / request | machine idle | p50 message/send | p99 message/send | added p50 | added p99 | first event p50 | first event p99 |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range []struct {
		name string
		r    row
	}{{"direct", d}, {"nginx", n}, {"caddy", c}, {"kagenti-router (JWT validated, token exchanged)", k}} {
		cpu := "–"
		if x.r.cpuPerRequest > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(x.r.cpuPerRequest.Nanoseconds())/1000)
		}
		fmt.Printf("| %s | %.0f | %s | %.0f%% | %s | %s | %s | %s | %s | %s |\n", x.name, x.r.rps, cpu, 100*x.r.idle, ms(x.r.p50), ms(x.r.p99), ms(x.r.added50), ms(x.r.added99), ms(x.r.p50first), ms(x.r.p99first))
	}
	fmt.Println()
	for _, t := range targets[1:] {
		var each []string
		for _, a := range added99s[t.name] {
			each = append(each, ms(a))
		}
		fmt.Printf("%s added p99 by latency round, in order: %s\n", t.name, strings.Join(each, ", "))
	}
	for _, t := range targets {
		var each []string
		for _, r := range samples[t.name] {
			each = append(each, fmt.Sprintf("%.0f", r.rps))
		}
		fmt.Printf("%s requests/s by round (sorted): %s\n", t.name, strings.Join(each, ", "))
	}
	ratioMedian := func(name string, rs []float64) float64 {
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.2f", r))
		}
		fmt.Printf("router / %s requests/s by round, in order: %s\n", name, strings.Join(each, ", "))
		return median(rs)
	}
	vsNginx, vsCaddy := ratioMedian("nginx", ratios), ratioMedian("caddy", caddyRatios)
	fmt.Printf("\nrouter / nginx requests/s: %.2f (median of the rounds' ratios; of the medians above: %.2f)\n", vsNginx, k.rps/n.rps)
	fmt.Printf("router / caddy requests/s: %.2f (median of the rounds' ratios; of the medians above: %.2f)\n", vsCaddy, k.rps/c.rps)
	fmt.Printf("kagenti-router RSS after the runs above: %s\nkagenti-router RSS with %d open streams: %s\n", idle, streams, streaming)
	fmt.Printf("caddy RSS after the runs above: %s\ncaddy RSS with %d open streams: %s\n", caddyIdle, streams, caddyStreaming)
	fmt.Printf("kagenti-router RSS added per connection holding all but the last byte of a 4 MiB body (50 connections): unauthenticated JSON-RPC %.0f KiB, authenticated JSON-RPC %.0f KiB\n", unauthenticated, authenticated)
	return nil
}

var requestsPerSecond = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// median is the median of xs (the upper one of an even count).
func median[T cmp.Ordered](xs []T) T {
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func post(client *http.Client, url, auth, body string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return client.Do(req)
}

// rpcFailed tells whether a JSON-RPC answer is an error: the router answers its own with HTTP
// 200, as the JSON-RPC binding expects, so the status alone does not tell.
func rpcFailed(answer []byte) bool { return bytes.Contains(answer, []byte(`"error":`)) }

func waitUp(url, auth string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := post(http.DefaultClient, url, auth, sendBody)
		if err == nil {
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && !rpcFailed(answer) {
				return nil
			}
			return fmt.Errorf("status %d: %s", resp.StatusCode, answer)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not up")
}

// openLoop sends at a fixed rate regardless of answers (no coordinated omission) and returns
// the p50 and p99 latency.
func openLoop(url, auth string, rate int, d time.Duration) (time.Duration, time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 512}, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	var failures int
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		next := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(next))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := post(client, url, auth, sendBody)
			var answer []byte
			if err == nil {
				answer, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			el := time.Since(t0)
			mu.Lock()
			if err != nil || resp.StatusCode != 200 || rpcFailed(answer) {
				failures++
			} else {
				lat = append(lat, el)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failures > 0 {
		return 0, 0, fmt.Errorf("%d failed requests", failures)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// firstEvent measures the time to the first SSE event of message/stream.
func firstEvent(url, auth string, n int) (time.Duration, time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var lat []time.Duration
	for range n {
		t0 := time.Now()
		resp, err := post(client, url, auth, streamBody)
		if err != nil {
			return 0, 0, err
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		lat = append(lat, time.Since(t0))
		resp.Body.Close()
		if err != nil || !strings.HasPrefix(line, "data:") {
			return 0, 0, fmt.Errorf("no event: %q %v", line, err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// openStreams holds n streams open through the router and returns its RSS (MiB).
func openStreams(url, auth string, n, pid int, debugURL, profile string) (memory, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var closing sync.WaitGroup
	defer func() {
		// The streams are closed before the next run opens its own: with thousands of them the
		// descriptors of both would not fit under the limit.
		cancel()
		closing.Wait()
		time.Sleep(time.Second) // for the backend and the proxy to see the closes
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(streamBody))
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err == nil && (resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, "data:")) {
				err = fmt.Errorf("status %d, first line %q", resp.StatusCode, line)
			}
			if err != nil {
				resp.Body.Close()
				errs <- err
				return
			}
			closing.Add(1)
			go func() { defer closing.Done(); <-ctx.Done(); resp.Body.Close() }()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return memory{}, fmt.Errorf("open stream: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	if profile != "" {
		// After a collection (gc=1): what the streams hold, not the garbage of the runs before.
		if err := saveProfile(debugURL+"/debug/pprof/heap?gc=1", profile+".heap"); err != nil {
			return memory{}, err
		}
		// The text form ends with the runtime's memory statistics (stacks, idle heap, ...).
		if err := saveProfile(debugURL+"/debug/pprof/heap?debug=1", profile+".heap.txt"); err != nil {
			return memory{}, err
		}
		// The goroutines a stream holds, and where each waits.
		if err := saveProfile(debugURL+"/debug/pprof/goroutine?debug=1", profile+".goroutines"); err != nil {
			return memory{}, err
		}
	}
	return rss(pid)
}

// slowBodies opens n connections that each send a JSON-RPC call's headers and all but the last
// byte of a 4 MiB body, then stall, and returns the router's RSS added per connection (KiB)
// while they hold. An unauthenticated call is refused after at most 16 KiB of its body is read;
// an authorized one is read whole (it must be parsed), so it holds up to the body limit.
func slowBodies(addr, auth string, n, pid int) (float64, error) {
	before, err := settledRSS(pid)
	if err != nil {
		return 0, err
	}
	const size = 4 << 20
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
		head := "POST /a2a/bench/agent HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n"
		if auth != "" {
			head += "Authorization: " + auth + "\r\n"
		}
		if _, err := io.WriteString(c, head+"\r\n"); err != nil {
			return 0, err
		}
		// Written from a goroutine: a router that stops reading leaves the rest in the kernel's
		// buffers, and the write blocks.
		go func(c net.Conn) {
			for sent := 0; sent < size-1; {
				k := min(len(chunk), size-1-sent)
				if _, err := c.Write(chunk[:k]); err != nil {
					return
				}
				sent += k
			}
		}(c)
	}
	time.Sleep(3 * time.Second)
	after, err := rss(pid)
	if err != nil {
		return 0, err
	}
	return (after.total - before.total) * 1024 / float64(n), nil
}

// settledRSS waits for the router's RSS to stop falling (the Go runtime returns the memory of
// calls just ended over a few seconds) and returns it.
func settledRSS(pid int) (memory, error) {
	last, err := rss(pid)
	for range 20 {
		if err != nil {
			return last, err
		}
		time.Sleep(time.Second)
		var now memory
		now, err = rss(pid)
		if err == nil && last.total-now.total < 0.25 {
			return now, nil
		}
		last = now
	}
	return last, err
}

// memory is a process's resident set: anonymous (heap, stacks) and file-backed (the pages of
// its binary it has touched, shared with the page cache and reclaimable).
type memory struct{ total, anon, file float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (anonymous %.1f MiB, file-backed %.1f MiB)", m.total, m.anon, m.file)
}

func rss(pid int) (memory, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	field := func(name string) float64 {
		m := regexp.MustCompile(name + `:\s+(\d+) kB`).FindSubmatch(status)
		if m == nil {
			return 0
		}
		kb, _ := strconv.ParseFloat(string(m[1]), 64)
		return kb / 1024
	}
	return memory{total: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile")}, nil
}

// saveProfile fetches a profile from the router's debug listener.
func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// machineCPU is the machine's CPU time so far, busy and in all, in seconds (/proc/stat, read
// with procfs); zero when it cannot be read.
func machineCPU() (busy, total float64) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, 0
	}
	stat, err := fs.Stat()
	if err != nil {
		return 0, 0
	}
	c := stat.CPUTotal // guest time is counted in user already
	busy = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return busy, busy + c.Idle + c.Iowait
}

// cpuTime is the user and system CPU time a process and its children (nginx's workers) have
// used so far; 0 for pid 0.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	pids := []int{pid}
	if out, err := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
	}
	var ticks int64
	for _, p := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command (which may contain spaces) start after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 12 {
			utime, _ := strconv.ParseInt(fields[11], 10, 64)
			stime, _ := strconv.ParseInt(fields[12], 10, 64)
			ticks += utime + stime
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
