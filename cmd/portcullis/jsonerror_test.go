package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckJSONErrors: with --json, standard output is JSON whatever happens: an error is the
// object {"error": {"message", "problems"}}, the usual line going to standard error too.
func TestCheckJSONErrors(t *testing.T) {
	good, _ := checkEnv(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("issuers:\n  - issuer: https://sso.example.com/realms/demo\n    audience: [orders-api]\n    leeway: 30\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		args       []string
		stdout     string
		stderrLast string
	}{
		{"configuration problems", []string{"check", "--json", "--config", bad, "--path", "/"},
			`{
  "error": {
    "message": "config: 3 problems:\n  issuers[0].audience: unknown key (line 3); did you mean audiences? known keys here: issuer, issuer_aliases, tenants, insecure_any_tenant, jwks_uri, jwks_file, audiences, audience_claims, authorized_parties, authorized_party_claims, algorithms, leeway, refresh_interval, min_refresh_interval, ca_file, client_cert_file, client_key_file, proxy_url, roles_claims, token_types, introspection\n  issuers[0].leeway: \"30\" is not a duration (line 4); write it with a unit, e.g. 30s or 15m\n  rules: no rules; every request would be denied with 403 (add at least one rule)",
    "problems": [
      "issuers[0].audience: unknown key (line 3); did you mean audiences? known keys here: issuer, issuer_aliases, tenants, insecure_any_tenant, jwks_uri, jwks_file, audiences, audience_claims, authorized_parties, authorized_party_claims, algorithms, leeway, refresh_interval, min_refresh_interval, ca_file, client_cert_file, client_key_file, proxy_url, roles_claims, token_types, introspection",
      "issuers[0].leeway: \"30\" is not a duration (line 4); write it with a unit, e.g. 30s or 15m",
      "rules: no rules; every request would be denied with 403 (add at least one rule)"
    ]
  }
}
`, "  rules: no rules; every request would be denied with 403 (add at least one rule)"},
		{"no configuration", []string{"check", "--json", "--path", "/"},
			`{
  "error": {
    "message": "no configuration: pass --config FILE or set PORTCULLIS_CONFIG"
  }
}
`, "portcullis: no configuration: pass --config FILE or set PORTCULLIS_CONFIG"},
		{"token file missing", []string{"check", "--json", "--config", good, "--path", "/", "--token", "@/nonexistent"},
			`{
  "error": {
    "message": "--token @/nonexistent: cannot read \"/nonexistent\": no such file or directory"
  }
}
`, `portcullis: --token @/nonexistent: cannot read "/nonexistent": no such file or directory`},
		{"no --path", []string{"check", "--json", "--config", good},
			`{
  "error": {
    "message": "required flag(s) \"path\" not set"
  }
}
`, `portcullis: required flag(s) "path" not set`},
		{"bad flag value", []string{"check", "--json", "--config", good, "--path", "/", "--wait", "-1s"},
			`{
  "error": {
    "message": "--wait \"-1s\": must be positive: no key set could be fetched in no time (e.g. 10s)"
  }
}
`, `portcullis: --wait "-1s": must be positive: no key set could be fetched in no time (e.g. 10s)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PORTCULLIS_CONFIG", "")
			var out, errs bytes.Buffer
			if code := run(context.Background(), c.args, strings.NewReader(""), &out, &errs); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out.String() != c.stdout {
				t.Errorf("stdout\n got: %s\nwant: %s", out.String(), c.stdout)
			}
			var v map[string]any
			if err := json.Unmarshal(out.Bytes(), &v); err != nil {
				t.Errorf("stdout is not JSON: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(errs.String(), "\n"), "\n")
			if got := lines[len(lines)-1]; got != c.stderrLast {
				t.Errorf("stderr ends\n got: %s\nwant: %s", got, c.stderrLast)
			}
		})
	}
}

// TestTestJSONErrors: test --json writes JSON Lines; an error is one such line.
func TestTestJSONErrors(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(context.Background(), []string{"test", "--json", "--run", "a[", "x.yaml"}, strings.NewReader(""), &out, &errs); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	want := `{"error":{"message":"--run \"a[\": error parsing regexp: missing closing ]: ` + "`[`" + `"}}` + "\n"
	if out.String() != want {
		t.Errorf("stdout\n got: %s\nwant: %s", out.String(), want)
	}
}
