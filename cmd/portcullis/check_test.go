package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/reason"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const checkIssuer = "https://sso.example.com/realms/demo"

const checkConfig = `
issuers:
  - issuer: "https://sso.example.com/realms/demo"
    jwks_file: keys.json
    audiences: [orders-api]
rules:
  - name: health
    match: { paths: ["/healthz"], methods: [GET] }
    public: true
  - name: admin
    match: { paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
  - name: api
    match: { paths: ["/api/**"] }
`

// checkEnv is a configuration with static keys (no network) and an issuer that mints for it.
func checkEnv(t *testing.T) (string, *devidp.IdP) {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(checkIssuer)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(checkConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, idp
}

// TestCheckGolden runs `portcullis check` on the common misconfigurations and compares the
// explanation with testdata/check/NAME.golden (go test -run TestCheckGolden -update rewrites them).
func TestCheckGolden(t *testing.T) {
	path, idp := checkEnv(t)
	mint := func(claims devidp.Claims, ttl time.Duration) string {
		base := devidp.Claims{"sub": "alice-sub", "aud": "orders-api", "typ": "Bearer", "preferred_username": "alice",
			"email": "alice@example.com", "realm_access": map[string]any{"roles": []string{"user"}}}
		for k, v := range claims {
			base[k] = v
		}
		tok, err := idp.Mint(jwa.RS256, base, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(nil, time.Hour)
	// The same configuration, with path parameters stripped before matching.
	strip := filepath.Join(filepath.Dir(path), "strip.yaml")
	if err := os.WriteFile(strip, []byte(checkConfig+"paths: { matrix_parameters: strip }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A rule asking for a scope the tokens lack (appended to the rules list, after which
	// nothing else matches /purge).
	scoped := filepath.Join(filepath.Dir(path), "scoped.yaml")
	if err := os.WriteFile(scoped, []byte(checkConfig+"  - name: purge\n    match: { paths: [\"/purge/**\"] }\n    require: { scopes: [\"orders:delete\"] }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Rules with conditions and alternatives (appended; nothing earlier matches their paths).
	conds := filepath.Join(filepath.Dir(path), "conditions.yaml")
	if err := os.WriteFile(conds, []byte(checkConfig+`  - name: tenant-orders
    match: { paths: ["/tenants/{tenant}/orders/**"] }
    require: { any_roles: [user], when: 'claims.tenant_id == params.tenant' }
  - name: profile
    match: { paths: ["/users/{id}/**"] }
    require:
      any_of:
        - { any_roles: [admin] }
        - { when: 'claims.sub == params.id' }
  - name: internal-admin
    match: { paths: ["/internal/**"], context: { portcullis-zone: internal } }
    require: { all_roles: [admin], when: 'cidr("10.0.0.0/8").containsIP(source.address)' }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tenant := mint(devidp.Claims{"tenant_id": "acme"}, time.Hour)
	admin := mint(devidp.Claims{"realm_access": map[string]any{"roles": []string{"admin"}}}, time.Hour)
	// A second issuer whose keys cannot be fetched (nothing listens on port 1 of loopback).
	const downIssuer = "https://down.example.com/realms/x"
	down := filepath.Join(filepath.Dir(path), "down.yaml")
	if err := os.WriteFile(down, []byte(strings.Replace(checkConfig, "rules:\n",
		"  - issuer: \""+downIssuer+"\"\n    jwks_uri: http://127.0.0.1:1/certs\n    audiences: [orders-api]\nrules:\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The issuer as a local identity provider reached over 127.0.0.1 names itself, beside the
	// first: tokens fetched at http://localhost:8080 carry another iss.
	const loopbackIssuer = "http://127.0.0.1:8080/realms/demo"
	loopback := filepath.Join(filepath.Dir(path), "loopback.yaml")
	if err := os.WriteFile(loopback, []byte(strings.Replace(checkConfig, "rules:\n",
		"  - issuer: \""+loopbackIssuer+"\"\n    jwks_file: keys.json\n    audiences: [orders-api]\nrules:\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// A Keycloak refresh token as the token endpoint returns it: HS512 with the realm's own
	// secret, typ Refresh, aud the realm itself (its signature is never checked: the algorithm
	// is refused first).
	refresh := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT","kid":"6f1a9c2e-3b7d-4e58-9a0c-1d2e3f4a5b6c"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"exp":`+strconv.FormatInt(time.Now().Add(30*time.Minute).Unix(), 10)+`,"iat":`+strconv.FormatInt(time.Now().Unix(), 10)+
			`,"jti":"0b9e1f7a-refresh","iss":"`+checkIssuer+`","aud":"`+checkIssuer+`","sub":"alice-sub","typ":"Refresh","azp":"web","sid":"5c0d","scope":"openid profile email"}`)) +
		"." + base64.RawURLEncoding.EncodeToString([]byte("not-a-real-hmac-signature-of-64-bytes-not-a-real-hmac-signature!"))
	// A Keycloak ID token: typ ID, addressed to the client that signed in.
	idToken := mint(devidp.Claims{"typ": "ID", "aud": "web", "azp": "web", "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "realm_access": nil}, time.Hour)
	emptyFile := filepath.Join("testdata", "check", "empty.jwt")
	parts := strings.Split(good, ".")
	// good's claims and signature under another token's header and payload: the signature
	// does not verify.
	forged := strings.Join(strings.Split(mint(devidp.Claims{"sub": "admin"}, time.Hour), ".")[:2], ".") + "." + parts[2]
	// good's payload under a kid the key set does not hold (it is looked up before the
	// signature is checked).
	retired := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"retired-2023","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]
	// Token introspection: an endpoint that says good is active and any other token is not,
	// and one where nothing listens.
	intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("token") == good {
			fmt.Fprintf(w, `{"active": true, "sub": "alice-sub", "exp": %d}`, time.Now().Add(time.Hour).Unix())
			return
		}
		fmt.Fprint(w, `{"active": false}`)
	}))
	defer intro.Close()
	secret := filepath.Join(filepath.Dir(path), "secret")
	if err := os.WriteFile(secret, []byte("check-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	introConfig := func(name, endpoint string) string {
		file := filepath.Join(filepath.Dir(path), name)
		cfg := strings.Replace(checkConfig, "audiences: [orders-api]\n", "audiences: [orders-api]\n    introspection:\n      endpoint: "+endpoint+
			"\n      client_id: portcullis\n      client_secret_file: secret\n", 1) +
			"  - name: payments\n    match: { paths: [\"/payments/**\"] }\n    require: { active: true }\n"
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	introspecting := introConfig("introspecting.yaml", intro.URL+"/introspect")
	introDown := introConfig("introspection-down.yaml", "http://127.0.0.1:1/introspect")
	revoked := mint(devidp.Claims{"sub": "bob-sub"}, time.Hour)
	cases := []struct {
		name   string
		args   []string
		stdin  string
		exit   int
		config string      // default: path
		reason reason.Code // the reason the explanation shows; "" when there is none (an error)
		stderr bool        // the golden ends with the command's error, after "--- stderr"
		fast   bool        // must end well within its --wait
	}{
		{name: "allow", args: []string{"--path", "/api/orders/1", "--token", good}, exit: 0, reason: reason.OK},
		{name: "allow_json", args: []string{"--path", "/api/orders/1", "--token", "-", "--json"}, stdin: good + "\n", exit: 0, reason: reason.OK},
		{name: "issuer_trailing_slash", args: []string{"--path", "/api/orders/1", "--token", mint(devidp.Claims{"iss": checkIssuer + "/"}, time.Hour)}, exit: 1, reason: reason.UnknownIssuer},
		{name: "audience_account", args: []string{"--path", "/api/orders/1", "--token", mint(devidp.Claims{"aud": "account"}, time.Hour)}, exit: 1, reason: reason.WrongAudience},
		{name: "expired", args: []string{"--path", "/api/orders/1", "--token", mint(nil, -192*time.Second)}, exit: 1, reason: reason.Expired},
		{name: "clock_skew", args: []string{"--path", "/api/orders/1", "--token", mint(devidp.Claims{"nbf": time.Now().Add(10 * time.Minute).Unix()}, time.Hour)}, exit: 1, reason: reason.InvalidToken},
		{name: "missing_role", args: []string{"--path", "/api/admin/users", "--token", good}, exit: 1, reason: reason.Forbidden},
		{name: "no_rule", args: []string{"--method", "DELETE", "--path", "/other", "--token", good}, exit: 1, reason: reason.NoRule},
		{name: "no_token", args: []string{"--path", "/api/orders/1"}, exit: 1, reason: reason.NoToken},
		{name: "public_anonymous", args: []string{"--path", "/healthz"}, exit: 0, reason: reason.Public},
		{name: "path_parameter", args: []string{"--path", "/api/admin;x/users", "--token", good}, exit: 1, reason: reason.BadRequest},
		{name: "path_parameter_stripped", args: []string{"--path", "/api/admin;x/users", "--token", good}, exit: 1, config: strip, reason: reason.Forbidden},
		{name: "path_not_utf8", args: []string{"--path", "/healthz%c0%ae"}, exit: 1, reason: reason.BadRequest},
		{name: "bad_signature", args: []string{"--path", "/api/orders/1", "--token", forged}, exit: 1, reason: reason.BadSignature},
		{name: "unknown_key", args: []string{"--path", "/api/orders/1", "--token", retired}, exit: 1, reason: reason.UnknownKey},
		{name: "missing_scope", args: []string{"--path", "/purge/all", "--token", good}, exit: 1, config: scoped, reason: reason.InsufficientScope},
		{name: "when_false", args: []string{"--path", "/tenants/globex/orders/1", "--token", tenant}, exit: 1, config: conds, reason: reason.Forbidden},
		{name: "when_error", args: []string{"--path", "/tenants/acme/orders/1", "--token", good}, exit: 1, config: conds, reason: reason.Forbidden},
		{name: "any_of", args: []string{"--path", "/users/bob/settings", "--token", good}, exit: 1, config: conds, reason: reason.Forbidden},
		{name: "any_of_json", args: []string{"--path", "/users/bob/settings", "--token", good, "--json"}, exit: 1, config: conds, reason: reason.Forbidden},
		{name: "source_outside", args: []string{"--path", "/internal/flags", "--source", "203.0.113.7", "--context", "portcullis-zone=internal", "--token", admin},
			exit: 1, config: conds, reason: reason.Forbidden},
		{name: "source_internal", args: []string{"--path", "/internal/flags", "--source", "10.1.2.3", "--context", "portcullis-zone=internal", "--token", admin},
			exit: 0, config: conds, reason: reason.OK},
		{name: "context_missing", args: []string{"--path", "/internal/flags", "--source", "10.1.2.3", "--token", admin}, exit: 1, config: conds, reason: reason.NoRule},
		{name: "context_rule", args: []string{"--path", "/elsewhere", "--context", "portcullis-rule=tenant-orders", "--token", tenant}, exit: 1, config: conds, reason: reason.Forbidden},
		{name: "keys_unavailable_json", args: []string{"--path", "/api/orders/1", "--wait", "1m", "--json", "--token", mint(devidp.Claims{"iss": downIssuer}, time.Hour)},
			exit: 2, config: down, reason: reason.Unavailable, stderr: true, fast: true},
		// What people actually paste.
		{name: "keys_unavailable", args: []string{"--path", "/api/orders/1", "--wait", "1m", "--token", mint(devidp.Claims{"iss": downIssuer}, time.Hour)},
			exit: 2, config: down, reason: reason.Unavailable, stderr: true, fast: true},
		{name: "keys_unavailable_other_issuer", args: []string{"--path", "/api/orders/1", "--wait", "1m", "--token", good},
			exit: 0, config: down, reason: reason.OK, fast: true},
		{name: "issuer_localhost", args: []string{"--path", "/api/orders/1", "--token", mint(devidp.Claims{"iss": "http://localhost:8080/realms/demo"}, time.Hour)},
			exit: 1, config: loopback, reason: reason.UnknownIssuer},
		{name: "issuer_elsewhere", args: []string{"--path", "/api/orders/1", "--token", mint(devidp.Claims{"iss": "https://sso.example.org/realms/demo"}, time.Hour)},
			exit: 1, config: loopback, reason: reason.UnknownIssuer},
		{name: "dpop_no_proof", args: []string{"--path", "/api/orders/1", "--header", "authorization=DPoP " + mint(devidp.Claims{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}, time.Hour)},
			exit: 1, reason: reason.InvalidDPoPProof},
		{name: "bearer_pasted", args: []string{"--path", "/api/orders/1", "--token", "Bearer " + good}, exit: 1, reason: reason.InvalidToken},
		{name: "refresh_token", args: []string{"--path", "/api/orders/1", "--token", refresh}, exit: 1, reason: reason.InvalidToken},
		{name: "id_token", args: []string{"--path", "/api/orders/1", "--token", idToken}, exit: 1, reason: reason.WrongAudience},
		{name: "introspection_active", args: []string{"--path", "/payments/1", "--token", good}, exit: 0, config: introspecting, reason: reason.OK},
		{name: "introspection_active_json", args: []string{"--path", "/payments/1", "--token", good, "--json"}, exit: 0, config: introspecting, reason: reason.OK},
		{name: "introspection_inactive", args: []string{"--path", "/payments/1", "--token", revoked}, exit: 1, config: introspecting, reason: reason.InvalidToken},
		{name: "introspection_not_required", args: []string{"--path", "/api/orders/1", "--token", revoked}, exit: 0, config: introspecting, reason: reason.OK},
		{name: "introspection_unavailable", args: []string{"--path", "/payments/1", "--token", good}, exit: 2, config: introDown, reason: reason.IntrospectionUnavailable, stderr: true},
		{name: "token_file_missing", args: []string{"--path", "/api/orders/1", "--token", "@missing.jwt"}, exit: 2, stderr: true},
		{name: "token_file_empty", args: []string{"--path", "/api/orders/1", "--token", "@" + emptyFile}, exit: 2, stderr: true},
	}
	// Every reason of the table is explained by at least one case.
	shown := map[reason.Code]bool{}
	for _, c := range cases {
		if c.reason != "" {
			shown[c.reason] = true
		}
	}
	for _, a := range reason.All() {
		if !shown[a.Code] {
			t.Errorf("reason %s: no case of `portcullis check` shows it", a.Code)
		}
	}
	volatile := []*regexp.Regexp{
		regexp.MustCompile(`expired 3m[1-5][0-9]s ago`), // minted before the cases run; a loaded machine adds seconds
		regexp.MustCompile(`not valid before \S+ \(\d+m\d+s from now`),
		regexp.MustCompile(`cached until \S+|"cached_until": "[^"]+"`),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			config := path
			if c.config != "" {
				config = c.config
			}
			args := append([]string{"check", "--config", config}, c.args...)
			start := time.Now()
			code := run(context.Background(), args, strings.NewReader(c.stdin), &out, &errs)
			if code != c.exit {
				t.Errorf("exit %d, want %d; stderr: %s", code, c.exit, errs.String())
			}
			if took := time.Since(start); c.fast && took > 20*time.Second {
				t.Errorf("took %s of its --wait 1m; a failed fetch must end the wait", took.Truncate(time.Second))
			}
			got := out.String()
			var res struct {
				Status int         `json:"status"`
				Reason reason.Code `json:"reason"`
			}
			switch {
			case c.reason == "": // an error: no explanation, and the zero reason and status
				if got != "" {
					t.Errorf("an error explains nothing, yet stdout is %q", got)
				}
			case slices.Contains(c.args, "--json"):
				if err := json.Unmarshal(out.Bytes(), &res); err != nil {
					t.Fatalf("--json output: %v", err)
				}
			default:
				for _, line := range strings.Split(got, "\n") {
					if v, ok := strings.CutPrefix(line, "reason:"); ok {
						res.Reason = reason.Code(strings.TrimSpace(v))
					}
					if v, ok := strings.CutPrefix(line, "decision:"); ok {
						_, status, _ := strings.Cut(v, "(HTTP ")
						res.Status, _ = strconv.Atoi(strings.TrimSuffix(strings.Fields(status)[0], ")"))
					}
				}
			}
			// The status of the explanation is the reason's, but for a dry-run deny (served as
			// an allow).
			if a, _ := reason.Of(c.reason); res.Reason != c.reason || res.Status != a.Status {
				t.Errorf("explains %s (HTTP %d), want %s (HTTP %d)", res.Reason, res.Status, c.reason, a.Status)
			}
			if c.stderr { // the command's own lines, not the logs of key loading
				got += "--- stderr\n"
				for _, line := range strings.SplitAfter(errs.String(), "\n") {
					if strings.HasPrefix(line, "portcullis: ") {
						got += line
					}
				}
			}
			for _, re := range volatile {
				got = re.ReplaceAllStringFunc(got, func(s string) string {
					switch {
					case strings.HasPrefix(s, "expired"):
						return "expired 3m12s ago"
					case strings.HasPrefix(s, "cached until"):
						return "cached until <time>"
					case strings.HasPrefix(s, `"cached_until"`):
						return `"cached_until": "<time>"`
					default:
						return "not valid before <time> (9m59s from now"
					}
				})
			}
			golden := filepath.Join("testdata", "check", c.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	path, _ := checkEnv(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"check", "--path", "/"}, "no configuration: pass --config FILE or set PORTCULLIS_CONFIG"},
		{"token file missing", []string{"check", "--config", path, "--path", "/", "--token", "@/nonexistent"}, `--token @/nonexistent: cannot read "/nonexistent": no such file or directory`},
		{"bad header flag", []string{"check", "--config", path, "--path", "/", "--header", "novalue"}, `--header "novalue": write it as Name=value`},
		{"source with a port", []string{"check", "--config", path, "--path", "/", "--source", "10.1.2.3:5678"},
			`--source "10.1.2.3:5678": not an IP address; give the client address as Envoy reports it, e.g. 10.1.2.3 or 2001:db8::1 (no port)`},
		{"bad context flag", []string{"check", "--config", path, "--path", "/", "--context", "=x"}, `--context "=x": write it as name=value`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PORTCULLIS_CONFIG", "")
			var out, errs bytes.Buffer
			if code := run(context.Background(), c.args, strings.NewReader(""), &out, &errs); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if got := strings.TrimSpace(errs.String()); got != "portcullis: "+c.want {
				t.Errorf("stderr = %q", got)
			}
		})
	}
}

func TestValidateCommand(t *testing.T) {
	path, _ := checkEnv(t)
	var out, errs bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--config", path}, nil, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if got := out.String(); got != path+": valid (1 issuer(s), 3 rule(s))\n" {
		t.Errorf("stdout = %q", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("issuers: []\nrules: []\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errs.Reset()
	if code := run(context.Background(), []string{"validate", "--config", bad}, nil, &out, &errs); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// The unknown key (no known key is like it) and the problems of the checks after
	// reading, in one pass.
	if got := errs.String(); got != "portcullis: config: 3 problems:\n"+
		"  bogus: unknown key (line 3); known keys here: server, issuers, tokens, identity_headers, identity_headers_max_bytes, forward_token, cache, jwks_cache_dir, forward_auth, paths, dpop, mtls, rules, tracing\n"+
		"  issuers: at least one issuer is needed\n"+
		"  rules: no rules; every request would be denied with 403 (add at least one rule)\n" {
		t.Errorf("stderr = %q", got)
	}
}

// TestValidateWarnings: warnings are printed; --strict turns them into a failure.
func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    jwks_uri: https://sso.example.com/realms/demo/protocol/openid-connect/certs
    audiences: [account]
rules:
  - name: docs
    match: { paths: ["/docs/**"], methods: [GET] }
    public: true
  - name: api
    match: { paths: ["/api/**"] }
  - name: admin
    match: { paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
  - name: docs-edit
    match: { paths: ["/docs/*"] }
    require: { any_roles: [editor] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `warning: issuers[0].audiences: "account" is Keycloak's default audience, carried by every token of the realm; add an audience mapper in Keycloak and list your client id
warning: rules[2] "admin" is shadowed by rules[1] "api" (earlier rule matches everything it matches)
warning: rules[0] "docs" is public and also matches some requests of later protected rules[3] "docs-edit"; those requests need no token (move the protected rule above it, or narrow "docs")
` + path + ": valid (1 issuer(s), 4 rule(s))\n"
	var out, errs bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--config", path}, nil, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if out.String() != want {
		t.Errorf("stdout\n got: %s\nwant: %s", out.String(), want)
	}
	out.Reset()
	if code := run(context.Background(), []string{"validate", "--strict", "--config", path}, nil, &out, &errs); code != 1 {
		t.Errorf("--strict exit %d, want 1", code)
	}
	if !strings.Contains(errs.String(), "portcullis: 3 warning(s) and --strict") {
		t.Errorf("stderr = %q", errs.String())
	}
}
