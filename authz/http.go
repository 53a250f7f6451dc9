package authz

import (
	"net/http"
	"strings"
)

// HTTPHandler is the forward-auth front (Envoy http_service, nginx auth_request, Traefik
// forwardAuth, Caddy forward_auth): every request asks "may this original request pass?". The
// answer is 200 with the identity headers in the response, or the deny status with the same
// headers and JSON body as the gRPC front.
type HTTPHandler struct {
	authz *Authorizer
}

// NewHTTPHandler serves forward-auth decisions with a.
func NewHTTPHandler(a *Authorizer) *HTTPHandler { return &HTTPHandler{authz: a} }

// ServeHTTP decides the original request described by r.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := RequestFromHTTP(r)
	d := h.authz.Authorize(r.Context(), FrontHTTP, &req)
	hdr := w.Header()
	for _, x := range d.Set {
		if d.Allow && x.Name == "cookie" {
			continue // a rewritten Cookie header is for Envoy's gRPC front only
		}
		hdr.Set(x.Name, x.Value)
	}
	if d.Allow {
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(d.Status)
	_, _ = w.Write(d.Body)
}

// RequestFromHTTP reconstructs the original request from, in order: X-Forwarded-Method,
// -Host and -Uri (Traefik, Caddy); X-Original-Method and X-Original-URI (nginx conventions);
// and the request line itself (Envoy's http_service, which sends the original method and path).
func RequestFromHTTP(r *http.Request) Request {
	headers := make(map[string]string, len(r.Header)+1)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	// The raw target as received (origin-form); absolute-form falls back to the parsed URL.
	req := Request{Method: r.Method, Host: r.Host, Path: r.RequestURI, Headers: headers}
	if !strings.HasPrefix(req.Path, "/") {
		req.Path = r.URL.RequestURI()
	}
	if v := first(headers, "x-forwarded-method", "x-original-method"); v != "" {
		req.Method = strings.ToUpper(v)
	}
	if v := first(headers, "x-forwarded-host"); v != "" {
		req.Host = v
	}
	if v := first(headers, "x-forwarded-uri", "x-original-uri"); v != "" {
		req.Path = v
	}
	headers["host"] = req.Host
	return req
}

func first(h map[string]string, names ...string) string {
	for _, n := range names {
		if v := h[n]; v != "" {
			// A header repeated by a chain of proxies: the first value is the original.
			v, _, _ = strings.Cut(v, ",")
			return strings.TrimSpace(v)
		}
	}
	return ""
}
