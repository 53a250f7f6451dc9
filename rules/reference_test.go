package rules

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// This file holds slow, plainly written references that the tests hold the real code to.

// refMatch is the reference for Set.Match: every rule in file order, every pattern matched by
// plain recursion over the path's segments. Exponential at worst: keep paths short.
func refMatch(s *Set, host, method, path string) *Rule {
	h := parseRequestHost(host)
	bit := requestBit(method)
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	for _, r := range s.rules {
		if !r.methods.match(bit, method) || !r.matchHost(&h) {
			continue
		}
		for _, p := range r.pats {
			if refGlob(p, segs) {
				return r
			}
		}
	}
	return nil
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

// Vocabulary of the random rule sets and requests.
var (
	testWords   = []string{"api", "admin", "orders", "v1", "users", "edit", "a-b", "x_y", "~t", "a%20b", "caf%C3%A9", "%2A"}
	testHosts   = []string{"api.example.com", "*.example.com", "a.b.example.com", "other.org", "10.0.0.1", "[::1]"}
	testMethods = []string{"GET", "HEAD", "POST", "DELETE", "PROPFIND"}
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
		for k := rng.IntN(3) - 1; k > 0; k-- {
			if h := testHosts[rng.IntN(len(testHosts))]; !seen[h] {
				seen[h] = true
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

// randomPath returns a normal path of 0 to 5 segments from the vocabulary.
func randomPath(rng *rand.Rand) string {
	var segs []string
	for j := rng.IntN(6); j > 0; j-- {
		segs = append(segs, testWords[rng.IntN(len(testWords))])
	}
	return "/" + strings.Join(segs, "/")
}

// randomHost returns a request host: one of the vocabulary's, in any case, with or without a
// port.
func randomHost(rng *rand.Rand) string {
	h := []string{"api.example.com", "x.example.com", "a.b.example.com", "example.com", "other.org", "10.0.0.1", "[::1]", "none"}[rng.IntN(8)]
	if rng.IntN(3) == 0 {
		h = strings.ToUpper(h)
	}
	if rng.IntN(3) == 0 {
		h += ":8443"
	}
	return h
}

func randomMethod(rng *rand.Rand) string {
	m := []string{"GET", "HEAD", "POST", "DELETE", "PROPFIND", "PATCH", "BREW"}[rng.IntN(7)]
	if rng.IntN(4) == 0 {
		m = strings.ToLower(m)
	}
	return m
}
