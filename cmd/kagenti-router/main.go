// Command kagenti-router is the Kagenti runtime router: it discovers agents and tools in the
// cluster, serves their cards, and proxies A2A and ACP traffic to them with token validation and
// exchange. See internal/router. `kagenti-router card-signer` is the platform's card signer, run
// beside an agent that does not sign its own card (cardsigner.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"k8s.io/client-go/dynamic"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/kubeconfig"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
)

func main() {
	// The level is read before the other flags so that their own messages obey it.
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if len(os.Args) > 1 && os.Args[1] == contract.CardSignerCommand {
		if err := runCardSigner(log, os.Args[2:]); err != nil {
			log.Error("kagenti-router card-signer failed", "error", err.Error())
			os.Exit(1)
		}
		return
	}
	if err := run(log, level); err != nil {
		log.Error("kagenti-router failed", "error", err.Error())
		os.Exit(1)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// applyMemoryLimit keeps the Go heap under 90% of the container's memory limit
// (KAGENTI_ROUTER_MEMORY_LIMIT, in bytes, from the Deployment's resourceFieldRef), unless
// GOMEMLIMIT says otherwise.
func applyMemoryLimit(log *slog.Logger) {
	v := os.Getenv("KAGENTI_ROUTER_MEMORY_LIMIT")
	if v == "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		log.Warn("ignoring KAGENTI_ROUTER_MEMORY_LIMIT: not a byte count", "value", v)
		return
	}
	debug.SetMemoryLimit(limit / 10 * 9)
}

func run(log *slog.Logger, level *slog.LevelVar) error {
	listen := flag.String("listen", env("KAGENTI_ROUTER_LISTEN", ":8080"), "address to serve on")
	public := flag.String("public-url", env("KAGENTI_ROUTER_PUBLIC_URL", "http://localhost:8080"), "URL clients reach the router at (cards are rewritten to it)")
	labelDomain := flag.String("label-domain", env("KAGENTI_LABEL_DOMAIN", "kagenti.io"), "label and annotation domain")
	namespaces := flag.String("namespaces", env("KAGENTI_ROUTER_NAMESPACES", ""), "comma-separated namespaces to serve (default: all)")
	kubeconfig := flag.String("kubeconfig", env("KUBECONFIG", ""), "kubeconfig (default: in-cluster)")
	issuer := flag.String("issuer", env("KAGENTI_ROUTER_ISSUER", ""), "trusted Keycloak issuer (realm URL); empty disables authentication")
	jwksURL := flag.String("jwks-url", env("KAGENTI_ROUTER_JWKS_URL", ""), "JWKS of the issuer (default: <issuer>/protocol/openid-connect/certs)")
	audience := flag.String("audience", env("KAGENTI_ROUTER_AUDIENCE", ""), "audience caller tokens must carry (the router's client id)")
	trustDomain := flag.String("spiffe-trust-domain", env("KAGENTI_ROUTER_TRUST_DOMAIN", ""), "also accept JWT-SVIDs of this trust domain")
	bundleURL := flag.String("spiffe-jwks-url", env("KAGENTI_ROUTER_SPIFFE_JWKS_URL", ""), "JWKS of the trust domain's JWT-SVID keys")
	tokenURL := flag.String("token-url", env("KAGENTI_ROUTER_TOKEN_URL", ""), "token endpoint for exchanges (default: <issuer>/protocol/openid-connect/token)")
	clientID := flag.String("client-id", env("KAGENTI_ROUTER_CLIENT_ID", ""), "the router's Keycloak client id")
	secretFile := flag.String("client-secret-file", env("KAGENTI_ROUTER_CLIENT_SECRET_FILE", ""), "file holding the router's client secret (never a flag value)")
	spiffeSocket := flag.String("spiffe-socket", env("SPIFFE_ENDPOINT_SOCKET", ""), "SPIFFE Workload API socket: authenticate to Keycloak with the router's JWT-SVID instead of a secret")
	timeout := flag.Duration("upstream-timeout", 2*time.Minute, "timeout of a non-streaming call to an agent")
	maxHeader := flag.Int("max-header-bytes", 8<<10, "largest request line and headers accepted (431 above)")
	drain := flag.Duration("drain", 20*time.Second, "how long to wait for in-flight requests on SIGTERM")
	drainDelay := flag.Duration("drain-delay", 5*time.Second, "on SIGTERM, how long to keep accepting requests with readiness failing before the listener closes, so that load balancers and Service endpoints stop sending first (a second signal skips it)")
	debugListen := flag.String("debug-listen", env("KAGENTI_ROUTER_DEBUG_LISTEN", ""), "serve Go's profiler (/debug/pprof) on this address, e.g. 127.0.0.1:6060 (off when empty; never expose it)")
	routesFile := flag.String("routes-file", env("KAGENTI_ROUTER_ROUTES_FILE", ""), "serve the routes of this JSON file instead of discovering them in Kubernetes")
	issuerCA := flag.String("issuer-ca-file", env("KAGENTI_ROUTER_ISSUER_CA_FILE", ""), "PEM file of a CA to trust, besides the system's, for the issuer's keys and token endpoint (a Keycloak behind a private CA)")
	cardVerification := flag.String("card-verification", env("KAGENTI_ROUTER_CARD_VERIFICATION", contract.CardVerificationOff),
		"off, permissive (verify agents' card signatures against the SPIRE trust bundle, count and log failures) or strict "+
			"(neither serve nor call an agent whose card does not verify); needs -spiffe-socket")
	logLevel := flag.String("log-level", env("KAGENTI_ROUTER_LOG_LEVEL", "info"), "log level: debug, info, warn or error")
	flag.Parse()
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	applyMemoryLimit(log)

	registry := router.NewRegistry()
	rcfg := router.Config{PublicURL: *public, Registry: registry, Timeout: *timeout, MaxHeaderBytes: *maxHeader, Log: log}
	if *issuer != "" {
		if *audience == "" {
			return errors.New("-audience is required with -issuer: tokens must be addressed to the router")
		}
		if *jwksURL == "" {
			*jwksURL = strings.TrimRight(*issuer, "/") + "/protocol/openid-connect/certs"
		}
		issuerClient, err := issuerHTTPClient(*issuerCA)
		if err != nil {
			return err
		}
		v := &router.Verifier{HTTP: issuerClient, Issuers: []router.TrustedIssuer{{Issuer: *issuer, JWKSURL: *jwksURL, Audiences: []string{*audience}}}}
		if *trustDomain != "" {
			v.Issuers = append(v.Issuers, router.TrustedIssuer{TrustDomain: *trustDomain, JWKSURL: *bundleURL, Audiences: []string{*audience}})
		}
		rcfg.Verifier = v
		if *clientID != "" {
			if *tokenURL == "" {
				*tokenURL = strings.TrimRight(*issuer, "/") + "/protocol/openid-connect/token"
			}
			x := &router.Exchanger{HTTP: issuerClient, TokenURL: *tokenURL, ClientID: *clientID}
			if *spiffeSocket != "" && *secretFile == "" {
				x.Assertion = router.SPIFFEAssertion(*spiffeSocket, *issuer, *clientID)
			} else {
				secret, err := os.ReadFile(*secretFile)
				if err != nil {
					return fmt.Errorf("read -client-secret-file (or give -spiffe-socket): %w", err)
				}
				x.ClientSecret = strings.TrimSpace(string(secret))
			}
			rcfg.Exchanger = x
		}
	} else {
		log.Warn("authentication is off: no -issuer given")
	}
	// OpenTelemetry: spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the
	// traces-specific variable) is set; traceparent propagates either way.
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracehttp.New(context.Background())
		if err != nil {
			return fmt.Errorf("OTLP exporter: %w", err)
		}
		res := resource.NewSchemaless(attribute.String("service.name", env("OTEL_SERVICE_NAME", "kagenti-router")))
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tp.Shutdown(ctx)
		}()
		rcfg.TracerProvider = tp
	}
	rcfg.CardVerification = *cardVerification
	if *cardVerification != contract.CardVerificationOff && *spiffeSocket != "" {
		// The trust bundle (and its updates) from the Workload API; waits for the router's
		// own SVID, which SPIRE issues within seconds of the pod's start.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+strings.TrimPrefix(*spiffeSocket, "unix://"))))
		cancel()
		if err != nil {
			return fmt.Errorf("the SPIRE trust bundle for -card-verification: %w", err)
		}
		defer src.Close()
		rcfg.TrustBundles = src
	}
	rt, err := router.New(rcfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *routesFile != "" {
		data, err := os.ReadFile(*routesFile)
		if err != nil {
			return err
		}
		if err := registry.LoadStatic(data); err != nil {
			return err
		}
	} else if err := startDiscovery(ctx, log, registry, *kubeconfig, *labelDomain, *namespaces); err != nil {
		return err
	}
	if *debugListen != "" {
		debug := &http.Server{Addr: *debugListen, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { log.Warn("profiler stopped", "error", debug.ListenAndServe().Error()) }()
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- rt.Serve(l) }()
	log.Info("kagenti-router serving", "listen", *listen, "public_url", *public)
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// Graceful drain: fail readiness and keep serving while load balancers and Service endpoints
	// catch up, then close the listener and let in-flight requests (and streams) finish.
	rt.Drain()
	log.Info("draining", "delay", drainDelay.String(), "timeout", drain.String())
	again, stopAgain := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stopAgain()
	select {
	case <-time.After(*drainDelay):
	case <-again.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := rt.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// startDiscovery watches the cluster and returns once the first listing is in the registry.
func startDiscovery(ctx context.Context, log *slog.Logger, registry *router.Registry, kubeconfigPath, labelDomain, namespaces string) error {
	cfg, err := kubeconfig.RESTConfig(kubeconfig.Config{ConfigPath: kubeconfigPath})
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var ns []string
	if namespaces != "" {
		ns = strings.Split(namespaces, ",")
	}
	disc := &router.Discovery{Client: client, Keys: contract.NewKeys(labelDomain), Namespaces: ns, Registry: registry, Log: log}
	synced := make(chan struct{})
	discErr := make(chan error, 1)
	go func() { discErr <- disc.Run(ctx, synced) }()
	select {
	case <-synced:
		return nil
	case err := <-discErr:
		return err
	}
}

// pprofMux serves Go's profiler on its own mux, so that it is never on the router's listener.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// issuerHTTPClient is the client of the issuer's endpoints: the system's roots, plus a CA from
// caFile when given. nil (the packages' default client) without one.
func issuerHTTPClient(caFile string) (*http.Client, error) {
	client, err := keycloak.HTTPClientTrustingCAFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-issuer-ca-file: %w", err)
	}
	return client, nil
}
