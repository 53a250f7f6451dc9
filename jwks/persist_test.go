package jwks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

func TestPersistRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "cache") // created on demand
	parsed, _, err := parseSet(setOf(t, "rsa1", "ec256", "ed"), testAlgorithms())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	issuer := "https://sso.example.com/realms/demo"
	if err := writePersisted(dir, persisted{Issuer: issuer, JWKSURI: "https://sso.example.com/certs", FetchedAt: at}, keysOf(parsed)); err != nil {
		t.Fatal(err)
	}
	path := persistPath(dir, issuer)
	if base := filepath.Base(path); !strings.HasPrefix(base, "jwks-") || len(base) != len("jwks-")+32+len(".json") {
		t.Errorf("file name %q", base)
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: %v %v", info.Mode(), err)
	}

	p, err := readPersisted(dir, issuer, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Issuer != issuer || !p.FetchedAt.Equal(at) || p.JWKSURI != "https://sso.example.com/certs" {
		t.Errorf("read back %+v", p)
	}
	back, _, err := parseSet(p.Set, testAlgorithms())
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 {
		t.Fatalf("read back %d keys", len(back))
	}
	for i := range back {
		if back[i].KID != parsed[i].KID || back[i].Thumbprint != parsed[i].Thumbprint {
			t.Errorf("key %d: %s/%s, want %s/%s", i, back[i].KID, back[i].Thumbprint, parsed[i].KID, parsed[i].Thumbprint)
		}
	}

	// Another issuer's file, even under this name, is refused.
	other := "https://sso.example.com/realms/other"
	if err := os.Rename(path, persistPath(dir, other)); err != nil {
		t.Fatal(err)
	}
	if _, err := readPersisted(dir, other, 1<<20); err == nil || !strings.Contains(err.Error(), `holds the keys of issuer "https://sso.example.com/realms/demo", not "https://sso.example.com/realms/other"`) {
		t.Errorf("foreign file: %v", err)
	}
	if _, err := readPersisted(dir, other, 100); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("size limit: %v", err)
	}
}

// A persisted file holds public keys only: no private member even if the source had one
// (here RSA CRT parameters without "d", which the key set accepts as a public key).
func TestPersistedFileHoldsPublicKeysOnly(t *testing.T) {
	dir := t.TempDir()
	ks := keys(t)
	crt := map[string]any{"p": b64([]byte{1, 2, 3}), "q": b64([]byte{4, 5, 6}), "dp": b64([]byte{7}), "dq": b64([]byte{8}), "qi": b64([]byte{9})}
	idp := newTestIdP(t, setJSON(t, jwkJSON(t, ks["rsa1"].public, crt), jwkJSON(t, ks["ec256"].public, nil), jwkJSON(t, ks["ed"].public, nil)))
	startHarness(t, idp, func(o *Options) { o.CacheDir = dir })
	data, err := os.ReadFile(persistPath(dir, idp.URL()))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Jwks struct {
			Keys []map[string]any `json:"keys"`
		} `json:"jwks"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Jwks.Keys) != 3 {
		t.Fatalf("%d keys persisted", len(p.Jwks.Keys))
	}
	for _, k := range p.Jwks.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("persisted key %v has %q", k["kid"], private)
			}
		}
	}
}

// A corrupt or foreign persisted file is ignored: the cache stays not ready rather than
// trusting it.
func TestCorruptPersistedFileIgnored(t *testing.T) {
	dir := t.TempDir()
	idp := newTestIdP(t, setOf(t, "rsa1"))
	idp.set(func(p *testIdP) { p.status = 503 })
	if err := os.WriteFile(persistPath(dir, idp.URL()), []byte(`{"issuer":`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, idp, func(o *Options) { o.CacheDir = dir })
	if h.cache.Ready() {
		t.Fatal("ready from a corrupt file")
	}
	if _, err := h.lookup("rsa1", jwa.RS256); err != ErrNotLoaded {
		t.Errorf("Lookup: %v", err)
	}
	contains(t, "logs", h.logs.String(), "persisted key set unusable")
}
