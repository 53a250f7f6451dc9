package jwks

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// guard bounds how long a test waits for something that must happen; reaching it is a failure,
// not a way to let time pass.
const guard = 10 * time.Second

// fakeClock moves only when a test advances it. Every After call is counted, so a test can
// wait until the cache's loop is waiting again (its previous step has finished).
type fakeClock struct {
	mu         sync.Mutex
	now        time.Time
	waiters    []fakeWaiter
	registered int
	changed    chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
	} else {
		f.waiters = append(f.waiters, fakeWaiter{at: f.now.Add(d), ch: ch})
	}
	f.registered++
	close(f.changed)
	f.changed = make(chan struct{})
	return ch
}

// Advance moves time forward and fires the waits that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
		} else {
			w.ch <- f.now
		}
	}
	f.waiters = kept
}

func (f *fakeClock) registrations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registered
}

// pending returns how long until the earliest wait fires; false if nothing waits.
func (f *fakeClock) pending() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) == 0 {
		return 0, false
	}
	first := f.waiters[0].at
	for _, w := range f.waiters[1:] {
		if w.at.Before(first) {
			first = w.at
		}
	}
	return first.Sub(f.now), true
}

// waitRegistrations blocks until After has been called at least n times in all.
func (f *fakeClock) waitRegistrations(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(guard)
	for {
		f.mu.Lock()
		done, ch := f.registered >= n, f.changed
		f.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the cache's loop did not wait on the clock %d times", n)
		}
	}
}

// testKey is a generated key pair published under a kid.
type testKey struct {
	kid    string
	alg    jwa.SignatureAlgorithm
	public jwk.Key // with kid, alg and use sig
	raw    any     // the private key
}

var (
	fixturesOnce sync.Once
	fixtures     map[string]testKey
)

// keys returns generated keys by name: rsa1, rsa2, rsa3 (2048-bit, RS256), rsaSmall (1024),
// ec256, ec384, ec521, ed.
func keys(t testing.TB) map[string]testKey {
	t.Helper()
	fixturesOnce.Do(func() {
		fixtures = map[string]testKey{}
		add := func(name string, alg jwa.SignatureAlgorithm, raw any) {
			pub, err := jwk.PublicKeyOf(raw)
			if err != nil {
				panic(err)
			}
			_ = pub.Set(jwk.KeyIDKey, name)
			_ = pub.Set(jwk.AlgorithmKey, alg)
			_ = pub.Set(jwk.KeyUsageKey, "sig")
			fixtures[name] = testKey{kid: name, alg: alg, public: pub, raw: raw}
		}
		for _, name := range []string{"rsa1", "rsa2", "rsa3"} {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			add(name, jwa.RS256, k)
		}
		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		add("rsaSmall", jwa.RS256, small)
		for name, c := range map[string]struct {
			curve elliptic.Curve
			alg   jwa.SignatureAlgorithm
		}{"ec256": {elliptic.P256(), jwa.ES256}, "ec384": {elliptic.P384(), jwa.ES384}, "ec521": {elliptic.P521(), jwa.ES512}} {
			k, err := ecdsa.GenerateKey(c.curve, rand.Reader)
			if err != nil {
				panic(err)
			}
			add(name, c.alg, k)
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		add("ed", jwa.EdDSA, ed)
	})
	return fixtures
}

// jwkJSON renders a key as a JSON object, with fields changed or removed (nil value).
func jwkJSON(t testing.TB, k jwk.Key, change map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range change {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setJSON renders a JWK Set of the given members.
func setJSON(t testing.TB, members ...json.RawMessage) []byte {
	t.Helper()
	if members == nil {
		members = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string]any{"keys": members})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setOf(t testing.TB, names ...string) []byte {
	t.Helper()
	ks := keys(t)
	var members []json.RawMessage
	for _, n := range names {
		members = append(members, jwkJSON(t, ks[n].public, nil))
	}
	return setJSON(t, members...)
}

// x25519JWK is an OKP key on X25519 (a key-agreement curve, never a signature key).
func x25519JWK(t testing.TB) json.RawMessage {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x25519",
		"x": b64(k.PublicKey().Bytes())})
	return b
}

// testIdP is an identity provider behind httptest: discovery plus a JWKS that a test can
// rotate, break, stall and re-label, counting requests.
type testIdP struct {
	srv *httptest.Server

	mu           sync.Mutex
	issuer       string // what discovery names; default the server's URL
	jwksURI      string // what discovery points at; default URL + "/jwks"
	body         []byte // the JWKS document
	status       int    // 0 = 200
	cacheControl string
	header       http.Header // extra response headers
	stall        bool        // hold JWKS requests until the client gives up (no answer) or unstall (then answer)
	release      chan struct{}
	requests     map[string]http.Header // the last request headers by path

	discoveryHits atomic.Int64
	jwksHits      atomic.Int64
	arrived       chan struct{} // receives (without blocking) when a JWKS request arrives
}

func newTestIdP(t testing.TB, body []byte) *testIdP {
	t.Helper()
	return newTestIdPServer(t, body, httptest.NewServer)
}

func newTestIdPServer(t testing.TB, body []byte, start func(http.Handler) *httptest.Server) *testIdP {
	t.Helper()
	p := &testIdP{body: body, release: make(chan struct{}), arrived: make(chan struct{}, 1), requests: map[string]http.Header{}}
	p.srv = start(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.unstall()
		p.srv.Close()
	})
	return p
}

func (p *testIdP) URL() string { return p.srv.URL }

func (p *testIdP) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	issuer, uri := p.issuer, p.jwksURI
	if issuer == "" {
		issuer = p.srv.URL
	}
	if uri == "" {
		uri = p.srv.URL + "/jwks"
	}
	body, status, cc, stall, release := p.body, p.status, p.cacheControl, p.stall, p.release
	extra := p.header.Clone()
	p.requests[r.URL.Path] = r.Header.Clone()
	p.mu.Unlock()

	switch r.URL.Path {
	case discoveryPath:
		p.discoveryHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": uri})
	case "/jwks":
		p.jwksHits.Add(1)
		select {
		case p.arrived <- struct{}{}:
		default:
		}
		if stall {
			select {
			case <-r.Context().Done():
				return
			case <-release:
			}
		}
		for k, v := range extra {
			w.Header()[k] = v
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		if status != 0 {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"unavailable"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func (p *testIdP) set(f func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *testIdP) serveKeys(body []byte) {
	p.set(func(p *testIdP) { p.body, p.status = body, 0 })
}

// stallJWKS makes JWKS requests wait until the client gives up or unstall is called.
func (p *testIdP) stallJWKS() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = true
	p.release = make(chan struct{})
}

// unstall lets waiting and later JWKS requests through.
func (p *testIdP) unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = false
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// waitArrival waits until a JWKS request has arrived since the last drain.
func (p *testIdP) waitArrival(t testing.TB) {
	t.Helper()
	select {
	case <-p.arrived:
	case <-time.After(guard):
		t.Fatal("no JWKS request arrived")
	}
}

func (p *testIdP) drainArrivals() {
	select {
	case <-p.arrived:
	default:
	}
}

func (p *testIdP) request(path string) http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[path]
}

// syncBuffer collects log output safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testAlgorithms is the allow-list of the tests' caches: every algorithm KeyFits knows. The
// product's list is token.SupportedAlgorithms; jwks takes whatever it is given.
func testAlgorithms() []jwa.SignatureAlgorithm {
	return []jwa.SignatureAlgorithm{
		jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
		jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
	}
}

// staticSet parses doc for testAlgorithms, as the configuration parses a jwks_file.
func staticSet(tb testing.TB, doc []byte) *Set {
	tb.Helper()
	set, err := ParseSet(doc, testAlgorithms())
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// harness is a running cache against a test IdP, with a fake clock and its own registry.
type harness struct {
	t     testing.TB
	idp   *testIdP
	clock *fakeClock
	reg   *prometheus.Registry
	logs  *syncBuffer
	cache *Cache
	opts  Options
	stop  func()
}

// newHarness builds a cache for idp (change adjusts the options) without starting it.
func newHarness(t testing.TB, idp *testIdP, change func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, idp: idp, clock: newFakeClock(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	h.opts = Options{
		Issuer:     idp.URL(),
		Algorithms: testAlgorithms(),
		// The configuration's defaults (config.DefaultRefreshInterval, DefaultMinRefreshInterval).
		RefreshInterval:    15 * time.Minute,
		MinRefreshInterval: 10 * time.Second,
		HTTPClient:         NewClient(ClientOptions{Timeout: 5 * time.Second}),
		Clock:              h.clock,
		Logger:             slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:            NewMetrics(h.reg),
		Rand:               func() float64 { return 0.5 }, // no jitter
	}
	if change != nil {
		change(&h.opts)
	}
	c, err := New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.cache = c
	return h
}

// start runs the cache and waits until its first attempt is over (the loop waits again).
func (h *harness) start() *harness {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.cache.Run(ctx)
	}()
	h.stop = func() {
		cancel()
		<-done
	}
	h.t.Cleanup(h.stop)
	h.clock.waitRegistrations(h.t, 1)
	return h
}

// startHarness builds and starts a cache for idp.
func startHarness(t testing.TB, idp *testIdP, change func(*Options)) *harness {
	t.Helper()
	return newHarness(t, idp, change).start()
}

// fire advances the clock to the loop's next wake-up and waits until the loop waits again.
func (h *harness) fire() {
	h.t.Helper()
	d, ok := h.clock.pending()
	if !ok {
		h.t.Fatal("the cache's loop is not waiting")
	}
	n := h.clock.registrations()
	h.clock.Advance(d)
	h.clock.waitRegistrations(h.t, n+1)
}

// nextIn is how long after now the background loop fetches next.
func (h *harness) nextIn() time.Duration {
	return h.cache.Status().NextRefresh.Sub(h.clock.Now())
}

func (h *harness) lookup(kid string, alg jwa.SignatureAlgorithm) ([]Key, error) {
	return h.cache.Lookup(context.Background(), kid, alg)
}

// mustFind asserts that kid is served for alg.
func (h *harness) mustFind(kid string, alg jwa.SignatureAlgorithm) Key {
	h.t.Helper()
	got, err := h.lookup(kid, alg)
	if err != nil {
		h.t.Fatalf("Lookup(%q, %s): %v", kid, alg, err)
	}
	if len(got) != 1 || got[0].KID != kid {
		h.t.Fatalf("Lookup(%q, %s) = %d keys %v", kid, alg, len(got), kidsOf(got))
	}
	return got[0]
}

func kidsOf(keys []Key) []string {
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// metric returns the value of the series name{labels}; it fails if the series is absent.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	return metricValue(h.t, h.reg, name, labels...)
}

func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return value(m)
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// refreshes returns portcullis_jwks_refreshes_total for the harness's issuer.
func (h *harness) refreshes(result, trigger string) float64 {
	h.t.Helper()
	return h.metric("portcullis_jwks_refreshes_total", "issuer", h.opts.Issuer, "result", result, "trigger", trigger)
}

func (h *harness) lookups(result string) float64 {
	h.t.Helper()
	return h.metric("portcullis_jwks_lookups_total", "issuer", h.opts.Issuer, "result", result)
}

// wantCounts asserts the request counters of the IdP.
func (p *testIdP) wantCounts(t testing.TB, discovery, jwks int64) {
	t.Helper()
	if d, j := p.discoveryHits.Load(), p.jwksHits.Load(); d != discovery || j != jwks {
		t.Fatalf("IdP requests: discovery %d, jwks %d; want %d, %d", d, j, discovery, jwks)
	}
}

func contains(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s = %q\nlacks %q", what, got, w)
		}
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkFromRaw wraps a raw key (private ones included) as a JWK with a kid.
func jwkFromRaw(raw any, kid string) (jwk.Key, error) {
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	return k, k.Set(jwk.KeyIDKey, kid)
}
