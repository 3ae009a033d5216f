package router

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	openStreams    prometheus.Gauge
	upstreamErrors *prometheus.CounterVec
	exchanges      *prometheus.CounterVec
	rpcMethods     *prometheus.CounterVec
	translated     *prometheus.CounterVec
	cardFailures   *prometheus.CounterVec

	// The children of requests and latency, resolved once: label lookups hash on every call.
	requestCounters sync.Map // requestKey → prometheus.Counter
	methodCounters  sync.Map // A2A method → prometheus.Counter (the methods are a fixed set)
	latencyByAPI    map[string]prometheus.Observer
}

type requestKey struct {
	api    string
	status int
}

var apis = []string{"a2a", "acp", "agents", "mcp"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_requests_total",
			Help: "Requests by API (a2a, acp, catalog, other) and status code."}, []string{"api", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kagenti_router_request_duration_seconds",
			Help: "Request duration by API (streams: until the stream ends).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}, []string{"api"}),
		openStreams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kagenti_router_open_streams", Help: "SSE streams being relayed."}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_upstream_errors_total",
			Help: "Failed upstream calls by route."}, []string{"route"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_token_exchanges_total",
			Help: "Token exchanges by result (ok, refused, error); cached tokens are not counted."}, []string{"result"}),
		rpcMethods: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_a2a_methods_total",
			Help: "A2A JSON-RPC calls forwarded, by method."}, []string{"method"}),
		translated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_a2a_translated_total",
			Help: "A2A JSON-RPC calls translated between protocol versions, by the client's version and the agent's."}, []string{"client", "agent"}),
		cardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kagenti_router_card_verification_failures_total",
			Help: "Agent cards that did not verify, by reason (unsigned, bad_signature, wrong_identity, mismatch, no_identity, unreachable)."}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.openStreams, m.upstreamErrors, m.exchanges, m.rpcMethods, m.translated, m.cardFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.latencyByAPI = map[string]prometheus.Observer{"other": m.latency.WithLabelValues("other")}
	for _, api := range apis {
		m.latencyByAPI[api] = m.latency.WithLabelValues(api)
	}
	return m, nil
}

func (m *metrics) observe(path string, status int, d time.Duration) {
	api := "other"
	for _, p := range apis {
		if len(path) > len(p) && path[0] == '/' && strings.HasPrefix(path[1:], p) {
			api = p
		}
	}
	child(&m.requestCounters, requestKey{api, status}, func() prometheus.Counter {
		return m.requests.WithLabelValues(api, strconv.Itoa(status))
	}).Inc()
	m.latencyByAPI[api].Observe(d.Seconds())
}

// method is the counter of an A2A method's calls.
func (m *metrics) method(name string) prometheus.Counter {
	return child(&m.methodCounters, name, func() prometheus.Counter { return m.rpcMethods.WithLabelValues(name) })
}

// child returns the counter cached under key, resolving it with resolve the first time.
func child[K comparable](cache *sync.Map, key K, resolve func() prometheus.Counter) prometheus.Counter {
	c, ok := cache.Load(key)
	if !ok {
		c, _ = cache.LoadOrStore(key, resolve())
	}
	return c.(prometheus.Counter)
}
