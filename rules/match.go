package rules

import "net/netip"

// The matcher files every path pattern in a trie of segments: a literal segment is a keyed
// child, "*" and "{name}" the one "any segment" child, "**" the one child that, once entered,
// also consumes any further segment. A request's path is run through the trie as through a
// nondeterministic automaton: the set of live nodes advances one segment at a time, so a
// request costs (segments x live nodes), never a backtracking search, however many "**" the
// patterns have and however long the path. The rules whose patterns end at the nodes live at the
// end of the path are the candidates; the earliest in file order whose host and method match
// wins.
//
// Rules restricted to exact hosts or IP addresses are filed in a trie of their own per host, so
// that many host-specific rules do not slow down requests for other hosts; rules without hosts
// or with a wildcard host are filed in the shared trie.

type node struct {
	lit   map[string]*node // literal children, by segment in normal form
	one   *node            // "*" / "{name}"
	multi *node            // "**"
	loop  bool             // this node is a "**": it consumes any further segment itself
	ends  []end            // rules with a pattern ending here, in file order
	min   int              // the smallest rule index filed at or below this node
}

type end struct {
	rule      *Rule
	checkHost bool // the trie does not imply the host (shared trie, rule with hosts)
}

// matcher is a Set's index.
type matcher struct {
	shared *node
	byName map[string]*node     // exact host, lower case
	byIP   map[netip.Addr]*node // IP literal
}

const noRule = int(^uint(0) >> 1)

func newNode() *node { return &node{min: noRule} }

func buildMatcher(rules []*Rule) *matcher {
	m := &matcher{shared: newNode()}
	for _, r := range rules {
		roots := []*node{m.shared}
		checkHost := len(r.hosts) > 0
		if checkHost && !r.hasWildcardHost() {
			roots, checkHost = roots[:0], false
			for _, h := range r.hosts {
				roots = append(roots, m.rootFor(h))
			}
		}
		for _, root := range roots {
			if len(r.paths) == 0 {
				root.insert([]segment{{kind: segAny}}, end{r, checkHost})
			}
			for _, p := range r.paths {
				root.insert(p.segs, end{r, checkHost})
			}
		}
	}
	m.shared.computeMin()
	for _, n := range m.byName {
		n.computeMin()
	}
	for _, n := range m.byIP {
		n.computeMin()
	}
	return m
}

// rootFor returns the trie of rules restricted to the exact host or IP address h, making it.
func (m *matcher) rootFor(h hostPattern) *node {
	if h.kind == hostIP {
		if m.byIP == nil {
			m.byIP = map[netip.Addr]*node{}
		}
		if m.byIP[h.ip] == nil {
			m.byIP[h.ip] = newNode()
		}
		return m.byIP[h.ip]
	}
	if m.byName == nil {
		m.byName = map[string]*node{}
	}
	if m.byName[h.name] == nil {
		m.byName[h.name] = newNode()
	}
	return m.byName[h.name]
}

func (n *node) insert(segs []segment, e end) {
	for _, s := range segs {
		switch s.kind {
		case segAny:
			if n.multi == nil {
				n.multi = newNode()
				n.multi.loop = true
			}
			n = n.multi
		case segOne:
			if n.one == nil {
				n.one = newNode()
			}
			n = n.one
		default:
			if n.lit == nil {
				n.lit = map[string]*node{}
			}
			c := n.lit[s.lit]
			if c == nil {
				c = newNode()
				n.lit[s.lit] = c
			}
			n = c
		}
	}
	// Two patterns of one rule may end at the same node ("/{a}" and "/*").
	if k := len(n.ends); k == 0 || n.ends[k-1].rule != e.rule {
		n.ends = append(n.ends, e)
	}
}

func (n *node) computeMin() int {
	if len(n.ends) > 0 {
		n.min = n.ends[0].rule.index
	}
	for _, c := range n.lit {
		n.min = min(n.min, c.computeMin())
	}
	if n.one != nil {
		n.min = min(n.min, n.one.computeMin())
	}
	if n.multi != nil {
		n.min = min(n.min, n.multi.computeMin())
	}
	return n.min
}

// liveSet is the automaton's set of live nodes. Sets are small; a linear scan beats a map.
type liveSet []*node

// add adds n and, through the empty match of a "**", its "**" child; it skips nodes that can
// only yield rules later than bound.
func (s liveSet) add(n *node, bound int) liveSet {
	if n.min < bound && !s.has(n) {
		s = append(s, n)
	}
	if c := n.multi; c != nil && c.min < bound && !s.has(c) {
		s = append(s, c)
	}
	return s
}

func (s liveSet) has(n *node) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

// match returns the first rule (lowest index, below bound) filed in the trie at root that
// matches. The path is split in place; nothing is allocated unless more than 16 nodes are
// live at once.
func (root *node) match(h *reqHost, bit uint16, method, path string, ctx map[string]string, bound int) *Rule {
	var bufA, bufB [16]*node
	cur := liveSet(bufA[:0]).add(root, bound)
	next := liveSet(bufB[:0])
	for start, end := nextSegment(path, 0); start < len(path) && len(cur) > 0; start, end = nextSegment(path, end) {
		seg := path[start:end]
		next = next[:0]
		for _, n := range cur {
			if n.lit != nil {
				if c := n.lit[seg]; c != nil {
					next = next.add(c, bound)
				}
			}
			if n.one != nil {
				next = next.add(n.one, bound)
			}
			if n.loop {
				next = next.add(n, bound)
			}
		}
		cur, next = next, cur
	}
	var best *Rule
	for _, n := range cur {
		for k := range n.ends {
			e := &n.ends[k]
			if e.rule.index >= bound {
				break
			}
			if e.rule.methods.match(bit, method) && (!e.checkHost || e.rule.matchHost(h)) && e.rule.matchContext(ctx) {
				best, bound = e.rule, e.rule.index
				break
			}
		}
	}
	return best
}

// MatchRequest returns the first rule, in file order, whose hosts, methods, paths and
// match.context all match in (its Method, Host, Path and Context); nil when none does (the
// request is then denied 403, reason no_rule). With the rule come the `{name}` segments of its
// first pattern that matches the path when it has a `when` (store them in in.Params before
// Check).
//
// The host is the Host / :authority value as received: a port, a final dot and letter case are
// ignored, IPv6 literals are accepted bracketed ("[::1]:8080") or bare. The method is compared
// ignoring letter case. The path must come from NormalizePath; a trailing slash is ignored. A
// nil Context matches only rules without match.context. It does not allocate for paths of up
// to 32 segments.
func (s *Set) MatchRequest(in *Input) (*Rule, Params) {
	r := s.match(in.Host, in.Method, in.Path, in.Context)
	if r == nil || !r.hasWhen {
		return r, Params{}
	}
	return r, r.Params(in.Path)
}

// HasConditions reports whether the rule's requirements hold a `when`: only then do they read
// the Input's params, query, source address, time and headers.
func (r *Rule) HasConditions() bool { return r.hasWhen }

// Reads reports whether one of the rule's `when` conditions reads the variable, named as in
// the condition language ("params", "request.query", "source.address", "now", ...), so that
// a caller fills only the parts of the Input that are read. Anything else is false.
func (r *Rule) Reads(variable string) bool {
	b := varBit(variable)
	return b != 0 && r.reads&b != 0
}

// Params returns the `{name}` segments of the rule's first path pattern that matches the
// normalised path, in pattern order; none when no pattern does (a rule named by the
// `portcullis-rule` context extension is applied whatever the path) or the rule has no paths.
// Values are as in the path; Params.Get decodes them.
func (r *Rule) Params(path string) Params {
	var p Params
	if !r.hasParams {
		return p
	}
	for _, pp := range r.paths {
		if matchParams(pp.segs, path, &p) { // records nothing unless it matches
			break
		}
	}
	return p
}

func (s *Set) match(host, method, path string, ctx map[string]string) *Rule {
	if s == nil || s.m == nil {
		return nil
	}
	h := parseRequestHost(host)
	bit := requestBit(method)
	best := s.m.shared.match(&h, bit, method, path, ctx, noRule)
	if root := s.m.hostRoot(&h); root != nil {
		bound := noRule
		if best != nil {
			bound = best.index
		}
		if r := root.match(&h, bit, method, path, ctx, bound); r != nil {
			best = r
		}
	}
	return best
}

// hostRoot returns the trie of rules restricted to the request's host, or nil.
func (m *matcher) hostRoot(h *reqHost) *node {
	if h.ip.IsValid() {
		return m.byIP[h.ip]
	}
	if len(m.byName) == 0 || len(h.name) > maxHostLen {
		return nil
	}
	name := h.name
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			var buf [maxHostLen]byte
			for k := 0; k < len(name); k++ {
				buf[k] = lowerASCII(name[k])
			}
			return m.byName[string(buf[:len(name)])]
		}
	}
	return m.byName[name]
}
