package config

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestLoadObservability(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:9090", "CONCUR_ACCESS_TOKEN": "t"}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	c, err := Load(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != "" || c.ReadyConcurGrace != time.Minute || c.TracesEndpoint != "" || c.ServiceName != "payment-batch-gateway" {
		t.Errorf("defaults: admin %q grace %v traces %q service %q", c.AdminAddr, c.ReadyConcurGrace, c.TracesEndpoint, c.ServiceName)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string // TracesEndpoint
	}{
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"},
		{"traces endpoint as is", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp/traces"}, "https://b/otlp/traces"},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"}, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, ""},
		{"explicit protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://a:4318/v1/traces"},
	} {
		c, err := Load(env(with(tt.env)))
		if err != nil || c.TracesEndpoint != tt.want {
			t.Errorf("%s: TracesEndpoint %q, want %q (%v)", tt.name, c.TracesEndpoint, tt.want, err)
		}
	}
	c, err = Load(env(with(map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:9100", "GATEWAY_READY_CONCUR_GRACE": "0s",
		"OTEL_SERVICE_NAME": "pbg-eu", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/v1/traces?api-key=s3cret"})))
	if err != nil || c.AdminAddr != "127.0.0.1:9100" || c.ReadyConcurGrace != 0 || c.ServiceName != "pbg-eu" {
		t.Errorf("set: %+v %v", c, err)
	}
	var sb strings.Builder
	log := zerolog.New(&sb)
	log.Info().Object("config", c).Send()
	if strings.Contains(sb.String(), "s3cret") || !strings.Contains(sb.String(), `"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":"https://c/v1/traces"`) {
		t.Errorf("config log: %s", sb.String())
	}

	_, err = Load(env(with(map[string]string{
		"GATEWAY_ADDR": ":8080", "GATEWAY_ADMIN_ADDR": ":8080", "GATEWAY_READY_CONCUR_GRACE": "-1s",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
	})))
	for _, want := range []string{"GATEWAY_ADMIN_ADDR", "GATEWAY_READY_CONCUR_GRACE", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if c, err := Load(env(with(map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:9100", "GATEWAY_PPROF": "true"}))); err != nil || !c.PProf {
		t.Errorf("GATEWAY_PPROF=true with an admin listener: %v %v", c.PProf, err)
	}
	if c, err := Load(env(with(nil))); err != nil || c.PProf {
		t.Errorf("pprof must be off by default: %v %v", c.PProf, err)
	}
	for _, v := range []string{"true", "yes"} { // without the admin listener; not a boolean
		if _, err := Load(env(with(map[string]string{"GATEWAY_PPROF": v}))); err == nil || !strings.Contains(err.Error(), "GATEWAY_PPROF") {
			t.Errorf("GATEWAY_PPROF=%s: %v", v, err)
		}
	}
	if _, err := Load(env(with(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}))); err == nil ||
		!strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Errorf("OTEL_TRACES_EXPORTER=zipkin: %v", err)
	}
}
