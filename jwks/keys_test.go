package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/portcullis-authz/portcullis/internal/rsakey"
)

func parseKey(t *testing.T, raw json.RawMessage) jwk.Key {
	t.Helper()
	k, err := jwk.ParseKey(raw)
	if err != nil {
		t.Fatalf("ParseKey(%s): %v", raw, err)
	}
	return k
}

func TestKeyFits(t *testing.T) {
	ks := keys(t)
	noAlg := map[string]any{"alg": nil}
	oct := json.RawMessage(`{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}`)
	tests := []struct {
		name   string
		key    json.RawMessage
		alg    jwa.SignatureAlgorithm
		expect bool
	}{
		{"RSA RS256", jwkJSON(t, ks["rsa1"].public, nil), jwa.RS256, true},
		{"RSA named RS256 refuses RS384", jwkJSON(t, ks["rsa1"].public, nil), jwa.RS384, false},
		{"RSA without alg RS384", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.RS384, true},
		{"RSA without alg RS512", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.RS512, true},
		{"RSA without alg PS256", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.PS256, true},
		{"RSA without alg PS512", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.PS512, true},
		{"RSA without use", jwkJSON(t, ks["rsa1"].public, map[string]any{"use": nil}), jwa.RS256, true},
		{"RSA use enc", jwkJSON(t, ks["rsa1"].public, map[string]any{"use": "enc", "alg": nil}), jwa.RS256, false},
		{"RSA use unknown", jwkJSON(t, ks["rsa1"].public, map[string]any{"use": "tls"}), jwa.RS256, false},
		{"RSA key_ops verify", jwkJSON(t, ks["rsa1"].public, map[string]any{"key_ops": []string{"verify"}}), jwa.RS256, true},
		{"RSA key_ops encrypt", jwkJSON(t, ks["rsa1"].public, map[string]any{"key_ops": []string{"encrypt"}}), jwa.RS256, false},
		{"RSA alg RSA-OAEP", jwkJSON(t, ks["rsa1"].public, map[string]any{"alg": "RSA-OAEP", "use": nil}), jwa.RS256, false},
		{"RSA 1024 bits", jwkJSON(t, ks["rsaSmall"].public, nil), jwa.RS256, false},
		{"RSA for ES256", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.ES256, false},
		{"RSA for HS256", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.HS256, false},
		{"RSA for none", jwkJSON(t, ks["rsa1"].public, noAlg), jwa.NoSignature, false},
		{"P-256 ES256", jwkJSON(t, ks["ec256"].public, nil), jwa.ES256, true},
		{"P-256 without alg ES384", jwkJSON(t, ks["ec256"].public, noAlg), jwa.ES384, false},
		{"P-256 for RS256", jwkJSON(t, ks["ec256"].public, noAlg), jwa.RS256, false},
		{"P-384 ES384", jwkJSON(t, ks["ec384"].public, nil), jwa.ES384, true},
		{"P-384 without alg ES256", jwkJSON(t, ks["ec384"].public, noAlg), jwa.ES256, false},
		{"P-521 ES512", jwkJSON(t, ks["ec521"].public, nil), jwa.ES512, true},
		{"P-521 without alg ES384", jwkJSON(t, ks["ec521"].public, noAlg), jwa.ES384, false},
		{"P-256 labelled ES384", jwkJSON(t, ks["ec256"].public, map[string]any{"alg": "ES384"}), jwa.ES384, false},
		{"Ed25519 EdDSA", jwkJSON(t, ks["ed"].public, nil), jwa.EdDSA, true},
		{"Ed25519 for ES256", jwkJSON(t, ks["ed"].public, noAlg), jwa.ES256, false},
		{"X25519 EdDSA", x25519JWK(t), jwa.EdDSA, false},
		{"oct HS256", oct, jwa.HS256, false},
		{"oct HS512", oct, jwa.HS512, false},
		{"oct RS256", oct, jwa.RS256, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeyFits(parseKey(t, tc.key), tc.alg); got != tc.expect {
				t.Errorf("KeyFits = %v, want %v", got, tc.expect)
			}
		})
	}
	if KeyFits(nil, jwa.RS256) {
		t.Error("KeyFits(nil) = true")
	}
}

func TestParseSetKeepsUsableKeysOnly(t *testing.T) {
	ks := keys(t)
	offCurve := jwkJSON(t, ks["ec256"].public, map[string]any{"kid": "off-curve", "y": b64(make([]byte, 32))})
	privRSA, err := jwk.FromRaw(ks["rsa2"].raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = privRSA.Set(jwk.KeyIDKey, "private")
	doc := setJSON(t,
		jwkJSON(t, ks["rsa1"].public, nil),
		jwkJSON(t, ks["rsa2"].public, map[string]any{"kid": "enc", "use": "enc", "alg": "RSA-OAEP"}),
		json.RawMessage(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}`),
		jwkJSON(t, ks["rsaSmall"].public, nil),
		jwkJSON(t, privRSA, nil),
		offCurve,
		json.RawMessage(`{"kty":"XYZ","kid":"odd"}`),
		json.RawMessage(`"not an object"`),
		jwkJSON(t, ks["rsa3"].public, map[string]any{"kid": "rsa1"}), // duplicate kid
		jwkJSON(t, ks["ec256"].public, nil),
		jwkJSON(t, ks["ec384"].public, nil), // ES384 not allowed below
		x25519JWK(t),
		jwkJSON(t, ks["ed"].public, map[string]any{"kid": nil}), // no kid: fine
	)
	kept, skipped, err := parseSet(doc, []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kidsOf(keysOf(kept)), ","); got != "rsa1,ec256," {
		t.Errorf("kept kids = %q, want rsa1,ec256,(none)", got)
	}
	// An RSA key comes prepared for verification, and the verifiers are given that form;
	// the other keys are given their raw material.
	for _, k := range keysOf(kept) {
		_, isRSA := k.Public.(*rsa.PublicKey)
		switch v := k.Verifying().(type) {
		case *rsakey.Public:
			if !isRSA || k.RSA == nil || v.Key != k.Public {
				t.Errorf("kid %q: Verifying() = prepared key of %v, Public %T", k.KID, v.Key, k.Public)
			}
		default:
			if isRSA || k.RSA != nil || !reflect.DeepEqual(v, k.Public) {
				t.Errorf("kid %q: Verifying() = %T, want Public %T", k.KID, v, k.Public)
			}
		}
	}
	var reasons []string
	for _, s := range skipped {
		reasons = append(reasons, s.String())
	}
	wantReasons := []string{
		`keys[1] (kid "enc"): use "enc" is not sig`,
		`keys[2] (kid "hmac"): symmetric key (kty oct) published in a key set; never used`,
		`keys[3] (kid "rsaSmall"): RSA key of 1024 bits; at least 2048 are required`,
		`keys[4] (kid "private"): the key carries private material ("d"); never used, and the issuer should rotate it`,
		`keys[5] (kid "off-curve"): invalid EC key: point is not on the curve`,
		`keys[6] (kid "odd"): unsupported key type "XYZ"`,
		`keys[7]: not a JSON object`,
		`keys[8] (kid "rsa1"): duplicate kid; the earlier key with this kid is used`,
		`keys[10] (kid "ec384"): EC P-384 alg ES384 key fits none of the allowed algorithms`,
		`keys[11] (kid "x25519"): OKP X25519 key fits none of the allowed algorithms`,
	}
	if got, want := strings.Join(reasons, "\n"), strings.Join(wantReasons, "\n"); got != want {
		t.Errorf("skipped:\n%s\nwant:\n%s", got, want)
	}
	notable := map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true}
	for _, s := range skipped {
		if s.notable != notable[s.index] {
			t.Errorf("keys[%d] notable = %v", s.index, s.notable)
		}
	}
	for _, k := range kept {
		switch k.KID {
		case "rsa1":
			if _, ok := k.Public.(*rsa.PublicKey); !ok {
				t.Errorf("rsa1 Public is %T", k.Public)
			}
		case "ec256":
			if _, ok := k.Public.(*ecdsa.PublicKey); !ok {
				t.Errorf("ec256 Public is %T", k.Public)
			}
		case "":
			if _, ok := k.Public.(ed25519.PublicKey); !ok {
				t.Errorf("ed Public is %T", k.Public)
			}
		}
		tp, _ := ks[map[string]string{"rsa1": "rsa1", "ec256": "ec256", "": "ed"}[k.KID]].public.Thumbprint(crypto.SHA256)
		if k.Thumbprint != b64(tp) {
			t.Errorf("%s thumbprint %s, want %s", k.KID, k.Thumbprint, b64(tp))
		}
	}
}

func keysOf(parsed []parsedKey) []Key {
	out := make([]Key, len(parsed))
	for i, p := range parsed {
		out[i] = p.Key
	}
	return out
}

// Keys sharing a kid but fitting different algorithms are both kept: each algorithm has one
// key for the kid.
func TestParseSetSameKIDOtherAlgorithm(t *testing.T) {
	ks := keys(t)
	doc := setJSON(t,
		jwkJSON(t, ks["rsa1"].public, map[string]any{"kid": "k"}),
		jwkJSON(t, ks["ec256"].public, map[string]any{"kid": "k"}),
	)
	kept, skipped, err := parseSet(doc, testAlgorithms())
	if err != nil || len(kept) != 2 || len(skipped) != 0 {
		t.Fatalf("kept %d, skipped %v, err %v", len(kept), skipped, err)
	}
	s := newSnapshot(kept)
	if _, ok := s.byKID["k"][jwa.RS256][0].Public.(*rsa.PublicKey); !ok {
		t.Error("kid k for RS256 is not the RSA key")
	}
	if _, ok := s.byKID["k"][jwa.ES256][0].Public.(*ecdsa.PublicKey); !ok {
		t.Error("kid k for ES256 is not the EC key")
	}
}

func TestParseSetErrors(t *testing.T) {
	ks := keys(t)
	tests := []struct {
		name, doc, want string
	}{
		{"not JSON", `<html>`, "not a JWK Set: invalid character '<'"},
		{"no keys", `{"issuer":"x"}`, `not a JWK Set: no "keys" array`},
		{"keys not an array", `{"keys":{}}`, "not a JWK Set: json: cannot unmarshal object"},
		{"empty", `{"keys":[]}`, "no usable keys: the key set is empty"},
		{"nothing usable", string(setJSON(t,
			jwkJSON(t, ks["rsa1"].public, map[string]any{"use": "enc", "alg": nil}),
			json.RawMessage(`{"kty":"oct","k":"c2VjcmV0"}`))),
			`no usable keys among 2 published (allowed algorithms RS256): keys[0] (kid "rsa1"): use "enc" is not sig; keys[1]: symmetric key (kty oct) published in a key set; never used`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseSet([]byte(tc.doc), []jwa.SignatureAlgorithm{jwa.RS256})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMaterialChecks(t *testing.T) {
	ks := keys(t)
	rsaPub := ks["rsa1"].raw.(*rsa.PrivateKey).PublicKey
	tests := []struct {
		name   string
		key    json.RawMessage
		reason string
	}{
		{"RSA exponent 1", jwkJSON(t, ks["rsa1"].public, map[string]any{"e": b64([]byte{1})}), "exponent out of range"},
		{"RSA even exponent", jwkJSON(t, ks["rsa1"].public, map[string]any{"e": b64([]byte{1, 0, 0})}), "exponent out of range"},
		{"RSA huge exponent", jwkJSON(t, ks["rsa1"].public, map[string]any{"e": b64([]byte{1, 0, 0, 0, 0, 1})}), "exponent out of range"},
		{"RSA even modulus", jwkJSON(t, ks["rsa1"].public, map[string]any{"n": b64(append(rsaPub.N.Bytes()[:255:255], 2))}), "even modulus"},
		{"RSA 16392-bit modulus", jwkJSON(t, ks["rsa1"].public, map[string]any{"n": b64(append([]byte{1}, make([]byte, 2048)...))}), "exceeds 16384"},
		{"EC long coordinate", jwkJSON(t, ks["ec256"].public, map[string]any{"x": b64(make([]byte, 33))}), "coordinate longer than the curve"},
		{"Ed25519 short", jwkJSON(t, ks["ed"].public, map[string]any{"x": b64(make([]byte, 31))}), "Ed25519 key of 31 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, skip := parseOne(tc.key, testAlgorithms())
			if skip == nil || !strings.Contains(skip.reason, tc.reason) {
				t.Fatalf("skip = %+v, want %q", skip, tc.reason)
			}
		})
	}
}

// Some issuers strip a leading zero byte from EC coordinates; such a key is padded back and
// still verifies, since the point itself is checked.
func TestMaterialPadsShortCoordinates(t *testing.T) {
	for range 5000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := k.PublicKey.Bytes()
		if x[1] != 0 { // x[0] is the 0x04 prefix
			continue
		}
		doc, _ := json.Marshal(map[string]any{"kty": "EC", "crv": "P-256", "kid": "short",
			"x": b64(x[2:33]), "y": b64(x[33:])})
		pk, skip := parseOne(doc, []jwa.SignatureAlgorithm{jwa.ES256})
		if skip != nil {
			t.Fatalf("skipped: %s", skip.reason)
		}
		if !pk.Public.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
			t.Fatal("padded key differs")
		}
		return
	}
	t.Skip("no key with a leading zero coordinate byte generated")
}

func FuzzParseSet(f *testing.F) {
	ks := keys(f)
	f.Add(setOf(f, "rsa1", "ec256", "ed"))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","x":"AA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`)) // the identity point
	f.Add([]byte(jwkJSON(f, ks["rsa1"].public, nil)))
	f.Fuzz(func(t *testing.T, doc []byte) {
		kept, _, err := parseSet(doc, testAlgorithms())
		if err != nil {
			if len(kept) != 0 {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(kept) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range kept {
			if k.Public == nil || k.Thumbprint == "" || len(k.algs) == 0 {
				t.Fatalf("incomplete key %+v", k)
			}
			for _, a := range k.algs {
				if !KeyFits(k.JWK, a) {
					t.Fatalf("kept key does not fit %s", a)
				}
			}
		}
	})
}

// Reasons a degenerate Ed25519 key is skipped for (after `invalid OKP key: `).
const (
	edSmallOrder   = "Ed25519 key is a point of small order; anyone can forge signatures for it"
	edNonCanonical = "Ed25519 key is not canonically encoded (y >= p, or x = 0 with the sign bit set)"
	edOffCurve     = "Ed25519 key is not a point on the curve"
)

// degenerateEd25519 are 32-byte Ed25519 public keys (RFC 8032 §5.1.2: y little-endian, the top
// bit the sign of x) that must never verify anything, with the reason each is skipped for. p is
// 2^255-19. The 8-torsion subgroup has 8 points: the identity (0, 1), (0, -1) of order 2, the
// two points with y = 0 of order 4 and four of order 8; with their non-canonical spellings
// (y + p where that still fits in 255 bits, or a sign bit on x = 0) that is every encoding of a
// small-order point. TestDegenerateEd25519Fixtures checks the arithmetic.
var degenerateEd25519 = []struct {
	name, hex, reason string
	smallOrder        bool // 8·A is the identity
	canonical         bool
}{
	{"all zero: y = 0, order 4", "0000000000000000000000000000000000000000000000000000000000000000", edSmallOrder, true, true},
	{"identity: y = 1", "0100000000000000000000000000000000000000000000000000000000000000", edSmallOrder, true, true},
	{"y = 0 with x negative, order 4", "0000000000000000000000000000000000000000000000000000000000000080", edSmallOrder, true, true},
	{"y = p-1 = -1, order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", edSmallOrder, true, true},
	{"order 8, y ending 05", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", edSmallOrder, true, true},
	{"order 8, y ending 05, x negative", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", edSmallOrder, true, true},
	{"order 8, y ending 7a", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", edSmallOrder, true, true},
	{"order 8, y ending 7a, x negative", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", edSmallOrder, true, true},
	{"identity with the sign bit (non-canonical)", "0100000000000000000000000000000000000000000000000000000000000080", edSmallOrder, true, false},
	{"y = -1 with the sign bit (non-canonical), order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", edSmallOrder, true, false},
	{"y = p, that is 0 (non-canonical), order 4", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", edSmallOrder, true, false},
	{"y = p with the sign bit (non-canonical), order 4", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", edSmallOrder, true, false},
	{"y = p+1, that is 1 (non-canonical identity)", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", edSmallOrder, true, false},
	{"y = p+1 with the sign bit (non-canonical identity)", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", edSmallOrder, true, false},
	{"y = p+3, a point of large order spelt non-canonically", "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", edNonCanonical, false, false},
	{"y = 2^255-1 = p+18 with the sign bit", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", edNonCanonical, false, false},
	{"y = p+2: no point of the curve", "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", edOffCurve, false, false},
}

// The fixtures are what their names say: multiplied by the cofactor 8 the small-order ones give
// the identity, and the non-canonical ones re-encode differently. (This checks the table, not
// the code under test.)
func TestDegenerateEd25519Fixtures(t *testing.T) {
	small := map[string]bool{}
	for _, tc := range degenerateEd25519 {
		b, err := hex.DecodeString(tc.hex)
		if err != nil || len(b) != 32 {
			t.Fatalf("%s: bad fixture", tc.name)
		}
		p, err := new(edwards25519.Point).SetBytes(b)
		if (err != nil) != (tc.reason == edOffCurve) {
			t.Errorf("%s: SetBytes err = %v", tc.name, err)
		}
		if err != nil {
			continue
		}
		if got := new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1; got != tc.smallOrder {
			t.Errorf("%s: small order = %v", tc.name, got)
		}
		if got := hex.EncodeToString(p.Bytes()) == tc.hex; got != tc.canonical {
			t.Errorf("%s: canonical = %v", tc.name, got)
		}
		if tc.smallOrder {
			small[hex.EncodeToString(p.Bytes())] = true
		}
	}
	if len(small) != 8 {
		t.Errorf("the fixtures name %d distinct small-order points, want all 8", len(small))
	}
}

// A degenerate Ed25519 key is skipped with a warning-worthy reason; a good Ed25519 key beside
// it is kept.
func TestParseSetSkipsDegenerateEd25519Keys(t *testing.T) {
	ks := keys(t)
	good := jwkJSON(t, ks["ed"].public, nil)
	for _, tc := range degenerateEd25519 {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := hex.DecodeString(tc.hex)
			bad := jwkJSON(t, ks["ed"].public, map[string]any{"kid": "bad", "x": b64(x)})
			kept, skipped, err := parseSet(setJSON(t, bad, good), testAlgorithms())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(kidsOf(keysOf(kept)), ","); got != "ed" {
				t.Errorf("kept kids = %q, want ed", got)
			}
			want := `keys[0] (kid "bad"): invalid OKP key: ` + tc.reason
			if len(skipped) != 1 || skipped[0].String() != want || !skipped[0].notable {
				t.Fatalf("skipped = %+v\nwant %s (notable)", skipped, want)
			}
		})
	}
}
