package httpapi

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// RequestObserver is told of every answered request, for metrics (internal/telemetry
// implements it). route is the matched route pattern, "unmatched" when none matched; it is
// never the path, so that it stays a bounded label. method is as the caller sent it.
type RequestObserver interface {
	ObserveRequest(method, route string, status int, took time.Duration)
}

type nopRequestObserver struct{}

func (nopRequestObserver) ObserveRequest(string, string, int, time.Duration) {}

// nameSpan names the request's server span after its route pattern, once the router has
// matched it ("POST /batches/{id}/close"), and records the pattern and the request id.
func nameSpan(r *http.Request, pattern string) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		method = "HTTP" // a caller may send any token as a method: keep span names bounded
	}
	span.SetName(method + " " + pattern)
	span.SetAttributes(attribute.String("http.route", pattern),
		attribute.String("gateway.request_id", requestIDFrom(r.Context())))
}
