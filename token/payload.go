package token

import (
	"bytes"
	"math"
)

// A token's claims are read from its payload as written, not decoded into a map first: the
// payload is scanned strictly once (scanObject: syntax, duplicate names at every level, depth,
// numbers encoding/json could not decode), its top-level members are indexed, and a value is
// decoded only when something reads it: the registered claims, the audience and authorized
// party, the roles and scopes, and the claims an Identity keeps. A Keycloak token carries
// twenty-odd claims of which a decision reads a handful. Every value read is what
// json.Unmarshal into a map[string]any would have given (FuzzPayload compares them).

// payload is a scanned claims object.
type payload struct {
	members []member // the top-level members, in order; no two share a name
}

// topMembers is how many top-level claims scanPayload indexes without allocating.
const topMembers = 32

// scanPayload scans b as the claims object of a token and indexes its top-level members in
// buf (and beyond it when there are more).
func scanPayload(b []byte, buf *[topMembers]member) (payload, error) {
	if err := scanObject(b, true); err != nil {
		return payload{}, err
	}
	members := buf[:0]
	it := newObjectIter(b[bytes.IndexByte(b, '{'):])
	for name, raw, ok := it.next(); ok; name, raw, ok = it.next() {
		members = append(members, member{name, raw})
	}
	return payload{members: members}, nil
}

// get returns the top-level claim name as written.
func (p *payload) get(name string) ([]byte, bool) {
	for _, m := range p.members {
		if string(m.name) == name {
			return m.raw, true
		}
	}
	return nil, false
}

// has reports whether the top-level claim name is present (null included).
func (p *payload) has(name string) bool {
	_, ok := p.get(name)
	return ok
}

// str returns the top-level claim name when it is a string.
func (p *payload) str(name string) (string, bool) {
	if raw, ok := p.get(name); ok && raw[0] == '"' {
		return decodeString(raw), true
	}
	return "", false
}

// objectGet returns the member name of an object as written.
func objectGet(obj []byte, name string) ([]byte, bool) {
	it := newObjectIter(obj)
	for {
		n, v, ok := it.next()
		if !ok {
			return nil, false
		}
		if string(n) == name {
			return v, true
		}
	}
}

// lookupRaw is Lookup on a payload: the claim the path addresses, as written. It follows
// lookup step by step: the top level here, the objects below in lookupNested.
func (p ClaimPath) lookupRaw(pl *payload) ([]byte, bool) {
	if p.name == "" {
		return nil, false
	}
	if v, ok := pl.get(p.name); ok {
		return v, true
	}
	for k, d := range p.dots {
		if sub, ok := pl.get(p.name[:d]); ok && sub[0] == '{' {
			if v, ok := p.lookupNested(sub, d+1, k+1); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// lookupNested finds p.name[start:] in the object obj; p.dots[k:] are the dots after start.
func (p ClaimPath) lookupNested(obj []byte, start, k int) ([]byte, bool) {
	if v, ok := objectGet(obj, p.name[start:]); ok {
		return v, true
	}
	for ; k < len(p.dots); k++ {
		d := p.dots[k]
		if sub, ok := objectGet(obj, p.name[start:d]); ok && sub[0] == '{' {
			if v, ok := p.lookupNested(sub, d+1, k+1); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// decodeAny decodes a value the scanner accepted into what json.Unmarshal into an any gives:
// string, float64, bool, nil, []any or map[string]any.
func decodeAny(raw []byte) any {
	switch raw[0] {
	case '"':
		return decodeString(raw)
	case '{':
		m := make(map[string]any)
		it := newObjectIter(raw)
		for {
			n, v, ok := it.next()
			if !ok {
				return m
			}
			m[string(n)] = decodeAny(v)
		}
	case '[':
		l := make([]any, 0)
		it := newArrayIter(raw)
		for {
			v, ok := it.next()
			if !ok {
				return l
			}
			l = append(l, decodeAny(v))
		}
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return math.NaN() // not reached: the payload scan refused it (and NaN is no valid claim)
	}
	return f
}

// objectIter walks the members of an object the scanner accepted.
type objectIter struct{ s jsonScanner }

func newObjectIter(raw []byte) objectIter {
	return objectIter{jsonScanner{b: raw, i: 1}} // past '{'
}

// next returns the next member's decoded name and its value as written; ok is false at the
// end (or, never for scanned input, on malformed input).
func (it *objectIter) next() (name, raw []byte, ok bool) {
	s := &it.s
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, nil, false // '}' or the end
	}
	name, err := s.name()
	if err != nil {
		return nil, nil, false
	}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, nil, false
	}
	s.i++
	s.space()
	start := s.i
	if !s.skip() {
		return nil, nil, false
	}
	raw = s.b[start:s.i]
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ',' {
		s.i++
	} else {
		s.i = len(s.b)
	}
	return name, raw, true
}

// arrayIter walks the elements of an array the scanner accepted.
type arrayIter struct{ s jsonScanner }

func newArrayIter(raw []byte) arrayIter {
	return arrayIter{jsonScanner{b: raw, i: 1}} // past '['
}

// next returns the next element as written; ok is false at the end.
func (it *arrayIter) next() (raw []byte, ok bool) {
	s := &it.s
	s.space()
	if s.i >= len(s.b) || s.b[s.i] == ']' {
		return nil, false
	}
	start := s.i
	if !s.skip() {
		return nil, false
	}
	raw = s.b[start:s.i]
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ',' {
		s.i++
	} else {
		s.i = len(s.b)
	}
	return raw, true
}

// skip moves past the value at s.i, which the scanner accepted: it follows strings and
// brackets only. It reports false when it runs out of input (never for scanned input).
func (s *jsonScanner) skip() bool {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return false
			}
			s.i++
		case '{', '[':
			depth++
			s.i++
			continue
		case '}', ']':
			if depth == 0 {
				return true // the end of the enclosing value: a literal ended here
			}
			depth--
			s.i++
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return true
			}
			s.i++
			continue
		default:
			s.i++
			continue
		}
		if depth == 0 {
			return true
		}
	}
	return depth == 0
}
