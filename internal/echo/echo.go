// Package echo is the stand-in for a protected service that the Envoy walk-through
// (envoy/README.md, run by examples/echo) and the end-to-end tests (e2e/) put behind Envoy: it
// answers every request with JSON describing what it received, headers included, so that the
// identity headers Portcullis sets can be seen.
//
// It echoes the request's credentials (Authorization, Cookie) back to the caller, who sent them;
// it logs nothing. For loopback use only.
package echo

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Echoed is the body of every answer.
type Echoed struct {
	Method string `json:"method"`
	// Path is the request target as received, query included.
	Path string `json:"path"`
	Host string `json:"host"`
	// Headers are the request headers by lower-case name, every value received.
	Headers map[string][]string `json:"headers"`
}

// DefaultAddr is where examples/echo listens unless told otherwise: envoy/envoy.yaml's
// upstream.
const DefaultAddr = "127.0.0.1:8081"

// Marker is the answer header that tells the echo's answers from Envoy's own.
const Marker = "X-Echo"

// Handler answers every request, whatever its method and path, with 200 and an Echoed body.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := Echoed{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string][]string{}}
		for k, v := range r.Header {
			lk := strings.ToLower(k)
			out.Headers[lk] = append(out.Headers[lk], v...)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(Marker, "1")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
