package rules

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAmbiguousPath is wrapped by every NormalizePath error: the request target cannot be mapped
// to exactly one path, so it is denied (400) rather than guessed at.
var ErrAmbiguousPath = errors.New("ambiguous or malformed path")

// PathError says why a request target was refused.
type PathError struct {
	Reason string
}

func (e *PathError) Error() string { return "path: " + e.Reason }

// Unwrap makes errors.Is(err, ErrAmbiguousPath) true.
func (e *PathError) Unwrap() error { return ErrAmbiguousPath }

func pathErr(format string, args ...any) error {
	return &PathError{Reason: fmt.Sprintf(format, args...)}
}

// NormalizePath turns a raw request target (Envoy's attributes.request.http.path: undecoded,
// possibly with a query and a fragment) into the path rules are matched against:
// query and fragment dropped; percent-escapes of unreserved characters (RFC 3986 §2.3)
// decoded and all other escapes upper-cased; repeated slashes merged; dot segments removed
// (RFC 3986 §5.2.4), `..` never climbing above the root. A trailing slash is kept.
//
// A target that stays ambiguous is refused with an error wrapping ErrAmbiguousPath: an
// encoded "/" or "\", a raw "\", NUL or another control character, an invalid escape, or a
// target that is not origin-form (does not start with "/").
func NormalizePath(raw string) (string, error) {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return "", pathErr("%q is not an absolute path", truncate(raw))
	}
	clean := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", pathErr("control character in path")
		case c == '\\':
			return "", pathErr("backslash in path")
		case c == '%':
			clean = false
		case c == '/':
			if i+1 < len(raw) && raw[i+1] == '/' {
				clean = false
			}
			if i+1 < len(raw) && raw[i+1] == '.' {
				clean = false
			}
		}
	}
	if clean {
		return raw, nil
	}
	// Decode unreserved escapes, validate and upper-case the others.
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return "", pathErr("invalid percent-escape")
		}
		v := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		switch {
		case v == '/' || v == '\\':
			return "", pathErr("encoded %q in path", string(rune(v)))
		case v < 0x20 || v == 0x7f:
			return "", pathErr("encoded control character in path")
		case isUnreserved(v):
			b.WriteByte(v)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex(raw[i+1]))
			b.WriteByte(upperHex(raw[i+2]))
		}
		i += 2
	}
	return removeDots(b.String()), nil
}

// removeDots merges repeated slashes and resolves "." and ".." segments of an absolute path.
func removeDots(p string) string {
	segs := make([]string, 0, 8)
	trailing := strings.HasSuffix(p, "/")
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	last := ""
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		last = p[i+1:]
	}
	if last == "." || last == ".." {
		trailing = true
	}
	out := "/" + strings.Join(segs, "/")
	if trailing && len(segs) > 0 {
		out += "/"
	}
	return out
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upperHex(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - 32
	}
	return c
}

func isUnreserved(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
