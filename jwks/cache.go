// Package jwks keeps the verification keys of one token issuer: it finds the JWK Set through
// OpenID Connect discovery (or takes a configured URL or file), fetches it, refreshes it in the
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
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"golang.org/x/sync/singleflight"
)

// Defaults of Options.
const (
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxResponseBytes   = 1 << 20
)

const (
	// jitter spreads refreshes by ±10% so replicas do not fetch in lock-step.
	jitter = 0.10
	// maxRetryBackoff caps the wait between attempts after failures (never below the minimum
	// refresh interval): a replica that has no keys yet must notice a recovered provider soon.
	maxRetryBackoff = time.Minute
	// maxLoggedKID bounds how much of a token-supplied kid goes into an error.
	maxLoggedKID = 64
)

// ErrNotLoaded is returned by Lookup while the cache has never held a usable key set (the
// provider has been unreachable since start and nothing was persisted). Callers answer 503.
var ErrNotLoaded = errors.New("jwks: keys not loaded")

// ErrUnknownKey is returned (wrapped, with the kid) by Lookup when no key of the current set,
// refreshed if allowed, has the token's kid and fits its alg.
var ErrUnknownKey = errors.New("jwks: unknown key")

// Options configure a Cache. Only Issuer is required.
type Options struct {
	// Issuer is the exact issuer identifier (the iss of its tokens). Unless JWKSURI or
	// JWKSFile is set, the key set is found through Issuer + "/.well-known/openid-configuration"
	// (one slash, whether or not Issuer ends with one), whose issuer must equal Issuer exactly.
	Issuer string
	// JWKSURI, when set, is fetched directly and discovery is skipped. Plain http is allowed
	// here (an explicit choice, logged as a warning unless the host is loopback); a jwks_uri
	// learnt by discovery must be https unless its host is loopback or the issuer itself is
	// plain http.
	JWKSURI string
	// JWKSFile, when set, holds a static JWK Set read once by New: no fetching, no refresh.
	JWKSFile string
	// Algorithms is the allow-list of JWS algorithms; keys that fit none (KeyFits) are
	// skipped. Empty means RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. Any
	// other algorithm (HMAC, none) is an error.
	Algorithms []jwa.SignatureAlgorithm
	// RefreshInterval is the background refresh period (default 15m), shortened by a
	// response's Cache-Control max-age or Expires, jittered by ±10%.
	RefreshInterval time.Duration
	// MinRefreshInterval (default 10s) is the floor between any two fetches: background,
	// retries after failures, unknown-kid refreshes.
	MinRefreshInterval time.Duration
	// HTTPClient fetches discovery and key set documents; nil means NewHTTPClient("", 10s).
	HTTPClient *http.Client
	// CacheDir, when set, keeps the last good key set of the issuer for cold starts; "" = off.
	CacheDir string
	// MaxResponseBytes bounds a discovery or key set response (default 1 MiB).
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
	// OnChange, when set, is called after the cache installs a new key set: the first one
	// (fetched or persisted, which makes Ready true) and every changed one. It runs on the
	// goroutine that installed the set, after Ready and Status reflect it, and must not block
	// or call Lookup. A JWKS file is installed by New and not reported.
	OnChange func()
}

// Source says where the current key set of a Cache came from.
type Source string

// Sources of a key set.
const (
	SourceNone      Source = ""          // no key set yet
	SourceFetched   Source = "fetched"   // fetched from the identity provider by this process
	SourcePersisted Source = "persisted" // read from CacheDir on a cold start; stale
	SourceFile      Source = "file"      // read from Options.JWKSFile
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
type Cache struct {
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
	static   bool // keys from JWKSFile: never fetched

	snap      atomic.Pointer[snapshot]
	lastFetch atomic.Pointer[time.Time] // start of the last fetch; nil = none. A time.Time keeps the monotonic reading.
	run       atomic.Pointer[runCtx]
	running   atomic.Bool
	flight    singleflight.Group // every fetch goes through it, so any caller can join one
	inflight  atomic.Int32       // fetches in progress (0 or 1)

	fetchMu    sync.Mutex // one fetch at a time; guards the fields below
	discovered string     // jwks_uri found by discovery; "" = discover on the next fetch
	written    string     // fingerprint of the set last persisted

	mu sync.Mutex // guards st
	st state
}

// runCtx carries Run's context to fetches that Lookup starts.
type runCtx struct{ ctx context.Context }

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

// snapshot is an immutable key set, built once per change and read without locks.
type snapshot struct {
	keys        []Key
	byKID       map[string]map[jwa.SignatureAlgorithm][]Key
	byAlg       map[jwa.SignatureAlgorithm][]Key // every key fitting the algorithm, for kid-less tokens
	thumbprints map[string]struct{}
	fingerprint string // identifies the set: kids, thumbprints, algorithms
}

func newSnapshot(parsed []parsedKey) *snapshot {
	s := &snapshot{
		keys:        make([]Key, len(parsed)),
		byKID:       map[string]map[jwa.SignatureAlgorithm][]Key{},
		byAlg:       map[jwa.SignatureAlgorithm][]Key{},
		thumbprints: map[string]struct{}{},
	}
	ids := make([]string, len(parsed))
	for i, p := range parsed {
		s.keys[i] = p.Key
		s.thumbprints[p.Thumbprint] = struct{}{}
		ids[i] = p.KID + "\x00" + p.Thumbprint + "\x00" + algList(p.algs)
		for _, a := range p.algs {
			s.byAlg[a] = append(s.byAlg[a], p.Key)
			if p.KID == "" {
				continue
			}
			if s.byKID[p.KID] == nil {
				s.byKID[p.KID] = map[jwa.SignatureAlgorithm][]Key{}
			}
			// One key per (kid, alg): parseSet dropped later duplicates. The full slice
			// expression keeps a caller's append from writing into the snapshot.
			one := []Key{p.Key}
			s.byKID[p.KID][a] = one[:1:1]
		}
	}
	for a, keys := range s.byAlg {
		s.byAlg[a] = keys[:len(keys):len(keys)]
	}
	sort.Strings(ids)
	s.fingerprint = strings.Join(ids, "\x01")
	return s
}

func (s *snapshot) kids() []string {
	var kids []string
	for _, k := range s.keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// New validates opts and prepares a cache. It does no network I/O; a JWKSFile is read here,
// so a broken file fails New with a clear error.
func New(opts Options) (*Cache, error) {
	c := &Cache{
		issuer:   opts.Issuer,
		jwksURI:  opts.JWKSURI,
		interval: opts.RefreshInterval,
		floor:    opts.MinRefreshInterval,
		client:   opts.HTTPClient,
		cacheDir: opts.CacheDir,
		maxBytes: opts.MaxResponseBytes,
		clock:    opts.Clock,
		log:      opts.Logger,
		rand:     opts.Rand,
		onChange: opts.OnChange,
	}
	if c.issuer == "" {
		return nil, errors.New("jwks: the issuer is required")
	}
	switch {
	case opts.JWKSURI != "" && opts.JWKSFile != "":
		return nil, errors.New("jwks: set a JWKS URI or a JWKS file, not both")
	case opts.JWKSURI != "":
		if err := checkFetchURL(opts.JWKSURI, true); err != nil {
			return nil, fmt.Errorf("jwks: JWKS URI %w", err)
		}
	case opts.JWKSFile == "":
		if err := checkFetchURL(discoveryURL(c.issuer), true); err != nil {
			return nil, fmt.Errorf("jwks: issuer %q is not an http(s) URL, so its keys cannot be discovered; set a JWKS URI or file", c.issuer)
		}
	}
	if len(opts.Algorithms) == 0 {
		c.algs = supportedAlgorithms()
	}
	for _, a := range opts.Algorithms {
		if !slices.Contains(supportedAlgorithms(), a) {
			return nil, fmt.Errorf("jwks: algorithm %q is not supported; choose from %s", a, algList(supportedAlgorithms()))
		}
		if !slices.Contains(c.algs, a) {
			c.algs = append(c.algs, a)
		}
	}
	switch {
	case c.interval < 0 || c.floor < 0 || c.maxBytes < 0:
		return nil, errors.New("jwks: intervals and the response size limit must not be negative")
	case c.interval == 0:
		c.interval = DefaultRefreshInterval
	}
	if c.floor == 0 {
		c.floor = min(DefaultMinRefreshInterval, c.interval)
	}
	if c.floor > c.interval {
		return nil, fmt.Errorf("jwks: the minimum refresh interval %s exceeds the refresh interval %s", c.floor, c.interval)
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.client == nil {
		client, err := NewHTTPClient("", defaultHTTPTimeout)
		if err != nil {
			return nil, err
		}
		c.client = client
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
	if opts.JWKSFile != "" {
		if err := c.loadFile(opts.JWKSFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// loadFile reads a static key set.
func (c *Cache) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("jwks: JWKS file: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, c.maxBytes+1))
	if err != nil {
		return fmt.Errorf("jwks: JWKS file %s: %w", path, err)
	}
	if int64(len(doc)) > c.maxBytes {
		return fmt.Errorf("jwks: JWKS file %s is larger than %d bytes", path, c.maxBytes)
	}
	parsed, skipped, err := parseSet(doc, c.algs)
	if err != nil {
		return fmt.Errorf("jwks: JWKS file %s: %w", path, err)
	}
	c.logSkipped(skipped, true)
	s := newSnapshot(parsed)
	c.static = true
	c.snap.Store(s)
	c.st.source = SourceFile
	c.metrics.loaded(len(s.keys))
	c.log.Info("jwks: key set loaded from file", "file", path, "keys", len(s.keys), "kids", s.kids())
	return nil
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

// refreshForKID runs or joins a refresh for an unknown kid and waits for it within ctx. It
// returns the refresh's error; nil when it succeeded or none was due.
func (c *Cache) refreshForKID(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	run := c.run.Load()
	if run == nil || run.ctx.Err() != nil {
		return nil // not running: the current set is the answer
	}
	// A fetch in progress is joined whatever the floor says: it may bring the kid. Otherwise
	// a fetch too recent makes the current set the answer, with no lock taken.
	if c.inflight.Load() == 0 && !c.fetchAllowed() {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-c.startRefresh(run.ctx, triggerUnknownKID):
		if errors.Is(res.Err, errTooSoon) {
			return nil
		}
		return res.Err
	}
}

// startRefresh starts a refresh, or joins the one in progress, and returns where its result
// arrives. The fetch belongs to the cache, not to whoever started it: it runs under Run's
// context, so a caller giving up does not cancel it for the others.
func (c *Cache) startRefresh(ctx context.Context, trigger string) <-chan singleflight.Result {
	return c.flight.DoChan("refresh", func() (any, error) {
		c.inflight.Add(1)
		defer c.inflight.Add(-1)
		return nil, c.refresh(ctx, trigger)
	})
}

// fetchAllowed reports whether MinRefreshInterval has passed since the last fetch. It is a
// hint read without locks; refresh decides under its lock.
func (c *Cache) fetchAllowed() bool {
	last := c.lastFetch.Load()
	return last == nil || c.clock.Now().Sub(*last) >= c.floor
}

// Run loads the key set and keeps it fresh until ctx ends; it blocks, so callers run it in a
// goroutine. For a JWKS file it only waits for ctx.
//
// The first fetch happens at once. If it fails and nothing is loaded, the set persisted in
// CacheDir (if any) is served, marked stale. Failed fetches are retried in the background
// without end, backing off from MinRefreshInterval, doubling, up to one minute (or
// RefreshInterval if shorter; never below MinRefreshInterval). After a success the next fetch
// is due after RefreshInterval, or the response's max-age/Expires if shorter, ±10% jitter,
// never sooner than MinRefreshInterval. A cache runs once: a second Run returns at once.
func (c *Cache) Run(ctx context.Context) {
	if !c.running.CompareAndSwap(false, true) {
		c.log.Error("jwks: Run called twice; the second call does nothing")
		return
	}
	if c.static {
		<-ctx.Done()
		return
	}
	c.run.Store(&runCtx{ctx: ctx})
	defer c.run.Store(nil)
	c.warnPlainHTTP()
	triedPersisted := false
	for ctx.Err() == nil {
		if wait := c.untilDue(); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-c.clock.After(wait):
			}
			continue
		}
		trigger := triggerInterval
		if !c.fetched() {
			trigger = triggerStart
		}
		if res := <-c.startRefresh(ctx, trigger); res.Err != nil && !triedPersisted && !c.Ready() {
			triedPersisted = true
			c.loadPersisted()
		}
	}
}

// untilDue is the wait before the background loop's next fetch: the scheduled time, but never
// sooner than the floor after the last fetch.
func (c *Cache) untilDue() time.Duration {
	c.mu.Lock()
	due := c.st.nextDue
	c.mu.Unlock()
	if last := c.lastFetch.Load(); last != nil {
		if floor := last.Add(c.floor); floor.After(due) {
			due = floor
		}
	}
	return due.Sub(c.clock.Now())
}

func (c *Cache) fetched() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.fetched
}

// refresh fetches the key set once, unless the last fetch was less than the floor ago
// (errTooSoon), and installs it if it is usable.
func (c *Cache) refresh(ctx context.Context, trigger string) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	now := c.clock.Now()
	if last := c.lastFetch.Load(); last != nil && now.Sub(*last) < c.floor {
		return errTooSoon
	}
	c.lastFetch.Store(&now)

	parsed, skipped, uri, guidance, err := c.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // shutting down: not the provider's failure
	}
	if err != nil {
		c.failed(trigger, now, err)
		return err
	}
	c.succeeded(trigger, now, parsed, skipped, uri, guidance)
	return nil
}

// fetch discovers the key set's URL if needed, fetches and parses the set. It holds fetchMu.
func (c *Cache) fetch(ctx context.Context) ([]parsedKey, []skippedKey, string, time.Duration, error) {
	uri := c.jwksURI
	if uri == "" {
		if c.discovered == "" {
			found, err := c.discover(ctx)
			if err != nil {
				return nil, nil, "", 0, fmt.Errorf("jwks: %w", err)
			}
			c.discovered = found
		}
		uri = c.discovered
	}
	doc, header, err := c.get(ctx, uri, acceptJWKS)
	if err == nil {
		var parsed []parsedKey
		var skipped []skippedKey
		parsed, skipped, err = parseSet(doc, c.algs)
		if err == nil {
			return parsed, skipped, uri, freshness(header, c.clock.Now()), nil
		}
		err = fmt.Errorf("GET %s: %w", redacted(uri), err)
	}
	// The provider may have moved its keys: discover again next time.
	c.discovered = ""
	return nil, nil, "", 0, fmt.Errorf("jwks: %w", err)
}

func (c *Cache) succeeded(trigger string, now time.Time, parsed []parsedKey, skipped []skippedKey, uri string, guidance time.Duration) {
	next := newSnapshot(parsed)
	prev := c.snap.Load()
	changed := prev == nil || prev.fingerprint != next.fingerprint
	if changed {
		c.snap.Store(next)
	} else {
		next = prev
	}
	wait := c.successInterval(guidance)

	c.mu.Lock()
	firstFetch := !c.st.fetched
	wasPersisted := c.st.source == SourcePersisted
	c.st.source = SourceFetched
	c.st.jwksURI = redacted(uri)
	c.st.lastSuccess = now
	c.st.lastAttempt = now
	c.st.lastErr = nil
	c.st.failures = 0
	c.st.fetched = true
	c.st.nextDue = now.Add(wait)
	c.mu.Unlock()
	if changed {
		c.changed()
	}

	c.metrics.refreshed(trigger, nil)
	c.metrics.loaded(len(next.keys))
	c.metrics.succeeded(float64(now.UnixNano()) / 1e9)
	c.logSkipped(skipped, changed || firstFetch)
	switch {
	case prev == nil || wasPersisted && firstFetch:
		c.log.Info("jwks: key set loaded", "jwks_uri", redacted(uri), "keys", len(next.keys), "kids", next.kids(), "trigger", trigger, "next_refresh", wait)
	case changed:
		added, removed := diffKIDs(prev, next)
		c.log.Info("jwks: key set changed", "added", added, "removed", removed, "keys", len(next.keys), "trigger", trigger, "next_refresh", wait)
	default:
		c.log.Debug("jwks: key set unchanged", "keys", len(next.keys), "trigger", trigger, "next_refresh", wait)
	}
	if c.cacheDir != "" && next.fingerprint != c.written {
		p := persisted{Issuer: c.issuer, JWKSURI: redacted(uri), FetchedAt: now.UTC()}
		if err := writePersisted(c.cacheDir, p, next.keys); err != nil {
			c.log.Warn("jwks: cannot persist the key set; cold starts while the provider is down will have no keys", "dir", c.cacheDir, "err", err)
		} else {
			c.written = next.fingerprint
		}
	}
}

func (c *Cache) failed(trigger string, now time.Time, err error) {
	c.mu.Lock()
	c.st.lastAttempt = now
	c.st.lastErr = err
	c.st.failures++
	failures := c.st.failures
	wait := c.retryInterval(failures)
	c.st.nextDue = now.Add(wait)
	c.mu.Unlock()

	c.metrics.refreshed(trigger, err)
	switch {
	case c.Ready():
		c.log.Warn("jwks: refresh failed; serving the last good key set", "err", err, "trigger", trigger, "failures", failures, "retry_in", wait)
	case failures == 1 && c.cacheDir != "":
		c.log.Warn("jwks: first fetch failed; looking for a persisted key set", "err", err, "dir", c.cacheDir, "retry_in", wait)
	default:
		c.log.Error("jwks: no key set yet; tokens of this issuer are answered 503", "err", err, "trigger", trigger, "failures", failures, "retry_in", wait)
	}
}

// loadPersisted serves the set kept by an earlier run, if any, while nothing else is loaded.
func (c *Cache) loadPersisted() {
	if c.cacheDir == "" {
		return
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
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
	c.st.jwksURI = redacted(p.JWKSURI)
	c.mu.Unlock()
	c.changed()
	c.metrics.loaded(len(s.keys))
	// Only keys that passed the checks are persisted: a notable skip here is a file written by
	// an older version with laxer checks, or edited by hand, and deserves its warning.
	c.logSkipped(skipped, true)
	c.log.Warn("jwks: provider unreachable; serving the persisted key set until a refresh succeeds",
		"fetched_at", p.FetchedAt, "age", c.clock.Now().Sub(p.FetchedAt).Truncate(time.Second), "keys", len(s.keys), "kids", s.kids())
}

// changed reports a newly installed key set to Options.OnChange.
func (c *Cache) changed() {
	if c.onChange != nil {
		c.onChange()
	}
}

// successInterval is the wait after a successful fetch: RefreshInterval, or the response's
// freshness if shorter, jittered, never below the floor.
func (c *Cache) successInterval(guidance time.Duration) time.Duration {
	d := c.interval
	if guidance > 0 && guidance < d {
		d = guidance
	}
	return max(c.jittered(d), c.floor)
}

// retryInterval is the wait after the n-th consecutive failure: the floor, doubled per
// failure, capped, jittered, never below the floor.
func (c *Cache) retryInterval(failures int) time.Duration {
	ceiling := max(c.floor, min(c.interval, maxRetryBackoff))
	d := c.floor
	for i := 1; i < failures && d < ceiling; i++ {
		d *= 2
	}
	return max(c.jittered(min(d, ceiling)), c.floor)
}

func (c *Cache) jittered(d time.Duration) time.Duration {
	r := c.rand()
	if math.IsNaN(r) || r < 0 || r >= 1 {
		r = 0.5
	}
	return time.Duration(float64(d) * (1 + (2*r-1)*jitter))
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
		st.JWKSURI = redacted(c.jwksURI)
	}
	if s != nil {
		st.Keys = len(s.keys)
		st.Stale = c.st.source == SourcePersisted || c.st.lastErr != nil
	}
	if c.st.lastErr != nil {
		st.LastError = c.st.lastErr.Error()
	}
	if c.run.Load() != nil {
		st.NextRefresh = c.st.nextDue
		if last := c.lastFetch.Load(); last != nil {
			if floor := last.Add(c.floor); floor.After(st.NextRefresh) {
				st.NextRefresh = floor
			}
		}
	}
	return st
}

// warnPlainHTTP warns once when keys travel without TLS to a host other than loopback.
func (c *Cache) warnPlainHTTP() {
	target := c.jwksURI
	if target == "" {
		target = discoveryURL(c.issuer)
	}
	if u, err := url.Parse(target); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		c.log.Warn("jwks: keys are fetched over plain http; anyone on the path could substitute them", "url", u.Redacted())
	}
}

// logSkipped reports the keys that are not used; notable ones as warnings when loud is set
// (first load or a changed set), so a steady set does not repeat them at every refresh.
func (c *Cache) logSkipped(skipped []skippedKey, loud bool) {
	for _, s := range skipped {
		level := slog.LevelDebug
		if s.notable && loud {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "jwks: key skipped", "key", s.String())
	}
}

func diffKIDs(prev, next *snapshot) (added, removed []string) {
	for _, k := range next.keys {
		if _, ok := prev.thumbprints[k.Thumbprint]; !ok {
			added = append(added, k.KID)
		}
	}
	for _, k := range prev.keys {
		if _, ok := next.thumbprints[k.Thumbprint]; !ok {
			removed = append(removed, k.KID)
		}
	}
	return added, removed
}

// shorten bounds a token-supplied kid before it goes into an error.
func shorten(kid string) string {
	if len(kid) <= maxLoggedKID {
		return kid
	}
	return kid[:maxLoggedKID] + "…"
}

func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}
