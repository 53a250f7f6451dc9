package tracing

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/portcullis-authz/portcullis/config"
)

// collector records the OTLP export requests it is sent: "<path or method> <x-test header>".
type collector struct {
	mu   sync.Mutex
	seen []string
}

func (c *collector) record(what, header string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, what+" "+header)
}

func (c *collector) requests() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.seen, "; ")
}

// httpCollector is an OTLP/HTTP collector on loopback, over TLS when tls is set.
func httpCollector(t *testing.T, c *collector, tls bool) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.record(r.Method+" "+r.URL.Path, r.Header.Get("x-test"))
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
	if tls {
		return httptest.NewTLSServer(h)
	}
	return httptest.NewServer(h)
}

// grpcCollector is an OTLP/gRPC collector on loopback (every method answered with an empty
// message, which decodes as an empty ExportTraceServiceResponse), over TLS with cert's
// certificate when cert is set.
func grpcCollector(t *testing.T, c *collector, cert *httptest.Server) string {
	t.Helper()
	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(&cert.TLS.Certificates[0])))
	}
	opts = append(opts, grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		md, _ := metadata.FromIncomingContext(stream.Context())
		c.record(method, strings.Join(md.Get("x-test"), ","))
		if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
			return err
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
	srv := grpc.NewServer(opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestExporterSettings: the file's endpoint (host:port or URL), insecure, headers and ca_file
// reach the OTLP exporter of either protocol: the collector receives the spans, with the
// header, over TLS trusted through ca_file.
func TestExporterSettings(t *testing.T) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"} {
		t.Setenv(name, "")
	}
	tlsServer := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsServer.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsServer.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	yes := true
	headers := map[string]string{"x-test": "from-the-file"}
	cases := []struct {
		name, protocol string
		tls            bool
		endpoint       func(addr string) string
		want           string
	}{
		{"http, host:port, insecure", config.TracingProtocolHTTP, false, func(a string) string { return a }, "POST /v1/traces from-the-file"},
		{"http, URL", config.TracingProtocolHTTP, false, func(a string) string { return "http://" + a + "/v1/traces" }, "POST /v1/traces from-the-file"},
		{"http, TLS with ca_file", config.TracingProtocolHTTP, true, func(a string) string { return a }, "POST /v1/traces from-the-file"},
		{"grpc, host:port, insecure", config.TracingProtocolGRPC, false, func(a string) string { return a }, "/opentelemetry.proto.collector.trace.v1.TraceService/Export from-the-file"},
		{"grpc, URL", config.TracingProtocolGRPC, false, func(a string) string { return "http://" + a }, "/opentelemetry.proto.collector.trace.v1.TraceService/Export from-the-file"},
		{"grpc, TLS with ca_file", config.TracingProtocolGRPC, true, func(a string) string { return a }, "/opentelemetry.proto.collector.trace.v1.TraceService/Export from-the-file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := &collector{}
			var addr string
			if c.protocol == config.TracingProtocolHTTP {
				srv := httpCollector(t, col, c.tls)
				t.Cleanup(srv.Close)
				addr = srv.Listener.Addr().String() // httptest's certificate: the one in ca_file
			} else {
				var cert *httptest.Server
				if c.tls {
					cert = tlsServer
				}
				addr = grpcCollector(t, col, cert)
			}
			cfg := &config.Tracing{OTLPEndpoint: c.endpoint(addr), Protocol: c.protocol, Headers: headers}
			if c.tls {
				cfg.CAFile = caFile
			} else {
				cfg.Insecure = &yes
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			exp, err := newExporter(ctx, cfg, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(context.Background()) }()
			span := tracetest.SpanStub{Name: "check"}.Snapshot()
			if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{span}); err != nil {
				t.Fatalf("export: %v (collector saw %q)", err, col.requests())
			}
			if got := col.requests(); got != c.want {
				t.Errorf("collector saw %q, want %q", got, c.want)
			}
		})
	}
}
