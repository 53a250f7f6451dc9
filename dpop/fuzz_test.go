package dpop

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary proofs to the parser. It must never panic, and it must accept
// nothing but the one validly signed proof of the corpus (an Ed25519 key: its signatures are
// not malleable): any other accepted string would be a forgery, or a second spelling of the
// same proof that the replay cache would take for another.
func FuzzParse(f *testing.F) {
	s := edSigner(f, 9)
	good := s.sign(f, s.header(), goodClaims("fuzz"))
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64([]byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"}}`)) + "." + parts[1] + "." + parts[2])
	f.Add(b64([]byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"oct","k":"AA"}}`)) + "." + parts[1] + "." + parts[2])
	f.Add(b64([]byte(`{"typ":"dpop+jwt","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2])
	f.Add(b64([]byte(`{"typ":"dpop+jwt","alg":"none"}`)) + "." + parts[1] + ".")
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Parse(raw, allAlgs)
		if err == nil && raw != good {
			t.Fatalf("accepted a proof that is not the signed one: %q (jti %q)", raw, p.JTI)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not a *dpop.Error: %v", err, err)
			}
		}
	})
}
