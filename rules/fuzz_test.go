package rules

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalizePath: NormalizePath never panics; an error is a *PathError wrapping
// ErrAmbiguousPath; a result starts with "/", has no "//", no "." or ".." segment, no query or
// fragment, no ";", only upper-case escapes of bytes that are not unreserved and only pchars
// otherwise, decodes to valid UTF-8, equals the plain reference, and is its own normal form; a
// refusal for UTF-8 is one of a path that does not decode to UTF-8. With StripMatrixParameters
// the same holds of the result, which is the reference's for the path with every ";..." cut
// off; what the default accepts, stripping accepts alike.
func FuzzNormalizePath(f *testing.F) {
	// Seeds are in testdata/fuzz/FuzzNormalizePath.
	strip := PathOptions{StripMatrixParameters: true}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := NormalizePath(raw)
		checkNormalized(t, NormalizePath, raw, p, err, refNormalize)
		sp, serr := strip.Normalize(raw)
		checkNormalized(t, strip.Normalize, raw, sp, serr, func(raw string) string { return refNormalize(refStrip(raw)) })
		if err == nil && (serr != nil || sp != p) {
			t.Fatalf("%q -> %q, but stripping gives %q, %v", raw, p, sp, serr)
		}
		if serr == nil {
			if again, err := NormalizePath(sp); err != nil || again != sp {
				t.Fatalf("stripped %q -> %q is not a normal path: %q, %v", raw, sp, again, err)
			}
		}
	})
}

func checkNormalized(t *testing.T, normalize func(string) (string, error), raw, p string, err error, ref func(string) string) {
	t.Helper()
	if err != nil {
		var pe *PathError
		if !errors.Is(err, ErrAmbiguousPath) || !errors.As(err, &pe) || p != "" {
			t.Fatalf("%q: error %v (%T), result %q", raw, err, err, p)
		}
		if pe.Offset < -1 || pe.Offset >= len(raw) {
			t.Fatalf("%q: offset %d out of range", raw, pe.Offset)
		}
		if pe.Reason == notUTF8 && utf8.Valid(refDecode(raw)) {
			t.Fatalf("%q: refused as not UTF-8, but it decodes to valid UTF-8", raw)
		}
		return
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "?#;") {
		t.Fatalf("%q -> %q", raw, p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("%q -> %q keeps a dot segment", raw, p)
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%':
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) || isUnreserved(hexValue(p[i+1], p[i+2])) {
				t.Fatalf("%q -> %q: escape at %d is not normal", raw, p, i)
			}
			i += 2
		case c != '/' && !isPchar(c):
			t.Fatalf("%q -> %q: raw %q", raw, p, c)
		}
	}
	if !utf8.Valid(refDecode(raw)) || !utf8.Valid(refDecode(p)) {
		t.Fatalf("%q -> %q: not valid UTF-8 once decoded", raw, p)
	}
	if want := ref(raw); p != want {
		t.Fatalf("%q -> %q, reference %q", raw, p, want)
	}
	again, err := normalize(p)
	if err != nil || again != p {
		t.Fatalf("not its own normal form: %q -> %q -> %q, %v", raw, p, again, err)
	}
}

// FuzzMatch: matching never panics, on any input; on a normalised path the trie matcher agrees
// with the plain reference; neither a trailing slash nor the host's letter case changes the
// rule; the rule found is the one its name looks up.
func FuzzMatch(f *testing.F) {
	s := mustCompile(f, `
- name: health
  match: { paths: ["/healthz"], methods: [GET] }
  public: true
- name: admin
  match: { hosts: ["*.example.com", "api.example.org"], paths: ["/api/admin/**"] }
- name: edit
  match: { paths: ["/api/**/edit", "/docs/{page}"] }
- name: write
  match: { paths: ["/api/orders/*"], methods: [POST, PUT, DELETE, PROPFIND] }
- name: deep
  match: { paths: ["/**/a/**/b", "/files/caf%C3%A9/*"] }
- name: ip
  match: { hosts: ["10.0.0.1", "[::1]", "10.0.0.2.", "[::ffff:10.0.0.3]"], paths: ["/ip/**"] }
- name: zoned
  match: { paths: ["/api/**"], context: { zone: internal } }
- name: api
  match: { paths: ["/api/**"] }
- name: root
  match: { paths: ["/"] }
`)
	// Seeds are in testdata/fuzz/FuzzMatch.
	f.Fuzz(func(t *testing.T, host, method, raw string) {
		matchRule(s, host, method, raw) // any input, normalised or not: no panic
		p, err := NormalizePath(raw)
		if err != nil {
			return
		}
		r := matchRule(s, host, method, p)
		if strings.Count(p, "/") <= 16 {
			if want, ok := refMatch(s, host, method, p); ok && r != want {
				t.Fatalf("Match(%q, %q, %q) = %v, reference %v", host, method, p, name(r), name(want))
			}
		}
		if p != "/" && !strings.HasSuffix(p, "/") {
			if alt := matchRule(s, host, method, p+"/"); alt != r {
				t.Fatalf("trailing slash changes %v to %v for %q", name(r), name(alt), p)
			}
		}
		if alt := matchRule(s, swapASCIICase(host), swapASCIICase(method), p); alt != r {
			t.Fatalf("letter case changes %v to %v for %q %q", name(r), name(alt), host, method)
		}
		// With the context extension, "zoned" takes what "api" would.
		ctx := map[string]string{"zone": "internal"}
		rc, _ := s.MatchRequest(&Input{Host: host, Method: method, Path: p, Context: ctx})
		if strings.Count(p, "/") <= 16 {
			if want, ok := refMatchContext(s, host, method, p, ctx); ok && rc != want {
				t.Fatalf("MatchRequest(%q, %q, %q, %v) = %v, reference %v", host, method, p, ctx, name(rc), name(want))
			}
		}
		if r != nil && s.Lookup(r.Name()) != r {
			t.Fatalf("Lookup(%q) is not the rule matched", r.Name())
		}
	})
}

func swapASCIICase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
