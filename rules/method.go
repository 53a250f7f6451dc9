package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Bits of the methods of RFC 9110 §9 and RFC 5789 (PATCH).
const (
	mGET uint16 = 1 << iota
	mHEAD
	mPOST
	mPUT
	mDELETE
	mCONNECT
	mOPTIONS
	mTRACE
	mPATCH
)

// standardBit returns the bit of an upper-case standard method, 0 for any other string.
func standardBit(m string) uint16 {
	switch m {
	case "GET":
		return mGET
	case "HEAD":
		return mHEAD
	case "POST":
		return mPOST
	case "PUT":
		return mPUT
	case "DELETE":
		return mDELETE
	case "CONNECT":
		return mCONNECT
	case "OPTIONS":
		return mOPTIONS
	case "TRACE":
		return mTRACE
	case "PATCH":
		return mPATCH
	}
	return 0
}

// requestBit returns the bit of a request's method, ignoring letter case, 0 for an extension
// method. It does not allocate.
func requestBit(m string) uint16 {
	if b := standardBit(m); b != 0 || len(m) > len("OPTIONS") {
		return b
	}
	var buf [len("OPTIONS")]byte
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return standardBit(string(buf[:len(m)]))
}

// methodSet is a rule's match.methods.
type methodSet struct {
	all  bool     // no methods listed
	bits uint16   // standard methods
	ext  []string // extension methods, upper case
}

// match reports whether a request method (bit from requestBit, name as sent) is in the set.
// Letter case is ignored: a server that upper-cases methods must not see "delete" slip past a
// DELETE rule.
func (s *methodSet) match(bit uint16, name string) bool {
	if s.all {
		return true
	}
	if bit != 0 {
		return s.bits&bit != 0
	}
	for _, e := range s.ext {
		if equalFoldASCII(name, e) {
			return true
		}
	}
	return false
}

func (s *methodSet) covers(t *methodSet) bool {
	if s.all {
		return true
	}
	if t.all || t.bits&^s.bits != 0 {
		return false
	}
	for _, e := range t.ext {
		if !slices.Contains(s.ext, e) {
			return false
		}
	}
	return true
}

func (s *methodSet) overlaps(t *methodSet) bool {
	if s.all || t.all || s.bits&t.bits != 0 {
		return true
	}
	for _, e := range t.ext {
		if slices.Contains(s.ext, e) {
			return true
		}
	}
	return false
}

// checkMethod validates one configured method. It returns the problem, phrased for the user,
// and whether the method is one of the registered ones (a typo check, reported as a warning).
func checkMethod(m string) (problem string, registered bool) {
	if m == "" {
		return "empty method; remove it, or omit methods to match every method", false
	}
	if up := strings.ToUpper(m); up != m && isToken(up) {
		return fmt.Sprintf("%q must be upper case: write %q", m, up), false
	}
	if !isToken(m) {
		return fmt.Sprintf("%q is not an HTTP method (a method is a token such as GET or PROPFIND)", m), false
	}
	return "", standardBit(m) != 0 || isRegisteredExtension(m)
}

// isToken reports whether s is a token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// isRegisteredExtension reports whether m is in the IANA HTTP Method Registry (beyond the
// standard nine), or is PURGE, which caches use widely.
func isRegisteredExtension(m string) bool {
	switch m {
	case "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY", "LABEL", "LINK", "LOCK",
		"MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE",
		"ORDERPATCH", "PRI", "PROPFIND", "PROPPATCH", "QUERY", "REBIND", "REPORT", "SEARCH",
		"UNBIND", "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF",
		"VERSION-CONTROL", "PURGE":
		return true
	}
	return false
}
