package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// fileConfig is a configuration whose one issuer's keys come from keys.json beside it, so the
// server is ready without any network; %s are the server block's lines and extra top-level
// keys.
const fileConfig = `
server:
%s
issuers:
  - issuer: %q
    jwks_file: keys.json
    audiences: [orders-api]
rules:
  - name: health
    match: { paths: ["/healthz"] }
    public: true
  - name: api
    match: { paths: ["/api/**"] }
%s`

const fileIssuer = "https://sso.example.com/realms/files"

// writeFileConfig writes keys.json and portcullis.yaml into dir and returns the configuration's
// path and the issuer that signs for keys.json.
func writeFileConfig(t *testing.T, dir, serverBlock, extra string) (string, *devidp.IdP) {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(fileIssuer)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(fileConfig, serverBlock, fileIssuer, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, idp
}

// logBuffer collects a server's JSON log lines, safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// newServer builds a server that is never run: its key-set caches are stopped when the test
// ends.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.keys.stop(); srv.cancel() })
	return srv
}

// runWith listens and runs a server built with opts; Run's error is returned by the returned
// stop, which the test calls or the cleanup does.
func runWith(t *testing.T, opts Options) (*Server, func() error) {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return srv, stop
}

// TestTLSListeners: with server.tls the HTTP forward-auth front speaks only HTTPS and the gRPC
// front only TLS, with the configured certificate; with client_ca_file both require a client
// certificate from that CA.
func TestTLSListeners(t *testing.T) {
	for _, mutual := range []bool{false, true} {
		t.Run(fmt.Sprintf("client_ca_file set: %v", mutual), func(t *testing.T) {
			pki := newPKI(t)
			tlsBlock := `  tls: { cert_file: server.pem, key_file: server-key.pem }`
			if mutual {
				tlsBlock = `  tls: { cert_file: server.pem, key_file: server-key.pem, client_ca_file: ca.pem }`
			}
			path, _ := writeFileConfig(t, pki.dir, `  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: ""
`+tlsBlock, "")
			srv, _ := runWith(t, Options{ConfigPath: path})
			if srv.Addr("admin") != nil {
				t.Errorf("admin listening at %v, configured off", srv.Addr("admin"))
			}
			url := "https://" + srv.Addr("http").String() + "/healthz"

			get := func(c *http.Client, url string) (int, error) {
				resp, err := c.Get(url)
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
				return resp.StatusCode, nil
			}
			httpsClient := func(certs []tls.Certificate) *http.Client {
				return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
			}
			if code, err := get(httpsClient([]tls.Certificate{pki.client}), url); err != nil || code != 200 {
				t.Errorf("HTTPS with a client certificate: %d %v", code, err)
			}
			code, err := get(httpsClient(nil), url)
			if mutual && err == nil {
				t.Errorf("HTTPS without a client certificate answered %d", code)
			}
			if !mutual && (err != nil || code != 200) {
				t.Errorf("HTTPS without a client certificate: %d %v", code, err)
			}
			// Go's TLS server answers a plain-HTTP request with 400 and never decides it.
			plain := &http.Client{Timeout: 5 * time.Second}
			if code, err := get(plain, "http://"+srv.Addr("http").String()+"/healthz"); err == nil && code != http.StatusBadRequest {
				t.Errorf("plain HTTP to the TLS listener: %d", code)
			}

			check := func(creds credentials.TransportCredentials) error { return checkHealthz(srv, creds) }
			if err := check(credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12})); err != nil {
				t.Errorf("gRPC over TLS: %v", err)
			}
			if err := check(insecure.NewCredentials()); err == nil {
				t.Error("gRPC without TLS was served")
			}
		})
	}
}

// TestTLSFilesReadAtLoad: TLS files that are readable but unusable are refused when the
// configuration loads (New fails, nothing listens), with the field and what to write; files
// that were usable at load are what the listeners serve, even if they go away afterwards.
func TestTLSFilesReadAtLoad(t *testing.T) {
	for _, c := range []struct {
		name, tls, want string // {dir} is the directory
	}{
		{"cert_file not PEM", `{ cert_file: junk.pem, key_file: server-key.pem }`,
			`config: server.tls: cert_file "{dir}/junk.pem" and key_file "{dir}/server-key.pem" are not a usable key pair: tls: failed to find any PEM data in certificate input; write the certificate chain and its private key as PEM`},
		{"client_ca_file not PEM", `{ cert_file: server.pem, key_file: server-key.pem, client_ca_file: junk.pem }`,
			`config: server.tls.client_ca_file: "{dir}/junk.pem" holds no PEM certificate; write the CA certificates that sign client certificates as PEM ("-----BEGIN CERTIFICATE-----" blocks)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			pki := newPKI(t)
			if err := os.WriteFile(filepath.Join(pki.dir, "junk.pem"), []byte("not a certificate\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			path, _ := writeFileConfig(t, pki.dir, `  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
  tls: `+c.tls, "")
			_, err := New(Options{ConfigPath: path})
			if want := strings.ReplaceAll(c.want, "{dir}", pki.dir); err == nil || err.Error() != want {
				t.Errorf("New: %v\nwant %s", err, want)
			}
		})
	}
	t.Run("files gone after loading", func(t *testing.T) {
		pki := newPKI(t)
		path, _ := writeFileConfig(t, pki.dir, `  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
  tls: { cert_file: server.pem, key_file: server-key.pem, client_ca_file: ca.pem }`, "")
		srv := newServer(t, Options{ConfigPath: path})
		for _, f := range []string{"server.pem", "server-key.pem", "ca.pem"} {
			if err := os.Remove(filepath.Join(pki.dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Listen(); err != nil {
			t.Fatalf("Listen: %v", err)
		}
		t.Cleanup(func() { _ = srv.shutdown() })
		for _, name := range []string{"grpc", "http", "admin"} {
			if srv.Addr(name) == nil {
				t.Errorf("%s not listening", name)
			}
		}
	})
}

// TestListenerInUse: a listener that cannot bind fails Listen (and Run) with its name and
// address, and the listeners opened before it are closed again.
func TestListenerInUse(t *testing.T) {
	for _, c := range []struct {
		busy   string // the listener whose address is taken
		opened []string
		viaRun bool
	}{
		{busy: "grpc", viaRun: true},
		{busy: "http", opened: []string{"grpc"}},
		{busy: "admin", opened: []string{"grpc", "http"}},
	} {
		t.Run(c.busy, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			addrs := map[string]string{"grpc": "127.0.0.1:0", "http": "127.0.0.1:0", "admin": "127.0.0.1:0"}
			addrs[c.busy] = taken.Addr().String()
			path, _ := writeFileConfig(t, t.TempDir(), fmt.Sprintf("  grpc_addr: %q\n  http_addr: %q\n  admin_addr: %q", addrs["grpc"], addrs["http"], addrs["admin"]), "")
			srv := newServer(t, Options{ConfigPath: path})
			if c.viaRun {
				err = srv.Run(context.Background())
			} else {
				err = srv.Listen()
			}
			want := fmt.Sprintf("server: %s listener: listen tcp %s: bind: address already in use", c.busy, taken.Addr())
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
			for _, name := range c.opened {
				// Closed again: the port can be bound anew.
				l, err := net.Listen("tcp", srv.Addr(name).String())
				if err != nil {
					t.Errorf("the %s listener was left open: %v", name, err)
					continue
				}
				l.Close()
			}
		})
	}
}

// TestRunListensItself: Run opens the listeners when Listen was not called, serves, and returns
// nil on a clean shutdown.
func TestRunListensItself(t *testing.T) {
	path, _ := writeFileConfig(t, t.TempDir(), "  grpc_addr: \"127.0.0.1:0\"\n  http_addr: \"\"\n  admin_addr: \"127.0.0.1:0\"", "")
	srv, err := New(Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Addr("admin") == nil {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("Run did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get("http://" + srv.Addr("admin").String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
	if srv.Addr("http") != nil {
		t.Errorf("http listening at %v, configured off", srv.Addr("http"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestListenerFailureStopsServer: when one listener stops with an error, the whole server
// shuts down and Run says so; the error is logged.
func TestListenerFailureStopsServer(t *testing.T) {
	var logs logBuffer
	path, _ := writeFileConfig(t, t.TempDir(), "  grpc_addr: \"127.0.0.1:0\"\n  http_addr: \"127.0.0.1:0\"\n  admin_addr: \"127.0.0.1:0\"", "")
	srv, err := New(Options{ConfigPath: path, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	admin := srv.Addr("admin").String()
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }() // never cancelled: only the failure ends it
	srv.serveLater(func() error { return errors.New("accept tcp: too many open files") })
	err = <-done
	if err == nil || err.Error() != "server: a listener failed; see the log" {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"listener stopped","error":"accept tcp: too many open files"`) {
		t.Errorf("log:\n%s", logs.String())
	}
	if c, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
		c.Close()
		t.Error("the admin listener still accepts connections")
	}
	if srv.Ready() {
		t.Error("still ready after shutdown")
	}
}

// TestShutdownGrace: shutdown waits for open streams and connections for ShutdownGrace at most,
// then cuts them off and says so.
func TestShutdownGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	path, _ := writeFileConfig(t, t.TempDir(), "  grpc_addr: \"127.0.0.1:0\"\n  http_addr: \"127.0.0.1:0\"\n  admin_addr: \"127.0.0.1:0\"", "")
	srv, stop := runWith(t, Options{ConfigPath: path, ShutdownGrace: grace})

	// A gRPC stream that stays open (a health watch) and an HTTP request whose headers never end.
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watch, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", resp, err)
	}
	raw, err := net.Dial("tcp", srv.Addr("http").String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("GET /healthz HTTP/1.1\r\nHost: h\r\n")); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = stop()
	elapsed := time.Since(start)
	const want = "context deadline exceeded\nserver: shutdown grace period over; remaining checks cut off"
	if err == nil || err.Error() != want {
		t.Errorf("Run: %v\nwant %s", err, want)
	}
	if elapsed < grace || elapsed > grace+5*time.Second {
		t.Errorf("shutdown took %v, grace %v", elapsed, grace)
	}
	// The watch learnt NOT_SERVING, then was cut off.
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("watch on shutdown: %v %v", resp, err)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("the watch stream outlived the grace period")
	}
}

// TestReflection: with Options.Reflection (portcullis dev), grpcurl can list the services.
func TestReflection(t *testing.T) {
	path, _ := writeFileConfig(t, t.TempDir(), "  grpc_addr: \"127.0.0.1:0\"\n  http_addr: \"\"\n  admin_addr: \"\"", "")
	for _, on := range []bool{true, false} {
		srv, _ := runWith(t, Options{ConfigPath: path, Reflection: on})
		conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		_ = stream.CloseSend()
		if !on {
			if err == nil {
				t.Errorf("reflection off, but it answered %v", resp)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if got := strings.Join(names, " "); got != "envoy.service.auth.v3.Authorization grpc.health.v1.Health grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection" {
			t.Errorf("services: %s", got)
		}
	}
}
