package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// The router is one net/http stack: an http.Server reads client connections (a goroutine each),
// Router.ServeHTTP runs every request through the same chain (chain.go), each route's handler
// runs its stages (route → authenticate → authorize → parse → exchange → proxy, stages.go), and
// one httputil.ReverseProxy with one http.Transport calls the agents and tools (proxy.go). One
// mapper shapes every error for its API (errors.go).

// Config configures a Router.
type Config struct {
	// PublicURL is where clients reach the router; agent cards are rewritten to it.
	PublicURL string
	Registry  *Registry
	// Verifier authenticates callers; nil disables authentication (local development only).
	Verifier *Verifier
	// Exchanger trades the caller's token for one addressed to the callee; nil forwards no
	// token at all.
	Exchanger *Exchanger
	// Timeout bounds a non-streaming call to a backend (default 2m: LLM answers are slow).
	Timeout time.Duration
	// MaxBodyBytes limits request bodies (default 4 MiB). Bodies are streamed to the agent; the
	// only ones the router holds whole are those it must read: a JSON-RPC envelope (after the
	// caller is authorized) and an ACP run request (after the caller is authenticated).
	MaxBodyBytes int64
	// MaxHeaderBytes limits a request's line and headers together (default 8 KiB): 431 above.
	MaxHeaderBytes int
	// ReadTimeout bounds the receipt of a request, headers and body (default 30s: 408 after);
	// IdleTimeout closes a kept-alive client connection with no request (default 90s).
	ReadTimeout, IdleTimeout time.Duration
	Log                      *slog.Logger
	// Registerer receives the metrics (a new registry when nil).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// TracerProvider receives the router's spans (a no-op one when nil: traceparent still
	// propagates).
	TracerProvider trace.TracerProvider
	// CardVerification is off (the default), permissive (A2A agents' cards are verified, and
	// failures counted and logged) or strict (an agent whose card does not verify is neither
	// served nor called). TrustBundles verify the signatures: the SPIRE trust bundle.
	CardVerification string
	TrustBundles     x509bundle.Source
}

// Limits of the connections to agents: an idle one closes below the 5 s keep-alive of uvicorn
// (most Python agents), so that a request seldom lands on a connection the agent is closing (a
// SendMessage there is not retried); an answer's headers must fit in 8 KiB.
const (
	upstreamIdleTimeout    = 4 * time.Second
	maxUpstreamHeaderBytes = 8 << 10
)

// Router is the HTTP handler and server of kagenti-router.
type Router struct {
	cfg    Config
	mux    *http.ServeMux
	server *http.Server
	// transport makes every call to agents and tools.
	transport *http.Transport
	// agents is transport ejecting failing agent endpoints: every call to an agent or tool
	// goes through it (built once; agentTransport adds retries per call).
	agents   http.RoundTripper
	metrics  *metrics
	cards    *cardVerifier
	runs     *runIndex
	balancer *balancer
	tracer   trace.Tracer
	// draining makes /readyz fail so that load balancers stop sending new requests.
	draining chan struct{}
	once     sync.Once
}

// New provisions a router: defaults, metrics, the upstream transport, routes and the server.
func New(cfg Config) (*Router, error) {
	if cfg.Registry == nil {
		return nil, errors.New("router: a registry is required")
	}
	if _, err := url.Parse(cfg.PublicURL); err != nil || cfg.PublicURL == "" {
		return nil, fmt.Errorf("router: public URL %q is not a URL", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 8 << 10
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	rt := &Router{
		cfg:      cfg,
		tracer:   cfg.TracerProvider.Tracer("github.com/kagenti/terraform-provider-kagenti/internal/router"),
		metrics:  m,
		runs:     newRunIndex(),
		balancer: newBalancer(10 * time.Second),
		transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        upstreamIdleTimeout,
			ResponseHeaderTimeout:  cfg.Timeout,
			MaxResponseHeaderBytes: maxUpstreamHeaderBytes,
			ForceAttemptHTTP2:      false,
			// Each upstream connection holds a read and a write buffer while it lives, a
			// stream's for the stream's whole life: 2 KiB each (net/http's default is 4 KiB)
			// fits a request's headers and a JSON-RPC envelope, and an SSE event.
			ReadBufferSize:  2 << 10,
			WriteBufferSize: 2 << 10,
		},
		draining: make(chan struct{}),
	}
	rt.agents = &ejectingTransport{next: rt.transport, balancer: rt.balancer}
	switch cfg.CardVerification {
	case "", contract.CardVerificationOff:
	case contract.CardVerificationPermissive, contract.CardVerificationStrict:
		if cfg.TrustBundles == nil {
			return nil, fmt.Errorf("router: card verification %q needs the SPIRE trust bundle (-spiffe-socket)", cfg.CardVerification)
		}
		rt.cards = &cardVerifier{mode: cfg.CardVerification, bundles: cfg.TrustBundles, client: &http.Client{Transport: rt.agents},
			results:  map[string]cardResult{},
			failures: func(reason string) { m.cardFailures.WithLabelValues(reason).Inc() },
			log: func(route string, err error) {
				cfg.Log.Warn("agent card not verified", "route", route, "mode", cfg.CardVerification, "error", err.Error())
			}}
	default:
		return nil, fmt.Errorf("router: card verification %q is none of %s", cfg.CardVerification, strings.Join(contract.CardVerificationModes, ", "))
	}
	rt.mux = rt.routes()
	rt.server = &http.Server{
		Handler: rt,
		// The request line and headers: net/http reads up to 4 KiB beyond MaxHeaderBytes before
		// it answers 431 itself; ServeHTTP answers 431 in the API's shape above MaxHeaderBytes.
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// No WriteTimeout: a stream lasts as long as the agent keeps it open.
		ConnState:                    connState,
		ConnContext:                  withConn,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return rt, nil
}

// routes is the router's API. POST /a2a/{ns}/{name} is A2A JSON-RPC (a2a_rpc.go); below it, the
// HTTP+JSON binding.
func (rt *Router) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", rt.ready)
	if rt.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(rt.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /agents", rt.catalog)
	mux.HandleFunc("GET /a2a/{ns}/{name}/.well-known/agent-card.json", rt.card)
	mux.HandleFunc("GET /a2a/{ns}/{name}/.well-known/agent.json", rt.card)
	mux.HandleFunc("POST /a2a/{ns}/{name}", rt.a2aJSONRPC)
	mux.HandleFunc("/a2a/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		rt.fail(w, r, shapeRPC, nil, &refusal{http.StatusMethodNotAllowed, "A2A JSON-RPC takes POST"})
	})
	mux.HandleFunc("/a2a/{ns}/{name}/{rest...}", rt.a2aREST)
	mux.Handle("/mcp/{ns}", rt.mcpHandler())
	mux.HandleFunc("/tools/{ns}/{name}", rt.tool)
	mux.HandleFunc("/tools/{ns}/{name}/{rest...}", rt.tool)
	mux.HandleFunc("GET /acp/{ns}/agents", rt.acpAgents)
	mux.HandleFunc("GET /acp/{ns}/agents/{name}", rt.acpAgent)
	mux.HandleFunc("POST /acp/{ns}/runs", rt.acpCreateRun)
	mux.HandleFunc("/acp/{ns}/runs/{id}/{rest...}", rt.acpRun)
	mux.HandleFunc("/acp/{ns}/runs/{id}", rt.acpRun)
	return mux
}

// Serve serves the router on l until Shutdown, after which it returns http.ErrServerClosed.
func (rt *Router) Serve(l net.Listener) error {
	return rt.server.Serve(clientListener{l})
}

// Shutdown drains the router: /readyz fails, the listener closes, idle connections close, and
// in-flight requests and streams may finish until ctx is done (their answers close their
// connections).
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.Drain()
	return rt.server.Shutdown(ctx)
}

func (rt *Router) ready(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-rt.draining:
		http.Error(w, "draining", http.StatusServiceUnavailable)
	default:
		_, _ = io.WriteString(w, "ok\n")
	}
}

// Drain marks the router not ready; in-flight requests finish (the server's Shutdown waits).
func (rt *Router) Drain() { rt.once.Do(func() { close(rt.draining) }) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
