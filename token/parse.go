package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/portcullis-authz/portcullis/reason"
)

// compact is a JWS compact serialisation split into its parts (RFC 7515 §7.1), before any
// signature check.
type compact struct {
	signingInput string // header "." payload, as signed
	header       header
	headerJSON   []byte // the decoded header, for readers of other members (ParseJWS)
	payload      []byte
	signature    []byte
}

// header holds the JOSE header fields Portcullis reads. Key-carrying headers (jku, x5u, jwk,
// x5c) are deliberately not decoded: keys come only from the issuer's published set.
// decodeHeader fills it as encoding/json would fill it through the tags.
type header struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
	B64  *bool    `json:"b64"`
}

// maxJSONDepth bounds nesting in header and claims; real tokens nest two or three levels.
const maxJSONDepth = 16

// parseCompact splits and decodes a compact JWS, refusing every other shape cheaply. The
// payload is only decoded from base64url; scanPayload checks and indexes it.
func parseCompact(raw string) (compact, *Error) {
	if raw == "" {
		return compact{}, refuse(reason.InvalidToken, "empty token")
	}
	if raw[0] == '{' {
		return compact{}, refuse(reason.InvalidToken, "JWS JSON serialisation is not accepted; send the compact form")
	}
	dots := strings.Count(raw, ".")
	switch dots {
	case 2:
	case 4:
		return compact{}, refuse(reason.InvalidToken, "an encrypted token (JWE) is not accepted")
	default:
		return compact{}, refuse(reason.InvalidToken, "not a JWT: expected three dot-separated parts")
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" {
		return compact{}, refuse(reason.InvalidToken, "empty header or payload")
	}
	if s == "" {
		return compact{}, refuse(reason.InvalidToken, "unsigned token (empty signature)")
	}
	hb, err := b64(h)
	if err != nil {
		return compact{}, refuse(reason.InvalidToken, "header is not base64url")
	}
	c := compact{signingInput: raw[:len(h)+1+len(p)], headerJSON: hb}
	if err := decodeHeader(hb, &c.header); err != nil {
		if errors.Is(err, errFieldType) {
			return compact{}, refuse(reason.InvalidToken, "header: unexpected field type")
		}
		return compact{}, refuse(reason.InvalidToken, "header: %v", err)
	}
	if c.payload, err = b64(p); err != nil {
		return compact{}, refuse(reason.InvalidToken, "payload is not base64url")
	}
	if c.signature, err = b64(s); err != nil {
		return compact{}, refuse(reason.InvalidToken, "signature is not base64url")
	}
	if len(c.header.Crit) > 0 {
		return compact{}, refuse(reason.InvalidToken, "header names critical extensions %q that Portcullis does not understand", c.header.Crit)
	}
	if c.header.B64 != nil && !*c.header.B64 {
		return compact{}, refuse(reason.InvalidToken, "unencoded (b64=false) payloads are not accepted")
	}
	return c, nil
}

var errFieldType = errors.New("unexpected field type")

// decodeHeader checks a JOSE header as checkJSONObject does and fills h as json.Unmarshal
// would: member names match the tags case-insensitively (bytes.EqualFold, encoding/json's
// rule), a later member overwrites an earlier one, null leaves a string as it was and sets crit
// and b64 to nil, and a value of another type is an error (errFieldType).
// FuzzDecodeHeader compares the two.
func decodeHeader(b []byte, h *header) error {
	if err := scanObject(b, false); err != nil {
		return err
	}
	it := newObjectIter(b[bytes.IndexByte(b, '{'):])
	for name, raw, ok := it.next(); ok; name, raw, ok = it.next() {
		m := member{name, raw}
		var dst *string
		switch {
		case bytes.EqualFold(m.name, []byte("alg")):
			dst = &h.Alg
		case bytes.EqualFold(m.name, []byte("kid")):
			dst = &h.Kid
		case bytes.EqualFold(m.name, []byte("typ")):
			dst = &h.Typ
		case bytes.EqualFold(m.name, []byte("crit")):
			crit, err := headerStrings(m.raw, h.Crit)
			if err != nil {
				return err
			}
			h.Crit = crit
			continue
		case bytes.EqualFold(m.name, []byte("b64")):
			switch m.raw[0] {
			case 'n':
				h.B64 = nil
			case 't', 'f':
				v := m.raw[0] == 't'
				h.B64 = &v
			default:
				return errFieldType
			}
			continue
		default:
			continue
		}
		switch m.raw[0] {
		case 'n':
		case '"':
			*dst = decodeString(m.raw)
		default:
			return errFieldType
		}
	}
	return nil
}

// headerStrings decodes an array of strings into a []string as encoding/json does: null is
// nil, [] is empty, a null element leaves what prev held at its place.
func headerStrings(raw []byte, prev []string) ([]string, error) {
	switch raw[0] {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, errFieldType
	}
	out := prev[:0]
	it := newArrayIter(raw)
	for i := 0; ; i++ {
		v, ok := it.next()
		if !ok {
			break
		}
		if i >= len(out) {
			if i < cap(out) {
				out = out[:i+1]
			} else {
				out = append(out, "")
			}
		}
		switch v[0] {
		case 'n':
		case '"':
			out[i] = decodeString(v)
		default:
			return nil, errFieldType
		}
	}
	if len(out) == 0 {
		return []string{}, nil
	}
	return out, nil
}

// b64 decodes unpadded base64url strictly (no padding, no other alphabet, no trailing bits).
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

var (
	errNotObject = errors.New("not a JSON object")
	errDuplicate = errors.New("a member name appears twice")
	errTooDeep   = errors.New("nested too deeply")
	errSyntax    = errors.New("not valid JSON")
	errNumber    = errors.New("a number is out of float64's range") // checked in payloads only
)

// checkJSONObject accepts exactly one JSON object with no duplicate member names at any level,
// nesting at most maxJSONDepth, and nothing after it. encoding/json alone would silently keep
// the last of two duplicate names, which RFC 7515 §4 and RFC 8725 §3.12 tell us to refuse.
// Names are compared as encoding/json decodes them (escapes resolved, invalid UTF-8 replaced),
// so no two members of an accepted object decode to the same key.
func checkJSONObject(b []byte) error { return scanObject(b, false) }

// CheckJSONObject holds a JSON document that is read as claims, an introspection answer
// (RFC 7662 §2.2) for one, to what a token's claims are held to: exactly one object, no
// duplicate member names at any level, nesting at most 16 deep, no number outside float64's
// range. The error names the problem, never a value.
func CheckJSONObject(b []byte) error { return scanObject(b, true) }

// scanObject is checkJSONObject that, with numbers, also refuses numbers that encoding/json
// cannot decode into an any (outside float64's range), as decoding the whole object would.
func scanObject(b []byte, numbers bool) error {
	s := jsonScanner{b: b, numbers: numbers}
	s.space()
	if s.i >= len(b) || b[s.i] != '{' {
		return errNotObject
	}
	if err := s.value(0); err != nil {
		return err
	}
	s.space()
	if s.i != len(b) {
		return errSyntax
	}
	return nil
}

// member is a member of a scanned object: its name, decoded, and its value as written.
type member struct{ name, raw []byte }

type jsonScanner struct {
	b       []byte
	i       int
	numbers bool // refuse numbers outside float64's range
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) value(depth int) error {
	if depth > maxJSONDepth {
		return errTooDeep
	}
	s.space()
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		s.i++
		s.space()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.space()
			if s.i >= len(s.b) {
				return errSyntax
			}
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if s.b[s.i] != ',' {
				return errSyntax
			}
			s.i++
		}
	case c == '"':
		_, _, err := s.lit()
		return err
	default:
		start := s.i
		for s.i < len(s.b) && strings.IndexByte(",]} \t\n\r", s.b[s.i]) < 0 {
			s.i++
		}
		lit := s.b[start:s.i]
		if !validLiteral(lit) {
			return errSyntax
		}
		if s.numbers && lit[0] != 't' && lit[0] != 'f' && lit[0] != 'n' {
			if _, err := parseNumber(lit); err != nil {
				return errNumber
			}
		}
		return nil
	}
}

// validLiteral accepts true, false, null and a JSON number (RFC 8259 §6).
func validLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	i := 0
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(b)
}

func (s *jsonScanner) object(depth int) error {
	s.i++ // '{'
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var buf [16][]byte // the names seen so far; most objects fit without allocating
	seen := buf[:0]
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errSyntax
		}
		name, err := s.name()
		if err != nil {
			return err
		}
		for _, n := range seen {
			if bytes.Equal(n, name) {
				return errDuplicate
			}
		}
		seen = append(seen, name)
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errSyntax
		}
		s.i++
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) {
			return errSyntax
		}
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] != ',' {
			return errSyntax
		}
		s.i++
	}
}

// lit reads a JSON string starting at the opening quote and returns it as written, quotes
// included, and whether it needs decoding (an escape or invalid UTF-8). Escapes are checked
// as encoding/json checks them.
func (s *jsonScanner) lit() (lit []byte, plain bool, err error) {
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false, errSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false, errSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, errSyntax
					}
				}
				s.i += 6
			default:
				return nil, false, errSyntax
			}
			continue
		case c == '"':
			s.i++
			lit = s.b[start:s.i]
			return lit, !escaped && utf8.Valid(lit), nil
		case c < 0x20:
			return nil, false, errSyntax
		}
		s.i++
	}
	return nil, false, errSyntax
}

// name reads a member name and returns it decoded: a slice of the input when it is plain, so
// only names that need decoding allocate.
func (s *jsonScanner) name() ([]byte, error) {
	lit, plain, err := s.lit()
	if err != nil {
		return nil, err
	}
	if plain {
		return lit[1 : len(lit)-1], nil
	}
	var out string
	// A copy goes to json.Unmarshal, so that the input does not escape for this rare case.
	if err := json.Unmarshal(bytes.Clone(lit), &out); err != nil {
		return nil, errSyntax
	}
	return []byte(out), nil
}

// decodeString decodes a string literal the scanner accepted as encoding/json decodes it: a
// copy when it is plain; escapes resolved and invalid UTF-8 replaced by U+FFFD otherwise.
func decodeString(lit []byte) string {
	if inner := lit[1 : len(lit)-1]; plainString(inner) {
		return string(inner)
	}
	var out string
	if json.Unmarshal(bytes.Clone(lit), &out) != nil {
		return "\uFFFD" // not reached: the scanner checked the literal
	}
	return out
}

// plainString reports whether the inside of a string literal reads as it is written: no
// escape, valid UTF-8.
func plainString(inner []byte) bool {
	return bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)
}

// parseNumber converts a number literal the scanner accepted as encoding/json converts it into
// an any.
func parseNumber(lit []byte) (float64, error) {
	return strconv.ParseFloat(unsafe.String(unsafe.SliceData(lit), len(lit)), 64)
}
