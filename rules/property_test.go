package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestMatchAgreesWithReference: on random rule sets and requests, the trie matcher picks the
// rule the plain reference picks.
func TestMatchAgreesWithReference(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		specs := randomSpecs(rng, 1+rng.IntN(30))
		s, err := Compile(specs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for k := 0; k < 200; k++ {
			host, method, path := randomHost(rng), randomMethod(rng), randomPath(rng)
			if rng.IntN(4) == 0 && path != "/" {
				path += "/"
			}
			want, ok := refMatch(s, host, method, path)
			if !ok {
				t.Fatalf("seed %d: the reference does not read the host %q", seed, host)
			}
			if got := matchRule(s, host, method, path); got != want {
				t.Fatalf("seed %d: Match(%q, %q, %q) = %v, reference %v\nrules: %+v", seed, host, method, path, name(got), name(want), specs)
			}
		}
	}
}

// TestMatchRequestContextAgreesWithReference: with match.context on some rules and random
// context extensions on requests, MatchRequest picks the rule the reference picks.
func TestMatchRequestContextAgreesWithReference(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		specs := randomSpecs(rng, 1+rng.IntN(30))
		for i := range specs {
			specs[i].Match.Context = randomContext(rng)
		}
		s, err := Compile(specs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for k := 0; k < 200; k++ {
			in := &Input{Host: randomHost(rng), Method: randomMethod(rng), Path: randomPath(rng), Context: randomContext(rng)}
			want, ok := refMatchContext(s, in.Host, in.Method, in.Path, in.Context)
			if !ok {
				t.Fatalf("seed %d: the reference does not read the host %q", seed, in.Host)
			}
			if got, _ := s.MatchRequest(in); got != want {
				t.Fatalf("seed %d: MatchRequest(%+v) = %v, reference %v\nrules: %+v", seed, in, name(got), name(want), specs)
			}
		}
	}
}

func name(r *Rule) string {
	if r == nil {
		return "<none>"
	}
	return r.Name()
}

// spell returns another way to write the normal path p: "./" and "x/../" inserted, slashes
// doubled, unreserved characters percent-encoded (hex in either case), escapes in lower-case
// hex, raw characters for escapes of bytes that may be sent raw, a query or fragment added.
// Slashes are never doubled right before "..", which is ambiguous and refused.
func spell(rng *rand.Rand, p string) string {
	var b strings.Builder
	for _, seg := range strings.Split(p[1:], "/") {
		b.WriteByte('/')
		for k := rng.IntN(3); k > 0; k-- {
			switch rng.IntN(3) {
			case 0:
				b.WriteString("./")
			case 1:
				b.WriteString("/")
			case 2:
				fmt.Fprintf(&b, "%s/../", testWords[rng.IntN(len(testWords))])
			}
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c == '%':
				v := hexValue(seg[i+1], seg[i+2])
				switch {
				case rng.IntN(2) == 0:
					b.WriteString(seg[i : i+3])
				case v == ' ' || v >= 0x80:
					b.WriteByte(v) // sent raw, encoded by NormalizePath
				default:
					b.WriteString(strings.ToLower(seg[i : i+3]))
				}
				i += 2
			case isUnreserved(c) && rng.IntN(3) == 0:
				if rng.IntN(2) == 0 {
					fmt.Fprintf(&b, "%%%02x", c)
				} else {
					fmt.Fprintf(&b, "%%%02X", c)
				}
			default:
				b.WriteByte(c)
			}
		}
	}
	switch rng.IntN(4) {
	case 0:
		b.WriteString("?q=/../admin&x=%2F#frag")
	case 1:
		b.WriteString("#/../admin")
	}
	return b.String()
}

// TestPropertySpellings: for random rule sets and random paths, every other spelling of a path
// normalises to the same path and meets the same rule; so does the path with a trailing slash.
func TestPropertySpellings(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		s, err := Compile(randomSpecs(rng, 1+rng.IntN(20)))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for k := 0; k < 50; k++ {
			p := randomPath(rng)
			host, method := randomHost(rng), randomMethod(rng)
			if n, err := NormalizePath(p); err != nil || n != p {
				t.Fatalf("seed %d: %q is not normal: %q, %v", seed, p, n, err)
			}
			want := matchRule(s, host, method, p)
			if p != "/" {
				if got := matchRule(s, host, method, p+"/"); got != want {
					t.Fatalf("seed %d: %q/ meets %v, %q meets %v", seed, p, name(got), p, name(want))
				}
			}
			for i := 0; i < 10; i++ {
				alt := spell(rng, p)
				n, err := NormalizePath(alt)
				if err != nil || n != p {
					t.Fatalf("seed %d: %q normalises to %q (%v), want %q", seed, alt, n, err, p)
				}
				if got := matchRule(s, host, method, n); got != want {
					t.Fatalf("seed %d: %q meets %v, %q meets %v", seed, alt, name(got), p, name(want))
				}
			}
		}
	}
}
