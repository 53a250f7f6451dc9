package rules

import (
	"net/url"
	"strings"
	"time"
)

// Input is the request as the rules see it: what Set.MatchRequest matches and what a rule's
// `when` conditions read. A front fills it from its wire request; nothing in it is changed by
// the rules.
type Input struct {
	// Method is the HTTP method as received (compared ignoring letter case when matching; the
	// `request.method` variable is it in upper case).
	Method string
	// Host is the Host / :authority value as received, possibly with a port. The
	// `request.host` variable is it without the port and a final dot, in lower case, an IPv6
	// address without brackets.
	Host string
	// Path is the normalised path (NormalizePath), without the query: `request.path`.
	Path string
	// Headers have lower-case names, repeated headers joined with commas (the front's view):
	// `request.headers`.
	Headers map[string]string
	// Query holds the first value of each query parameter, decoded: `request.query`.
	Query map[string]string
	// SourceAddress is the client address Envoy reports (attributes.source.address), as a
	// string, without the port, an IPv4-mapped IPv6 address unmapped ("10.0.0.1", not
	// "::ffff:10.0.0.1", which the network functions refuse): `source.address`.
	SourceAddress string
	// Context holds Envoy's per-route context_extensions: matched by match.context, read by
	// the `context` variable.
	Context map[string]string
	// Now is the decision's time (the injected clock): `now`.
	Now time.Time
	// Params are the `{name}` segments of the pattern that matched, as Set.MatchRequest or
	// Rule.Params returns them: `params`.
	Params Params
	// SecretHeaders names headers (lower case) whose values Outcome.Missing never shows, such
	// as the token's carrier. "authorization", "proxy-authorization" and "cookie" never are.
	SecretHeaders []string
}

// secretHeader reports whether a header's value must never be shown.
func (in *Input) secretHeader(name string) bool {
	switch name {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	for _, s := range in.SecretHeaders {
		if strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

// host returns `request.host`: no port, no final dot, lower case. It allocates only when the
// host has upper-case letters or is an IP address written another way than its normal form.
func (in *Input) host() string {
	h := parseRequestHost(in.Host)
	if h.ip.IsValid() {
		return h.ip.String()
	}
	for i := 0; i < len(h.name); i++ {
		if c := h.name[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h.name)
		}
	}
	return h.name
}

// method returns `request.method`: upper case, allocating only when it was not.
func (in *Input) method() string {
	for i := 0; i < len(in.Method); i++ {
		if c := in.Method[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(in.Method)
		}
	}
	return in.Method
}

// inlineParams is how many parameters Params holds without allocating.
const inlineParams = 8

// Param is one `{name}` segment of a matched path pattern. Value is the segment as it appears
// in the normalised path (percent-escapes kept); Params.Get decodes it.
type Param struct {
	Name, Value string
}

// Params are the `{name}` segments of a matched path pattern. The zero Params holds none.
// Up to eight are held without allocating.
type Params struct {
	n      int
	inline [inlineParams]Param
	more   []Param
}

// Len returns the number of parameters.
func (p *Params) Len() int { return p.n }

// At returns the i-th parameter, in pattern order, its value as in the path.
func (p *Params) At(i int) Param {
	if i < inlineParams {
		return p.inline[i]
	}
	return p.more[i-inlineParams]
}

// Get returns the percent-decoded value of the parameter name ("a%20b" is "a b"), and
// whether the pattern has it. It allocates only when the value has an escape.
func (p *Params) Get(name string) (string, bool) {
	for i := 0; i < p.n; i++ {
		if q := p.At(i); q.Name == name {
			return decodeSegment(q.Value), true
		}
	}
	return "", false
}

func (p *Params) add(name, value string) {
	if p.n < inlineParams {
		p.inline[p.n] = Param{name, value}
	} else {
		p.more = append(p.more, Param{name, value})
	}
	p.n++
}

// decodeSegment percent-decodes a segment of a normalised path (whose escapes are all valid).
func decodeSegment(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	d, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return d
}
