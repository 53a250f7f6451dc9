package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/jwks"
)

// keySets owns one running jwks.Cache per issuer. A reload keeps the caches whose settings did
// not change (no refetch, no gap) and starts or stops the others.
type keySets struct {
	mu      sync.Mutex
	running map[string]*runningCache // by settings fingerprint
	metrics *jwks.Metrics
	log     *slog.Logger
	parent  context.Context
	// onChange is called when a cache installs a key set (jwks.Options.OnChange); nil = none.
	onChange func()
}

type runningCache struct {
	cache  *jwks.Cache
	cancel context.CancelFunc
	done   chan struct{}
}

func newKeySets(ctx context.Context, m *jwks.Metrics, log *slog.Logger, onChange func()) *keySets {
	return &keySets{running: map[string]*runningCache{}, metrics: m, log: log, parent: ctx, onChange: onChange}
}

// fingerprint identifies the settings that shape a key-set cache, including the content of a
// static key file (an edited file at the same path is a new key set).
func fingerprint(is config.Issuer, cacheDir string) string {
	var file string
	if is.JWKSFile != "" {
		if b, err := os.ReadFile(is.JWKSFile); err == nil {
			sum := sha256.Sum256(b)
			file = hex.EncodeToString(sum[:])
		}
	}
	return strings.Join([]string{is.Issuer, is.JWKSURI, is.JWKSFile, file, is.CAFile, cacheDir,
		is.RefreshInterval.String(), is.MinRefreshInterval.String(), strings.Join(is.Algorithms, " ")}, "\x00")
}

// httpTimeout bounds one discovery or JWKS request.
const httpTimeout = 10 * time.Second

// build returns the caches for cfg, in issuer order, reusing running ones. Nothing is started or
// stopped until commit is called, so a failed reload leaves everything as it was.
func (k *keySets) build(cfg *config.Loaded) (caches []*jwks.Cache, commit func(), err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	next := map[string]*runningCache{}
	var fresh []*runningCache
	for i, is := range cfg.Issuers {
		fp := fingerprint(is, cfg.JWKSCacheDir)
		if rc, ok := k.running[fp]; ok {
			next[fp] = rc
			caches = append(caches, rc.cache)
			continue
		}
		client, err := jwks.NewHTTPClient(is.CAFile, httpTimeout)
		if err != nil {
			return nil, nil, fmt.Errorf("issuers[%d].ca_file: %w", i, err)
		}
		algs := make([]jwa.SignatureAlgorithm, len(is.Algorithms))
		for j, a := range is.Algorithms {
			algs[j] = jwa.SignatureAlgorithm(a)
		}
		c, err := jwks.New(jwks.Options{
			Issuer:             is.Issuer,
			JWKSURI:            is.JWKSURI,
			JWKSFile:           is.JWKSFile,
			Algorithms:         algs,
			RefreshInterval:    is.RefreshInterval,
			MinRefreshInterval: is.MinRefreshInterval,
			HTTPClient:         client,
			CacheDir:           cfg.JWKSCacheDir,
			Logger:             k.log.With("issuer", is.Issuer),
			Metrics:            k.metrics,
			OnChange:           k.onChange,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("issuers[%d]: %w", i, err)
		}
		rc := &runningCache{cache: c, done: make(chan struct{})}
		next[fp] = rc
		fresh = append(fresh, rc)
		caches = append(caches, c)
	}
	commit = func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, rc := range fresh {
			ctx, cancel := context.WithCancel(k.parent)
			rc.cancel = cancel
			go func(rc *runningCache) {
				defer close(rc.done)
				rc.cache.Run(ctx)
			}(rc)
		}
		for fp, rc := range k.running {
			if _, kept := next[fp]; !kept && rc.cancel != nil {
				rc.cancel()
			}
		}
		k.running = next
	}
	return caches, commit, nil
}

// ready reports whether every issuer has a usable key set.
func (k *keySets) ready() bool { return len(k.notReady()) == 0 }

// issuerNames lists the issuers of states.
func issuerNames(states []jwks.Status) []string {
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = st.Issuer
	}
	return names
}

// notReady is the state of every issuer without a usable key set, by issuer.
func (k *keySets) notReady() []jwks.Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	var missing []jwks.Status
	for _, rc := range k.running {
		if !rc.cache.Ready() {
			missing = append(missing, rc.cache.Status())
		}
	}
	slices.SortFunc(missing, func(a, b jwks.Status) int { return strings.Compare(a.Issuer, b.Issuer) })
	return missing
}

// stop cancels every cache and waits for them to end. It waits without holding k.mu: a cache
// that is installing a set calls onChange, which reads the caches.
func (k *keySets) stop() {
	k.mu.Lock()
	running := k.running
	k.running = map[string]*runningCache{}
	k.mu.Unlock()
	for _, rc := range running {
		if rc.cancel != nil {
			rc.cancel()
			<-rc.done
		}
	}
}
