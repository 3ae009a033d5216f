package router

import (
	"net/http"
	"strconv"
	"strings"
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
}

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
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.openStreams, m.upstreamErrors, m.exchanges, m.rpcMethods} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(r *http.Request, status int, d time.Duration) {
	api := "other"
	for _, p := range []string{"a2a", "acp", "agents", "mcp"} {
		if strings.HasPrefix(r.URL.Path, "/"+p) {
			api = p
		}
	}
	m.requests.WithLabelValues(api, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(api).Observe(d.Seconds())
}
