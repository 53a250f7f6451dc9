package rules

import (
	"fmt"
	"strings"
)

// segKind is what one pattern segment matches.
type segKind uint8

const (
	segLiteral segKind = iota // exactly this text
	segOne                    // `*` or `{name}`: exactly one non-empty segment
	segAny                    // `**`: zero or more segments
)

type segment struct {
	kind segKind
	lit  string
}

// pathPattern is a compiled path pattern. A trailing slash never matters when matching: many
// upstreams serve /a/ and /a alike, so a rule for one must hold for the other (or a slash would
// slip past it to a weaker rule).
type pathPattern struct {
	raw  string
	segs []segment
}

func compilePath(p string) (pathPattern, error) {
	if !strings.HasPrefix(p, "/") {
		return pathPattern{}, fmt.Errorf("%q must start with \"/\"", p)
	}
	if strings.ContainsAny(p, "?#") {
		return pathPattern{}, fmt.Errorf("%q: patterns match the path only; remove the query or fragment", p)
	}
	norm, err := NormalizePath(p)
	if err != nil {
		return pathPattern{}, fmt.Errorf("%q: %v", p, err)
	}
	if norm != p {
		return pathPattern{}, fmt.Errorf("%q is not in normal form; write %q", p, norm)
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		return pathPattern{}, fmt.Errorf("%q: a trailing slash is ignored when matching; write %q", p, strings.TrimSuffix(p, "/"))
	}
	pp := pathPattern{raw: p}
	body := p[1:]
	if body == "" {
		return pp, nil // "/"
	}
	for _, s := range strings.Split(body, "/") {
		switch {
		case s == "**":
			if len(pp.segs) > 0 && pp.segs[len(pp.segs)-1].kind == segAny {
				return pathPattern{}, fmt.Errorf("%q: two ** in a row mean the same as one", p)
			}
			pp.segs = append(pp.segs, segment{kind: segAny})
		case s == "*":
			pp.segs = append(pp.segs, segment{kind: segOne})
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2 && !strings.ContainsAny(s[1:len(s)-1], "{}*"):
			pp.segs = append(pp.segs, segment{kind: segOne})
		case strings.ContainsAny(s, "*{}"):
			return pathPattern{}, fmt.Errorf("%q: segment %q mixes text and wildcards; a segment is literal, *, ** or {name}", p, s)
		default:
			pp.segs = append(pp.segs, segment{kind: segLiteral, lit: s})
		}
	}
	return pp, nil
}

// match reports whether a normalised path matches. It does not allocate.
func (pp *pathPattern) match(path string) bool {
	rest := strings.TrimSuffix(path[1:], "/")
	return matchSegs(pp.segs, rest)
}

// matchSegs matches pattern segments against the rest of a path: its segments joined by "/",
// no leading or trailing slash; "" is zero segments.
func matchSegs(segs []segment, rest string) bool {
	for i, sg := range segs {
		if sg.kind == segAny {
			tail := segs[i+1:]
			if len(tail) == 0 {
				return true
			}
			// ** takes zero or more whole segments: try every split point.
			for {
				if matchSegs(tail, rest) {
					return true
				}
				if rest == "" {
					return false
				}
				if j := strings.IndexByte(rest, '/'); j >= 0 {
					rest = rest[j+1:]
				} else {
					rest = ""
				}
			}
		}
		if rest == "" {
			return false
		}
		seg, next := rest, ""
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, next = rest[:j], rest[j+1:]
		}
		if sg.kind == segLiteral && seg != sg.lit {
			return false
		}
		rest = next
	}
	return rest == ""
}
