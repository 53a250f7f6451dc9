// Command echo is a tiny upstream for trying Portcullis behind Envoy (envoy/README.md): it
// answers every request, whatever its method and path, with 200 and JSON of what it received
// (method, path, host, headers), so that the x-user-* headers Portcullis sets are seen.
//
//	go run ./examples/echo                  # listens on 127.0.0.1:8081, envoy/envoy.yaml's upstream
//	go run ./examples/echo -addr 127.0.0.1:0
//
// It echoes the caller's credentials back to the caller and logs nothing; it listens on
// loopback only. It is the same handler the end-to-end tests put behind Envoy (internal/echo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-authz/portcullis/internal/echo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run serves until ctx ends; listening, when not nil, receives the bound address.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, listening chan<- net.Addr) int {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", echo.DefaultAddr, "listen address, on loopback (127.0.0.1:0 takes a free port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(stderr, "echo: -addr %q: give a loopback host:port, e.g. 127.0.0.1:8081 (this upstream echoes credentials)\n", *addr)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "echo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "echo: listening on http://%s\n", ln.Addr())
	if listening != nil {
		listening <- ln.Addr()
	}
	srv := &http.Server{Handler: echo.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "echo:", err)
		return 1
	}
	return 0
}
