package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/reason"
)

// oneShotConfig is a configuration with one issuer at %q, its keys fetched (discovery).
const oneShotConfig = `
server:
  grpc_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
%s
rules:
  - name: api
    match: { paths: ["/api/**"] }
`

func loadConfig(t *testing.T, dir, content string) *config.Loaded {
	t.Helper()
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// oneShotEngine parses content as a configuration whose relative files are in dir and builds
// its engine as `check` does, waiting up to 10 s for the key sets; it stops with the test.
func oneShotEngine(t *testing.T, content []byte, dir string) *authz.Engine {
	t.Helper()
	cfg, err := config.Parse(content, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	engine, _, stop, err := OneShotStatus(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return engine
}

func decideAPI(e *authz.Engine, tok string) *authz.Decision {
	return e.Decide(context.Background(), &authz.Request{Method: "GET", Host: "h", Path: "/api/x",
		Headers: map[string]string{"authorization": "Bearer " + tok}})
}

func mintFor(t *testing.T, idp *devidp.IdP) string {
	t.Helper()
	tok, err := idp.Mint(jwa.RS256, devidp.Claims{"sub": "u1", "aud": "orders-api", "typ": "Bearer"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOneShot: `portcullis check`'s engine waits for the issuers' keys (fetched for real or read
// from a file) and decides with them; when ctx ends first, an issuer without keys answers 503,
// as serve would.
func TestOneShot(t *testing.T) {
	t.Run("keys fetched", func(t *testing.T) {
		idp, err := devidp.New()
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(idp)
		defer ts.Close()
		idp.SetIssuer(ts.URL + "/realms/demo")
		cfg := loadConfig(t, t.TempDir(), fmt.Sprintf(oneShotConfig, idp.Issuer(), ""))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e, _, stop, err := OneShotStatus(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if d := decideAPI(e, mintFor(t, idp)); !d.Allow || d.Reason != reason.OK || d.Rule != "api" {
			t.Errorf("decision %v %s %s: %s", d.Allow, d.Reason, d.Rule, d.Detail)
		}
	})
	t.Run("keys from a file", func(t *testing.T) {
		dir := t.TempDir()
		path, idp := writeFileConfig(t, dir, "  grpc_addr: \"127.0.0.1:0\"", "")
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		e, _, stop, err := OneShotStatus(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if d := decideAPI(e, mintFor(t, idp)); !d.Allow || d.Reason != reason.OK {
			t.Errorf("decision %v %s: %s", d.Allow, d.Reason, d.Detail)
		}
	})
	t.Run("context ends before the keys", func(t *testing.T) {
		stalled := newStalledIdP(t)
		cfg := loadConfig(t, t.TempDir(), fmt.Sprintf(oneShotConfig, stalled.issuer, ""))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e, _, stop, err := OneShotStatus(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		other, _ := devidp.New()
		other.SetIssuer(stalled.issuer)
		d := decideAPI(e, mintFor(t, other))
		if d.Allow || d.Status != 503 || d.Reason != reason.Unavailable || d.Detail != "the keys of issuer "+stalled.issuer+" have never been loaded" {
			t.Errorf("decision %v %d %s: %s", d.Allow, d.Status, d.Reason, d.Detail)
		}
	})
	t.Run("a failed fetch ends the wait", func(t *testing.T) {
		// Nothing listens on port 1 of loopback: the connection is refused at once.
		const issuer = "https://down.example.com/realms/x"
		cfg := loadConfig(t, t.TempDir(), fmt.Sprintf(oneShotConfig, issuer, "    jwks_uri: http://127.0.0.1:1/certs"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, missing, stop, err := OneShotStatus(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if ctx.Err() != nil {
			t.Fatal("waited out the whole context although the fetch had failed")
		}
		if len(missing) != 1 || missing[0].Issuer != issuer || !strings.Contains(missing[0].LastError, "connection refused") {
			t.Errorf("missing = %+v", missing)
		}
	})
}
