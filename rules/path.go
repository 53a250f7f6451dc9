package rules

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// ErrAmbiguousPath is wrapped by every error NormalizePath returns: the request target cannot be
// mapped to exactly one path, so it is refused (HTTP 400) rather than guessed at. Test for it
// with errors.Is.
var ErrAmbiguousPath = errors.New("ambiguous or malformed request path")

// PathError says why NormalizePath refused a request target. It never repeats the target
// itself, which may be long or carry secrets in its query.
type PathError struct {
	// Offset is the byte offset of the offending part in the raw target, or -1.
	Offset int
	// Reason says what is wrong, in lower case.
	Reason string
}

// Error returns "path: <reason> at byte <offset>".
func (e *PathError) Error() string {
	if e.Offset < 0 {
		return "path: " + e.Reason
	}
	return "path: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// Unwrap returns ErrAmbiguousPath, so that errors.Is(err, ErrAmbiguousPath) holds.
func (e *PathError) Unwrap() error { return ErrAmbiguousPath }

// NormalizePath turns a raw request target (Envoy's attributes.request.http.path: undecoded,
// possibly with a query and a fragment) into the path that rules are matched against:
//
//   - the query and the fragment are dropped;
//   - percent-escapes of unreserved characters (RFC 3986 §2.3: letters, digits, "-._~") are
//     decoded, every other escape is kept with upper-case hex digits, and raw bytes that may not
//     appear in a path (space, non-ASCII, "<>[]{}|^`\"") are percent-encoded, so that each path
//     has one spelling;
//   - "." and ".." segments are removed (RFC 3986 §5.2.4, after decoding, so "%2e%2e" is ".."),
//     ".." never climbing above the root; repeated slashes are merged;
//   - a trailing slash is kept ("/api/" stays "/api/").
//
// A target that stays ambiguous is refused with a *PathError wrapping ErrAmbiguousPath: one that
// does not start with "/" (empty, "*", absolute-form "http://host/p"); an encoded "/" or "\"; a
// raw "\"; a control character, raw or encoded (NUL included); an invalid escape ("%", "%4",
// "%G1"); bytes, raw or percent-encoded, that are not valid UTF-8 (overlong forms such as
// "%C0%AE", which some servers decode to ".", surrogates, stray or missing continuation bytes,
// code points above U+10FFFF); a ".." right after an empty segment ("/a//../b": servers that
// merge slashes first read "/b", servers that follow RFC 3986 to the letter read "/a/b"); a path
// parameter, a raw ";" in any segment ("/api/admin;x/users": Java servlet containers and Spring
// strip ";x" and serve "/api/admin/users", other servers keep it). An encoded "%3B" is not a path
// parameter for anyone (servlet containers strip parameters before they decode): it stays, kept
// encoded. PathOptions.Normalize may strip path parameters instead.
//
// A target that is already normal is returned as is, without allocating.
func NormalizePath(raw string) (string, error) { return PathOptions{}.Normalize(raw) }

// PathOptions are the choices an operator may make about reading request paths. The zero value
// is NormalizePath's default.
type PathOptions struct {
	// StripMatrixParameters removes each segment's path parameters (a raw ";" and what follows
	// it up to the next "/") before the path is normalised, the way Java servlet containers
	// (Tomcat, Jetty) and Spring read the path: "/api/admin;x/users" is "/api/admin/users".
	// The stripped text is still checked like the rest of the path, and a dot segment with
	// parameters ("..;x", ".;x") is still refused: servlet containers read it as a dot segment,
	// every other server on the way (Envoy's routing included) as a name, so no single path can
	// be matched for it.
	StripMatrixParameters bool
}

// Normalize is NormalizePath with these options.
func (o PathOptions) Normalize(raw string) (string, error) {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if p == "" || p[0] != '/' {
		return "", notOriginForm(raw, p)
	}
	if isNormal(p) {
		return p, nil
	}
	return normalizeSlow(p, o.StripMatrixParameters)
}

func notOriginForm(raw, p string) error {
	switch {
	case raw == "":
		return &PathError{Offset: -1, Reason: `empty request target; expected a path starting with "/"`}
	case p == "":
		return &PathError{Offset: -1, Reason: `no path before the query or fragment; expected a path starting with "/"`}
	case p == "*":
		return &PathError{Offset: -1, Reason: `asterisk-form target "*" has no path to match`}
	case strings.Contains(p, "://"):
		return &PathError{Offset: -1, Reason: `absolute-form target (scheme://host/...); expected a path starting with "/"`}
	default:
		return &PathError{Offset: -1, Reason: `request target does not start with "/"`}
	}
}

// Character classes of RFC 3986, as bitmasks over ASCII: bit c of lo (c < 64) or of hi
// (64 <= c < 128).
const (
	digitsLo     = (1<<10 - 1) << '0'
	alphaHi      = (1<<26-1)<<('A'-64) | (1<<26-1)<<('a'-64)
	unreservedLo = digitsLo | 1<<'-' | 1<<'.'
	unreservedHi = alphaHi | 1<<('_'-64) | 1<<('~'-64)
	subDelimsLo  = 1<<'!' | 1<<'$' | 1<<'&' | 1<<'\'' | 1<<'(' | 1<<')' | 1<<'*' | 1<<'+' | 1<<',' | 1<<';' | 1<<'='
	// pchar minus pct-encoded (RFC 3986 §3.3): what may appear raw in a path segment.
	pcharLo = unreservedLo | subDelimsLo | 1<<':'
	pcharHi = unreservedHi | 1<<('@'-64)
)

func inClass(c byte, lo, hi uint64) bool {
	switch {
	case c < 64:
		return lo>>c&1 != 0
	case c < 128:
		return hi>>(c-64)&1 != 0
	}
	return false
}

func isUnreserved(c byte) bool { return inClass(c, unreservedLo, unreservedHi) }
func isPchar(c byte) bool      { return inClass(c, pcharLo, pcharHi) }
func isControl(c byte) bool    { return c < 0x20 || c == 0x7f }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// isNormal reports whether p (starting with "/", without query or fragment) is already what
// NormalizePath would return: only raw pchars other than ";" and upper-case escapes that stay
// escaped, the escaped bytes valid UTF-8, no empty segment but a trailing one, no dot segment.
// It does not allocate.
func isNormal(p string) bool {
	start := 1
	var u utf8Check
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			c := p[i]
			if c == '%' {
				if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
					return false
				}
				v := hexValue(p[i+1], p[i+2])
				if isUnreserved(v) || v == '/' || v == '\\' || isControl(v) {
					return false
				}
				if (v >= 0x80 || u.need > 0) && !u.next(v) {
					return false
				}
				i += 2
				continue
			}
			if !isPchar(c) || c == ';' || u.need > 0 {
				return false
			}
			continue
		}
		if u.need > 0 {
			return false // a cut UTF-8 sequence
		}
		seg := p[start:i]
		if seg == "" && i < len(p) {
			return false // "//"
		}
		if seg != "" && seg[0] == '.' && isDotLike(seg) {
			return false
		}
		start = i + 1
	}
	return true
}

// utf8Check follows decoded path bytes through UTF-8's well-formed byte sequences (the Unicode
// Standard, table 3-7), one byte at a time, so that no copy is needed: no overlong form, no
// surrogate, nothing above U+10FFFF, no stray or missing continuation byte.
type utf8Check struct {
	need   int  // continuation bytes still expected
	lo, hi byte // the range of the next one
	at     int  // where the sequence started, for error positions
}

// next takes the next decoded byte and reports whether it may come there.
func (u *utf8Check) next(c byte) bool {
	if u.need > 0 {
		if c < u.lo || c > u.hi {
			return false
		}
		u.need, u.lo, u.hi = u.need-1, 0x80, 0xBF
		return true
	}
	switch {
	case c < 0x80:
	case c >= 0xC2 && c <= 0xDF:
		u.need, u.lo, u.hi = 1, 0x80, 0xBF
	case c == 0xE0:
		u.need, u.lo, u.hi = 2, 0xA0, 0xBF // no overlong three-byte form
	case c == 0xED:
		u.need, u.lo, u.hi = 2, 0x80, 0x9F // no surrogate
	case c >= 0xE1 && c <= 0xEF:
		u.need, u.lo, u.hi = 2, 0x80, 0xBF
	case c == 0xF0:
		u.need, u.lo, u.hi = 3, 0x90, 0xBF // no overlong four-byte form
	case c >= 0xF1 && c <= 0xF3:
		u.need, u.lo, u.hi = 3, 0x80, 0xBF
	case c == 0xF4:
		u.need, u.lo, u.hi = 3, 0x80, 0x8F // nothing above U+10FFFF
	default:
		return false // a continuation byte alone, C0 and C1 (overlong), F5 to FF
	}
	return true
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func hexValue(a, b byte) byte {
	hi, _ := unhex(a)
	lo, _ := unhex(b)
	return hi<<4 | lo
}

// isDotLike reports whether a decoded segment is "." or "..", or one of them followed by path
// parameters (";...").
func isDotLike(seg string) bool {
	return seg == "." || seg == ".." || strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;")
}

// normalizeSlow is NormalizePath for a target that needs rewriting. It keeps the segments the
// way RFC 3986 §5.2.4 does (empty ones included) so that it can tell when merging slashes first
// would give another answer, and merges slashes at the end. With stripParams, each segment's
// path parameters are cut off once it is checked and decoded, before dot segments are removed
// (as Tomcat does: strip, decode, then normalise).
func normalizeSlow(p string, stripParams bool) (string, error) {
	b := make([]byte, 0, len(p)+8)
	nonEmpty := 0 // non-empty segments in b
	lastDot := false
	var err *PathError
	for start := 1; start <= len(p); {
		end := strings.IndexByte(p[start:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += start
		}
		b = append(b, '/')
		segAt := len(b)
		if b, err = appendSegment(b, p[start:end], start); err != nil {
			return "", err
		}
		seg := b[segAt:]
		// A raw ";" is the only ";" appendSegment leaves (it keeps "%3B" encoded).
		if k := bytes.IndexByte(seg, ';'); k >= 0 {
			if seg[0] == '.' && (k == 1 || k == 2 && seg[1] == '.') {
				return "", &PathError{Offset: start, Reason: `dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers`}
			}
			if !stripParams {
				return "", &PathError{Offset: start + strings.IndexByte(p[start:end], ';'), Reason: paramReason}
			}
			b = b[:segAt+k]
			seg = b[segAt:]
		}
		lastDot = false
		switch {
		case len(seg) == 1 && seg[0] == '.':
			b, lastDot = b[:segAt-1], true
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			b, lastDot = b[:segAt-1], true
			if len(b) > 0 {
				i := bytes.LastIndexByte(b, '/')
				if i == len(b)-1 {
					// The segment ".." removes is empty: RFC 3986 removes just that, a server
					// that merges slashes first removes the segment before it.
					if nonEmpty > 0 {
						return "", &PathError{Offset: start, Reason: `".." after an empty segment ("//..") is read differently by different servers`}
					}
				} else {
					nonEmpty--
				}
				b = b[:i]
			}
		case len(seg) > 0:
			nonEmpty++
		}
		start = end + 1
	}
	if lastDot && (len(b) == 0 || b[len(b)-1] != '/') {
		b = append(b, '/')
	}
	// Merge repeated slashes in place.
	w := 0
	for r := 0; r < len(b); r++ {
		if b[r] == '/' && w > 0 && b[w-1] == '/' {
			continue
		}
		b[w] = b[r]
		w++
	}
	if w == 0 {
		return "/", nil
	}
	return string(b[:w]), nil
}

// appendSegment appends the normal form of one raw path segment (no "/" in it) to dst:
// unreserved escapes decoded, other escapes upper-cased, raw bytes that may not appear in a
// path encoded. The decoded bytes must be valid UTF-8. off is seg's offset in the whole input,
// for error positions.
func appendSegment(dst []byte, seg string, off int) ([]byte, *PathError) {
	var u utf8Check
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' {
			if i+2 >= len(seg) {
				return dst, &PathError{Offset: off + i, Reason: `invalid percent-escape ("%" must be followed by two hex digits)`}
			}
			hi, ok1 := unhex(seg[i+1])
			lo, ok2 := unhex(seg[i+2])
			if !ok1 || !ok2 {
				return dst, &PathError{Offset: off + i, Reason: `invalid percent-escape ("%" must be followed by two hex digits)`}
			}
			v := hi<<4 | lo
			switch {
			case v == '/':
				return dst, &PathError{Offset: off + i, Reason: `encoded "/" (%2F) is read as a separator by some servers and not by others`}
			case v == '\\':
				return dst, &PathError{Offset: off + i, Reason: `encoded "\" (%5C) is read as a separator by some servers and not by others`}
			case isControl(v):
				return dst, &PathError{Offset: off + i, Reason: "encoded control character %" + string(upperHex[hi]) + string(upperHex[lo])}
			case isUnreserved(v):
				dst = append(dst, v)
			default:
				dst = append(dst, '%', upperHex[hi], upperHex[lo])
			}
			if err := u.feed(v, off+i); err != nil {
				return dst, err
			}
			i += 2
			continue
		}
		switch {
		case isPchar(c):
			dst = append(dst, c)
		case c == '\\':
			return dst, &PathError{Offset: off + i, Reason: `"\" is read as a separator by some servers and not by others`}
		case isControl(c):
			return dst, &PathError{Offset: off + i, Reason: "control character 0x" + string(upperHex[c>>4]) + string(upperHex[c&15])}
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
		if err := u.feed(c, off+i); err != nil {
			return dst, err
		}
	}
	if u.need > 0 {
		return dst, &PathError{Offset: u.at, Reason: notUTF8}
	}
	return dst, nil
}

// paramReason is the reason for a path parameter NormalizePath does not strip.
const paramReason = `path parameter (";") in a segment, which servlet containers and Spring strip before routing and other servers keep (to match without it, set paths.matrix_parameters: strip)`

// notUTF8 is the reason for bytes that do not decode as UTF-8.
const notUTF8 = `bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as ".")`

// feed is next for a byte at offset at of the input, with the error to return.
func (u *utf8Check) feed(c byte, at int) *PathError {
	if c < 0x80 && u.need == 0 {
		return nil
	}
	if u.need == 0 {
		u.at = at
	}
	if !u.next(c) {
		return &PathError{Offset: u.at, Reason: notUTF8}
	}
	return nil
}

// nextSegment returns the bounds of the first segment of path at or after byte i, slashes
// skipped: path[start:end]; start is len(path) when no segment is left. Matching and params
// split a normalised path with it, so both see the same segments.
func nextSegment(path string, i int) (start, end int) {
	for i < len(path) && path[i] == '/' {
		i++
	}
	end = i
	for end < len(path) && path[end] != '/' {
		end++
	}
	return i, end
}
