package config

import (
	"net/url"
	"strings"
)

// tracing reads the OpenTelemetry variables the gateway acts on (the SDK reads the other
// OTEL_* variables itself: headers, compression, time-out, OTEL_BSP_*, the sampler).
func (l *loader) tracing(c *Config) {
	if strings.EqualFold(l.str("OTEL_SDK_DISABLED", ""), "true") {
		return
	}
	switch exp := strings.ToLower(l.str("OTEL_TRACES_EXPORTER", "otlp")); exp {
	case "otlp":
	case "none":
		return
	default:
		l.fail("OTEL_TRACES_EXPORTER must be otlp or none (got " + exp + ")")
		return
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := l.str(name, "http/protobuf"); p != "http/protobuf" {
			l.fail(name + " must be http/protobuf, the only OTLP protocol the gateway speaks")
		}
	}
	name, endpoint := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", l.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if endpoint == "" {
		name, endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", l.str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		if endpoint != "" {
			endpoint = strings.TrimRight(endpoint, "/") + "/v1/traces"
		}
	}
	if u := l.httpURL(name, endpoint, false); u != nil {
		c.TracesEndpoint = endpoint
	}
}

// redactURL is u without its query, for the log (a collector's URL may carry a key in it).
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || u == "" {
		return ""
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}
