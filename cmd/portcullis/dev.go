package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/spf13/cobra"

	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/server"
)

type devFlags struct {
	addr      string
	httpAddr  string
	adminAddr string
	ttl       time.Duration
}

func newDevCmd(g *globals) *cobra.Command {
	f := &devFlags{}
	cmd := &cobra.Command{
		Use:   "dev [--addr 127.0.0.1:9191]",
		Short: "Local playground: an embedded development issuer, example rules and ready-to-use tokens",
		Long: `Run Portcullis with an embedded DEVELOPMENT issuer (a key generated at start, OIDC discovery and
JWKS served on loopback), an example rule set, and printed tokens for a few personas, with
commands that run as printed once the issuer's keys are loaded (dev waits for that): curl of
/readyz, portcullis check (spelt as dev was started: "go run ./cmd/portcullis check" from the
root of the checkout after go run), curl of the forward-auth front, and grpcurl of the gRPC
front (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4). The configuration it
runs is written to a temporary file whose path is printed, so you can copy it. NEVER FOR PRODUCTION: anyone who can reach the
embedded issuer can read its keys' public half, and the tokens printed are valid for --ttl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := distinctAddrs(cmd, "addr", "http-addr", "admin-addr"); err != nil {
				return err
			}
			return runDev(cmd.Context(), g, f)
		},
	}
	addrFlag(cmd.Flags(), &f.addr, "addr", "127.0.0.1:9191", false, "gRPC ext_authz address (127.0.0.1:0 = a free port)")
	addrFlag(cmd.Flags(), &f.httpAddr, "http-addr", "127.0.0.1:9192", true, `HTTP forward-auth address ("" = off)`)
	addrFlag(cmd.Flags(), &f.adminAddr, "admin-addr", "127.0.0.1:9090", true, `admin address (/metrics /healthz /readyz; "" = off)`)
	positiveDurationFlag(cmd.Flags(), &f.ttl, "ttl", 12*time.Hour, "12h", "the printed tokens would be expired already", "lifetime of the printed tokens")
	return cmd
}

// devConfig is the configuration `portcullis dev` serves, with the issuer URL and addresses
// filled in.
const devConfig = `# Written by "portcullis dev": a DEVELOPMENT configuration. Never use it in production.
server:
  grpc_addr: %q
  http_addr: %q
  admin_addr: %q
issuers:
  - issuer: %q
    audiences: [orders-api]
    refresh_interval: 1m
    min_refresh_interval: 1s
rules:
  - name: health
    match: { paths: ["/healthz"], methods: [GET] }
    public: true
  - name: docs
    match: { paths: ["/docs/**"] }
    public: true
  - name: admin
    match: { paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders-write
    match: { paths: ["/api/orders/**"], methods: [POST, PUT, DELETE] }
    require: { all_roles: ["orders-api:writer"], scopes: ["orders:write"] }
  - name: api
    match: { paths: ["/api/**"] }
    require: { claims: { email_verified: true } }
`

// persona is a user whose token dev prints.
type persona struct {
	name   string
	claims devidp.Claims
	ttl    time.Duration // 0 = the --ttl flag
	note   string
}

func devPersonas(ttl time.Duration) []persona {
	user := func(sub, name string, realm []string, client []string, scope string) devidp.Claims {
		c := devidp.Claims{
			"sub": sub, "typ": "Bearer", "aud": []string{"orders-api", "account"}, "azp": "portcullis-dev",
			"preferred_username": name, "email": name + "@example.com", "email_verified": true,
			"realm_access": map[string]any{"roles": realm}, "scope": scope,
		}
		if len(client) > 0 {
			c["resource_access"] = map[string]any{"orders-api": map[string]any{"roles": client}}
		}
		return c
	}
	return []persona{
		{name: "alice", claims: user("0b6e1c1a-a11c-4e00-9000-000000000001", "alice", []string{"user"}, []string{"writer"}, "openid profile email orders:write"), note: "user + orders-api:writer, scope orders:write"},
		{name: "bob", claims: user("0b6e1c1a-b0b0-4e00-9000-000000000002", "bob", []string{"user"}, nil, "openid profile email"), note: "user only: POST /api/orders/1 is 403"},
		{name: "carol", claims: user("0b6e1c1a-ca01-4e00-9000-000000000003", "carol", []string{"user", "admin"}, nil, "openid profile email"), note: "admin: /api/admin/** is allowed"},
		{name: "expired", claims: user("0b6e1c1a-dead-4e00-9000-000000000004", "dave", []string{"user"}, nil, "openid"), ttl: -time.Hour, note: "expired an hour ago: 401"},
	}
}

func runDev(parent context.Context, g *globals, f *devFlags) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	idp, err := devidp.New()
	if err != nil {
		return &exitError{2, err}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return &exitError{2, fmt.Errorf("dev issuer: %w", err)}
	}
	idp.SetIssuer("http://" + ln.Addr().String() + "/realms/dev")
	idpSrv := &http.Server{Handler: idp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = idpSrv.Serve(ln) }()
	defer idpSrv.Close()

	dir, err := os.MkdirTemp("", "portcullis-dev-")
	if err != nil {
		return &exitError{2, err}
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(devConfig, f.addr, f.httpAddr, f.adminAddr, idp.Issuer())), 0o600); err != nil {
		return &exitError{2, err}
	}
	srv, err := server.New(server.Options{ConfigPath: path, Logger: log, Reflection: true})
	if err != nil {
		return &exitError{2, err}
	}
	if err := srv.Listen(); err != nil {
		return &exitError{2, err}
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	// The embedded issuer is on loopback: its keys load within moments. The commands are
	// printed once they do, so that each works when pasted (a check before is answered 503).
	ready := waitReady(ctx, srv, devReadyWait)
	if err := printDevBanner(g.stdout, idp, srv, path, f.ttl, invokedAs(os.Args[0], executable()), ready); err != nil {
		stop()
		<-done
		return &exitError{2, err}
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{1, err}
	}
	return nil
}

// devReadyWait bounds the wait for the embedded issuer's keys before the banner is printed.
const devReadyWait = 10 * time.Second

// waitReady waits until srv is ready, ctx ends or max passes; it tells whether srv is ready.
func waitReady(ctx context.Context, srv *server.Server, max time.Duration) bool {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !srv.Ready() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// grpcurlInstall is how to get the grpcurl the banner's command was written for.
const grpcurlInstall = "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"

// executable is the path of the running program, "" when unknown.
func executable() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return exe
}

// invokedAs is how the banner spells a portcullis command so that it runs when pasted into
// the shell that started dev: `go run ./cmd/portcullis` when dev was started by go run (its
// binary lives in Go's build cache and is gone when it stops), the program as it was started
// otherwise (bin/portcullis, /usr/local/bin/portcullis, or portcullis found on PATH).
func invokedAs(arg0, exe string) string {
	for _, p := range []string{arg0, exe} {
		if strings.Contains(filepath.ToSlash(p), "/go-build") {
			return "go run ./cmd/portcullis"
		}
	}
	if arg0 == "" {
		return "portcullis"
	}
	return shellQuote(arg0)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printDevBanner(w io.Writer, idp *devidp.IdP, srv *server.Server, path string, ttl time.Duration, self string, ready bool) error {
	grpcAddr, httpAddr, adminAddr := srv.Addr("grpc").String(), "off", "off"
	if a := srv.Addr("http"); a != nil {
		httpAddr = a.String()
	}
	if a := srv.Addr("admin"); a != nil {
		adminAddr = a.String()
	}
	fmt.Fprintf(w, `
  ============================================================================
   PORTCULLIS DEV MODE: an embedded development issuer with a key generated
   at start. For local use only. NEVER USE IN PRODUCTION.
  ============================================================================

  issuer        %s
  gRPC          %s   (envoy.service.auth.v3.Authorization/Check, reflection on)
  HTTP          %s   (forward-auth)
  admin         %s   (/metrics /healthz /readyz)
  config        %s

  Tokens (audience orders-api, valid for %s), ready to paste into a shell:
`, idp.Issuer(), grpcAddr, httpAddr, adminAddr, path, ttl)
	for _, p := range devPersonas(ttl) {
		t := p.ttl
		if t == 0 {
			t = ttl
		}
		tok, err := idp.Mint(jwa.RS256, p.claims, t)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n  # %s: %s\n  export TOKEN_%s=%s\n", p.name, p.note, strings.ToUpper(p.name), tok)
	}
	if adminAddr != "off" {
		state := "the issuer's keys are loaded: it answers ready"
		if !ready {
			state = "the issuer's keys are not loaded yet: every check is answered 503 until this answers ready"
		}
		fmt.Fprintf(w, "\n  Readiness (%s):\n    curl -s http://%s/readyz\n", state, adminAddr)
	}
	fmt.Fprintf(w, `
  Then try:
    # bob may not write orders: DENY (HTTP 403), with what he lacks%s
    %s check --config %s --path /api/orders/1 --method POST --token "$TOKEN_BOB"
`, fromCheckout(self), self, shellQuote(path))
	if httpAddr != "off" {
		fmt.Fprintf(w, `
    # the HTTP forward-auth front: 200 with x-user-* for alice
    curl -i -H "Authorization: Bearer $TOKEN_ALICE" -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /api/orders/1' http://%s/
`, httpAddr)
	}
	fmt.Fprintf(w, `
    # the gRPC front, as Envoy calls it (grpcurl: %s)
    grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"GET","host":"api.local","path":"/api/orders/1","headers":{"authorization":"Bearer '"$TOKEN_ALICE"'"}}}}}' %s envoy.service.auth.v3.Authorization/Check

  (the configuration file lives as long as this process; stop it with Ctrl-C)

`, grpcurlInstall, grpcAddr)
	return nil
}

// fromCheckout says where a `go run` command works.
func fromCheckout(self string) string {
	if strings.HasPrefix(self, "go run ") {
		return "\n    # (go run: from the root of the checkout; or `make build` once, then bin/portcullis check ...)"
	}
	return ""
}
