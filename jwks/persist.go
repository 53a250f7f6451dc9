package jwks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
)

// persisted is the file kept per issuer in Options.CacheDir: the last good key set (public
// keys that passed the checks, nothing else) and where and when it was fetched.
type persisted struct {
	Issuer    string          `json:"issuer"`
	JWKSURI   string          `json:"jwks_uri,omitempty"`
	FetchedAt time.Time       `json:"fetched_at"`
	Set       json.RawMessage `json:"jwks"` // a JWK Set document
}

// persistPath names the file of issuer in dir by a hash of the issuer, so any issuer string
// gives a safe, fixed-length file name.
func persistPath(dir, issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return filepath.Join(dir, "jwks-"+hex.EncodeToString(sum[:16])+".json")
}

// writePersisted stores keys atomically: a private temporary file in dir, synced, then renamed
// over the previous one, so a crash leaves the old file or the new one, never a torn one.
func writePersisted(dir string, p persisted, keys []Key) error {
	jwks := struct {
		Keys []jwk.Key `json:"keys"`
	}{Keys: make([]jwk.Key, len(keys))}
	for i, k := range keys {
		jwks.Keys[i] = k.JWK
	}
	set, err := json.Marshal(jwks)
	if err != nil {
		return err
	}
	p.Set = set
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".jwks-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), persistPath(dir, p.Issuer)); err != nil {
		return err
	}
	// Make the rename itself durable; not every platform can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readPersisted loads the file of issuer from dir. A missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist).
func readPersisted(dir, issuer string, limit int64) (*persisted, error) {
	f, err := os.Open(persistPath(dir, issuer))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := ReadDocument(f, limit)
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name(), limit)
	}
	if err != nil {
		return nil, err
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if p.Issuer != issuer {
		return nil, fmt.Errorf("%s holds the keys of issuer %q, not %q", f.Name(), p.Issuer, issuer)
	}
	if len(p.Set) == 0 {
		return nil, errors.New(f.Name() + " holds no key set")
	}
	return &p, nil
}

// persist keeps next in CacheDir unless it is the set last written there. It runs inside the
// fetch in progress, which owns c.written.
func (c *Cache) persist(next *snapshot, uri string, now time.Time) {
	if c.cacheDir == "" || next.fingerprint == c.written {
		return
	}
	p := persisted{Issuer: c.issuer, JWKSURI: idpurl.Redacted(uri), FetchedAt: now.UTC()}
	if err := writePersisted(c.cacheDir, p, next.keys); err != nil {
		c.log.Warn("jwks: cannot persist the key set; cold starts while the provider is down will have no keys", "dir", c.cacheDir, "err", err)
		return
	}
	c.written = next.fingerprint
}

// loadPersisted serves the set kept by an earlier run, if any, while nothing else is loaded.
// It runs inside the fetch in progress (after a failed one), so no other fetch installs a set
// meanwhile.
func (c *Cache) loadPersisted() {
	if c.cacheDir == "" {
		return
	}
	p, err := readPersisted(c.cacheDir, c.issuer, 2*c.maxBytes)
	if errors.Is(err, fs.ErrNotExist) {
		c.log.Info("jwks: no persisted key set to fall back on", "dir", c.cacheDir)
		return
	}
	if err != nil {
		c.log.Warn("jwks: persisted key set unusable", "err", err)
		return
	}
	parsed, skipped, err := parseSet(p.Set, c.algs)
	if err != nil {
		c.log.Warn("jwks: persisted key set unusable", "file", persistPath(c.cacheDir, c.issuer), "err", err)
		return
	}
	s := newSnapshot(parsed)
	if !c.snap.CompareAndSwap(nil, s) {
		return
	}
	c.mu.Lock()
	c.st.source = SourcePersisted
	c.st.jwksURI = idpurl.Redacted(p.JWKSURI)
	c.mu.Unlock()
	c.changed()
	c.metrics.loaded(len(s.keys))
	// Only keys that passed the checks are persisted: a notable skip here is a file written by
	// an older version with laxer checks, or edited by hand, and deserves its warning.
	c.logSkipped(skipped, true)
	c.log.Warn("jwks: provider unreachable; serving the persisted key set until a refresh succeeds",
		"fetched_at", p.FetchedAt, "age", c.clock.Now().Sub(p.FetchedAt).Truncate(time.Second), "keys", len(s.keys), "kids", s.kids())
}
