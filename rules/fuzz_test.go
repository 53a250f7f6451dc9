package rules

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzNormalizePath: never panics; a result is absolute, has no empty, "." or ".." segment, no
// query or fragment, no escape of an unreserved character, and is a fixed point.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/api/admin", "/api/./admin", "//api//admin", "/api/%61dmin", "/api/x/../admin", "/a%2Fb", "/a%", "/%2e%2e/x", "/a?b#c", "/..", "/a/b/."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := NormalizePath(raw)
		if err != nil {
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Fatalf("error does not wrap ErrAmbiguousPath: %v", err)
			}
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "?#\\") {
			t.Fatalf("%q -> %q", raw, p)
		}
		for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q keeps a dot segment", raw, p)
			}
		}
		for i := 0; i+2 < len(p); i++ {
			if p[i] == '%' && isUnreserved(unhex(p[i+1])<<4|unhex(p[i+2])) {
				t.Fatalf("%q -> %q keeps an unreserved escape", raw, p)
			}
		}
		again, err := NormalizePath(p)
		if err != nil || again != p {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", raw, p, again, err)
		}
	})
}

// FuzzMatch: matching never panics and depends only on the normalised path: every spelling of
// a path gets the rule its normal form gets.
func FuzzMatch(f *testing.F) {
	s := mustCompile(f, `
- name: admin
  match: { hosts: ["*.example.com"], paths: ["/api/admin/**"] }
- name: edit
  match: { paths: ["/api/**/edit", "/docs/{page}"] }
- name: write
  match: { paths: ["/api/orders/*"], methods: [POST] }
- name: api
  match: { paths: ["/api/**"] }
`)
	f.Add("a.example.com", "GET", "/api/admin/x")
	f.Add("h", "POST", "/api/orders/1")
	f.Add("H:80", "GET", "//api/./x/../edit")
	f.Fuzz(func(t *testing.T, host, method, raw string) {
		p, err := NormalizePath(raw)
		if err != nil {
			return
		}
		r := s.Match(host, method, p)
		if alt := s.Match(host, method, p+"/"); r != alt && p != "/" {
			t.Fatalf("trailing slash changes the rule for %q", p)
		}
		if r2 := s.Match(strings.ToUpper(host), method, p); r2 != r {
			t.Fatalf("host case changes the rule for %q", host)
		}
	})
}

// spellings returns other ways to write the normalised path p that must normalise to p.
func spellings(rng *rand.Rand, p string) []string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	var out []string
	for n := 0; n < 8; n++ {
		var b strings.Builder
		for _, s := range segs {
			b.WriteString("/")
			switch rng.IntN(5) {
			case 0:
				b.WriteString("./")
			case 1:
				b.WriteString("/")
			case 2:
				b.WriteString("zz/../")
			}
			for i := 0; i < len(s); i++ {
				if isUnreserved(s[i]) && rng.IntN(3) == 0 {
					fmt.Fprintf(&b, "%%%02x", s[i])
				} else {
					b.WriteByte(s[i])
				}
			}
		}
		if rng.IntN(2) == 0 {
			b.WriteString("?q=/../admin#frag")
		}
		out = append(out, b.String())
	}
	return out
}

// TestPropertySpellings: for random rule sets and random paths, every alternative spelling of a
// path normalises to the same path and meets the same rule.
func TestPropertySpellings(t *testing.T) {
	words := []string{"api", "admin", "orders", "v1", "users", "edit", "a-b", "x_y", "~t"}
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		var specs []Spec
		for i := 0; i < 1+rng.IntN(12); i++ {
			var segs []string
			for j := 0; j < 1+rng.IntN(4); j++ {
				switch rng.IntN(6) {
				case 0:
					segs = append(segs, "*")
				case 1:
					segs = append(segs, "{id}")
				default:
					segs = append(segs, words[rng.IntN(len(words))])
				}
			}
			if rng.IntN(3) == 0 {
				segs = append(segs, "**")
			}
			pat := "/" + strings.Join(segs, "/")
			specs = append(specs, Spec{Name: fmt.Sprintf("r%d", i), Match: MatchSpec{Paths: []string{pat}}})
		}
		set, err := Compile(specs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for k := 0; k < 40; k++ {
			var segs []string
			for j := 0; j < 1+rng.IntN(5); j++ {
				segs = append(segs, words[rng.IntN(len(words))])
			}
			p := "/" + strings.Join(segs, "/")
			want := set.Match("h", "GET", p)
			for _, alt := range spellings(rng, p) {
				n, err := NormalizePath(alt)
				if err != nil || n != p {
					t.Fatalf("seed %d: %q normalises to %q (%v), want %q", seed, alt, n, err, p)
				}
				if got := set.Match("h", "GET", n); got != want {
					t.Fatalf("seed %d: %q meets %v, %q meets %v", seed, alt, got, p, want)
				}
			}
		}
	}
}

// linearMatch is the reference: try every rule in file order.
func (s *Set) linearMatch(host, method, path string) *Rule {
	h, m := hostOnly(host), methodBit(method)
	for _, r := range s.rules {
		if r.matches(h, m, path) {
			return r
		}
	}
	return nil
}

// TestIndexAgreesWithLinearScan: the index never changes which rule matches.
func TestIndexAgreesWithLinearScan(t *testing.T) {
	words := []string{"api", "admin", "orders", "v1", "edit"}
	hosts := []string{"a.example.com", "b.example.com", "*.example.com", "c.other.com"}
	methods := []string{"GET", "POST", "DELETE"}
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var specs []Spec
		for i := 0; i < 1+rng.IntN(20); i++ {
			sp := Spec{Name: fmt.Sprintf("r%d", i)}
			for k := 0; k < rng.IntN(3); k++ {
				var segs []string
				for j := 0; j < 1+rng.IntN(3); j++ {
					switch rng.IntN(5) {
					case 0:
						segs = append(segs, "*")
					case 1:
						segs = append(segs, "**")
					default:
						segs = append(segs, words[rng.IntN(len(words))])
					}
				}
				p := "/" + strings.Join(segs, "/")
				if strings.Contains(p, "**/**") {
					continue
				}
				sp.Match.Paths = append(sp.Match.Paths, p)
			}
			for k := 0; k < rng.IntN(3); k++ {
				sp.Match.Hosts = append(sp.Match.Hosts, hosts[rng.IntN(len(hosts))])
			}
			if rng.IntN(2) == 0 {
				sp.Match.Methods = []string{methods[rng.IntN(len(methods))]}
			}
			specs = append(specs, sp)
		}
		set, err := Compile(specs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for k := 0; k < 100; k++ {
			var segs []string
			for j := 0; j < rng.IntN(5); j++ {
				segs = append(segs, words[rng.IntN(len(words))])
			}
			p := "/" + strings.Join(segs, "/")
			h := []string{"a.example.com", "x.example.com", "c.other.com", "none"}[rng.IntN(4)]
			m := methods[rng.IntN(len(methods))]
			if got, want := set.Match(h, m, p), set.linearMatch(h, m, p); got != want {
				t.Fatalf("seed %d: Match(%s %s %s) = %v, linear scan %v", seed, h, m, p, got, want)
			}
		}
	}
}
