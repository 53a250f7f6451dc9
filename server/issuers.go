package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/token"
)

// keySets owns one running jwks.Cache per issuer. A reload keeps the caches whose settings did
// not change (no refetch, no gap) and starts or stops the others.
type keySets struct {
	mu      sync.Mutex
	running map[keySpec]*runningCache
	metrics *jwks.Metrics
	log     *slog.Logger
	parent  context.Context
	// onChange is called when a cache installs a key set (jwks.Options.OnChange); nil = none.
	onChange func()
	// tracer traces the key-set fetches (jwks.Options.Tracer); nil = tracing off.
	tracer trace.Tracer
}

type runningCache struct {
	cache  *jwks.Cache
	cancel context.CancelFunc
	done   chan struct{}
}

func newKeySets(ctx context.Context, m *jwks.Metrics, log *slog.Logger, onChange func()) *keySets {
	return &keySets{running: map[keySpec]*runningCache{}, metrics: m, log: log, parent: ctx, onChange: onChange}
}

// keySpec is every setting that shapes an issuer's key-set cache, the content of its
// jwks_file and ca_file included (an edited file at the same path is a new key set). Two equal
// specs share one running cache across a reload.
type keySpec struct {
	issuer, jwksURI, jwksFile, jwksDigest string
	caFile, caDigest, cacheDir            string
	clientCertDigest, proxy               string
	refresh, floor                        time.Duration
	algorithms                            string
}

// keySet describes issuers[i] of cfg to the jwks package: the spec that identifies its cache,
// and the options that build one (all but the HTTP client, the logger, metrics and OnChange).
// The files the issuer names are taken as config.Load read them (cfg.IssuerFiles), never read
// again.
func keySet(cfg *config.Loaded, i int) (keySpec, jwks.Options) {
	is, files := cfg.Issuers[i], cfg.IssuerFiles[i]
	spec := keySpec{
		issuer: is.Issuer, jwksURI: is.JWKSURI, jwksFile: is.JWKSFile, jwksDigest: files.JWKSDigest,
		caFile: is.CAFile, caDigest: files.CADigest, cacheDir: cfg.JWKSCacheDir,
		refresh: is.RefreshInterval, floor: is.MinRefreshInterval, algorithms: strings.Join(is.Algorithms, " "),
		clientCertDigest: files.ClientCertDigest, proxy: is.ProxyURL,
	}
	if files.JWKS != nil {
		return spec, jwks.Options{Issuer: is.Issuer, StaticSet: files.JWKS}
	}
	return spec, jwks.Options{
		Issuer:             is.Issuer,
		JWKSURI:            is.JWKSURI,
		Algorithms:         token.KeyAlgorithms(is.Algorithms),
		RefreshInterval:    is.RefreshInterval,
		MinRefreshInterval: is.MinRefreshInterval,
		CacheDir:           cfg.JWKSCacheDir,
	}
}

// issuerClient is the HTTP client of every request to issuers[i]'s identity provider:
// discovery, key set and introspection. It trusts the issuer's ca_file (nil roots: the
// system's), presents its client certificate, goes through its proxy_url (none: the
// environment's proxies), and bounds each request by timeout. The files are those config.Load
// read.
func issuerClient(cfg *config.Loaded, i int, timeout time.Duration) *http.Client {
	files := cfg.IssuerFiles[i]
	return jwks.NewClient(jwks.ClientOptions{Roots: files.Roots, Timeout: timeout,
		Proxy: files.Proxy, Certificate: files.ClientCert})
}

// build returns the caches for cfg, in issuer order, reusing running ones. Nothing is started or
// stopped until commit is called, so a failed reload leaves everything as it was.
func (k *keySets) build(cfg *config.Loaded) (caches []*jwks.Cache, commit func(), err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	next := map[keySpec]*runningCache{}
	var fresh []*runningCache
	for i := range cfg.Issuers {
		spec, opts := keySet(cfg, i)
		if rc, ok := k.running[spec]; ok {
			next[spec] = rc
			caches = append(caches, rc.cache)
			continue
		}
		if opts.StaticSet == nil {
			opts.HTTPClient = issuerClient(cfg, i, jwks.DefaultHTTPTimeout)
		}
		opts.Logger = k.log.With("issuer", opts.Issuer)
		opts.Metrics = k.metrics
		opts.OnChange = k.onChange
		opts.Tracer = k.tracer
		c, err := jwks.New(opts)
		if err != nil {
			return nil, nil, fmt.Errorf("issuers[%d]: %w", i, err)
		}
		rc := &runningCache{cache: c, done: make(chan struct{})}
		next[spec] = rc
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

// cacheOf is the running cache of issuers[i] of cfg (the configuration serving); nil when it
// is not running.
func (k *keySets) cacheOf(cfg *config.Loaded, i int) *jwks.Cache {
	spec, _ := keySet(cfg, i)
	k.mu.Lock()
	defer k.mu.Unlock()
	if rc, ok := k.running[spec]; ok {
		return rc.cache
	}
	return nil
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
	k.running = map[keySpec]*runningCache{}
	k.mu.Unlock()
	for _, rc := range running {
		if rc.cancel != nil {
			rc.cancel()
			<-rc.done
		}
	}
}
