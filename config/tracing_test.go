package config

import (
	"path/filepath"
	"testing"
)

// TestTracingBadConfigs: one fixture per tracing rule, with its exact message.
func TestTracingBadConfigs(t *testing.T) {
	cases := []struct{ file, want string }{
		{"protocol", `tracing.protocol: "http/json" is not an OTLP protocol Portcullis speaks; write grpc or http/protobuf`},
		{"sample_ratio_above_one", "tracing.sample_ratio: 1.5 is not between 0 and 1; write 1 to record every new trace, 0.1 for one in ten"},
		{"sample_ratio_not_a_number", `tracing.sample_ratio: expected a number, got "all"`},
		{"endpoint_not_host_port", `tracing.otlp_endpoint: "collector" is not host:port; write e.g. "127.0.0.1:4317" (gRPC) or "127.0.0.1:4318" (http/protobuf)`},
		{"endpoint_not_http_url", `tracing.otlp_endpoint: "grpc://collector:4317" is not an http(s) URL; write host:port (127.0.0.1:4317) or a URL such as http://127.0.0.1:4318/v1/traces`},
		{"insecure_https", `tracing.insecure: true, but tracing.otlp_endpoint "https://collector:4318/v1/traces" is https; write http:// for plaintext, or drop insecure`},
		{"insecure_false_http", `tracing.insecure: false, but tracing.otlp_endpoint "http://collector:4318/v1/traces" is plain http; write https:// for TLS, or drop insecure`},
		{"ca_file_insecure", "tracing.ca_file: set, but tracing.insecure: true sends spans without TLS; drop one of them"},
		{"ca_file_missing", `tracing.ca_file: cannot read "testdata/tracing/missing.pem": no such file or directory`},
		{"claim_empty", "tracing.claims[1]: empty; write a claim name such as email"},
		{"unknown_key", "tracing.endpoint: unknown key (line 9); known keys here: otlp_endpoint, protocol, insecure, sample_ratio, service_name, headers, ca_file, resource_attributes, claims"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", "tracing", c.file+".yaml"))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if want := "config: " + c.want; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// TestTracingSection: no section is tracing off (nil); `tracing: {}` is on with every key left
// to the environment; the keys of the issue load as written.
func TestTracingSection(t *testing.T) {
	base := "issuers:\n  - issuer: https://sso.example.com/realms/demo\n    audiences: [a]\nrules:\n  - name: api\n    match: { paths: [\"/api/**\"] }\n"
	for _, c := range []struct {
		name, extra string
		on          bool
	}{{"absent", "", false}, {"null", "tracing:\n", false}, {"empty", "tracing: {}\n", true}} {
		l, err := Parse([]byte(base+c.extra), "")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := l.Tracing != nil; got != c.on {
			t.Errorf("%s: tracing on = %v, want %v", c.name, got, c.on)
		}
	}
	l, err := Load(filepath.Join("testdata", "tracing", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tr := l.Tracing
	if tr.OTLPEndpoint != "127.0.0.1:4317" || tr.Protocol != "grpc" || tr.Insecure == nil || !*tr.Insecure ||
		tr.SampleRatio == nil || *tr.SampleRatio != 1 || tr.ServiceName != "portcullis" {
		t.Errorf("tracing = %+v", *tr)
	}
}
