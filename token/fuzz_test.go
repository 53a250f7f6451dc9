package token

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary tokens to the verifier. It must never panic, and it must accept
// nothing but the one validly signed token of the corpus: any other accepted byte string would
// be a forgery (or a second, malleable spelling of the same token).
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	good := sign(f, rsHeader("rsa-1"), fx.claims(nil), "RS256", fx.rsaKey)
	v := fx.verifier(f, nil)
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(enc(`{"alg":"none"}`) + "." + parts[1] + ".")
	f.Add(enc(`{"alg":"RS256","kid":"rsa-1","crit":["x"]}`) + "." + parts[1] + "." + parts[2])
	f.Add(parts[0] + "." + enc(`{"iss":"`+issA+`","exp":1e999}`) + "." + parts[2])
	f.Add("a.b.c.d.e")
	f.Add(`{"payload":""}`)
	f.Add(enc(`{"alg":"RS256","alg":"none"}`) + ".e30.AA")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(context.Background(), tok)
		if err == nil && tok != good {
			t.Fatalf("accepted a token that is not the signed one: %q (sub %q)", tok, id.Subject)
		}
		if err != nil {
			refusal(t, err)
		}
	})
}

// FuzzCheckJSONObject checks the duplicate-member scanner never panics and never accepts what
// is not one syntactically valid JSON object. (Numbers out of float64's range are valid JSON;
// decoding the claims refuses them later.)
func FuzzCheckJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,2,{"c":"d"}]}}`, `{"a":1,"a":2}`, `{"\u0061":1,"a":2}`, `[]`, `{"a":"\"}`, `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJSONObject(b) != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("scanner accepted %q, which is not valid JSON", b)
		}
		if trimmed := bytes.TrimLeft(b, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("scanner accepted %q, which is not an object", b)
		}
	})
}
