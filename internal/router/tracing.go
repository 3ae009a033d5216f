package router

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// W3C trace context: a caller's traceparent continues through the router, which adds its own
// span and hands the agent a traceparent naming that span as the parent.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// startSpan continues the caller's trace (if any, read from the request's headers) with a
// server span for the request.
func (rt *Router) startSpan(ctx context.Context, headers propagation.TextMapCarrier, method, path string) (context.Context, trace.Span) {
	ctx = propagator.Extract(ctx, headers)
	return rt.tracer.Start(ctx, method+" "+path, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.path", path)))
}

func endSpan(span trace.Span, status int) {
	if span.IsRecording() { // attributes allocate, recorded or not
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}

// injectTrace puts the current span's context on an outgoing request.
func injectTrace(r *http.Request) {
	propagator.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
}
