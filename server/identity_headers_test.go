package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

// identityHeadersConfig maps headers to claims of every shape; %s is the rest of the file.
const identityHeadersConfig = `
issuers:
  - issuer: https://idp.example.com
    jwks_file: keys.json
    audiences: [orders-api]
    roles_claims: [groups]
identity_headers:
  x-user-id: sub
  x-user-roles: roles
  x-user-scopes: scopes
  x-tier: https://example.com/tier
  x-ns: kubernetes.io.namespace
  x-level: profile.level
  x-deep: profile.address.country
  x-teams: teams
  x-int: n_int
  x-neg: n_neg
  x-float: n_float
  x-big: n_big
  x-tiny: n_tiny
  x-true: b_true
  x-false: b_false
  x-mixed: mixed
  x-object: profile
  x-list-of-objects: objects
  x-absent: nothere
  x-bio: bio
  x-jwt-payload: payload
%s
rules:
  - name: api
    match: { paths: ["/api/**"] }
`

// TestIdentityHeaderValues: identity headers carry any claim (nested paths, names with dots),
// lists joined with commas as x-user-roles is, numbers and booleans in their JSON form, and
// "payload" the whole verified payload as base64url JSON, the token's own payload segment.
// A value over identity_headers_max_bytes is not sent (removed upstream like a spoofed copy) and
// is logged at warn with the header's name and size, never its value.
func TestIdentityHeaderValues(t *testing.T) {
	dir := t.TempDir()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer("https://idp.example.com")
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	bio := strings.Repeat("b", 300)
	tok, err := idp.Mint(jwa.RS256, devidp.Claims{
		"sub": "u-42", "aud": "orders-api", "scope": "orders:read orders:write",
		"groups":                   []string{"admin", "billing"},
		"https://example.com/tier": "gold",
		"kubernetes.io":            map[string]any{"namespace": "shop"},
		"profile":                  map[string]any{"level": 3, "address": map[string]any{"country": "NL"}},
		"teams":                    []string{"red", "blue"},
		"n_int":                    42, "n_neg": -7, "n_float": 1.5, "n_big": 1e21, "n_tiny": 0.0000001,
		"b_true": true, "b_false": false,
		"mixed":   []any{1, true, "x"},
		"objects": []any{map[string]any{"a": 1}},
		"bio":     bio,
	}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	segment := strings.Split(tok, ".")[1]
	cases := []struct {
		name, extra  string
		set, remove  string
		warned       []string // headers logged as too large
		wantMaxBytes int
	}{
		{"default bound (8 KiB)", "",
			"[{x-big 1e+21} {x-bio " + bio + "} {x-deep NL} {x-false false} {x-float 1.5} {x-int 42} {x-jwt-payload " + segment + "} {x-level 3} {x-mixed 1,true,x} {x-neg -7} {x-ns shop} {x-teams red,blue} {x-tier gold} {x-tiny 1e-7} {x-true true} {x-user-id u-42} {x-user-roles admin,billing} {x-user-scopes orders:read,orders:write}]",
			"[x-absent x-list-of-objects x-object]", nil, 8192},
		{"bound of 256 bytes", "identity_headers_max_bytes: 256",
			"[{x-big 1e+21} {x-deep NL} {x-false false} {x-float 1.5} {x-int 42} {x-level 3} {x-mixed 1,true,x} {x-neg -7} {x-ns shop} {x-teams red,blue} {x-tier gold} {x-tiny 1e-7} {x-true true} {x-user-id u-42} {x-user-roles admin,billing} {x-user-scopes orders:read,orders:write}]",
			"[x-absent x-bio x-jwt-payload x-list-of-objects x-object]", []string{"x-bio", "x-jwt-payload"}, 256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(fmt.Sprintf(identityHeadersConfig, c.extra)), dir)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			engine, _, stop, err := OneShotStatus(ctx, cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			for _, attempt := range []string{"first", "cached"} {
				d := engine.Decide(context.Background(), &authz.Request{Method: "GET", Host: "h", Path: "/api/x",
					Headers: map[string]string{"authorization": "Bearer " + tok}})
				if !d.Allow || d.Reason != reason.OK {
					t.Fatalf("%s: %d %s %s", attempt, d.Status, d.Reason, d.Detail)
				}
				if got := fmt.Sprint(d.Upstream); got != c.set {
					t.Errorf("%s: set\n got %s\nwant %s", attempt, got, c.set)
				}
				if got := fmt.Sprint(d.UpstreamRemove); got != c.remove {
					t.Errorf("%s: remove %s, want %s", attempt, got, c.remove)
				}
			}
			var warned []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec map[string]any
				if line == "" || json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "identity header not sent: its value is larger than identity_headers_max_bytes" {
					continue
				}
				if rec["level"] != "WARN" || rec["max_bytes"] != float64(c.wantMaxBytes) {
					t.Errorf("log record %s", line)
				}
				warned = append(warned, fmt.Sprintf("%s:%v", rec["header"], rec["bytes"]))
			}
			want := []string{}
			for _, h := range c.warned {
				n := len(bio)
				if h == "x-jwt-payload" {
					n = len(segment)
				}
				want = append(want, fmt.Sprintf("%s:%d", h, n))
			}
			// Logged once, when the token is verified; the cached identity is not rendered again.
			if fmt.Sprint(warned) != fmt.Sprint(want) {
				t.Errorf("warned %v, want %v", warned, want)
			}
			if strings.Contains(logs.String(), bio) || strings.Contains(logs.String(), segment) {
				t.Error("a header value was logged")
			}
		})
	}
}
