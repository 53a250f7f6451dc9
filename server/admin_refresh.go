package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-authz/portcullis/jwks"
)

// refreshTimeout bounds how long POST /admin/jwks/refresh waits for the fetch (itself bounded
// by jwks.DefaultHTTPTimeout per request, discovery and key set).
const refreshTimeout = 25 * time.Second

// keyStatus is the answer of POST /admin/jwks/refresh: what happened, and the issuer's key
// status after it.
type keyStatus struct {
	Issuer string `json:"issuer"`
	// Refreshed says a fetch was made (or joined) and succeeded.
	Refreshed           bool   `json:"refreshed"`
	Error               string `json:"error,omitempty"` // why nothing was refreshed
	RetryAfterSeconds   int    `json:"retry_after_seconds,omitempty"`
	Keys                int    `json:"keys"`
	Source              string `json:"source,omitempty"`
	JWKSURI             string `json:"jwks_uri,omitempty"`
	LastSuccess         string `json:"last_success,omitempty"` // RFC 3339
	LastError           string `json:"last_error,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
}

// refreshKeys serves POST /admin/jwks/refresh?issuer=<issuer> (docs/metrics.md#post-adminjwksrefresh):
// the issuer's keys are fetched now, still under its min_refresh_interval. Answers: 200 with
// the key status after a successful fetch; 429 with Retry-After when the last fetch started
// less than min_refresh_interval ago (nothing is sent); 502 when the fetch failed (the last
// good keys are kept); 409 for a jwks_file issuer; 400 without ?issuer; 404 for an issuer not
// configured; 503 while the key cache is not running (shutting down).
func (s *Server) refreshKeys(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("issuer")
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	var configured []string
	index := -1
	for i, is := range cfg.Issuers {
		configured = append(configured, is.Issuer)
		if is.Issuer == name || slices.Contains(is.IssuerAliases, name) {
			index = i
		}
	}
	list := strings.Join(configured, ", ")
	switch {
	case name == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name the issuer: POST /admin/jwks/refresh?issuer=<issuer>; configured issuers: " + list})
		return
	case index < 0:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("issuer %q is not configured; configured issuers: %s", name, list)})
		return
	}
	issuer := cfg.Issuers[index].Issuer
	cache := s.keys.cacheOf(cfg, index)
	if cache == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the key caches are not running (shutting down)"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), refreshTimeout)
	defer cancel()
	left, err := cache.RefreshNow(ctx)
	st := statusOf(cache.Status())
	status := http.StatusOK
	switch {
	case err == nil:
		st.Refreshed = true
	case errors.Is(err, jwks.ErrRefreshTooSoon):
		status = http.StatusTooManyRequests
		st.RetryAfterSeconds = int(math.Ceil(left.Seconds()))
		st.Error = fmt.Sprintf("not refreshed: the last fetch of %s started less than min_refresh_interval (%s) ago; retry in %ds", issuer, cfg.Issuers[index].MinRefreshInterval, st.RetryAfterSeconds)
		w.Header().Set("Retry-After", strconv.Itoa(st.RetryAfterSeconds))
	case errors.Is(err, jwks.ErrStaticSet):
		status = http.StatusConflict
		st.Error = fmt.Sprintf("not refreshed: the keys of %s come from its jwks_file, which is never fetched; edit the file and reload", issuer)
	case errors.Is(err, jwks.ErrNotRunning), ctx.Err() != nil && errors.Is(err, ctx.Err()):
		status = http.StatusServiceUnavailable
		st.Error = "not refreshed: " + err.Error()
	default:
		status = http.StatusBadGateway
		st.Error = "the fetch failed; the last good keys are kept: " + err.Error()
	}
	s.log.Info("admin: key refresh", "issuer", issuer, "status", status, "refreshed", st.Refreshed, "keys", st.Keys, "err", st.Error)
	writeJSON(w, status, st)
}

func statusOf(st jwks.Status) keyStatus {
	k := keyStatus{Issuer: st.Issuer, Keys: st.Keys, Source: string(st.Source), JWKSURI: st.JWKSURI,
		LastError: st.LastError, ConsecutiveFailures: st.ConsecutiveFailures}
	if !st.LastSuccess.IsZero() {
		k.LastSuccess = st.LastSuccess.UTC().Format(time.RFC3339)
	}
	return k
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
