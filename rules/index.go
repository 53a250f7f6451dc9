package rules

import "strings"

// index narrows the rules a request may meet before any rule is tried: rules restricted to
// exact hosts are filed under those hosts, the others under "any host"; within each, a trie of
// literal leading path segments files every rule at the node where its patterns' literal
// prefix ends. A request visits only the nodes on its own path, so with many rules matching
// costs about the depth of the path, not the number of rules. First match in file order is
// kept: each node's rules are in file order, and the earliest match over all nodes wins.
type index struct {
	byHost map[string]*trieNode
	any    *trieNode
}

type trieNode struct {
	children map[string]*trieNode
	rules    []*Rule // in file order
}

func (n *trieNode) child(seg string) *trieNode {
	if n.children == nil {
		n.children = map[string]*trieNode{}
	}
	c, ok := n.children[seg]
	if !ok {
		c = &trieNode{}
		n.children[seg] = c
	}
	return c
}

func (n *trieNode) add(r *Rule) {
	if len(n.rules) == 0 || n.rules[len(n.rules)-1] != r {
		n.rules = append(n.rules, r)
	}
}

func buildIndex(rules []*Rule) *index {
	idx := &index{byHost: map[string]*trieNode{}, any: &trieNode{}}
	for _, r := range rules {
		roots := []*trieNode{idx.any}
		if len(r.hosts) > 0 && !anyWildcard(r.hosts) {
			roots = roots[:0]
			for _, h := range r.hosts {
				root, ok := idx.byHost[h.exact]
				if !ok {
					root = &trieNode{}
					idx.byHost[h.exact] = root
				}
				roots = append(roots, root)
			}
		}
		for _, root := range roots {
			if len(r.paths) == 0 {
				root.add(r)
				continue
			}
			for _, p := range r.paths {
				n := root
				for _, s := range p.segs {
					if s.kind != segLiteral {
						break
					}
					n = n.child(s.lit)
				}
				n.add(r)
			}
		}
	}
	return idx
}

func anyWildcard(hs []hostPattern) bool {
	for _, h := range hs {
		if h.suffix != "" {
			return true
		}
	}
	return false
}

// match returns the first rule in file order that matches, visiting only the trie nodes along
// the request's path. It does not allocate.
func (idx *index) match(host string, method uint16, path string) *Rule {
	var best *Rule
	if root := idx.byHost[host]; root != nil {
		best = walk(root, best, host, method, path)
	}
	return walk(idx.any, best, host, method, path)
}

func walk(n *trieNode, best *Rule, host string, method uint16, path string) *Rule {
	rest := strings.TrimSuffix(path[1:], "/")
	for {
		for _, r := range n.rules {
			if best != nil && r.index >= best.index {
				break
			}
			if r.matches(host, method, path) {
				best = r
				break
			}
		}
		if rest == "" || n.children == nil {
			return best
		}
		seg := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, rest = rest[:j], rest[j+1:]
		} else {
			rest = ""
		}
		if n = n.children[seg]; n == nil {
			return best
		}
	}
}
