package authz

import (
	"net/http"
	"strings"

	"github.com/portcullis-authz/portcullis/config"
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
	e := h.authz.Engine()
	req := RequestFromHTTP(r, e.forwardAuth)
	d := h.authz.authorizeWith(r.Context(), e, FrontHTTP, &req)
	hdr := w.Header()
	for _, x := range d.Set {
		if d.Allow && x.Name == "cookie" {
			continue // a rewritten Cookie header is for Envoy's gRPC front only
		}
		hdr.Set(x.Name, x.Value)
	}
	hdr.Set("Cache-Control", "no-store")
	if d.Allow {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(d.Status)
	_, _ = w.Write(d.Body)
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
	return req
}
