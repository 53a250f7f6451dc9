// Package tracing is Portcullis's OpenTelemetry tracing (docs/configuration.md#tracing): a
// tracer provider exporting over OTLP (gRPC or HTTP) as the `tracing` section and the standard
// OTEL_* environment variables say, and the authz.Observer that gives every check a span, a
// child of the span of the request it checks (W3C Trace Context or B3, from the gRPC metadata
// of the ext_authz call or from the original request's headers). It also labels the check
// duration histogram with exemplars and the decision log lines with trace_id and span_id.
//
// Tracing is off unless the configuration has a tracing section: the server then installs
// neither the Observer nor a tracer, and a check does no tracing work at all.
package tracing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/portcullis-authz/portcullis/config"
)

// DefaultServiceName is service.name when neither tracing.service_name nor OTEL_SERVICE_NAME
// says otherwise.
const DefaultServiceName = "portcullis"

// instrumentation is the name of Portcullis's tracer (the instrumentation scope of its spans).
const instrumentation = "github.com/portcullis-authz/portcullis"

// Options are the parts of a Provider that tests replace.
type Options struct {
	// Getenv reads the environment; nil means os.Getenv. (The OTLP exporters and the batch
	// span processor read their own OTEL_* variables from the process environment.)
	Getenv func(string) string
	// Exporter, when set, receives the spans instead of an OTLP exporter, synchronously
	// (tracetest.NewInMemoryExporter in tests), or through the batch span processor as the
	// OTLP exporter would with Batch (benchmarks).
	Exporter sdktrace.SpanExporter
	Batch    bool
}

// Provider is a running tracer provider and the propagator checks are parented with.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	claims []string
}

// New starts tracing as cfg (the tracing section) and the OTEL_* environment say. It returns
// nil, and no error, when OTEL_SDK_DISABLED=true. No connection is made here: the exporter
// connects when it first sends, and a collector that is down costs spans, never checks.
func New(ctx context.Context, cfg *config.Tracing, opts Options) (*Provider, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	res, err := buildResource(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.SampleRatio != nil {
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SampleRatio))))
	}
	// Without sample_ratio, the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG;
	// without those, it samples parent-based, every new trace (ratio 1).
	switch {
	case opts.Exporter != nil && opts.Batch:
		tpOpts = append(tpOpts, sdktrace.WithBatcher(opts.Exporter))
	case opts.Exporter != nil:
		tpOpts = append(tpOpts, sdktrace.WithSyncer(opts.Exporter))
	default:
		exp, err := newExporter(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	return &Provider{
		tp:     tp,
		tracer: tp.Tracer(instrumentation),
		// Later propagators win: W3C Trace Context over B3 when a request carries both. The B3
		// propagator reads the single header (b3) and the multi-header form (x-b3-*).
		prop:   propagation.NewCompositeTextMapPropagator(b3.New(), propagation.TraceContext{}),
		claims: cfg.Claims,
	}, nil
}

// Tracer is Portcullis's tracer, for the key-set caches (jwks.Options.Tracer) and the
// introspectors (introspect.Options.Tracer).
func (p *Provider) Tracer() trace.Tracer { return p.tracer }

// Shutdown exports the spans still buffered and stops the exporter, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// buildResource is service.name (DefaultServiceName, then OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, then the file's resource_attributes and service_name, each over the
// one before).
func buildResource(ctx context.Context, cfg *config.Tracing) (*resource.Resource, error) {
	attrs := make([]attribute.KeyValue, 0, len(cfg.ResourceAttributes)+1)
	for k, v := range cfg.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	if cfg.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", cfg.ServiceName))
	}
	return resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
		resource.WithAttributes(attrs...),
	)
}

// Protocol is the OTLP protocol spans are sent with: tracing.protocol, else
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
func Protocol(cfg *config.Tracing, getenv func(string) string) (string, error) {
	if cfg.Protocol != "" {
		return cfg.Protocol, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch v := strings.TrimSpace(getenv(name)); v {
		case "":
			continue
		case config.TracingProtocolGRPC, config.TracingProtocolHTTP:
			return v, nil
		default:
			return "", fmt.Errorf("tracing: %s=%q is not an OTLP protocol Portcullis speaks; set it to grpc or http/protobuf, or set tracing.protocol", name, v)
		}
	}
	return config.TracingProtocolGRPC, nil
}

// newExporter is the OTLP exporter of cfg. Keys the file leaves out are the exporter's to
// read from OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _INSECURE, _HEADERS, _CERTIFICATE,
// _TIMEOUT, _COMPRESSION.
func newExporter(ctx context.Context, cfg *config.Tracing, getenv func(string) string) (sdktrace.SpanExporter, error) {
	protocol, err := Protocol(cfg, getenv)
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tracing.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tracing.ca_file: %q holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	if protocol == config.TracingProtocolHTTP {
		o := otlpOptions[otlptracehttp.Option]{
			endpointURL: otlptracehttp.WithEndpointURL,
			endpoint:    otlptracehttp.WithEndpoint,
			insecure:    otlptracehttp.WithInsecure,
			tls:         otlptracehttp.WithTLSClientConfig,
			headers:     otlptracehttp.WithHeaders,
		}
		exp, err := otlptracehttp.New(ctx, o.of(cfg, tlsCfg)...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	}
	o := otlpOptions[otlptracegrpc.Option]{
		endpointURL: otlptracegrpc.WithEndpointURL,
		endpoint:    otlptracegrpc.WithEndpoint,
		insecure:    otlptracegrpc.WithInsecure,
		tls:         grpcTLS,
		headers:     otlptracegrpc.WithHeaders,
	}
	exp, err := otlptracegrpc.New(ctx, o.of(cfg, tlsCfg)...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP/gRPC exporter: %w", err)
	}
	return exp, nil
}

// grpcTLS is otlptracehttp.WithTLSClientConfig's counterpart for gRPC.
func grpcTLS(c *tls.Config) otlptracegrpc.Option {
	return otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c))
}

// otlpOptions are the option constructors of one OTLP exporter (otlptracehttp or
// otlptracegrpc), so that one function maps the file's settings to both.
type otlpOptions[O any] struct {
	endpointURL, endpoint func(string) O
	insecure              func() O
	tls                   func(*tls.Config) O
	headers               func(map[string]string) O
}

// of is the options cfg sets, tlsCfg being the ca_file's (nil without one). What the file
// leaves out, the exporter reads from OTEL_EXPORTER_OTLP_*.
func (f otlpOptions[O]) of(cfg *config.Tracing, tlsCfg *tls.Config) []O {
	var o []O
	switch {
	case strings.Contains(cfg.OTLPEndpoint, "://"):
		o = append(o, f.endpointURL(cfg.OTLPEndpoint))
	case cfg.OTLPEndpoint != "":
		o = append(o, f.endpoint(cfg.OTLPEndpoint))
	}
	if cfg.Insecure != nil && *cfg.Insecure {
		o = append(o, f.insecure())
	}
	if tlsCfg != nil {
		o = append(o, f.tls(tlsCfg))
	}
	if len(cfg.Headers) > 0 {
		o = append(o, f.headers(cfg.Headers))
	}
	return o
}

// claimString is a claim's value as a span attribute: strings as they are, other values in
// their JSON-like form.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := claimString(e); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	default:
		return fmt.Sprint(x), true
	}
}
