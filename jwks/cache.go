// Package jwks keeps the verification keys of one token issuer: it finds the JWK Set through
// OpenID Connect discovery (or takes a configured URL, or a static set), fetches it, refreshes it in the
// background and on demand when a token names an unknown key, and serves lookups from an
// immutable in-memory snapshot.
//
// It is built to keep valid tokens flowing through identity-provider trouble and never to let a
// wrong key in:
//   - a failed refresh (network, HTTP status, timeout, oversized or malformed body, no usable
//     key) keeps the last good set; a good set is never replaced by an empty or broken one;
//   - the last good set is persisted, so a cold start while the provider is down still serves;
//   - unknown-kid refreshes are coalesced and, like every fetch, at most one per
//     MinRefreshInterval, so tokens with random kids cannot make the cache hammer the provider;
//   - only public asymmetric keys for an allowed algorithm are used (KeyFits): encryption keys,
//     symmetric keys, published private keys, weak RSA keys, points off their curve and
//     Ed25519 keys of small order or in a non-canonical encoding are skipped.
//
// Keys are never taken from a token; callers pass only its kid and alg.
package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
)

// DefaultMaxResponseBytes bounds a discovery or key set document when
// Options.MaxResponseBytes is 0; a jwks_file is held to the same bound when it is read.
const DefaultMaxResponseBytes = 1 << 20

// maxLoggedKID bounds how much of a token-supplied kid goes into an error.
const maxLoggedKID = 64

// ErrNotLoaded is returned by Lookup while the cache has never held a usable key set (the
// provider has been unreachable since start and nothing was persisted). Callers answer 503.
var ErrNotLoaded = errors.New("jwks: keys not loaded")

// ErrUnknownKey is returned (wrapped, with the kid) by Lookup when no key of the current set,
// refreshed if allowed, has the token's kid and fits its alg.
var ErrUnknownKey = errors.New("jwks: unknown key")

// Options configure a Cache. They are taken as they are: the configuration (package config)
// has validated and defaulted them, read and parsed the jwks_file (StaticSet) and the ca_file
// (the roots of HTTPClient). New refuses only options no configuration can produce, with a plain
// error.
type Options struct {
	// Issuer is the exact issuer identifier (the iss of its tokens); required. Unless JWKSURI or
	// StaticSet is set, the key set is found through Issuer + "/.well-known/openid-configuration"
	// (one slash, whether or not Issuer ends with one), whose issuer must equal Issuer exactly.
	Issuer string
	// JWKSURI, when set, is fetched directly and discovery is skipped. Plain http is allowed
	// here (an explicit choice, logged as a warning unless the host is loopback); a jwks_uri
	// learnt by discovery must be https unless its host is loopback or the issuer itself is
	// plain http.
	JWKSURI string
	// StaticSet, when set, is the whole key set (a jwks_file, parsed once by ParseSet): it is
	// served from New on, nothing is fetched or refreshed, and the options below but Clock,
	// Logger and Metrics are not used.
	StaticSet *Set
	// Algorithms is the allow-list of JWS algorithms; keys that fit none (KeyFits) are
	// skipped. Required unless StaticSet is set. The caller owns the list of algorithms that may
	// be allowed (token.SupportedAlgorithms): one that fits no key (HMAC, none) lets no key in.
	Algorithms []jwa.SignatureAlgorithm
	// RefreshInterval is the background refresh period, shortened by a response's
	// Cache-Control max-age or Expires, jittered by ±10%; required unless StaticSet is set.
	RefreshInterval time.Duration
	// MinRefreshInterval is the floor between any two fetches: background, retries after
	// failures, unknown-kid refreshes. Required unless StaticSet is set, at most RefreshInterval.
	MinRefreshInterval time.Duration
	// HTTPClient fetches discovery and key set documents; nil means NewClient(ClientOptions{}).
	HTTPClient *http.Client
	// CacheDir, when set, keeps the last good key set of the issuer for cold starts; "" = off.
	CacheDir string
	// MaxResponseBytes bounds a discovery or key set response; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Clock is the source of time; nil means RealClock().
	Clock Clock
	// Logger receives the cache's records (they carry no issuer attribute: add one with
	// Logger.With when several caches share a handler); nil discards them. Key material is
	// never logged.
	Logger *slog.Logger
	// Metrics, when set, receives the issuer's series.
	Metrics *Metrics
	// Rand returns numbers in [0, 1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// Tracer, when set, traces every fetch (trace.go): a span per fetch and per HTTP request;
	// nil = no tracing.
	Tracer trace.Tracer
	// OnChange, when set, is called after the cache installs a new key set: the first one
	// (fetched or persisted, which makes Ready true) and every changed one. It runs on the
	// goroutine that installed the set, after Ready and Status reflect it, and must not block
	// or call Lookup. A StaticSet is installed by New and not reported.
	OnChange func()
}

// check refuses options no validated configuration produces: they are programming errors.
func (o *Options) check() error {
	switch {
	case o.Issuer == "":
		return errors.New("jwks: Options.Issuer is empty")
	case o.StaticSet != nil && o.JWKSURI != "":
		return errors.New("jwks: Options.StaticSet and Options.JWKSURI are both set")
	case o.StaticSet != nil:
		return nil
	case len(o.Algorithms) == 0:
		return errors.New("jwks: Options.Algorithms is empty")
	case o.RefreshInterval <= 0 || o.MinRefreshInterval <= 0:
		return fmt.Errorf("jwks: Options.RefreshInterval (%s) and MinRefreshInterval (%s) must be positive", o.RefreshInterval, o.MinRefreshInterval)
	case o.MinRefreshInterval > o.RefreshInterval:
		return fmt.Errorf("jwks: Options.MinRefreshInterval (%s) exceeds RefreshInterval (%s)", o.MinRefreshInterval, o.RefreshInterval)
	case o.MaxResponseBytes < 0:
		return fmt.Errorf("jwks: Options.MaxResponseBytes (%d) is negative", o.MaxResponseBytes)
	}
	return nil
}

// Source says where the current key set of a Cache came from.
type Source string

// Sources of a key set.
const (
	SourceNone      Source = ""          // no key set yet
	SourceFetched   Source = "fetched"   // fetched from the identity provider by this process
	SourcePersisted Source = "persisted" // read from CacheDir on a cold start; stale
	SourceFile      Source = "file"      // Options.StaticSet: a jwks_file
)

// Status describes a Cache for readiness endpoints and `portcullis check`.
type Status struct {
	Issuer string
	// Loaded reports a usable key set (the same as Ready).
	Loaded bool
	// Stale reports a set that may be out of date: persisted from an earlier run, or kept
	// because the last refresh failed.
	Stale  bool
	Source Source
	// Keys is the number of usable keys.
	Keys int
	// JWKSURI is where keys are fetched from ("" before discovery succeeds and for a file).
	JWKSURI string
	// LastSuccess is the time of the last successful fetch by this process.
	LastSuccess time.Time
	// LastAttempt is the time of the last fetch, successful or not.
	LastAttempt time.Time
	// LastError is the error of the last fetch; "" if it succeeded or none was made.
	LastError string
	// ConsecutiveFailures counts fetches failed since the last success.
	ConsecutiveFailures int
	// NextRefresh is when the background loop fetches next; zero when it is not running.
	NextRefresh time.Time
}

// Cache is the refreshing key set of one issuer. Create it with New and start it with Run;
// all methods are safe for concurrent use.
//
// Lookups read an immutable snapshot without locks. Fetches go through one mechanism that
// coalesces them and enforces MinRefreshInterval (coalesce.go); the background schedule is in
// refresh.go, discovery and HTTP in fetch.go, the cold-start copy in persist.go.
type Cache struct {
	// Settings, fixed by New.
	issuer   string
	jwksURI  string // configured; "" = discover
	algs     []jwa.SignatureAlgorithm
	interval time.Duration
	floor    time.Duration
	client   *http.Client
	cacheDir string
	maxBytes int64
	clock    Clock
	log      *slog.Logger
	metrics  *issuerMetrics
	rand     func() float64
	onChange func()
	static   bool // keys from Options.StaticSet: never fetched

	tracer trace.Tracer // nil = no tracing

	// snap is the current key set; nil until one is loaded. Only New (a static set) and the
	// fetch in progress store it.
	snap atomic.Pointer[snapshot]

	mu        sync.Mutex      // guards the fields below
	started   bool            // Run has been called
	runCtx    context.Context // Run's context while it runs; nil = no fetch may start
	inflight  *fetchCall      // the fetch in progress; nil = none
	lastFetch time.Time       // start of the last fetch (with its monotonic reading); zero = none
	st        state

	// Owned by the fetch in progress: fetches never overlap, and each starts and ends under
	// mu (coalesce.go), so these need no lock.
	discovered     string // jwks_uri found by discovery; "" = discover on the next fetch
	written        string // fingerprint of the set last persisted
	triedPersisted bool   // the persisted set was looked for after a failed fetch
}

// state is what Status reports, besides the snapshot.
type state struct {
	source      Source
	jwksURI     string
	lastSuccess time.Time
	lastAttempt time.Time
	lastErr     error
	failures    int
	fetched     bool      // a fetch has succeeded since start
	nextDue     time.Time // when the background loop fetches next
}

// New prepares a cache from options the configuration has validated (see Options). It does no
// I/O: a StaticSet is served at once, the other key sets are fetched once Run starts.
func New(opts Options) (*Cache, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	c := &Cache{
		issuer:   opts.Issuer,
		jwksURI:  opts.JWKSURI,
		algs:     slices.Clone(opts.Algorithms),
		interval: opts.RefreshInterval,
		floor:    opts.MinRefreshInterval,
		client:   opts.HTTPClient,
		cacheDir: opts.CacheDir,
		maxBytes: opts.MaxResponseBytes,
		clock:    opts.Clock,
		log:      opts.Logger,
		rand:     opts.Rand,
		onChange: opts.OnChange,
		tracer:   opts.Tracer,
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.client == nil && opts.StaticSet == nil {
		c.client = NewClient(ClientOptions{})
	}
	if c.clock == nil {
		c.clock = RealClock()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	c.metrics = opts.Metrics.forIssuer(c.issuer)
	if opts.StaticSet != nil {
		c.serveStatic(opts.StaticSet)
	}
	return c, nil
}

// serveStatic installs a static key set for good.
func (c *Cache) serveStatic(set *Set) {
	c.logSkipped(set.skipped, true)
	s := set.snap
	c.static = true
	c.snap.Store(s)
	c.st.source = SourceFile
	c.metrics.loaded(len(s.keys))
	c.log.Info("jwks: static key set loaded", "keys", len(s.keys), "kids", s.kids())
}

// Ready reports whether a usable key set is loaded (fresh, persisted or stale).
func (c *Cache) Ready() bool { return c.snap.Load() != nil }

// Contains reports whether a key with this RFC 7638 thumbprint is in the current set. It is a
// lock-free read, meant for caches of verified tokens that must forget a token once its key
// is rotated out.
func (c *Cache) Contains(thumbprint string) bool {
	s := c.snap.Load()
	if s == nil {
		return false
	}
	_, ok := s.thumbprints[thumbprint]
	return ok
}

// Lookup returns the keys that may verify a token with this kid and alg. The slice is shared
// with the cache: read it, never modify it.
//
// With a kid, it is the key with that kid if it fits alg (a known kid that does not fit alg is
// ErrUnknownKey at once). A kid missing from the set starts one refresh, or joins the fetch in
// progress: callers asking at the same time share it, and each waits only as long as its ctx
// allows. No refresh starts less than MinRefreshInterval after the last fetch: a kid still
// unknown is then answered ErrUnknownKey without any request. That floor is the negative cache
// of unknown kids: it holds for every kid at once, in constant memory, until the floor has
// passed, so random kids cost the provider at most one request per MinRefreshInterval.
//
// Without a kid, it is every key that fits alg, and nothing is refreshed.
//
// Errors: ErrNotLoaded before any key set was loaded; ErrUnknownKey (wrapped, naming the kid);
// ctx's error if it ends while waiting for a refresh.
func (c *Cache) Lookup(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]Key, error) {
	s := c.snap.Load()
	if s == nil {
		c.metrics.lookup(false)
		return nil, ErrNotLoaded
	}
	if kid == "" {
		keys := s.byAlg[alg]
		c.metrics.lookup(len(keys) > 0)
		if len(keys) == 0 {
			return nil, fmt.Errorf("%w: no key fits %s", ErrUnknownKey, alg)
		}
		return keys, nil
	}
	if fits, ok := s.byKID[kid]; ok {
		return c.fitting(fits, kid, alg, true)
	}
	c.metrics.lookup(false)
	refreshErr := c.refreshForKID(ctx)
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(refreshErr, ctxErr) {
		return nil, ctxErr
	}
	if fits, ok := c.snap.Load().byKID[kid]; ok {
		return c.fitting(fits, kid, alg, false)
	}
	if refreshErr != nil {
		return nil, fmt.Errorf("%w: kid %q (refresh failed: %v)", ErrUnknownKey, shorten(kid), refreshErr)
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, shorten(kid))
}

// fitting returns the key of a known kid for alg; count says whether to count the lookup.
func (c *Cache) fitting(fits map[jwa.SignatureAlgorithm][]Key, kid string, alg jwa.SignatureAlgorithm, count bool) ([]Key, error) {
	keys := fits[alg]
	if count {
		c.metrics.lookup(len(keys) > 0)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: kid %q does not fit %s", ErrUnknownKey, shorten(kid), alg)
	}
	return keys, nil
}

// Status reports the cache's state.
func (c *Cache) Status() Status {
	s := c.snap.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Issuer:              c.issuer,
		Loaded:              s != nil,
		Source:              c.st.source,
		JWKSURI:             c.st.jwksURI,
		LastSuccess:         c.st.lastSuccess,
		LastAttempt:         c.st.lastAttempt,
		ConsecutiveFailures: c.st.failures,
	}
	if c.jwksURI != "" {
		st.JWKSURI = idpurl.Redacted(c.jwksURI)
	}
	if s != nil {
		st.Keys = len(s.keys)
		st.Stale = c.st.source == SourcePersisted || c.st.lastErr != nil
	}
	if c.st.lastErr != nil {
		st.LastError = c.st.lastErr.Error()
	}
	if c.runCtx != nil {
		st.NextRefresh = c.dueLocked()
	}
	return st
}

// shorten bounds a token-supplied kid before it goes into an error.
func shorten(kid string) string {
	if len(kid) <= maxLoggedKID {
		return kid
	}
	return kid[:maxLoggedKID] + "…"
}
