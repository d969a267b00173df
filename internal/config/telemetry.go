package config

import (
	"net/url"
	"strings"
)

// The OpenTelemetry variables the gateway acts on (the SDK reads the other OTEL_*
// variables itself: headers, compression, time-out, OTEL_BSP_*, the sampler). They are
// checked only while tracing is on.

// tracingOff: OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func (c *Config) tracingOff() bool {
	return strings.EqualFold(c.otel.sdkDisabled, "true") || strings.EqualFold(c.otel.exporter, "none")
}

// tracesEndpoint is where spans go: the traces endpoint as is, or the base endpoint's
// /v1/traces; "" when tracing is off or the URL is not valid (then a check says so).
func (c *Config) tracesEndpoint() string {
	if c.tracingOff() || !strings.EqualFold(c.otel.exporter, "otlp") {
		return ""
	}
	endpoint := c.otel.tracesEndpoint
	if endpoint == "" && c.otel.endpoint != "" {
		endpoint = strings.TrimRight(c.otel.endpoint, "/") + "/v1/traces"
	}
	if httpURL(endpoint, false) != "" {
		return ""
	}
	return endpoint
}

func otlpEndpoint(c *Config) string {
	if c.tracingOff() || c.otel.tracesEndpoint != "" {
		return ""
	}
	return httpURL(c.otel.endpoint, false)
}

func otlpTracesEndpoint(c *Config) string {
	if c.tracingOff() {
		return ""
	}
	return httpURL(c.otel.tracesEndpoint, false)
}

func otlpExporter(c *Config) string {
	if c.tracingOff() || strings.EqualFold(c.otel.exporter, "otlp") {
		return ""
	}
	return "must be otlp or none (got " + c.otel.exporter + ")"
}

func otlpProtocol(c *Config, p string) string {
	if c.tracingOff() || p == "http/protobuf" {
		return ""
	}
	return "must be http/protobuf, the only OTLP protocol the gateway speaks"
}

// redactURL is u without its credentials, query or fragment, for the log (a collector's
// URL may carry a key in it). A value it cannot take apart so is not logged at all: what
// it holds cannot be told.
func redactURL(u string) string {
	p, err := url.Parse(u)
	switch {
	case u == "":
		return ""
	case err != nil || p.Scheme == "" || p.Host == "":
		return "(not a URL: not logged)"
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}
