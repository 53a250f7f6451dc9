package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpproxy"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
)

// DefaultHTTPTimeout bounds one discovery or key-set request when no other bound is given (the
// client built when Options.HTTPClient is nil, and NewClient with ClientOptions.Timeout ≤ 0).
const DefaultHTTPTimeout = 10 * time.Second

// Settings of the HTTP client and its requests.
const (
	maxConnectTimeout = 5 * time.Second
	maxRedirects      = 5
	userAgent         = "portcullis"
	acceptJSON        = "application/json"
	acceptJWKS        = "application/jwk-set+json, application/json"
	discoveryPath     = "/.well-known/openid-configuration"
)

// ErrTooLarge is wrapped by ReadDocument when a document exceeds its bound.
var ErrTooLarge = errors.New("document too large")

// ReadDocument reads a discovery or key set document of at most limit bytes from r: a
// response, a persisted set, a jwks_file (read by the configuration, with
// DefaultMaxResponseBytes). A longer one is an error wrapping ErrTooLarge.
func ReadDocument(r io.Reader, limit int64) ([]byte, error) {
	doc, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(doc)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, limit)
	}
	return doc, nil
}

// Roots is the system certificate pool plus the PEM certificates of a CA bundle (the
// issuers[].ca_file setting, read by the configuration). A bundle without any PEM certificate
// is an error.
func Roots(pem []byte) (*x509.CertPool, error) {
	pool := systemRoots()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}

// systemRoots is a fresh copy of the system certificate pool (empty where there is none).
func systemRoots() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	return pool
}

// ClientOptions shape the HTTP client of one issuer's requests to its identity provider:
// discovery, key set and introspection.
type ClientOptions struct {
	// Roots are the certificates trusted for the identity provider's TLS; nil means the system
	// pool (see Roots for a private identity provider's CA bundle: issuers[].ca_file).
	Roots *x509.CertPool
	// Timeout bounds every request; ≤ 0 means DefaultHTTPTimeout.
	Timeout time.Duration
	// Proxy, when set, is the proxy every request goes through (issuers[].proxy_url), whatever
	// HTTPS_PROXY, HTTP_PROXY and NO_PROXY say; nil means those variables, read when the client
	// is built.
	Proxy *url.URL
	// Certificate, when set, is presented to an identity provider that asks for a client
	// certificate (mutual TLS: issuers[].client_cert_file and client_key_file).
	Certificate *tls.Certificate
}

// NewClient builds the client of an issuer's requests to its identity provider: every request is bounded by
// the timeout, connecting and the TLS handshake by at most 5s; TLS 1.2 or later; certificates
// checked against the roots; at most 5 redirects, never from https to http. Proxies are taken
// from the environment (HTTPS_PROXY for https, HTTP_PROXY for http, NO_PROXY; loopback and
// localhost are never proxied) unless ClientOptions.Proxy names one.
func NewClient(o ClientOptions) *http.Client {
	timeout, roots := o.Timeout, o.Roots
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	if roots == nil {
		roots = systemRoots()
	}
	proxy := http.ProxyURL(o.Proxy)
	if o.Proxy == nil {
		fromEnv := httpproxy.FromEnvironment().ProxyFunc()
		proxy = func(req *http.Request) (*url.URL, error) { return fromEnv(req.URL) }
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if o.Certificate != nil {
		tlsConfig.Certificates = []tls.Certificate{*o.Certificate}
	}
	connect := min(timeout, maxConnectTimeout)
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: transport, Timeout: timeout, CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	for _, prev := range via {
		if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("refusing redirect from https to %s", req.URL.Redacted())
		}
	}
	return nil
}

// fetch discovers the key set's URL if needed, fetches and parses the set. It runs inside the
// fetch in progress (coalesce.go), which owns c.discovered.
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
	doc, header, err := c.get(ctx, spanFetch, uri, acceptJWKS)
	if err == nil {
		var parsed []parsedKey
		var skipped []skippedKey
		parsed, skipped, err = parseSet(doc, c.algs)
		if err == nil {
			return parsed, skipped, uri, freshness(header, c.clock.Now()), nil
		}
		err = fmt.Errorf("GET %s: %w", idpurl.Redacted(uri), err)
	}
	// The provider may have moved its keys: discover again next time.
	c.discovered = ""
	return nil, nil, "", 0, fmt.Errorf("jwks: %w", err)
}

// get fetches target and returns its body, refusing anything but 200 and bodies over the size
// limit. Errors name the URL and never carry the body.
// span names the request's span when tracing is on (trace.go).
func (c *Cache) get(ctx context.Context, span, target, accept string) (body []byte, header http.Header, err error) {
	status := 0
	ctx, end := c.startSpan(ctx, span, trace.SpanKindClient,
		attribute.String("http.request.method", http.MethodGet), attribute.String("url.full", idpurl.Redacted(target)))
	defer func() { end(status, err) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, err // *url.Error: names the method and URL
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; the body is not reported.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, fmt.Errorf("GET %s: HTTP %d", req.URL.Redacted(), resp.StatusCode)
	}
	body, err = ReadDocument(resp.Body, c.maxBytes)
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", req.URL.Redacted(), c.maxBytes)
	case err != nil:
		return nil, nil, fmt.Errorf("GET %s: reading the body: %w", req.URL.Redacted(), err)
	}
	return body, resp.Header, nil
}

// discoveryURL is where the OpenID Provider Configuration of issuer lives (OpenID Connect
// Discovery 1.0 §4): the issuer, without a trailing slash, followed by the well-known path.
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + discoveryPath
}

// discover reads the issuer's discovery document and returns its jwks_uri. The document must
// name exactly the configured issuer (OpenID Connect Discovery 1.0 §4.3).
func (c *Cache) discover(ctx context.Context) (string, error) {
	where := discoveryURL(c.issuer)
	body, _, err := c.get(ctx, spanDiscovery, where, acceptJSON)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  any `json:"issuer"`
		JWKSURI any `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: %s is not a JSON object: %w", where, err)
	}
	issuer, _ := doc.Issuer.(string)
	if issuer != c.issuer {
		return "", fmt.Errorf("discovery: %s names issuer %q but the configured issuer is %q; "+
			"they must be identical (scheme, host, port, path, trailing slash): configure the issuer "+
			"exactly as the identity provider names itself, which is also the iss of its tokens",
			where, issuer, c.issuer)
	}
	uri, _ := doc.JWKSURI.(string)
	if uri == "" {
		return "", fmt.Errorf("discovery: %s has no jwks_uri", where)
	}
	if err := checkFetchURL(uri, c.issuerPlainHTTP()); err != nil {
		return "", fmt.Errorf("discovery: %s: jwks_uri %w", where, err)
	}
	return uri, nil
}

// issuerPlainHTTP reports whether the issuer itself is a plain-http URL, the one case in which
// a discovered jwks_uri may be plain http on a host other than loopback.
func (c *Cache) issuerPlainHTTP() bool {
	return strings.HasPrefix(strings.ToLower(c.issuer), "http://")
}

// IsHTTPURL reports whether raw is an absolute http or https URL: what an issuer (whose keys
// are discovered from it) and a jwks_uri must be, and a discovered jwks_uri too.
func IsHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http")
}

// checkFetchURL accepts an absolute https URL, or an http one when allowHTTP is set or its
// host is loopback (a sidecar or a local development issuer).
func checkFetchURL(raw string, allowHTTP bool) error {
	if !IsHTTPURL(raw) {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	u, _ := url.Parse(raw)
	if u.Scheme == "http" && !allowHTTP && !idpurl.IsLoopback(u.Hostname()) {
		return fmt.Errorf("%q is plain http on a host other than loopback; keys fetched without TLS could be forged on the way", raw)
	}
	return nil
}

// warnPlainHTTP warns once when keys travel without TLS to a host other than loopback.
func (c *Cache) warnPlainHTTP() {
	target := c.jwksURI
	if target == "" {
		target = discoveryURL(c.issuer)
	}
	if u, err := url.Parse(target); err == nil && u.Scheme == "http" && !idpurl.IsLoopback(u.Hostname()) {
		c.log.Warn("jwks: keys are fetched over plain http; anyone on the path could substitute them", "url", u.Redacted())
	}
}

// maxGuidance bounds what a Cache-Control or Expires header may say before conversion, so a
// silly value cannot overflow a Duration.
const maxGuidance = 365 * 24 * time.Hour

// freshness reads how long a response says it stays fresh (RFC 9111 §4.2.1): Cache-Control
// max-age less Age, else Expires less Date (or now). 0 means no guidance: no-cache, no-store,
// max-age=0, an Expires that is invalid or already past, or no header at all. Keycloak answers
// no-cache, which leaves the refresh interval to the configuration.
func freshness(h http.Header, now time.Time) time.Duration {
	maxAge := int64(-1)
	for _, line := range h.Values("Cache-Control") {
		for _, directive := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store":
				return 0
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64); err == nil && n >= 0 {
					maxAge = n
				}
			}
		}
	}
	switch {
	case maxAge == 0:
		return 0
	case maxAge > 0:
		fresh := seconds(maxAge)
		if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
			fresh -= seconds(age)
		}
		// A copy already stale in a shared cache: refresh as soon as allowed.
		return max(fresh, time.Nanosecond)
	}
	expires, err := http.ParseTime(h.Get("Expires"))
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	if d := expires.Sub(now); d > 0 {
		return min(d, maxGuidance)
	}
	return 0
}

func seconds(n int64) time.Duration {
	if n > int64(maxGuidance/time.Second) {
		return maxGuidance
	}
	return time.Duration(n) * time.Second
}
