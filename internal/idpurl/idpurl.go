// Package idpurl holds the URL helpers shared by the clients that talk to identity providers
// (jwks: discovery and key sets; introspect: discovery and introspection): how a URL is shown
// in errors, logs and spans, and which hosts are this machine.
package idpurl

import (
	"net"
	"net/url"
	"strings"
)

// Redacted is raw with any password in its user information masked (url.URL.Redacted); raw
// itself when it does not parse.
func Redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// IsLoopback reports whether host (a URL's Hostname: no port, no brackets) names this
// machine: localhost, in any case, or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
