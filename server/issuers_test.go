package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// TestReloadJWKSFile: a reload reads the jwks_file as a start does. A file that is no longer a
// JWK Set is refused with config's message and the running key set keeps serving; a changed
// but valid file is a new key set; an unchanged one keeps its cache.
func TestReloadJWKSFile(t *testing.T) {
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer("https://sso.example.com/realms/demo")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	cfg := fmt.Sprintf("server: { grpc_addr: \"127.0.0.1:0\", http_addr: \"\", admin_addr: \"\" }\n"+
		"issuers:\n  - issuer: %q\n    jwks_file: keys.json\n    audiences: [api]\nrules:\n  - name: api\n", idp.Issuer())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, path)
	running := func() map[keySpec]*runningCache {
		srv.keys.mu.Lock()
		defer srv.keys.mu.Unlock()
		return srv.keys.running
	}
	first := running()
	if len(first) != 1 || !srv.Ready() {
		t.Fatalf("caches %d, ready %v", len(first), srv.Ready())
	}

	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for spec, rc := range running() {
		if first[spec] != rc {
			t.Error("an unchanged jwks_file got a new cache")
		}
	}

	if err := os.WriteFile(keys, []byte(`{"kid": "not a set"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `config: issuers[0].jwks_file: "` + keys + `": not a JWK Set: no "keys" array; write the JWK Set the issuer publishes at its jwks_uri ({"keys": [...]}, RFC 7517 §5)`
	if err := srv.Reload(); err == nil || err.Error() != want {
		t.Errorf("reload error\n got: %v\nwant: %s", err, want)
	}
	if got := running(); len(got) != 1 || !srv.Ready() {
		t.Errorf("after a refused reload: caches %d, ready %v", len(got), srv.Ready())
	}

	other, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, other.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for spec, rc := range running() {
		if first[spec] == rc {
			t.Error("a changed jwks_file kept its cache")
		}
		if spec.jwksDigest == "" {
			t.Error("the spec carries no digest of the file")
		}
	}
}
