package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/jwks"
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

// TestKeySetsServeTheLoadedFiles: the caches serve the jwks_file as config.Load read and
// checked it, and trust the ca_file as it read it; building them reads neither file again, so
// a file removed or rewritten after loading changes nothing until the next load.
func TestKeySetsServeTheLoadedFiles(t *testing.T) {
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(newPKI(t).dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	cfg := "issuers:\n" +
		"  - issuer: https://sso.example.com/realms/demo\n    jwks_file: keys.json\n    audiences: [api]\n" +
		"  - issuer: https://other.example.com\n    jwks_uri: https://other.example.com/keys\n    ca_file: ca.pem\n    audiences: [api]\n" +
		"rules:\n  - name: api\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{keys, filepath.Join(dir, "ca.pem")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	ks := newKeySets(context.Background(), jwks.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler), nil)
	caches, commit, err := ks.build(loaded)
	if err != nil {
		t.Fatalf("build after the files were removed: %v", err)
	}
	commit()
	t.Cleanup(ks.stop)
	st := caches[0].Status()
	if !caches[0].Ready() || st.Source != jwks.SourceFile || st.Keys != 2 {
		t.Errorf("jwks_file cache: ready %v, status %+v; want the 2 keys read by config.Load", caches[0].Ready(), st)
	}
	if caches[1].Ready() || caches[1].Status().Source != jwks.SourceNone {
		t.Errorf("jwks_uri cache: %+v; want no key set before a fetch", caches[1].Status())
	}
}
