package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestRefreshNow: an operator's refresh fetches at once, counted as trigger "admin", but never
// under the floor (nothing is sent, and the time left is given); a failure keeps the last good
// set and is the error; a fetch in progress is joined, not doubled.
func TestRefreshNow(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1", "ec256"))
	h := startHarness(t, idp, nil)
	idp.wantCounts(t, 1, 1)

	// Right after the start's fetch: under the floor.
	if left, err := h.cache.RefreshNow(context.Background()); !errors.Is(err, ErrRefreshTooSoon) || left != 10*time.Second {
		t.Fatalf("RefreshNow under the floor = %v, %v; want 10s, ErrRefreshTooSoon", left, err)
	}
	h.clock.Advance(4 * time.Second)
	if left, err := h.cache.RefreshNow(context.Background()); !errors.Is(err, ErrRefreshTooSoon) || left != 6*time.Second {
		t.Fatalf("RefreshNow 4s later = %v, %v; want 6s, ErrRefreshTooSoon", left, err)
	}
	idp.wantCounts(t, 1, 1)

	// Past the floor: fetched now, the new key seen.
	idp.serveKeys(setOf(t, "rsa1", "ec256", "rsa2"))
	h.clock.Advance(6 * time.Second)
	if left, err := h.cache.RefreshNow(context.Background()); err != nil || left != 0 {
		t.Fatalf("RefreshNow past the floor = %v, %v", left, err)
	}
	idp.wantCounts(t, 1, 2)
	if st := h.cache.Status(); st.Keys != 3 || st.LastError != "" || st.LastSuccess != h.clock.Now() {
		t.Errorf("status after the refresh: %+v", st)
	}
	h.mustFind("rsa2", jwa.RS256)

	// A failed refresh: its error, the last good set kept.
	idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
	h.clock.Advance(10 * time.Second)
	wantErr := fmt.Sprintf("jwks: GET %s/jwks: HTTP 503", idp.URL())
	if _, err := h.cache.RefreshNow(context.Background()); err == nil || err.Error() != wantErr {
		t.Fatalf("failed RefreshNow = %v, want %s", err, wantErr)
	}
	if st := h.cache.Status(); st.Keys != 3 || st.LastError != wantErr || !st.Stale || st.ConsecutiveFailures != 1 {
		t.Errorf("status after the failure: %+v", st)
	}
	idp.wantCounts(t, 1, 3)

	// A fetch in progress (after the failure, discovery runs again first) (an unknown kid's) is joined.
	idp.set(func(p *testIdP) { p.status = 0 })
	idp.stallJWKS()
	idp.drainArrivals()
	h.clock.Advance(10 * time.Second)
	lookup := make(chan error, 1)
	go func() { _, err := h.lookup("rsa9", jwa.RS256); lookup <- err }()
	idp.waitArrival(t)
	refreshed := make(chan error, 1)
	go func() { _, err := h.cache.RefreshNow(context.Background()); refreshed <- err }()
	// RefreshNow waits on the same fetch: it has not returned while the fetch stalls.
	select {
	case err := <-refreshed:
		t.Fatalf("RefreshNow returned %v while the fetch it joined was stalled", err)
	case <-time.After(50 * time.Millisecond):
	}
	idp.unstall()
	if err := <-refreshed; err != nil {
		t.Errorf("joined RefreshNow: %v", err)
	}
	if err := <-lookup; !errors.Is(err, ErrUnknownKey) {
		t.Errorf("lookup: %v", err)
	}
	idp.wantCounts(t, 2, 4)

	if ok, bad := h.refreshes("success", "admin"), h.refreshes("error", "admin"); ok != 1 || bad != 1 {
		t.Errorf(`refreshes{trigger="admin"}: success %v error %v, want 1 1`, ok, bad)
	}
	if ok := h.refreshes("success", "unknown_kid"); ok != 1 {
		t.Errorf(`refreshes{result="success",trigger="unknown_kid"} = %v, want 1 (the joined fetch)`, ok)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "trigger=admin") {
		t.Errorf("no log record names trigger=admin:\n%s", logs)
	}
}

// TestRefreshNowRefused: a jwks_file is never fetched; a cache not running fetches nothing.
func TestRefreshNowRefused(t *testing.T) {
	static, err := New(Options{Issuer: "https://sso.example.com", StaticSet: staticSet(t, setOf(t, "rsa1"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := static.RefreshNow(context.Background()); !errors.Is(err, ErrStaticSet) {
		t.Errorf("static: %v", err)
	}
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := newHarness(t, idp, nil)
	if _, err := h.cache.RefreshNow(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("not running: %v", err)
	}
	idp.wantCounts(t, 0, 0)
}
