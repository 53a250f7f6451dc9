package rules

import (
	"fmt"
	"strings"
)

// hostPattern is an exact host or a `*.example.com` wildcard, lower-case and without a port.
type hostPattern struct {
	exact  string
	suffix string // ".example.com" for "*.example.com"
}

func compileHost(h string) (hostPattern, error) {
	l := strings.ToLower(h)
	switch {
	case l == "":
		return hostPattern{}, fmt.Errorf("empty host")
	case strings.HasPrefix(l, "*."):
		rest := l[1:]
		if strings.Contains(rest[1:], "*") || len(rest) < 2 {
			return hostPattern{}, fmt.Errorf("%q: a wildcard host is written *.example.com", h)
		}
		return hostPattern{suffix: rest}, nil
	case strings.Contains(l, "*"):
		return hostPattern{}, fmt.Errorf("%q: a wildcard is allowed only as the whole first label (*.example.com)", h)
	case strings.ContainsAny(l, "/ "):
		return hostPattern{}, fmt.Errorf("%q is not a host name", h)
	}
	if hostOnly(l) != l {
		return hostPattern{}, fmt.Errorf("%q: write the host without a port (ports are ignored when matching)", h)
	}
	return hostPattern{exact: l}, nil
}

// match reports whether host (already lower-case, without port) matches. A wildcard matches any
// subdomain at any depth, never the bare domain.
func (p hostPattern) match(host string) bool {
	if p.suffix != "" {
		return len(host) > len(p.suffix) && strings.HasSuffix(host, p.suffix)
	}
	return host == p.exact
}

// hostOnly lower-cases a host and strips its port; IPv6 literals keep their brackets.
// It allocates only when the host has upper-case letters.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
