package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

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
type header struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
	B64  *bool    `json:"b64"`
}

// maxJSONDepth bounds nesting in header and claims; real tokens nest two or three levels.
const maxJSONDepth = 16

// parseCompact splits and decodes a compact JWS, refusing every other shape cheaply.
func parseCompact(raw string) (*compact, *Error) {
	if raw == "" {
		return nil, refuse(reason.InvalidToken, "empty token")
	}
	if raw[0] == '{' {
		return nil, refuse(reason.InvalidToken, "JWS JSON serialisation is not accepted; send the compact form")
	}
	dots := strings.Count(raw, ".")
	switch dots {
	case 2:
	case 4:
		return nil, refuse(reason.InvalidToken, "an encrypted token (JWE) is not accepted")
	default:
		return nil, refuse(reason.InvalidToken, "not a JWT: expected three dot-separated parts")
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" {
		return nil, refuse(reason.InvalidToken, "empty header or payload")
	}
	if s == "" {
		return nil, refuse(reason.InvalidToken, "unsigned token (empty signature)")
	}
	hb, err := b64(h)
	if err != nil {
		return nil, refuse(reason.InvalidToken, "header is not base64url")
	}
	c := &compact{signingInput: raw[:len(h)+1+len(p)], headerJSON: hb}
	if err := checkJSONObject(hb); err != nil {
		return nil, refuse(reason.InvalidToken, "header: %v", err)
	}
	if err := json.Unmarshal(hb, &c.header); err != nil {
		return nil, refuse(reason.InvalidToken, "header: unexpected field type")
	}
	if c.payload, err = b64(p); err != nil {
		return nil, refuse(reason.InvalidToken, "payload is not base64url")
	}
	if c.signature, err = b64(s); err != nil {
		return nil, refuse(reason.InvalidToken, "signature is not base64url")
	}
	if len(c.header.Crit) > 0 {
		return nil, refuse(reason.InvalidToken, "header names critical extensions %q that Portcullis does not understand", c.header.Crit)
	}
	if c.header.B64 != nil && !*c.header.B64 {
		return nil, refuse(reason.InvalidToken, "unencoded (b64=false) payloads are not accepted")
	}
	return c, nil
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
)

// checkJSONObject accepts exactly one JSON object with no duplicate member names at any level,
// nesting at most maxJSONDepth, and nothing after it. encoding/json alone would silently keep
// the last of two duplicate names, which RFC 7515 §4 and RFC 8725 §3.12 tell us to refuse.
func checkJSONObject(b []byte) error {
	s := jsonScanner{b: b}
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

type jsonScanner struct {
	b []byte
	i int
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
		_, err := s.str()
		return err
	default:
		start := s.i
		for s.i < len(s.b) && strings.IndexByte(",]} \t\n\r", s.b[s.i]) < 0 {
			s.i++
		}
		if !validLiteral(s.b[start:s.i]) {
			return errSyntax
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
		name, err := s.str()
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

// str reads a JSON string starting at the opening quote and returns its decoded value: a slice
// of the input when the string has no escape, so only escaped strings allocate.
func (s *jsonScanner) str() ([]byte, error) {
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			lit := s.b[start:s.i]
			if !escaped {
				return lit[1 : len(lit)-1], nil
			}
			var out string
			if err := json.Unmarshal(lit, &out); err != nil {
				return nil, errSyntax
			}
			return []byte(out), nil
		}
		if s.b[s.i] < 0x20 {
			return nil, errSyntax
		}
		s.i++
	}
	return nil, errSyntax
}
