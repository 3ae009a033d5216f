package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// retryTransport retries idempotent reads (GetTask, tasks/get, ...) whose connection failed
// before any answer arrived — a backend restarting or a stale keep-alive connection — up to
// attempts times with a short backoff. Nothing else is retried: a second SendMessage could act
// twice.
type retryTransport struct {
	next     http.RoundTripper
	attempts int
	body     []byte
	// reroute picks the host for a retry after a failure on failed (nil: the same host).
	reroute func(failed string) string
}

// ejectingTransport reports the failures of agents to the balancer (agentFailed), and not when
// the caller went away.
type ejectingTransport struct {
	next     http.RoundTripper
	balancer *balancer
}

func (t *ejectingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil && r.Context().Err() == nil && agentFailed(err) {
		t.balancer.fail(r.URL.Host)
	}
	return resp, err
}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var err error
	for i := 0; i < t.attempts; i++ {
		if i > 0 {
			select {
			case <-r.Context().Done():
				return nil, r.Context().Err()
			case <-time.After(time.Duration(i) * 50 * time.Millisecond):
			}
			failed := r.URL.Host
			r = r.Clone(r.Context())
			r.Body = io.NopCloser(bytes.NewReader(t.body))
			if t.reroute != nil {
				r.URL.Host = t.reroute(failed)
				r.Host = r.URL.Host
			}
		}
		var resp *http.Response
		resp, err = t.next.RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	}
	return nil, err
}
