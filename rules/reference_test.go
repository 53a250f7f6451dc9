package rules

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds slow, plainly written references that the tests hold the real code to.

// refMatch is the reference for Set.Match: every rule in file order, its hosts and methods
// compared as configured (refHosts, refMethods: the documented semantics, written apart from
// host.go and method.go), every pattern matched by plain recursion over the path's segments.
// Exponential at worst: keep paths short. ok is false when the host is in none of the forms
// the documentation names (see refRequestHost); Match's answer is then not specified.
func refMatch(s *Set, host, method, path string) (r *Rule, ok bool) {
	return refMatchContext(s, host, method, path, nil)
}

// refMatchContext is refMatch with context extensions: a rule's match.context entries must
// each be in ctx with the same value.
func refMatchContext(s *Set, host, method, path string, ctx map[string]string) (r *Rule, ok bool) {
	name, ip, ok := refRequestHost(host)
	if !ok {
		return nil, false
	}
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	for _, r := range s.rules {
		if !refMethods(r.spec.Match.Methods, method) || !refHosts(r.spec.Match.Hosts, name, ip) {
			continue
		}
		inContext := true
		for k, v := range r.spec.Match.Context {
			if got, found := ctx[k]; !found || got != v {
				inContext = false
			}
		}
		if !inContext {
			continue
		}
		for _, p := range r.pats {
			if refGlob(p, segs) {
				return r, true
			}
		}
	}
	return nil, true
}

// refRequestHost reads a Host / :authority value in one of the documented forms: a name, an
// IPv4 address, either with a final dot and either with ":port"; "[v6]" or "[v6]:port"; a bare
// IPv6 address. A name is returned in lower case (ASCII letters only: no Unicode folding); an
// address without its IPv4-in-IPv6 mapping. ok is false for any other shape: text after "]"
// that is not ":port", brackets around something that is not an address, a zone.
func refRequestHost(h string) (name string, ip netip.Addr, ok bool) {
	if strings.HasPrefix(h, "[") {
		inside, _, err := net.SplitHostPort(h)
		if err != nil {
			if !strings.HasSuffix(h, "]") {
				return "", netip.Addr{}, false
			}
			inside = h[1 : len(h)-1]
		}
		a, err := netip.ParseAddr(inside)
		if err != nil || a.Zone() != "" {
			return "", netip.Addr{}, false
		}
		return "", a.Unmap(), true
	}
	if strings.Count(h, ":") > 1 {
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" {
			return "", netip.Addr{}, false
		}
		return "", a.Unmap(), true
	}
	h, _, _ = strings.Cut(h, ":")
	h = strings.TrimSuffix(h, ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return "", a.Unmap(), true
	}
	return refLower(h), netip.Addr{}, true
}

// refHosts reports whether a request host (from refRequestHost) matches match.hosts as
// configured: none listed matches every host; an address matches the same address; a name
// matches the same name, or "*.suffix" when it ends in ".suffix" with at least one byte
// before, at any depth. Configured hosts ignore letter case and a final dot too.
func refHosts(hosts []string, name string, ip netip.Addr) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		h = refLower(strings.TrimSuffix(h, "."))
		if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
			if ip.IsValid() && ip == a.Unmap() {
				return true
			}
			continue
		}
		if ip.IsValid() {
			continue
		}
		if suffix, wild := strings.CutPrefix(h, "*."); wild {
			if len(name) > len(suffix)+1 && strings.HasSuffix(name, "."+suffix) {
				return true
			}
		} else if name == h {
			return true
		}
	}
	return false
}

// refMethods reports whether a request method matches match.methods as configured (upper
// case): none listed matches every method; the method is compared ignoring ASCII letter case;
// GET also matches HEAD.
func refMethods(methods []string, method string) bool {
	if len(methods) == 0 {
		return true
	}
	m := refUpper(method)
	for _, l := range methods {
		if l == m || l == "GET" && m == "HEAD" {
			return true
		}
	}
	return false
}

func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func refUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func refGlob(p []segment, s []string) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch p[0].kind {
	case segAny:
		for k := 0; k <= len(s); k++ {
			if refGlob(p[1:], s[k:]) {
				return true
			}
		}
		return false
	case segOne:
		return len(s) > 0 && refGlob(p[1:], s[1:])
	}
	return len(s) > 0 && s[0] == p[0].lit && refGlob(p[1:], s[1:])
}

// refNormalize is the reference for a NormalizePath that succeeded: decode, then merge
// slashes and resolve dot segments on the list of non-empty segments.
func refNormalize(raw string) string {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	pieces := strings.Split(p[1:], "/")
	var out []string
	for _, piece := range pieces {
		var b strings.Builder
		for i := 0; i < len(piece); i++ {
			c := piece[i]
			if c == '%' {
				var v byte
				fmt.Sscanf(piece[i+1:i+3], "%02x", &v)
				if strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", v) >= 0 {
					b.WriteByte(v)
				} else {
					fmt.Fprintf(&b, "%%%02X", v)
				}
				i += 2
				continue
			}
			if c < 0x80 && strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		switch seg := b.String(); seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	last := pieces[len(pieces)-1]
	if lastDecoded := strings.ReplaceAll(strings.ReplaceAll(last, "%2e", "."), "%2E", "."); len(out) > 0 && (last == "" || lastDecoded == "." || lastDecoded == "..") {
		return "/" + strings.Join(out, "/") + "/"
	}
	return "/" + strings.Join(out, "/")
}

// refStrip is the reference for StripMatrixParameters: the path without its query or fragment,
// each segment cut at its first ";".
func refStrip(raw string) string {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	pieces := strings.Split(p, "/")
	for i, piece := range pieces {
		pieces[i], _, _ = strings.Cut(piece, ";")
	}
	return strings.Join(pieces, "/")
}

// refDecode percent-decodes the path of raw (without its query or fragment) as a server that
// decodes every escape would; an invalid escape is kept as it is.
func refDecode(raw string) []byte {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	var out []byte
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			if v, err := strconv.ParseUint(p[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, p[i])
	}
	return out
}

// Vocabulary of the random rule sets and requests. Hosts are written in several spellings of
// the same pattern (letter case, a final dot, brackets, an IPv4-mapped address); randomSpecs
// keeps one spelling per pattern and rule.
var (
	testWords   = []string{"api", "admin", "orders", "v1", "users", "edit", "a-b", "x_y", "~t", "a%20b", "caf%C3%A9", "%2A"}
	testHosts   = []string{"api.example.com", "API.Example.com.", "*.example.com", "*.b.example.com", "a.b.example.com", "example.com", "other.org", "Other.ORG.", "10.0.0.1", "10.0.0.1.", "[::ffff:10.0.0.1]", "[::1]", "::1", "[2001:db8::1]"}
	testMethods = []string{"GET", "HEAD", "POST", "DELETE", "PATCH", "PROPFIND", "PURGE", "BREW"}
)

// randomSpecs returns n random rules, each valid on its own; names are unique.
func randomSpecs(rng *rand.Rand, n int) []Spec {
	specs := make([]Spec, 0, n)
	for i := 0; i < n; i++ {
		sp := Spec{Name: fmt.Sprintf("r%d", i)}
		seen := map[string]bool{}
		for k := []int{0, 1, 1, 1, 2, 3}[rng.IntN(6)]; k > 0; k-- {
			var segs []string
			for j := rng.IntN(5); j > 0; j-- {
				switch x := rng.IntN(8); {
				case x == 0:
					segs = append(segs, "*")
				case x == 1:
					segs = append(segs, fmt.Sprintf("{p%d}", j))
				case x == 2 && (len(segs) == 0 || segs[len(segs)-1] != "**"):
					segs = append(segs, "**")
				default:
					segs = append(segs, testWords[rng.IntN(len(testWords))])
				}
			}
			pat := "/" + strings.Join(segs, "/")
			if pp, problem := compilePattern(pat); problem == "" && !seen[pp.key()] {
				seen[pp.key()] = true
				sp.Match.Paths = append(sp.Match.Paths, pat)
			}
		}
		seen = map[string]bool{}
		for k := rng.IntN(4) - 1; k > 0; k-- {
			h := testHosts[rng.IntN(len(testHosts))]
			if hp, problem := compileHost(h); problem == "" && !seen[hp.key()] {
				seen[hp.key()] = true
				sp.Match.Hosts = append(sp.Match.Hosts, h)
			}
		}
		seen = map[string]bool{}
		for k := rng.IntN(4) - 1; k > 0; k-- {
			if m := testMethods[rng.IntN(len(testMethods))]; !seen[m] {
				seen[m] = true
				sp.Match.Methods = append(sp.Match.Methods, m)
			}
		}
		specs = append(specs, sp)
	}
	return specs
}

// randomContext returns nil or a context of up to two extensions from a small vocabulary.
func randomContext(rng *rand.Rand) map[string]string {
	n := rng.IntN(3)
	if n == 0 {
		return nil
	}
	ctx := map[string]string{}
	for ; n > 0; n-- {
		ctx[[]string{"zone", "tier"}[rng.IntN(2)]] = []string{"a", "b"}[rng.IntN(2)]
	}
	return ctx
}

// randomPath returns a normal path of 0 to 5 segments from the vocabulary.
func randomPath(rng *rand.Rand) string {
	var segs []string
	for j := rng.IntN(6); j > 0; j-- {
		segs = append(segs, testWords[rng.IntN(len(testWords))])
	}
	return "/" + strings.Join(segs, "/")
}

// randomHost returns a request host in one of the documented forms: a name or an address from
// the vocabulary, in mixed letter case, with or without a final dot and a port.
func randomHost(rng *rand.Rand) string {
	hosts := []string{
		"api.example.com", "x.example.com", "a.b.example.com", "c.a.b.example.com", "b.example.com",
		"example.com", ".example.com", "xexample.com", "other.org", "xother.org", "none", "",
		"10.0.0.1", "10.0.0.10", "::1", "::ffff:10.0.0.1", "2001:db8::1", "2001:0db8:0:0::1",
	}
	h := hosts[rng.IntN(len(hosts))]
	b := []byte(h)
	for i, c := range b {
		if 'a' <= c && c <= 'z' && rng.IntN(3) == 0 {
			b[i] = c - 32
		}
	}
	h = string(b)
	if strings.Contains(h, ":") { // IPv6: bracketed with or without a port, or bare
		switch rng.IntN(3) {
		case 0:
			return "[" + h + "]"
		case 1:
			return "[" + h + "]:8443"
		}
		return h
	}
	if h != "" && rng.IntN(4) == 0 {
		h += "."
	}
	if rng.IntN(3) == 0 {
		h += ":8443"
	}
	return h
}

func randomMethod(rng *rand.Rand) string {
	m := []string{"GET", "HEAD", "POST", "DELETE", "PROPFIND", "PATCH", "PURGE", "BREW", "OPTIONS", ""}[rng.IntN(10)]
	switch rng.IntN(4) {
	case 0:
		m = strings.ToLower(m)
	case 1:
		m = swapASCIICase(m[:len(m)/2]) + m[len(m)/2:]
	}
	return m
}
