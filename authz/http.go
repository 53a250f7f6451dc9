package authz

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/portcullis-authz/portcullis/config"
)

// HTTPHandler is the forward-auth front (Envoy http_service, nginx auth_request, Traefik
// forwardAuth, Caddy forward_auth): every request asks "may this original request pass?". The
// answer is 200 with the decision's upstream headers as response headers, for the proxy to copy
// onto the upstream request, and the headers to remove from it listed in
// x-envoy-auth-headers-to-remove; or the deny status with the same headers and JSON body as the
// gRPC front. How the original request is read (forward_auth) is this front's own setting.
type HTTPHandler struct {
	authz       *Authorizer
	forwardAuth atomic.Pointer[config.ForwardAuth]
}

// HeaderAuthHeadersToRemove is the answer header of an allow that lists, comma-separated, the
// headers to remove from the upstream request: the identity headers the answer does not set,
// and the token's header with forward_token: false. Envoy's ext_authz http_service honours it
// (the HTTP form of OkHttpResponse.headers_to_remove); nginx, Traefik and Caddy do not, so with
// them the proxy's own configuration removes those headers (docs/decisions.md).
const HeaderAuthHeadersToRemove = "x-envoy-auth-headers-to-remove"

// NewHTTPHandler serves forward-auth decisions with a, reading the original request as fa says.
func NewHTTPHandler(a *Authorizer, fa config.ForwardAuth) *HTTPHandler {
	h := &HTTPHandler{authz: a}
	h.SetForwardAuth(fa)
	return h
}

// SetForwardAuth changes how the original request is read, on a configuration reload; a
// request already running finishes with the settings it started with.
func (h *HTTPHandler) SetForwardAuth(fa config.ForwardAuth) { h.forwardAuth.Store(&fa) }

// ServeHTTP decides the original request described by r.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := RequestFromHTTP(r, *h.forwardAuth.Load())
	d := h.authz.Authorize(r.Context(), FrontHTTP, &req)
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if !d.Allow {
		for _, x := range d.Answer {
			hdr.Set(x.Name, x.Value)
		}
		w.WriteHeader(d.Status)
		_, _ = w.Write(d.Body)
		return
	}
	for _, x := range d.Upstream {
		hdr.Set(x.Name, x.Value)
	}
	if len(d.UpstreamRemove) > 0 {
		hdr.Set(HeaderAuthHeadersToRemove, strings.Join(d.UpstreamRemove, ", "))
	}
	w.WriteHeader(http.StatusOK)
}

// convention is one way proxies describe the original request in headers.
type convention struct {
	method, host, uri string
}

// conventions are the headers of each forward_auth.trusted_headers convention.
var conventions = map[string]convention{
	config.ConventionXForwarded: {method: "x-forwarded-method", host: "x-forwarded-host", uri: "x-forwarded-uri"},
	config.ConventionXOriginal:  {method: "x-original-method", host: "", uri: "x-original-uri"},
}

// RequestFromHTTP reconstructs the original request from the trusted header conventions, in
// order (X-Forwarded-Method/-Host/-Uri for Traefik and Caddy; X-Original-Method/-URI for
// nginx), or, when none is present, from the request line itself with fa.PathPrefix removed
// (Envoy's http_service sends the original method and path behind its path_prefix). Two
// trusted conventions that disagree about the method or path make the request ambiguous: a
// client may have smuggled one of them through a proxy that sets only the other.
func RequestFromHTTP(r *http.Request, fa config.ForwardAuth) Request {
	headers := make(map[string]string, len(r.Header)+1)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	req := Request{Method: r.Method, Host: r.Host, Headers: headers}
	found := false
	for _, name := range fa.TrustedHeaders {
		c, ok := conventions[name]
		if !ok {
			continue
		}
		uri := strings.TrimSpace(r.Header.Get(c.uri))
		if uri == "" {
			continue
		}
		method := strings.ToUpper(strings.TrimSpace(r.Header.Get(c.method)))
		if method == "" {
			method = r.Method
		}
		if found {
			if uri != req.Path || method != req.Method {
				req.Invalid = "the trusted forward-auth headers disagree about the original request (" + name + " says " + method + " " + uri + ")"
				return req
			}
			continue
		}
		found = true
		req.Method, req.Path = method, uri
		if c.host != "" {
			// A chain of proxies may append: the first host is the original.
			host, _, _ := strings.Cut(r.Header.Get(c.host), ",")
			if host = strings.TrimSpace(host); host != "" {
				req.Host = host
			}
		}
	}
	if !found {
		// The raw target as received (origin-form); absolute-form falls back to the parsed URL.
		req.Path = r.RequestURI
		if !strings.HasPrefix(req.Path, "/") {
			req.Path = r.URL.RequestURI()
		}
		if p := fa.PathPrefix; p != "" {
			rest, ok := strings.CutPrefix(req.Path, p)
			if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
				req.Invalid = "the request path does not start with forward_auth.path_prefix " + p
				return req
			}
			if rest == "" || rest[0] == '?' {
				rest = "/" + rest
			}
			req.Path = rest
		}
	}
	headers["host"] = req.Host
	// The scheme the client used, for a DPoP proof's htu: the proxies that send
	// X-Forwarded-Host (Traefik, Caddy, nginx when told) send X-Forwarded-Proto beside it.
	req.Scheme = strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto")))
	return req
}
