package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// runTestCmd runs `portcullis test ARGS...` and returns its exit code and outputs.
func runTestCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(context.Background(), append([]string{"test"}, args...), strings.NewReader(""), &out, &errs)
	return code, out.String(), errs.String()
}

// TestPolicyTestExample runs examples/policy_test.yaml against examples/portcullis.yaml, as
// `make test` does through `go test ./...`: every case must pass.
func TestPolicyTestExample(t *testing.T) {
	code, out, errs := runTestCmd(t, "../../examples/policy_test.yaml")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "PASS ") {
			t.Errorf("line %q", l)
		}
	}
	if want := regexp.MustCompile(`^\d+ passed, 0 failed$`); !want.MatchString(lines[len(lines)-1]) {
		t.Errorf("summary %q", lines[len(lines)-1])
	}
	if len(lines) < 20 {
		t.Errorf("%d cases, want the example configuration covered", len(lines)-1)
	}
}

// TestPolicyTest runs the fixtures of testdata/policy and checks the exit code and both
// outputs exactly.
func TestPolicyTest(t *testing.T) {
	const dir = "testdata/policy/"
	cases := []struct {
		name     string
		args     []string
		exit     int
		out, err string
	}{
		{"all pass", []string{dir + "pass.yaml"}, 0, `PASS anonymous health
PASS admin allowed
PASS only the status is checked
PASS the first audience is filled in; another may be given
PASS a null claim is left out
PASS a raw token
PASS no rule
PASS a deny's answer headers
8 passed, 0 failed
`, ""},
		{"each expect field fails", []string{dir + "fail.yaml"}, 1, `PASS passes
FAIL decision: expected decision deny; got decision allow
FAIL status: expected status 401; got status 200
FAIL rule: expected rule "api"; got rule "health"
FAIL no rule expected: expected rule (none); got rule "health"
FAIL reason: expected reason ok; got reason public
FAIL header value: expected header x-user-id "alice"; got header x-user-id "carol"
FAIL header not set: expected header x-user-email "carol@example.com"; got header x-user-email not set
FAIL removed: expected removed x-user-id, x-user-roles; got x-user-id not removed, x-user-roles not removed
FAIL several fields: expected decision allow, status 200, reason ok; got decision deny, status 403, reason forbidden (missing role "admin")
1 passed, 9 failed
`, ""},
		{"every key kind, cookie source, azp", []string{dir + "algorithms.yaml"}, 0, `PASS RS512
PASS PS256
PASS ES256
PASS ES384
PASS ES512
PASS EdDSA
PASS another cookie is kept
PASS azp is checked
8 passed, 0 failed
`, ""},
		{"source address and context extensions", []string{dir + "conditions.yaml"}, 1, `PASS internal address and context
PASS an IPv4-mapped IPv6 address is the IPv4 address
PASS outside address
PASS no context, no rule
PASS portcullis-rule names the rule
FAIL the values the condition saw: expected decision allow; got decision deny (missing condition "cidr(\"10.0.0.0/8\").containsIP(source.address) && context.team == \"ops\"" is false (source.address = "203.0.113.7", context.team = "dev"))
5 passed, 1 failed
`, ""},
		{"run filter", []string{"--run", "^(status|re)", dir + "fail.yaml"}, 1, `FAIL status: expected status 401; got status 200
FAIL reason: expected reason ok; got reason public
FAIL removed: expected removed x-user-id, x-user-roles; got x-user-id not removed, x-user-roles not removed
0 passed, 3 failed
`, ""},
		{"run filter over two files", []string{"--run", "raw|passes", dir + "pass.yaml", dir + "fail.yaml"}, 0, `PASS a raw token
PASS passes
2 passed, 0 failed
`, ""},
		{"run filter matching nothing", []string{"--run", "nothing", dir + "pass.yaml"}, 0, "0 passed, 0 failed\n",
			"portcullis: warning: --run \"nothing\" matches no test case\n"},
		{"bad regexp", []string{"--run", "a[", dir + "pass.yaml"}, 2, "",
			"portcullis: --run \"a[\": error parsing regexp: missing closing ]: `[`\n"},
		{"no file", nil, 2, "", "portcullis: requires at least 1 arg(s), only received 0\n"},
		{"test file missing", []string{dir + "nope.yaml"}, 2, "",
			"portcullis: testdata/policy/nope.yaml: cannot read the test file: no such file or directory\n"},
		{"unknown key", []string{dir + "bad_unknown_key.yaml"}, 2, "",
			"portcullis: testdata/policy/bad_unknown_key.yaml: tests[0].expect.statuz: unknown key (line 5); did you mean status? known keys here: decision, status, rule, reason, headers, removed\n"},
		{"unknown issuer", []string{dir + "bad_unknown_issuer.yaml"}, 2, "",
			`portcullis: testdata/policy/bad_unknown_issuer.yaml: tests[0].token.issuer: "https://sso.invalid/realms/other" is not an issuer of portcullis.yaml; configured: "https://sso.invalid/realms/t"` + "\n"},
		{"unknown reason", []string{dir + "bad_unknown_reason.yaml"}, 2, "",
			`portcullis: testdata/policy/bad_unknown_reason.yaml: tests[0].expect.reason: "expird" is not a reason; reasons: ok, public, no_rule, no_token, invalid_token, expired, bad_signature, unknown_issuer, unknown_key, wrong_audience, invalid_dpop_proof, forbidden, insufficient_scope, bad_request, unavailable, introspection_unavailable` + "\n"},
		{"no config key", []string{dir + "bad_no_config.yaml"}, 2, "",
			"portcullis: testdata/policy/bad_no_config.yaml: config: required; name the configuration file to test, relative to this file\n"},
		{"config file missing", []string{dir + "bad_config_missing.yaml"}, 2, "",
			`portcullis: testdata/policy/bad_config_missing.yaml: config: cannot read "nope.yaml" (testdata/policy/nope.yaml): no such file or directory` + "\n"},
		{"config does not load", []string{dir + "bad_config_invalid.yaml"}, 2, "",
			`portcullis: testdata/policy/bad_config_invalid.yaml: config: "bad_config_invalid_config.yaml" does not load: config: rules: no rules; every request would be denied with 403 (add at least one rule)` + "\n"},
		{"bad cases", []string{dir + "bad_cases.yaml"}, 2, "", `portcullis: testdata/policy/bad_cases.yaml: 10 problems:
  tests[0].expect: nothing to check; give at least one of decision, status, rule, reason, headers, removed
  tests[1].name: "a" is also the name of tests[0]; give each case its own name
  tests[1].request.path: required; give the request target as sent, e.g. /api/orders/1
  tests[1].token: raw is a literal token; give either raw or issuer with claims, not both
  tests[1].expect.decision: "permit" is not allow or deny
  tests[1].expect.status: 302 is never answered; Portcullis answers 200, 400, 401, 403, 503
  tests[1].expect.rule: "nope" is not a rule of portcullis.yaml; rules: health, admin, write, api ("" = no rule matched)
  tests[2].name: required; name the case (it is what PASS and FAIL lines and --run show)
  tests[2].token: give issuer (with claims) for a token the runner mints, or raw for a literal token
  tests[3].request.source: "10.1.2.3:5678" is not an IP address; give the client address as Envoy reports it, e.g. 10.1.2.3 or 2001:db8::1 (no port)
`},
		{"an error in one file runs no case", []string{dir + "pass.yaml", dir + "bad_unknown_key.yaml"}, 2, "",
			"portcullis: testdata/policy/bad_unknown_key.yaml: tests[0].expect.statuz: unknown key (line 5); did you mean status? known keys here: decision, status, rule, reason, headers, removed\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runTestCmd(t, c.args...)
			if code != c.exit {
				t.Errorf("exit %d, want %d", code, c.exit)
			}
			if out != c.out {
				t.Errorf("stdout\n got: %s\nwant: %s", out, c.out)
			}
			if errs != c.err {
				t.Errorf("stderr\n got: %s\nwant: %s", errs, c.err)
			}
		})
	}
}

// TestPolicyTestJSON: --json prints one object per case (name, file, passed; expected, got and
// detail on failure) and a summary object last.
func TestPolicyTestJSON(t *testing.T) {
	code, out, errs := runTestCmd(t, "--json", "--run", "^(passes|header value|removed|several fields)$", "testdata/policy/fail.yaml")
	if code != 1 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := []string{
		`{"file":"testdata/policy/fail.yaml","name":"passes","passed":true}`,
		`{"file":"testdata/policy/fail.yaml","name":"header value","passed":false,"expected":{"headers":{"x-user-id":"alice"}},"got":{"headers":{"x-user-id":"carol"}}}`,
		`{"file":"testdata/policy/fail.yaml","name":"removed","passed":false,"expected":{"removed":["x-user-id","x-user-roles"]},"got":{"removed":["x-user-email"]}}`,
		`{"file":"testdata/policy/fail.yaml","name":"several fields","passed":false,"expected":{"decision":"allow","reason":"ok","status":200},"got":{"decision":"deny","reason":"forbidden","status":403},"detail":"missing role \"admin\""}`,
		`{"summary":{"passed":1,"failed":3}}`,
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout\n got: %s\nwant: %s", out, strings.Join(want, "\n"))
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("%q is not a JSON object: %v", l, err)
		}
	}
	// A header that is not set is null in got.
	_, out, _ = runTestCmd(t, "--json", "--run", "^header not set$", "testdata/policy/fail.yaml")
	if !strings.Contains(out, `"got":{"headers":{"x-user-email":null}}`) {
		t.Errorf("stdout %s", out)
	}
}

// TestPolicyTestNeverFetches: issuers that discover their keys, name a jwks_uri or a
// jwks_file are all given the run's generated key; the identity provider is never contacted.
func TestPolicyTestNeverFetches(t *testing.T) {
	var requests atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "not here", http.StatusInternalServerError)
	}))
	defer idp.Close()
	other, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys.json", string(other.JWKS()))
	write("portcullis.yaml", fmt.Sprintf(`
server: { grpc_addr: "127.0.0.1:0", http_addr: "", admin_addr: "" }
issuers:
  - { issuer: %q, audiences: [api] }
  - { issuer: "https://uri.invalid", jwks_uri: %q, audiences: [api] }
  - { issuer: "https://file.invalid", jwks_file: keys.json, audiences: [api], algorithms: [ES256] }
jwks_cache_dir: cache
rules:
  - name: any
    match: { paths: ["/**"] }
`, idp.URL, idp.URL+"/jwks"))
	write("policy_test.yaml", fmt.Sprintf(`
config: portcullis.yaml
tests:
  - { name: discovered, request: { path: /x }, token: { issuer: %q, claims: { sub: a } }, expect: { reason: ok } }
  - { name: jwks_uri, request: { path: /x }, token: { issuer: "https://uri.invalid", claims: { sub: a } }, expect: { reason: ok } }
  - { name: jwks_file, request: { path: /x }, token: { issuer: "https://file.invalid", claims: { sub: a } }, expect: { reason: ok } }
`, idp.URL))
	code, out, errs := runTestCmd(t, filepath.Join(dir, "policy_test.yaml"))
	if code != 0 || errs != "" || out != "PASS discovered\nPASS jwks_uri\nPASS jwks_file\n3 passed, 0 failed\n" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the identity provider got %d requests, want none", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache")); !os.IsNotExist(err) {
		t.Errorf("jwks_cache_dir written: %v", err)
	}
}
