package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIssuerFilesCheckedByEveryCommand: a jwks_file that is not a usable JWK Set, or a ca_file
// without a PEM certificate, is refused by validate (no network) with the same message serve
// and check give, before anything is fetched or listened on.
func TestIssuerFilesCheckedByEveryCommand(t *testing.T) {
	cases := []struct {
		name, file, content, key, want string
	}{
		{"jwks_file not a JWK Set", "keys.json", `{"issuer": "https://sso.example.com"}`, "jwks_file",
			`issuers[0].jwks_file: "DIR/keys.json": not a JWK Set: no "keys" array; write the JWK Set the issuer publishes at its jwks_uri ({"keys": [...]}, RFC 7517 §5)`},
		{"jwks_file not JSON", "keys.json", `keys: []`, "jwks_file",
			`issuers[0].jwks_file: "DIR/keys.json": not a JWK Set: invalid character 'k' looking for beginning of value; write the JWK Set the issuer publishes at its jwks_uri ({"keys": [...]}, RFC 7517 §5)`},
		{"jwks_file empty set", "keys.json", `{"keys": []}`, "jwks_file",
			`issuers[0].jwks_file: "DIR/keys.json": no usable keys: the key set is empty; put the issuer's public signing keys in it, or allow their algorithm in issuers[0].algorithms`},
		{"ca_file without a certificate", "ca.pem", "not a certificate\n", "ca_file",
			`issuers[0].ca_file: "DIR/ca.pem" holds no PEM certificate; write the CA certificates as PEM ("-----BEGIN CERTIFICATE-----" blocks)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "p.yaml")
			cfg := "server: { grpc_addr: \"127.0.0.1:0\", http_addr: \"\", admin_addr: \"\" }\n" +
				"issuers:\n  - issuer: https://sso.example.com/realms/demo\n    audiences: [api]\n    " + c.key + ": " + c.file + "\n" +
				"rules:\n  - name: api\n"
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			want := "portcullis: config: " + strings.ReplaceAll(c.want, "DIR", dir) + "\n"
			for _, cmd := range []struct {
				args []string
				exit int
			}{
				{[]string{"validate", "--config", path}, 1},
				{[]string{"check", "--config", path, "--path", "/x"}, 2},
				{[]string{"serve", "--config", path}, 2},
			} {
				var out, errs bytes.Buffer
				if code := run(context.Background(), cmd.args, strings.NewReader(""), &out, &errs); code != cmd.exit {
					t.Errorf("%s: exit %d, want %d", cmd.args[0], code, cmd.exit)
				}
				if errs.String() != want {
					t.Errorf("%s: stderr\n got: %s\nwant: %s", cmd.args[0], errs.String(), want)
				}
				if out.Len() != 0 {
					t.Errorf("%s: stdout %q", cmd.args[0], out.String())
				}
			}
		})
	}
}
