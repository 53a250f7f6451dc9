package rules

import (
	"bytes"
	"fmt"
	"strings"
)

// segKind is what one pattern segment matches.
type segKind uint8

const (
	segLiteral segKind = iota // exactly this text, in normal form
	segOne                    // "*" or "{name}": exactly one segment
	segAny                    // "**": zero or more segments
)

type segment struct {
	kind segKind
	lit  string // segLiteral: the text, in normal form
	name string // segOne written "{name}": the parameter's name
}

// pathPattern is one compiled entry of match.paths. A trailing slash never matters when
// matching: many servers serve "/a/" and "/a" alike, so a rule for one holds for the other
// (otherwise a slash would slip a request past it to a weaker rule).
type pathPattern struct {
	raw    string
	segs   []segment
	params []string // the names of its "{name}" segments, in order
}

// key is the pattern's canonical spelling: "{id}" and "*" are the same pattern.
func (p pathPattern) key() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		switch s.kind {
		case segOne:
			b.WriteByte('*')
		case segAny:
			b.WriteString("**")
		default:
			b.WriteString(s.lit)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// compilePattern validates and compiles one configured path pattern. The problem it returns is
// phrased for the user.
func compilePattern(p string) (pathPattern, string) {
	switch {
	case p == "":
		return pathPattern{}, `empty pattern; write "/" for the root or "/**" for every path`
	case p[0] != '/':
		return pathPattern{}, fmt.Sprintf("%q must start with \"/\"", p)
	case strings.ContainsAny(p, "?#"):
		return pathPattern{}, fmt.Sprintf("%q: patterns match the path only; remove the query or fragment", p)
	}
	pp := pathPattern{raw: p}
	if p == "/" {
		return pp, ""
	}
	pieces := strings.Split(p[1:], "/")
	if len(pieces) > 1 && pieces[len(pieces)-1] == "" {
		return pathPattern{}, fmt.Sprintf("%q: a trailing slash is ignored when matching; write %q", p, strings.TrimRight(p, "/"))
	}
	names := map[string]bool{}
	structural := false
	off := 1
	for _, s := range pieces {
		switch {
		case s == "" || s == "." || s == "..":
			structural = true
		case s == "**":
			if n := len(pp.segs); n > 0 && pp.segs[n-1].kind == segAny {
				return pathPattern{}, fmt.Sprintf(`%q: "**" twice in a row; one "**" already matches any number of segments`, p)
			}
			pp.segs = append(pp.segs, segment{kind: segAny})
		case s == "*":
			pp.segs = append(pp.segs, segment{kind: segOne})
		case len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' && !strings.ContainsAny(s[1:len(s)-1], "{}*"):
			name := s[1 : len(s)-1]
			if !validParamName(name) {
				return pathPattern{}, fmt.Sprintf("%q: %q is not a parameter name (letters, digits and \"_\", not starting with a digit)", p, name)
			}
			if names[name] {
				return pathPattern{}, fmt.Sprintf("%q: {%s} appears twice; give each parameter its own name", p, name)
			}
			names[name] = true
			pp.params = append(pp.params, name)
			pp.segs = append(pp.segs, segment{kind: segOne, name: name})
		case strings.ContainsAny(s, "*{}"):
			return pathPattern{}, fmt.Sprintf(`%q: segment %q mixes text and a wildcard; a wildcard stands for whole segments: "*" or "{name}" for one, "**" for any number`, p, s)
		default:
			lit, err := appendSegment(nil, s, off)
			if err != nil {
				return pathPattern{}, fmt.Sprintf("%q: %s; requests with it are refused (400), so the pattern would never match", p, err.Reason)
			}
			if l := string(lit); isDotLike(l) {
				if l == "." || l == ".." {
					structural = true
				} else {
					return pathPattern{}, fmt.Sprintf("%q: segment %q is refused in requests (400), so the pattern would never match", p, s)
				}
			}
			if bytes.IndexByte(lit, ';') >= 0 {
				return pathPattern{}, fmt.Sprintf(`%q: segment %q has a path parameter (";"); requests with one are refused (400), or stripped before matching with paths.matrix_parameters: strip, so the pattern would never match (write the segment without it, or "%%3B" for a ";" that is part of the name)`, p, s)
			}
			pp.segs = append(pp.segs, segment{kind: segLiteral, lit: string(lit)})
		}
		off += len(s) + 1
	}
	if structural {
		return pathPattern{}, fmt.Sprintf("%q has an empty, \".\" or \"..\" segment, which request paths never have once normalised; write %q", p, resolvePieces(pieces))
	}
	return pp, ""
}

// resolvePieces suggests the pattern meant: empty and "." segments dropped, ".." resolved.
func resolvePieces(pieces []string) string {
	var out []string
	for _, s := range pieces {
		if l, err := appendSegment(nil, s, 0); err == nil {
			switch string(l) {
			case "", ".":
				continue
			case "..":
				if len(out) > 0 {
					out = out[:len(out)-1]
				}
				continue
			}
		}
		out = append(out, s)
	}
	return "/" + strings.Join(out, "/")
}

func validParamName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// patternCovers reports whether pattern a matches every path pattern b matches. It is exact
// for what these patterns can say except when b puts "**" where a has "*" or a literal next to
// a "**" of its own (for example "/*/**" does cover "/**/x"); it then answers false, so that a
// shadowing warning is never wrong, only sometimes missed.
func patternCovers(a, b []segment) bool {
	if !hasGlobstar(a) {
		// Segment by segment.
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if b[i].kind == segAny || a[i].kind == segLiteral && (b[i].kind != segLiteral || b[i].lit != a[i].lit) {
				return false
			}
		}
		return true
	}
	// c[i][j]: a[i:] covers b[j:]. Filled from the ends backwards.
	n, m := len(a), len(b)
	var buf [256]bool
	c := buf[:0]
	if size := (n + 1) * (m + 1); size <= len(buf) {
		c = buf[:size]
	} else {
		c = make([]bool, size)
	}
	at := func(i, j int) *bool { return &c[i*(m+1)+j] }
	for i := n; i >= 0; i-- {
		for j := m; j >= 0; j-- {
			if i == n {
				*at(i, j) = j == m
				continue
			}
			switch a[i].kind {
			case segAny:
				// a's ** matches nothing more, or also takes b[j] whatever it is.
				*at(i, j) = *at(i+1, j) || j < m && *at(i, j+1)
			case segOne:
				*at(i, j) = j < m && b[j].kind != segAny && *at(i+1, j+1)
			default:
				*at(i, j) = j < m && b[j].kind == segLiteral && b[j].lit == a[i].lit && *at(i+1, j+1)
			}
		}
	}
	return c[0]
}

// patternsOverlap reports whether some path matches both a and b (exactly).
func patternsOverlap(a, b []segment) bool {
	// o[i][j]: a[i:] and b[j:] share a path. Filled from the ends backwards.
	n, m := len(a), len(b)
	var buf [256]bool
	o := buf[:0]
	if size := (n + 1) * (m + 1); size <= len(buf) {
		o = buf[:size]
	} else {
		o = make([]bool, size)
	}
	at := func(i, j int) *bool { return &o[i*(m+1)+j] }
	for i := n; i >= 0; i-- {
		for j := m; j >= 0; j-- {
			v := i == n && j == m
			if i < n && a[i].kind == segAny {
				v = v || *at(i+1, j) || j < m && b[j].kind != segAny && *at(i, j+1)
			}
			if j < m && b[j].kind == segAny {
				v = v || *at(i, j+1) || i < n && a[i].kind != segAny && *at(i+1, j)
			}
			if i < n && j < m && a[i].kind != segAny && b[j].kind != segAny {
				v = v || segsOverlap(a[i], b[j]) && *at(i+1, j+1)
			}
			*at(i, j) = v
		}
	}
	return o[0]
}

func segsOverlap(x, y segment) bool {
	return x.kind != segLiteral || y.kind != segLiteral || x.lit == y.lit
}

func hasGlobstar(p []segment) bool {
	for _, s := range p {
		if s.kind == segAny {
			return true
		}
	}
	return false
}

// maxInlineSegs bounds the path segments matchParams reads without allocating.
const maxInlineSegs = 32

// matchParams matches a normalised path against one pattern and, when it matches, records the
// pattern's "{name}" segments in out. Each "**", from the left, takes as few segments as it can
// while the rest of the pattern still matches ("/**/{id}/**" against "/a/b/c" gives id "a").
// It allocates only for paths of more than 32 segments or long patterns with "**".
func matchParams(pat []segment, path string, out *Params) bool {
	var buf [maxInlineSegs][2]int
	segs := buf[:0]
	for start, end := nextSegment(path, 0); start < len(path); start, end = nextSegment(path, end) {
		segs = append(segs, [2]int{start, end})
	}
	seg := func(k int) string { return path[segs[k][0]:segs[k][1]] }
	if !hasGlobstar(pat) {
		if len(pat) != len(segs) {
			return false
		}
		for k, s := range pat {
			if s.kind == segLiteral && s.lit != seg(k) {
				return false
			}
		}
		for k, s := range pat {
			if s.name != "" {
				out.add(s.name, seg(k))
			}
		}
		return true
	}
	// ok[i][j]: pat[i:] matches segs[j:]. Filled from the ends backwards.
	n, m := len(pat), len(segs)
	var okBuf [256]bool
	ok := okBuf[:0]
	if size := (n + 1) * (m + 1); size <= len(okBuf) {
		ok = okBuf[:size]
	} else {
		ok = make([]bool, size)
	}
	at := func(i, j int) *bool { return &ok[i*(m+1)+j] }
	for i := n; i >= 0; i-- {
		for j := m; j >= 0; j-- {
			switch {
			case i == n:
				*at(i, j) = j == m
			case pat[i].kind == segAny:
				*at(i, j) = *at(i+1, j) || j < m && *at(i, j+1)
			case j == m:
				*at(i, j) = false
			case pat[i].kind == segOne:
				*at(i, j) = *at(i+1, j+1)
			default:
				*at(i, j) = pat[i].lit == seg(j) && *at(i+1, j+1)
			}
		}
	}
	if !*at(0, 0) {
		return false
	}
	for i, j := 0, 0; i < n; i++ {
		if pat[i].kind == segAny {
			for !*at(i+1, j) {
				j++
			}
			continue
		}
		if pat[i].name != "" {
			out.add(pat[i].name, seg(j))
		}
		j++
	}
	return true
}
