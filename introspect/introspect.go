// Package introspect asks an OAuth 2.0 authorization server whether a token is active (token
// introspection, RFC 7662) and remembers the answers in a bounded cache, so that a token seen
// again costs a map lookup rather than a round trip.
//
// The client authenticates with client_secret_basic (RFC 6749 §2.3.1) and POSTs
// `token=…&token_type_hint=access_token` (RFC 7662 §2.1) to the configured endpoint, or to the
// introspection_endpoint of the issuer's discovery document (RFC 8414 §2). It never follows a
// redirect, so the token goes nowhere but that endpoint; it never logs the token or the secret.
//
// The cache is keyed by the token's SHA-256. A positive answer is kept at most
// min(CacheTTL, exp − now) (exp of the answer and of the token, when the caller knows it), a
// negative one NegativeCacheTTL; concurrent lookups of one token make one call (single
// flight); failures are never cached, so each request after one asks again and fails closed.
//
// It knows nothing of rules or of the decision engine: it answers active or not with the
// claims of the answer, or an error meaning the server could not say.
package introspect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
)

// Key is the cache key of a token: its SHA-256.
type Key = [sha256.Size]byte

// KeyOf returns the cache key of a raw token.
func KeyOf(raw string) Key { return sha256.Sum256([]byte(raw)) }

// ErrUnavailable is wrapped by every error of Check: the authorization server could not say
// whether the token is active (unreachable, timed out, an error status, a malformed answer,
// no introspection endpoint). Callers answer 503: never an allow, never a 401.
var ErrUnavailable = errors.New("introspection unavailable")

// Options configure an Introspector. The configuration (package config) has validated them.
type Options struct {
	// Issuer is the issuer whose tokens are introspected; its discovery document names the
	// endpoint when Endpoint is empty, and it labels the metrics.
	Issuer string
	// Endpoint is the introspection endpoint; "" = the introspection_endpoint of the issuer's
	// discovery document, read at the first introspection.
	Endpoint string
	// ClientID and ClientSecret authenticate Portcullis to the endpoint (client_secret_basic).
	ClientID     string
	ClientSecret string
	// HTTPClient makes the requests (the issuer's TLS settings); its redirects are never
	// followed. nil = http.DefaultClient's transport.
	HTTPClient *http.Client
	// Timeout bounds one introspection (and one discovery); required, positive.
	Timeout time.Duration
	// CacheTTL bounds how long a positive answer is kept; 0 = not kept.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long an active: false answer is kept; 0 = not kept.
	NegativeCacheTTL time.Duration
	// CacheSize bounds the number of cached answers; 0 = no cache (every check asks).
	CacheSize int
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Metrics receives the issuer's series; nil = none.
	Metrics *Metrics
	// Logger receives malformed answers and failures (never a token or the secret); nil discards.
	Logger *slog.Logger
	// Tracer, when set, traces every call (trace.go): a span per call, a child of the span of
	// the check that makes it, and one per discovery; nil = tracing off.
	Tracer trace.Tracer
}

// Answer is what the authorization server said of a token.
type Answer struct {
	// Active is the answer's `active` member.
	Active bool
	// Claims are the members of an active answer (sub, scope, client_id, exp, iss, aud, and
	// Keycloak's token claims), decoded as encoding/json decodes into map[string]any; nil for an
	// inactive one. Shared with the cache: never modified.
	Claims map[string]any
	// Cached says the answer came from the cache rather than from a call made now.
	Cached bool
	// Until is when the answer leaves the cache; zero when it is not cached.
	Until time.Time
}

// Introspector introspects the tokens of one issuer. It is safe for concurrent use.
type Introspector struct {
	issuer           string
	clientID, secret string
	client           *http.Client
	timeout          time.Duration
	ttl, negativeTTL time.Duration
	now              func() time.Time
	metrics          *issuerMetrics
	log              *slog.Logger
	cache            *cache
	tracer           trace.Tracer // nil = no tracing

	endpointMu sync.Mutex // guards endpoint while discovering
	endpoint   string     // "" until discovered
	discover   chan struct{}

	flightMu sync.Mutex
	flights  map[Key]*flight
}

// flight is one introspection call in progress; waiters read ans and err once done is closed.
type flight struct {
	done    chan struct{}
	ans     Answer
	err     error
	waiters atomic.Int32 // checks waiting for this call besides the one making it
}

// New builds an Introspector.
func New(o Options) (*Introspector, error) {
	switch {
	case o.Issuer == "":
		return nil, errors.New("introspect: Options.Issuer is empty")
	case o.ClientID == "" || o.ClientSecret == "":
		return nil, errors.New("introspect: Options.ClientID and ClientSecret are required")
	case o.Timeout <= 0:
		return nil, fmt.Errorf("introspect: Options.Timeout (%s) must be positive", o.Timeout)
	case o.CacheTTL < 0 || o.NegativeCacheTTL < 0 || o.CacheSize < 0:
		return nil, errors.New("introspect: negative cache settings")
	}
	if o.Endpoint != "" {
		if err := checkEndpoint(o.Endpoint, o.Issuer); err != nil {
			return nil, fmt.Errorf("introspect: endpoint %w", err)
		}
	}
	in := &Introspector{
		issuer: o.Issuer, clientID: o.ClientID, secret: o.ClientSecret, timeout: o.Timeout,
		ttl: o.CacheTTL, negativeTTL: o.NegativeCacheTTL, now: o.Now, endpoint: o.Endpoint,
		metrics: o.Metrics.forIssuer(o.Issuer), log: o.Logger, flights: map[Key]*flight{},
		discover: make(chan struct{}, 1), tracer: o.Tracer,
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	in.log = in.log.With("issuer", o.Issuer)
	// The token and the client's credentials go to the endpoint and nowhere else: a redirect
	// (a 307 would repeat the POST elsewhere) is an error answer.
	base := o.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	in.client = &c
	if o.CacheSize > 0 && (o.CacheTTL > 0 || o.NegativeCacheTTL > 0) {
		in.cache = newCache(o.CacheSize)
	}
	return in, nil
}

// Issuer returns the issuer whose tokens this introspector asks about.
func (in *Introspector) Issuer() string { return in.issuer }

// Check says whether the token raw (whose cache key is key, KeyOf(raw)) is active: from the
// cache, or by asking the authorization server, one call for all concurrent checks of one
// token. notAfter, when not zero, is the token's own expiry (a verified JWT's exp): a positive
// answer is never cached past it. An error wraps ErrUnavailable.
func (in *Introspector) Check(ctx context.Context, key Key, raw string, notAfter time.Time) (Answer, error) {
	if in.cache != nil {
		if ans, ok := in.cache.get(key, in.now()); ok {
			in.metrics.lookup(true)
			return ans, nil
		}
		in.metrics.lookup(false)
	}
	in.flightMu.Lock()
	if in.cache != nil {
		// A call that ended since the lookup above filled the cache before it left flights.
		if ans, ok := in.cache.get(key, in.now()); ok {
			in.flightMu.Unlock()
			return ans, nil
		}
	}
	if f, ok := in.flights[key]; ok {
		f.waiters.Add(1)
		in.flightMu.Unlock()
		select {
		case <-f.done:
			return f.ans, f.err
		case <-ctx.Done():
			return Answer{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	in.flights[key] = f
	in.flightMu.Unlock()

	// The call is not cut short when this caller gives up: others may be waiting for it, and
	// its answer fills the cache. The timeout bounds it.
	f.ans, f.err = in.call(context.WithoutCancel(ctx), raw, notAfter)
	if f.err == nil && in.cache != nil && !f.ans.Until.IsZero() {
		in.cache.add(key, f.ans)
	}
	in.flightMu.Lock()
	delete(in.flights, key)
	in.flightMu.Unlock()
	close(f.done)
	return f.ans, f.err
}

// call asks the authorization server and says until when its answer may be cached.
func (in *Introspector) call(ctx context.Context, raw string, notAfter time.Time) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	ctx, span := in.startSpan(ctx, spanCall)
	start := in.now()
	endpoint, err := in.endpointOf(ctx)
	if err != nil {
		in.metrics.called(resultError, in.now().Sub(start))
		in.log.Warn("introspection failed", "error", err)
		endCall(span, "", resultError, 0, err)
		return Answer{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ans, status, err := in.post(ctx, endpoint, raw)
	elapsed := in.now().Sub(start)
	if err != nil {
		in.metrics.called(resultError, elapsed)
		in.log.Warn("introspection failed", "error", err)
		endCall(span, endpoint, resultError, status, err)
		return Answer{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	now := in.now()
	if !ans.Active {
		in.metrics.called(resultInactive, elapsed)
		endCall(span, endpoint, resultInactive, status, nil)
		if in.negativeTTL > 0 {
			ans.Until = now.Add(in.negativeTTL)
		}
		return ans, nil
	}
	in.metrics.called(resultActive, elapsed)
	endCall(span, endpoint, resultActive, status, nil)
	if in.ttl > 0 {
		until := now.Add(in.ttl)
		if exp, ok := numericDate(ans.Claims["exp"]); ok && exp.Before(until) {
			until = exp
		}
		if !notAfter.IsZero() && notAfter.Before(until) {
			until = notAfter
		}
		if until.After(now) {
			ans.Until = until
		}
	}
	return ans, nil
}

// endpointOf returns the introspection endpoint, discovering it once (one discovery at a time;
// a failed one is tried again by the next call).
func (in *Introspector) endpointOf(ctx context.Context) (string, error) {
	in.endpointMu.Lock()
	ep := in.endpoint
	in.endpointMu.Unlock()
	if ep != "" {
		return ep, nil
	}
	select {
	case in.discover <- struct{}{}:
		defer func() { <-in.discover }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	in.endpointMu.Lock()
	ep = in.endpoint
	in.endpointMu.Unlock()
	if ep != "" {
		return ep, nil // discovered while this call waited
	}
	ep, err := in.discoverEndpoint(ctx)
	if err != nil {
		return "", err
	}
	in.endpointMu.Lock()
	in.endpoint = ep
	in.endpointMu.Unlock()
	return ep, nil
}

// checkEndpoint accepts an absolute https URL, or a plain http one on loopback or when the
// issuer itself is plain http: the token and the client secret travel in the request.
func checkEndpoint(raw, issuer string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !strings.HasPrefix(strings.ToLower(issuer), "http://") && !idpurl.IsLoopback(u.Hostname()) {
		return fmt.Errorf("%q is plain http on a host other than loopback; the token and the client secret would travel unencrypted", raw)
	}
	return nil
}
