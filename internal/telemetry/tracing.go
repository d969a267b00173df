package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// TracingConfig says where spans go.
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP traces URL spans are POSTed to, e.g.
	// http://collector:4318/v1/traces. Empty: tracing is off (a no-op provider).
	Endpoint    string
	ServiceName string
	Version     string
}

// Tracing is the gateway's tracer provider and how to stop it.
type Tracing struct {
	// Provider makes the spans: the SDK's with an OTLP/HTTP exporter, or a no-op one.
	Provider trace.TracerProvider
	// Shutdown flushes the spans still buffered and stops the exporter; a no-op when
	// tracing is off. Call it once, after the servers stopped.
	Shutdown func(context.Context) error
}

// Enabled reports whether spans are recorded and exported.
func (t Tracing) Enabled() bool { return !off(t.Provider) }

// NewTracing returns a tracer provider exporting over OTLP/HTTP (protobuf) to
// cfg.Endpoint, in batches (OTEL_BSP_* tune them; the sampler follows OTEL_TRACES_SAMPLER,
// by default the caller's decision, else always), or a no-op provider when cfg.Endpoint is
// empty. The exporter connects lazily: an unreachable collector costs dropped spans, never
// a failed start.
func NewTracing(ctx context.Context, cfg TracingConfig) (Tracing, error) {
	if cfg.Endpoint == "" {
		return Tracing{Provider: tracenoop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return Tracing{}, err
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", cfg.Version),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(redactingExporter{exp}), sdktrace.WithResource(res))
	return Tracing{Provider: tp, Shutdown: tp.Shutdown}, nil
}

// Propagator reads W3C trace context (traceparent, tracestate) from callers.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// ServerMiddleware starts a server span for every request that skip does not exempt,
// continuing the caller's W3C trace context. The span is named by the method until the
// router renames it after the route pattern (httpapi's access log does). With tracing off
// (tp nil or no-op) there are no spans: the caller's trace context is only put in the
// request's context, so that its log lines still carry the trace id, at none of the cost
// of otelhttp's attributes.
func ServerMiddleware(tp trace.TracerProvider, skip func(*http.Request) bool) func(http.Handler) http.Handler {
	if off(tp) {
		return continueTrace(skip)
	}
	return otelhttp.NewMiddleware("gateway",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus's
		otelhttp.WithPropagators(Propagator()),
		otelhttp.WithFilter(func(r *http.Request) bool { return skip == nil || !skip(r) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	)
}

// ConcurTransport wraps base (concur.DefaultTransport) so that every request to Concur is
// a client span named "concur <operation>", a child of the span in its context. The trace
// context is not sent to Concur: a third party that joins no trace of ours.
// With tracing off (tp nil or no-op) it is base itself.
func ConcurTransport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if off(tp) {
		return base
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()), // inject nothing
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "concur " + concur.Operation(r) }),
	)
}

// off reports whether tp records nothing.
func off(tp trace.TracerProvider) bool {
	_, noop := tp.(tracenoop.TracerProvider)
	return tp == nil || noop
}

// continueTrace is ServerMiddleware with tracing off: the caller's W3C trace context, if
// any, goes into the request's context; no span is started.
func continueTrace(skip func(*http.Request) bool) func(http.Handler) http.Handler {
	prop := Propagator()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("traceparent") != "" && (skip == nil || !skip(r)) {
				r = r.WithContext(prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
			}
			next.ServeHTTP(w, r)
		})
	}
}
