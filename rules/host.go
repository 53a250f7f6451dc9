package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// maxHostLen is the longest DNS name (RFC 1035 §2.3.4, without the final dot).
const maxHostLen = 253

type hostKind uint8

const (
	hostExact    hostKind = iota // a DNS name, lower case
	hostWildcard                 // "*.example.com": any name ending in ".example.com", at any depth
	hostIP                       // an IPv4 or IPv6 literal
)

// hostPattern is one compiled entry of match.hosts.
type hostPattern struct {
	kind hostKind
	name string // hostExact: the name; hostWildcard: the suffix with its dot (".example.com")
	ip   netip.Addr
}

// key is the pattern's canonical spelling, for duplicate detection and messages.
func (h hostPattern) key() string {
	switch h.kind {
	case hostWildcard:
		return "*" + h.name
	case hostIP:
		return h.ip.String()
	}
	return h.name
}

// compileHost validates one configured host. The problem it returns is phrased for the user.
func compileHost(h string) (hostPattern, string) {
	switch {
	case h == "":
		return hostPattern{}, "empty host; remove it, or omit hosts to match every host"
	case h == "*":
		return hostPattern{}, `"*" matches every host; omit hosts instead`
	case h[0] == '[':
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return hostPattern{}, fmt.Sprintf("%q: missing \"]\" after the IPv6 address", h)
		}
		if rest := h[end+1:]; rest != "" {
			if rest[0] == ':' {
				return hostPattern{}, fmt.Sprintf("%q has a port; hosts are compared without the port: write %q", h, h[:end+1])
			}
			return hostPattern{}, fmt.Sprintf("%q is not a host name or IP address", h)
		}
		ip, err := netip.ParseAddr(h[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return hostPattern{}, fmt.Sprintf("%q: not an IPv6 address", h)
		}
		return hostPattern{kind: hostIP, ip: ip.Unmap()}, ""
	}
	// A final dot is ignored on an address as on a name, as parseRequestHost does: without this,
	// "10.0.0.1." would compile to a name that no request can match.
	if ip, err := netip.ParseAddr(strings.TrimSuffix(h, ".")); err == nil && ip.Zone() == "" {
		return hostPattern{kind: hostIP, ip: ip.Unmap()}, ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h, ':') == i {
			return hostPattern{}, fmt.Sprintf("%q has a port; hosts are compared without the port: write %q", h, h[:i])
		}
		return hostPattern{}, fmt.Sprintf("%q is not a host name or IP address", h)
	}
	name := strings.TrimSuffix(lowerASCIIString(h), ".")
	kind := hostExact
	if strings.HasPrefix(name, "*.") {
		kind, name = hostWildcard, name[1:]
	}
	if strings.IndexByte(name, '*') >= 0 {
		return hostPattern{}, fmt.Sprintf(`%q: a wildcard is allowed only as the whole leftmost label, as in "*.example.com"`, h)
	}
	check := name
	if kind == hostWildcard {
		check = name[1:]
	}
	if problem := checkDNSName(check); problem != "" {
		return hostPattern{}, fmt.Sprintf("%q: %s", h, problem)
	}
	return hostPattern{kind: kind, name: name}, ""
}

// checkDNSName checks a lower-case host name, leniently: letters, digits, "-" and "_" in labels
// of 1 to 63 bytes, 253 bytes at most.
func checkDNSName(n string) string {
	if n == "" {
		return "no host name"
	}
	if len(n) > maxHostLen {
		return fmt.Sprintf("longer than %d bytes", maxHostLen)
	}
	label := 0
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '.':
			if label == 0 {
				return "empty label (\"..\" or a leading dot)"
			}
			label = 0
			continue
		case c >= 0x80:
			return "not ASCII; write the IDNA form (\"xn--...\")"
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Sprintf("%q is not allowed in a host name", string(c))
		}
		label++
		if label > 63 {
			return "a label is longer than 63 bytes"
		}
	}
	if label == 0 {
		return "empty label (\"..\" or a leading dot)"
	}
	return ""
}

// reqHost is a request's host as the rules compare it.
type reqHost struct {
	name string     // without port, brackets and final dot; letter case as sent
	ip   netip.Addr // valid when the host is an IP literal
}

// parseRequestHost reads the Host / :authority value: "name", "name:port", "name.", "1.2.3.4",
// "[::1]:8080" or a bare "::1". It does not allocate.
func parseRequestHost(h string) reqHost {
	if h != "" && h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return reqHost{name: h}
		}
		if ip, err := netip.ParseAddr(h[1:end]); err == nil && ip.Zone() == "" {
			return reqHost{ip: ip.Unmap()}
		}
		return reqHost{name: h[1:end]}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h, ':') != i {
			// Several colons without brackets: a bare IPv6 address.
			if ip, err := netip.ParseAddr(h); err == nil && ip.Zone() == "" {
				return reqHost{ip: ip.Unmap()}
			}
			return reqHost{name: h}
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h != "" && h[len(h)-1] >= '0' && h[len(h)-1] <= '9' {
		if ip, err := netip.ParseAddr(h); err == nil {
			return reqHost{ip: ip.Unmap()}
		}
	}
	return reqHost{name: h}
}

// match reports whether the request host matches the pattern. Letter case is ignored (ASCII
// only: no Unicode folding, which would make "\u212a" equal "k").
func (p *hostPattern) match(h *reqHost) bool {
	switch p.kind {
	case hostIP:
		return h.ip.IsValid() && h.ip == p.ip
	case hostWildcard:
		n := h.name
		return !h.ip.IsValid() && len(n) > len(p.name) && equalFoldASCII(n[len(n)-len(p.name):], p.name)
	}
	return !h.ip.IsValid() && equalFoldASCII(h.name, p.name)
}

// equalFoldASCII compares two strings ignoring ASCII letter case only.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// lowerASCIIString lower-cases ASCII letters only. strings.ToLower would fold the Kelvin sign
// to "k" and let a name that is not ASCII pass checkDNSName.
func lowerASCIIString(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerASCII(c)
	}
	return string(b)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// covers reports whether every host q matches, p matches too.
func (p hostPattern) covers(q hostPattern) bool {
	switch {
	case p.kind == hostIP || q.kind == hostIP:
		return p.kind == q.kind && p.ip == q.ip
	case p.kind == hostWildcard:
		// ".example.com" covers "a.example.com" and "*.a.example.com" alike.
		return len(q.name) > len(p.name) && strings.HasSuffix(q.name, p.name) ||
			q.kind == hostWildcard && q.name == p.name
	}
	return q.kind == hostExact && q.name == p.name
}

// overlaps reports whether some host matches both p and q: one covers the other, since two
// unrelated suffixes or names share nothing.
func (p hostPattern) overlaps(q hostPattern) bool { return p.covers(q) || q.covers(p) }
