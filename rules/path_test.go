package rules

import (
	"errors"
	"strings"
	"testing"
	"unsafe"
)

func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		// The examples of the contract: all /api/admin.
		{"/api/admin", "/api/admin"},
		{"/api/./admin", "/api/admin"},
		{"//api//admin", "/api/admin"},
		{"/api/%61dmin", "/api/admin"},
		{"/api/x/../admin", "/api/admin"},
		{"/api/admin?x=1", "/api/admin"},
		{"/api/admin#f", "/api/admin"},
		{"/api/x/%2e%2e/admin", "/api/admin"},
		// Encoded dots form dot segments once decoded.
		{"/api/x/%2E%2E/admin", "/api/admin"},
		{"/api/x/.%2e/admin", "/api/admin"},
		{"/api/%2e/admin", "/api/admin"},
		{"/%2E%2e/%2e%2E/admin", "/admin"},
		// ".." never climbs above the root.
		{"/../../etc/passwd", "/etc/passwd"},
		{"/..", "/"},
		{"/.", "/"},
		{"/", "/"},
		{"//", "/"},
		{"///", "/"},
		{"//../a", "/a"},
		// A trailing slash is kept; a final dot segment leaves one (RFC 3986 §5.2.4).
		{"/api/", "/api/"},
		{"/api//", "/api/"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/a/b/../", "/a/"},
		{"/a/..", "/"},
		// Unreserved escapes decoded, any hex case; the others kept, upper case.
		{"/%7Euser/%41%5a%61%7a%30%39%2D%2E%5F%7E", "/~user/AZaz09-._~"},
		{"/a%20b", "/a%20b"},
		{"/a%2ab", "/a%2Ab"},
		{"/a%3a%3Fb", "/a%3A%3Fb"},
		{"/a%25", "/a%25"},
		{"/a%252F", "/a%252F"},
		{"/a%c3%a9", "/a%C3%A9"},
		// Raw bytes that may not appear in a path are encoded, so each path has one spelling.
		{"/a b", "/a%20b"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/{x}|\"<>[]^`", "/%7Bx%7D%7C%22%3C%3E%5B%5D%5E%60"},
		// Raw sub-delims, ":" and "@" stay as they are.
		{"/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="},
		// Query and fragment dropped, whatever they hold.
		{"/a?b/../c", "/a"},
		{"/a?", "/a"},
		{"/a#b?c", "/a"},
		{"/a?%zz\\\x00", "/a"},
		// Dots that are not dot segments.
		{"/.hidden", "/.hidden"},
		{"/a/...", "/a/..."},
		{"/a/.b/..c/c.", "/a/.b/..c/c."},
		{"/a/%2e%2e%2e", "/a/..."},
		{"/a/x;y", "/a/x;y"},
		{"/a/..x;/b", "/a/..x;/b"},
		// Slashes merged before and after dot segments alike when unambiguous.
		{"//a/../b", "/b"},
		{"/a/..//b", "/b"},
		{"/a//./x/../b", "/a/b"},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizePathErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `path: empty request target; expected a path starting with "/"`},
		{"?x=1", `path: no path before the query or fragment; expected a path starting with "/"`},
		{"*", `path: asterisk-form target "*" has no path to match`},
		{"http://h/api/admin", `path: absolute-form target (scheme://host/...); expected a path starting with "/"`},
		{"api/admin", `path: request target does not start with "/"`},
		{"/a%2Fb", `path: encoded "/" (%2F) is read as a separator by some servers and not by others at byte 2`},
		{"/a%2fb", `path: encoded "/" (%2F) is read as a separator by some servers and not by others at byte 2`},
		{"/a/%5C", `path: encoded "\" (%5C) is read as a separator by some servers and not by others at byte 3`},
		{"/a/%5c", `path: encoded "\" (%5C) is read as a separator by some servers and not by others at byte 3`},
		{"/a\\b", `path: "\" is read as a separator by some servers and not by others at byte 2`},
		{"/a\x00b", `path: control character 0x00 at byte 2`},
		{"/a%00b", `path: encoded control character %00 at byte 2`},
		{"/a\nb", `path: control character 0x0A at byte 2`},
		{"/a\x7f", `path: control character 0x7F at byte 2`},
		{"/a%0d%0Ab", `path: encoded control character %0D at byte 2`},
		{"/a%7f", `path: encoded control character %7F at byte 2`},
		{"/a%", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		{"/a%4", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		{"/a%4/b", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		{"/a%G1", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		{"/a%1G", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		{"/a%%41", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 2`},
		// Merging slashes first or not gives different paths: refused.
		{"/admin//../public/x", `path: ".." after an empty segment ("//..") is read differently by different servers at byte 8`},
		{"/a//%2e%2e", `path: ".." after an empty segment ("//..") is read differently by different servers at byte 4`},
		{"/a//b/../../c", `path: ".." after an empty segment ("//..") is read differently by different servers at byte 9`},
		{"/a/.//..", `path: ".." after an empty segment ("//..") is read differently by different servers at byte 6`},
		// Servlet containers read "..;x" as "..".
		{"/public/..;/admin", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 8`},
		{"/public/%2e%2e;x/admin", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 8`},
		{"/public/.;/admin", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 8`},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err == nil {
			t.Errorf("NormalizePath(%q) = %q, want error %s", c.in, got, c.want)
			continue
		}
		var pe *PathError
		if got != "" || err.Error() != c.want || !errors.Is(err, ErrAmbiguousPath) || !errors.As(err, &pe) {
			t.Errorf("NormalizePath(%q) = %q, %v (%T); want %s", c.in, got, err, err, c.want)
		}
	}
}

// TestNormalizePathFastPath: a normal path comes back as the very same string (no copy, no
// allocation), the query cut off.
func TestNormalizePathFastPath(t *testing.T) {
	for _, in := range []string{"/", "/api/admin", "/api/admin/", "/a%20b/~x/a:b@c", "/.well-known/openid-configuration", "/a%C3%A9"} {
		for _, raw := range []string{in, in + "?x=1#f"} {
			got, err := NormalizePath(raw)
			if err != nil || got != in || unsafe.StringData(got) != unsafe.StringData(raw) {
				t.Errorf("NormalizePath(%q) = %q, %v: not the input itself", raw, got, err)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(raw) }); n != 0 {
				t.Errorf("NormalizePath(%q): %v allocations", raw, n)
			}
		}
	}
}

// TestCharClasses checks the bitmask classes against RFC 3986's definitions.
func TestCharClasses(t *testing.T) {
	alnum := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	unreserved := alnum + "-._~"
	pchar := unreserved + "!$&'()*+,;=" + ":@"
	for c := 0; c < 256; c++ {
		b := byte(c)
		if got, want := isUnreserved(b), c < 128 && strings.IndexByte(unreserved, b) >= 0; got != want {
			t.Errorf("isUnreserved(%q) = %v", b, got)
		}
		if got, want := isPchar(b), c < 128 && strings.IndexByte(pchar, b) >= 0; got != want {
			t.Errorf("isPchar(%q) = %v", b, got)
		}
	}
}
