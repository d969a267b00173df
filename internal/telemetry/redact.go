package telemetry

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// redactingExporter hides, in the spans of calls to Concur, the encrypted part of Concur's
// URLs (a Batch-URL's key, a File-Url's job key): it never leaves the gateway, not even
// for the tracing backend.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = s
		if s.SpanKind() == trace.SpanKindClient {
			out[i] = redactedSpan{s}
		}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

type redactedSpan struct{ sdktrace.ReadOnlySpan }

// urlKeys are the attributes that may hold a request's URL or path.
var urlKeys = []attribute.Key{"url.full", "http.url", "url.path", "http.target"}

func (s redactedSpan) Attributes() []attribute.KeyValue {
	attrs := slices.Clone(s.ReadOnlySpan.Attributes())
	for i, kv := range attrs {
		if slices.Contains(urlKeys, kv.Key) {
			attrs[i] = attribute.String(string(kv.Key), concur.RedactURL(kv.Value.String()))
		}
	}
	return attrs
}
