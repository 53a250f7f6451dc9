package rules

import (
	"fmt"
	"slices"
	"strings"
)

// findWarnings lints a compiled rule list. The shadowing and overlap checks are conservative:
// they never warn wrongly, and may miss a rule covered only by several earlier rules together.
func findWarnings(rules []*Rule) []string {
	var out []string
	for i, r := range rules {
		if r.spec.Public && r.spec.DryRun {
			out = append(out, fmt.Sprintf("rules[%d] %q: dry_run has no effect on a public rule, which allows every request anyway", i, r.Name()))
		}
		for _, m := range r.unregistered {
			out = append(out, fmt.Sprintf("rules[%d] %q: method %q is not a registered HTTP method; check its spelling", i, r.Name(), m))
		}
		out = append(out, paramWarnings(i, r)...)
	}
	shadows, shadowed := shadowWarnings(rules)
	out = append(out, shadows...)
	out = append(out, publicOverlapWarnings(rules, shadowed)...)
	return out
}

// shadowWarnings finds rules, or single path patterns of rules, that earlier rules take every
// request of: first match wins, so they never apply. It also returns which rules are wholly
// shadowed.
func shadowWarnings(rules []*Rule) ([]string, []bool) {
	var out []string
	shadowed := make([]bool, len(rules))
	for j, later := range rules {
		pats := patternsOf(later)
		by := make([]int, len(pats)) // the first earlier rule covering each pattern, or -1
		all := true
		for k, p := range pats {
			by[k] = -1
			for i := 0; i < j; i++ {
				if coversPattern(rules[i], later, p) {
					by[k] = i
					break
				}
			}
			all = all && by[k] >= 0
		}
		if all {
			shadowed[j] = true
			var names []string
			for k, i := range by {
				if !slices.Contains(by[:k], i) {
					names = append(names, fmt.Sprintf("rules[%d] %q", i, rules[i].Name()))
				}
			}
			if len(names) == 1 {
				out = append(out, fmt.Sprintf("rules[%d] %q is shadowed by %s (earlier rule matches everything it matches)", j, later.Name(), names[0]))
			} else {
				out = append(out, fmt.Sprintf("rules[%d] %q is shadowed by %s (earlier rules match everything it matches)", j, later.Name(), strings.Join(names, " and ")))
			}
			continue
		}
		for k, i := range by {
			if i >= 0 {
				out = append(out, fmt.Sprintf("rules[%d].match.paths[%d]: %q of rule %q is shadowed by rules[%d] %q (earlier rule matches every request this pattern does)",
					j, k, later.paths[k].raw, later.Name(), i, rules[i].Name()))
			}
		}
	}
	return out, shadowed
}

// publicOverlapWarnings finds public rules that take some, not all, requests of a later
// protected rule: those requests need no token, which is rarely meant. A public rule inside a
// later protected one ("/healthz" before "/**") is a deliberate exception and is not reported;
// a protected rule inside an earlier public one, or shadowed by any earlier rule, is reported as
// shadowed.
func publicOverlapWarnings(rules []*Rule, shadowed []bool) []string {
	const show = 5
	var out []string
	for i, pub := range rules {
		if !pub.Public() {
			continue
		}
		var victims []string
		n := 0
		for j := i + 1; j < len(rules); j++ {
			prot := rules[j]
			if prot.Public() || shadowed[j] || !overlaps(pub, prot) || covers(prot, pub) || covers(pub, prot) {
				continue
			}
			if n++; n <= show {
				victims = append(victims, fmt.Sprintf("rules[%d] %q", j, prot.Name()))
			}
		}
		if n == 0 {
			continue
		}
		list := strings.Join(victims, ", ")
		if n > show {
			list += fmt.Sprintf(" and %d more", n-show)
		}
		out = append(out, fmt.Sprintf("rules[%d] %q is public and also matches some requests of later protected %s; those requests need no token (move the protected rule above it, or narrow %q)",
			i, pub.Name(), list, pub.Name()))
	}
	return out
}

// paramWarnings finds conditions that read params.x where none of the rule's path patterns has
// a {x} segment: params.x is then always missing, and the condition always fails to evaluate.
func paramWarnings(i int, r *Rule) []string {
	var out []string
	r.req.walk(func(b *block) {
		if b.when == nil {
			return
		}
		for _, ref := range b.when.refs {
			if ref.root != "params" || len(ref.keys) == 0 || r.hasParam(ref.keys[0]) {
				continue
			}
			var have []string
			for _, p := range r.paths {
				for _, n := range p.params {
					if !slices.Contains(have, n) {
						have = append(have, n)
					}
				}
			}
			hint := "the patterns have no {name} segment"
			if len(have) > 0 {
				hint = "the patterns name {" + strings.Join(have, "}, {") + "}"
			}
			out = append(out, fmt.Sprintf("%s: %q of rule %q reads %s, but no path pattern of the rule has {%s} (%s), so it always fails and denies",
				b.when.field, b.when.expr, r.Name(), ref, ref.keys[0], hint))
		}
	})
	return out
}

// hasParam reports whether some path pattern of the rule has the segment {name}.
func (r *Rule) hasParam(name string) bool {
	for _, p := range r.paths {
		if slices.Contains(p.params, name) {
			return true
		}
	}
	return false
}

// patternsOf returns a rule's path patterns, "/**" for a rule without paths.
func patternsOf(r *Rule) [][]segment { return r.pats }

// coversPattern reports whether rule a matches every request that rule b's pattern p matches.
func coversPattern(a, b *Rule, p []segment) bool {
	if !hostsCover(a, b) || !a.methods.covers(&b.methods) || !contextCovers(a, b) {
		return false
	}
	for _, q := range patternsOf(a) {
		if quickCovers(q, p) && patternCovers(q, p) {
			return true
		}
	}
	return false
}

// covers reports whether rule a matches every request rule b matches.
func covers(a, b *Rule) bool {
	for _, p := range patternsOf(b) {
		if !coversPattern(a, b, p) {
			return false
		}
	}
	return true
}

// overlaps reports whether some request matches both rules.
func overlaps(a, b *Rule) bool {
	if !hostsOverlap(a, b) || !a.methods.overlaps(&b.methods) || !contextsOverlap(a, b) {
		return false
	}
	for _, p := range patternsOf(a) {
		for _, q := range patternsOf(b) {
			if quickOverlaps(p, q) && patternsOverlap(p, q) {
				return true
			}
		}
	}
	return false
}

// quickCovers and quickOverlaps rule out, cheaply, patterns whose first literal segments
// differ, before the exact check.
func quickCovers(a, b []segment) bool {
	return len(a) == 0 || a[0].kind != segLiteral || len(b) > 0 && b[0].kind == segLiteral && b[0].lit == a[0].lit
}

func quickOverlaps(a, b []segment) bool {
	return len(a) == 0 || len(b) == 0 || a[0].kind != segLiteral || b[0].kind != segLiteral || a[0].lit == b[0].lit
}

func hostsCover(a, b *Rule) bool {
	if len(a.hosts) == 0 {
		return true
	}
	if len(b.hosts) == 0 {
		return false
	}
	for _, hb := range b.hosts {
		covered := false
		for _, ha := range a.hosts {
			if ha.covers(hb) {
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

func hostsOverlap(a, b *Rule) bool {
	if len(a.hosts) == 0 || len(b.hosts) == 0 {
		return true
	}
	for _, ha := range a.hosts {
		for _, hb := range b.hosts {
			if ha.overlaps(hb) {
				return true
			}
		}
	}
	return false
}

// contextCovers reports whether every request with b's match.context has a's: each entry of
// a's is one of b's.
func contextCovers(a, b *Rule) bool {
	for _, ca := range a.context {
		if !slices.Contains(b.context, ca) {
			return false
		}
	}
	return true
}

// contextsOverlap reports whether some request has both rules' match.context: no extension
// with two different values.
func contextsOverlap(a, b *Rule) bool {
	for _, ca := range a.context {
		for _, cb := range b.context {
			if ca.key == cb.key && ca.value != cb.value {
				return false
			}
		}
	}
	return true
}
