package rules

import (
	"fmt"
	"strings"
)

// findWarnings reports, conservatively, rules that can never match because an earlier rule
// takes all their requests, and public rules that take part of a later protected rule's
// requests. "Conservatively": it never warns wrongly, and may miss subtle cases.
func findWarnings(rules []*Rule) []string {
	var out []string
	for j, later := range rules {
		for i := 0; i < j; i++ {
			earlier := rules[i]
			if !hostsCover(earlier, later) || !pathsCover(earlier, later) {
				continue
			}
			if earlier.methods&later.methods == later.methods {
				out = append(out, fmt.Sprintf("rules[%d] %q is shadowed by rules[%d] %q (the earlier rule matches every request it matches; first match wins)",
					j, later.Name(), i, earlier.Name()))
				break
			}
			if earlier.Public() && !later.Public() && earlier.methods&later.methods != 0 {
				out = append(out, fmt.Sprintf("rules[%d] %q is public and comes first: it takes the %s requests of protected rules[%d] %q",
					i, earlier.Name(), methodNames(earlier.methods&later.methods), j, later.Name()))
			}
		}
	}
	return out
}

func methodNames(s methodSet) string {
	var names []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		if uint16(s)&methodBits[m] != 0 {
			names = append(names, m)
		}
	}
	return strings.Join(names, ", ")
}

// hostsCover: every host the later rule matches, the earlier one matches too.
func hostsCover(earlier, later *Rule) bool {
	if len(earlier.hosts) == 0 {
		return true
	}
	if len(later.hosts) == 0 {
		return false
	}
	for _, lh := range later.hosts {
		covered := false
		for _, eh := range earlier.hosts {
			switch {
			case eh == lh:
				covered = true
			case eh.suffix != "" && lh.exact != "":
				covered = eh.match(lh.exact)
			case eh.suffix != "" && lh.suffix != "":
				covered = strings.HasSuffix(lh.suffix, eh.suffix)
			}
			if covered {
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// pathsCover: every path pattern of the later rule is covered by one of the earlier rule.
func pathsCover(earlier, later *Rule) bool {
	if len(earlier.paths) == 0 {
		return true
	}
	if len(later.paths) == 0 {
		return false
	}
	for _, lp := range later.paths {
		covered := false
		for _, ep := range earlier.paths {
			if patternCovers(ep.segs, lp.segs) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// patternCovers reports whether pattern a matches every path pattern b matches: segment by
// segment, a literal covers the same literal, * covers a literal or *, and a final ** covers
// any rest.
func patternCovers(a, b []segment) bool {
	for i, s := range a {
		if s.kind == segAny {
			return i == len(a)-1 // only a trailing ** is judged
		}
		if i >= len(b) || b[i].kind == segAny {
			return false
		}
		if s.kind == segLiteral && (b[i].kind != segLiteral || b[i].lit != s.lit) {
			return false
		}
	}
	return len(a) == len(b)
}
