package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/portcullis-authz/portcullis/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestProtocol: the file's protocol, else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc; one Portcullis does not speak is an error naming it.
func TestProtocol(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		want, err  string
	}{
		{name: "default", want: "grpc"},
		{name: "file", file: "http/protobuf", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "http/protobuf"},
		{name: "traces variable first", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "http/protobuf"},
		{name: "general variable", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: "http/protobuf"},
		{name: "unsupported", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			err: `tracing: OTEL_EXPORTER_OTLP_PROTOCOL="http/json" is not an OTLP protocol Portcullis speaks; set it to grpc or http/protobuf, or set tracing.protocol`},
	}
	for _, c := range cases {
		got, err := Protocol(&config.Tracing{Protocol: c.file}, env(c.env))
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s: error %v, want %s", c.name, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

// TestSDKDisabled: OTEL_SDK_DISABLED=true turns tracing off whatever the file says.
func TestSDKDisabled(t *testing.T) {
	p, err := New(context.Background(), &config.Tracing{}, Options{Getenv: env(map[string]string{"OTEL_SDK_DISABLED": "true"})})
	if p != nil || err != nil {
		t.Errorf("New = %v, %v; want nil, nil", p, err)
	}
}

// TestServiceName: service.name is the file's, else OTEL_SERVICE_NAME, else portcullis;
// OTEL_RESOURCE_ATTRIBUTES and resource_attributes are merged, the file winning.
func TestServiceName(t *testing.T) {
	cases := []struct {
		name, file, env, want string
	}{
		{"default", "", "", "portcullis"},
		{"environment", "", "from-env", "from-env"},
		{"file over environment", "from-file", "from-env", "from-file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", c.env)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=env,team=auth")
			exp := tracetest.NewInMemoryExporter()
			p, err := New(context.Background(), &config.Tracing{ServiceName: c.file,
				ResourceAttributes: map[string]string{"deployment.environment": "file"}}, Options{Exporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			_, span := p.Tracer().Start(context.Background(), "x")
			span.End()
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			got := map[string]string{}
			for _, kv := range spans[0].Resource.Attributes() {
				got[string(kv.Key)] = kv.Value.Emit()
			}
			if got["service.name"] != c.want || got["deployment.environment"] != "file" || got["team"] != "auth" {
				t.Errorf("resource %v, want service.name %s, deployment.environment file, team auth", got, c.want)
			}
		})
	}
}
