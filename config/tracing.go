package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Tracing configures OpenTelemetry traces (docs/configuration.md#tracing): a span per check,
// exported over OTLP. Tracing is on when the `tracing` section is in the file (`tracing: {}`
// takes everything from the OTEL_* environment variables); without it, nothing is traced. A key
// left out falls back to its standard OTEL_* variable, then to the default below; the tracing
// package resolves them when Portcullis starts.
type Tracing struct {
	// OTLPEndpoint is where spans are sent: host:port ("127.0.0.1:4317", "otel-collector:4318"),
	// or a URL (http://host:4318/v1/traces for http/protobuf). Left out:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317 (gRPC)
	// or localhost:4318 (HTTP).
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// Protocol is "grpc" or "http/protobuf". Left out: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
	// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
	Protocol string `yaml:"protocol"`
	// Insecure sends spans in plaintext (no TLS) to the collector. Left out:
	// OTEL_EXPORTER_OTLP_TRACES_INSECURE, OTEL_EXPORTER_OTLP_INSECURE or the endpoint URL's
	// scheme, else false (TLS).
	Insecure *bool `yaml:"insecure"`
	// SampleRatio is the share of new traces recorded, 0 to 1; parent-based: a check whose parent
	// was sampled is always recorded, one whose parent was not never is. Left out:
	// OTEL_TRACES_SAMPLER_ARG with OTEL_TRACES_SAMPLER=parentbased_traceidratio, else 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute. Left out: OTEL_SERVICE_NAME, else
	// "portcullis".
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export (an API key of a tracing vendor), added to
	// OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string `yaml:"headers"`
	// CAFile is a PEM bundle of the CAs that sign the collector's certificate (TLS only).
	CAFile string `yaml:"ca_file"`
	// ResourceAttributes are added to the spans' resource, over OTEL_RESOURCE_ATTRIBUTES.
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	// Claims are the token claims recorded on the check span as portcullis.claim.NAME, beside
	// the subject (portcullis.sub), which always is. Default: none. Never list a claim that
	// holds a secret.
	Claims []string `yaml:"claims"`
}

// Tracing protocols.
const (
	TracingProtocolGRPC = "grpc"
	TracingProtocolHTTP = "http/protobuf"
)

func (c *Config) validateTracing(errs *[]string) {
	t := c.Tracing
	if t == nil {
		return
	}
	switch t.Protocol {
	case "", TracingProtocolGRPC, TracingProtocolHTTP:
	default:
		*errs = append(*errs, fmt.Sprintf("tracing.protocol: %q is not an OTLP protocol Portcullis speaks; write grpc or http/protobuf", t.Protocol))
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		*errs = append(*errs, fmt.Sprintf("tracing.sample_ratio: %v is not between 0 and 1; write 1 to record every new trace, 0.1 for one in ten", *r))
	}
	if e := t.OTLPEndpoint; e != "" {
		if strings.Contains(e, "://") {
			u, err := url.Parse(e)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
				*errs = append(*errs, fmt.Sprintf("tracing.otlp_endpoint: %q is not an http(s) URL; write host:port (127.0.0.1:4317) or a URL such as http://127.0.0.1:4318/v1/traces", e))
			case t.Insecure != nil && *t.Insecure && u.Scheme == "https":
				*errs = append(*errs, fmt.Sprintf("tracing.insecure: true, but tracing.otlp_endpoint %q is https; write http:// for plaintext, or drop insecure", e))
			case t.Insecure != nil && !*t.Insecure && u.Scheme == "http":
				*errs = append(*errs, fmt.Sprintf("tracing.insecure: false, but tracing.otlp_endpoint %q is plain http; write https:// for TLS, or drop insecure", e))
			}
		} else if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			*errs = append(*errs, fmt.Sprintf("tracing.otlp_endpoint: %q is not host:port; write e.g. \"127.0.0.1:4317\" (gRPC) or \"127.0.0.1:4318\" (http/protobuf)", e))
		}
	}
	if t.CAFile != "" && t.Insecure != nil && *t.Insecure {
		*errs = append(*errs, "tracing.ca_file: set, but tracing.insecure: true sends spans without TLS; drop one of them")
	}
	checkReadable(errs, "tracing.ca_file", t.CAFile)
	for name := range t.Headers {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			*errs = append(*errs, fmt.Sprintf("tracing.headers: %q is not a header name", name))
		}
	}
	for name := range t.ResourceAttributes {
		if name == "" {
			*errs = append(*errs, "tracing.resource_attributes: an attribute name is empty")
		}
	}
	for i, cl := range t.Claims {
		if cl == "" {
			*errs = append(*errs, fmt.Sprintf("tracing.claims[%d]: empty; write a claim name such as email", i))
		}
	}
}
