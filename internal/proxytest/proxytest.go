// Package proxytest is an HTTP proxy for tests of the clients that fetch from identity
// providers through one (HTTPS_PROXY, issuers[].proxy_url): it records every request it is
// given, tunnels CONNECT requests to one target and answers the others itself.
package proxytest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Proxy is a recording HTTP proxy on loopback. CONNECT requests are tunnelled to its target,
// whatever host they name (so a test can name hosts that do not resolve); other requests are
// answered 200 "proxied" by the proxy itself.
type Proxy struct {
	srv    *httptest.Server
	target string
	mu     sync.Mutex
	seen   []string // "CONNECT host:port" or "GET absolute-URL"
}

// New starts a Proxy that tunnels to target (host:port); it stops when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the proxy's address, for HTTPS_PROXY or proxy_url: http://127.0.0.1:port.
func (p *Proxy) URL() string { return p.srv.URL }

// Requests are the requests the proxy was given since it started or was Reset, in order:
// "[CONNECT 127.0.0.1:8443 GET http://idp.example.test/keys]".
func (p *Proxy) Requests() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprint(p.seen)
}

// Reset forgets the requests seen so far.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if r.Method == http.MethodConnect {
		p.seen = append(p.seen, "CONNECT "+r.Host)
	} else {
		p.seen = append(p.seen, r.Method+" "+r.URL.String())
	}
	p.mu.Unlock()
	if r.Method != http.MethodConnect {
		_, _ = io.WriteString(w, "proxied")
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(upstream, buf); upstream.Close() }()
	go func() { _, _ = io.Copy(conn, upstream); conn.Close() }()
}
