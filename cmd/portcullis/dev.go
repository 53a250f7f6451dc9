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
copy-paste grpcurl and curl commands. The configuration it runs is written to a temporary file
whose path is printed, so you can copy it. NEVER FOR PRODUCTION: anyone who can reach the
embedded issuer can read its keys' public half, and the tokens printed are valid for --ttl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), g, f)
		},
	}
	cmd.Flags().StringVar(&f.addr, "addr", "127.0.0.1:9191", "gRPC ext_authz address")
	cmd.Flags().StringVar(&f.httpAddr, "http-addr", "127.0.0.1:9192", "HTTP forward-auth address")
	cmd.Flags().StringVar(&f.adminAddr, "admin-addr", "127.0.0.1:9090", "admin address (/metrics /healthz /readyz)")
	cmd.Flags().DurationVar(&f.ttl, "ttl", 12*time.Hour, "lifetime of the printed tokens")
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
	if err := printDevBanner(g.stdout, idp, srv, path, f.ttl); err != nil {
		return &exitError{2, err}
	}
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{1, err}
	}
	return nil
}

func printDevBanner(w io.Writer, idp *devidp.IdP, srv *server.Server, path string, ttl time.Duration) error {
	grpcAddr, httpAddr := srv.Addr("grpc").String(), "off"
	if a := srv.Addr("http"); a != nil {
		httpAddr = a.String()
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

  Tokens (audience orders-api), ready to paste into a shell:
`, idp.Issuer(), grpcAddr, httpAddr, srv.Addr("admin"), path)
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
	fmt.Fprintf(w, `
  Then try:
    grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"GET","host":"api.local","path":"/api/orders/1","headers":{"authorization":"Bearer '"$TOKEN_ALICE"'"}}}}}' %s envoy.service.auth.v3.Authorization/Check

    curl -i -H "Authorization: Bearer $TOKEN_ALICE" -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /api/orders/1' http://%s/

    portcullis check --config %s --path /api/orders/1 --method POST --token "$TOKEN_BOB"

  (the configuration file lives as long as this process)

`, grpcAddr, httpAddr, path)
	return nil
}
