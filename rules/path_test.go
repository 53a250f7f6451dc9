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
		// Raw sub-delims but ";", ":" and "@" stay as they are.
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
		// An encoded ";" is no path parameter for anyone: kept, encoded.
		{"/api/admin%3bx/users", "/api/admin%3Bx/users"},
		{"/a/..%3B/b", "/a/..%3B/b"},
		// Valid UTF-8, raw or encoded or both, is kept encoded: the longest and shortest forms.
		{"/%F4%8F%BF%BF/%ef%bf%bf/%e0%a0%80/%C2%80/%F0%90%80%80", "/%F4%8F%BF%BF/%EF%BF%BF/%E0%A0%80/%C2%80/%F0%90%80%80"},
		{"/caf%C3\xa9", "/caf%C3%A9"},
		{"/%ED%9F%BF%EE%80%80", "/%ED%9F%BF%EE%80%80"},
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
	const param = `path: path parameter (";") in a segment, which servlet containers and Spring strip before routing and other servers keep (to match without it, set paths.matrix_parameters: strip)`
	const notUTF8 = `path: bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as ".")`
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
		// Servlet containers and Spring strip path parameters, other servers keep them.
		{"/api/admin;x/users", param + " at byte 10"},
		{"/api/admin;/users", param + " at byte 10"},
		{"/api/;x/admin", param + " at byte 5"},
		{"/api/admin/users;jsessionid=1", param + " at byte 16"},
		{"/a:b@c!$&'()*+,;=", param + " at byte 15"},
		{"/a/x;y", param + " at byte 4"},
		{"/a/..x;/b", param + " at byte 6"},
		{"/a;x/../b", param + " at byte 2"},
		{"/%61dmin;x", param + " at byte 8"},
		// Bytes that are not valid UTF-8 once decoded, raw or percent-encoded.
		{"/public/%c0%ae%c0%ae/api/admin/users", notUTF8 + " at byte 8"},
		{"/%C0%AF", notUTF8 + " at byte 1"},
		{"/%c1%bf", notUTF8 + " at byte 1"},
		{"/%e0%80%ae", notUTF8 + " at byte 1"},
		{"/%f0%80%80%ae", notUTF8 + " at byte 1"},
		{"/a%80", notUTF8 + " at byte 2"},
		{"/a%bf%bf", notUTF8 + " at byte 2"},
		{"/x/%ed%a0%80", notUTF8 + " at byte 3"},
		{"/x/%ED%BF%BF", notUTF8 + " at byte 3"},
		{"/%f4%90%80%80", notUTF8 + " at byte 1"},
		{"/%f5%80%80%80", notUTF8 + " at byte 1"},
		{"/%ff", notUTF8 + " at byte 1"},
		{"/a%c3", notUTF8 + " at byte 2"},
		{"/a%c3/%a9", notUTF8 + " at byte 2"},
		{"/a%e2%82", notUTF8 + " at byte 2"},
		{"/a%e2%82x", notUTF8 + " at byte 2"},
		{"/a%c3%41", notUTF8 + " at byte 2"},
		{"/a%c3;x", notUTF8 + " at byte 2"},
		{"/caf%C3%A9%A9", notUTF8 + " at byte 10"},
		{"/\xc0\xae\xc0\xae/admin", notUTF8 + " at byte 1"},
		{"/caf\xc3", notUTF8 + " at byte 4"},
		{"/caf\xe9", notUTF8 + " at byte 4"},
		{"/%C3\xc3\xa9", notUTF8 + " at byte 1"},
		{"/a;x/%c0%ae", param + " at byte 2"},
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
	for _, in := range []string{"/", "/api/admin", "/api/admin/", "/a%20b/~x/a:b@c", "/.well-known/openid-configuration", "/a%C3%A9", "/%F0%9F%98%80/%E2%82%AC", "/a%3Bb"} {
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

// TestNormalizePathStripMatrixParameters: with StripMatrixParameters, each segment's ";..." is
// removed before dot segments are (as Tomcat does); the stripped text is still checked; a dot
// segment with parameters is still refused; an encoded "%3B" is no parameter.
func TestNormalizePathStripMatrixParameters(t *testing.T) {
	strip := PathOptions{StripMatrixParameters: true}
	for _, c := range []struct{ in, want string }{
		{"/api/admin;x/users", "/api/admin/users"},
		{"/api/admin;a=1;b=2/users", "/api/admin/users"},
		{"/api/admin;/users", "/api/admin/users"},
		{"/api/admin/users;jsessionid=0123ABCD", "/api/admin/users"},
		{"/api/;x/admin", "/api/admin"},
		{"/a/;x", "/a/"},
		{"/;x", "/"},
		{"/a/b;x/", "/a/b/"},
		{"/a;x/../b", "/b"},
		{"/a/b;x/..", "/a/"},
		{"/%61dmin;x", "/admin"},
		{"/a;%20x%C3%A9/b", "/a/b"},
		{"/a;x?y;z", "/a"},
		{"/api/admin%3Bx/users", "/api/admin%3Bx/users"},
		{"/api/admin%3b;x/users", "/api/admin%3B/users"},
		{"/api/admin/users", "/api/admin/users"},
	} {
		got, err := strip.Normalize(c.in)
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"/a/..;x/b", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 3`},
		{"/a/..;/b", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 3`},
		{"/a/.;x/b", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 3`},
		{"/a/%2e%2E;x/b", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 3`},
		{"/a;%2F/b", `path: encoded "/" (%2F) is read as a separator by some servers and not by others at byte 3`},
		{"/a;x\\y/b", `path: "\" is read as a separator by some servers and not by others at byte 4`},
		{"/a;%00", `path: encoded control character %00 at byte 3`},
		{"/a;%zz", `path: invalid percent-escape ("%" must be followed by two hex digits) at byte 3`},
		{"/a;%c0%ae", `path: bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as ".") at byte 3`},
		// Stripping leaves an empty segment before "..": read differently by different servers.
		{"/a/;x/../b", `path: ".." after an empty segment ("//..") is read differently by different servers at byte 6`},
	} {
		got, err := strip.Normalize(c.in)
		var pe *PathError
		if err == nil || got != "" || err.Error() != c.want || !errors.As(err, &pe) || !errors.Is(err, ErrAmbiguousPath) {
			t.Errorf("Normalize(%q) = %q, %v; want error %s", c.in, got, err, c.want)
		}
	}
	for _, raw := range []string{"/api/admin/users", "/a%3Bb/c%C3%A9"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = strip.Normalize(raw) }); n != 0 {
			t.Errorf("Normalize(%q): %v allocations", raw, n)
		}
	}
}
