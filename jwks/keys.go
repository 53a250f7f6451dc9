package jwks

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"filippo.io/edwards25519"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/portcullis-authz/portcullis/internal/rsakey"
)

// Key is one verification key of an issuer, converted once when the set is loaded so that
// verifying a token converts nothing.
type Key struct {
	// KID is the key's `kid` (RFC 7517 §4.5); "" when the issuer publishes none.
	KID string
	// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url without padding). It
	// names the key material itself, whatever its kid; see Cache.Contains.
	Thumbprint string
	// Public is the raw public key for jws.WithKey or a jws.Verifier: *rsa.PublicKey,
	// *ecdsa.PublicKey (checked to be on its curve) or ed25519.PublicKey.
	Public any
	// RSA is Public prepared once for RSASSA-PKCS1-v1_5 verification when it is an RSA key
	// (its Montgomery modulus kept; see internal/rsakey), nil otherwise.
	RSA *rsakey.Public
	// JWK is the published key (public members only).
	JWK jwk.Key
}

// Size bounds of the RSA keys the cache accepts. Smaller keys are too weak to trust (RFC 7518
// §3.3 asks for 2048 bits); larger ones only make verification slow.
const (
	minRSABits = 2048
	maxRSABits = rsakey.MaxBits
)

// KeyFits reports whether a published key may verify a JWS signed with alg:
//   - RS256/384/512 and PS256/384/512 need kty RSA with a modulus of at least 2048 bits;
//   - ES256, ES384, ES512 need kty EC on P-256, P-384, P-521 respectively;
//   - EdDSA needs kty OKP on Ed25519;
//   - HS*, "none" and every other algorithm fit no key (no symmetric key is ever used);
//   - a key naming an `alg` fits that algorithm only (RFC 7517 §4.4);
//   - a key whose `use` is not "sig" (for example "enc"), or whose `key_ops` lack "verify",
//     fits nothing (RFC 7517 §4.2, §4.3).
//
// KeyFits looks at the key's metadata and type only; the cache also checks the material
// itself (an EC point on its curve, a sane RSA exponent, an Ed25519 point of large order in
// its canonical encoding) before it uses a key.
func KeyFits(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if k == nil {
		return false
	}
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return false
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return false
	}
	if named := k.Algorithm().String(); named != "" && named != alg.String() {
		return false
	}
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return k.KeyType() == jwa.RSA && rsaBits(k) >= minRSABits
	case jwa.ES256:
		return curveOf(k, jwa.EC) == jwa.P256
	case jwa.ES384:
		return curveOf(k, jwa.EC) == jwa.P384
	case jwa.ES512:
		return curveOf(k, jwa.EC) == jwa.P521
	case jwa.EdDSA:
		return curveOf(k, jwa.OKP) == jwa.Ed25519
	}
	return false
}

// rsaBits is the modulus length of an RSA key, 0 for other keys.
func rsaBits(k jwk.Key) int {
	if r, ok := k.(interface{ N() []byte }); ok && k.KeyType() == jwa.RSA {
		return new(big.Int).SetBytes(r.N()).BitLen()
	}
	return 0
}

// curveOf returns the `crv` of an EC or OKP key of type kty, "" otherwise.
func curveOf(k jwk.Key, kty jwa.KeyType) jwa.EllipticCurveAlgorithm {
	type curved interface {
		Crv() jwa.EllipticCurveAlgorithm
	}
	if c, ok := k.(curved); ok && k.KeyType() == kty {
		return c.Crv()
	}
	return ""
}

// parsedKey is a usable key and the allowed algorithms it fits.
type parsedKey struct {
	Key
	algs []jwa.SignatureAlgorithm
}

// skippedKey says why a published key is not used. Notable skips (weak, private, broken or
// symmetric keys, duplicates) deserve a warning; routine ones (encryption keys, algorithms
// not allowed here) do not.
type skippedKey struct {
	index   int
	kid     string
	reason  string
	notable bool
}

func (s skippedKey) String() string {
	name := fmt.Sprintf("keys[%d]", s.index)
	if s.kid != "" {
		name += fmt.Sprintf(" (kid %q)", s.kid)
	}
	return name + ": " + s.reason
}

// ErrNoUsableKeys is wrapped by ParseSet (and a Cache) when a JWK Set holds no key the cache can
// use: it is empty, or every key was skipped.
var ErrNoUsableKeys = errors.New("no usable keys")

// parseSet parses a JWK Set document (RFC 7517 §5) and keeps the keys that fit at least one of
// algs. A key that cannot be used is skipped, not an error: one odd key must not take the
// others down. The document is an error when it is not a JWK Set or nothing usable remains.
// Among keys sharing a kid, the first that fits an algorithm keeps it.
func parseSet(doc []byte, algs []jwa.SignatureAlgorithm) ([]parsedKey, []skippedKey, error) {
	algs = uniqueAlgs(algs)
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`not a JWK Set: no "keys" array`)
	}
	if len(*set.Keys) == 0 {
		return nil, nil, fmt.Errorf("%w: the key set is empty", ErrNoUsableKeys)
	}
	var (
		kept    []parsedKey
		skipped []skippedKey
		taken   = map[[2]string]bool{} // {kid, alg} already served by an earlier key
	)
	for i, raw := range *set.Keys {
		pk, skip := parseOne(raw, algs)
		if skip != nil {
			skip.index = i
			skipped = append(skipped, *skip)
			continue
		}
		if pk.KID != "" {
			pk.algs = slices.DeleteFunc(pk.algs, func(a jwa.SignatureAlgorithm) bool {
				return taken[[2]string{pk.KID, string(a)}]
			})
			if len(pk.algs) == 0 {
				skipped = append(skipped, skippedKey{index: i, kid: pk.KID, notable: true,
					reason: "duplicate kid; the earlier key with this kid is used"})
				continue
			}
			for _, a := range pk.algs {
				taken[[2]string{pk.KID, string(a)}] = true
			}
		}
		kept = append(kept, *pk)
	}
	if len(kept) == 0 {
		reasons := make([]string, len(skipped))
		for i, s := range skipped {
			reasons[i] = s.String()
		}
		return nil, skipped, fmt.Errorf("%w among %d published (allowed algorithms %s): %s",
			ErrNoUsableKeys, len(*set.Keys), algList(algs), strings.Join(reasons, "; "))
	}
	return kept, skipped, nil
}

// Set is a parsed JWK Set: the usable keys of a document for a list of algorithms and the keys
// skipped, as a Cache keeps a fetched one. It is immutable; Options.StaticSet serves it.
type Set struct {
	snap    *snapshot
	skipped []skippedKey
}

// ParseSet parses a JWK Set document (RFC 7517 §5) as a Cache parses a fetched one: keys that fit
// none of algs, or cannot be used, are skipped (a Cache serving the set logs why). It is an
// error when the document is not a JWK Set or no key in it is usable (ErrNoUsableKeys).
func ParseSet(doc []byte, algs []jwa.SignatureAlgorithm) (*Set, error) {
	kept, skipped, err := parseSet(doc, algs)
	if err != nil {
		return nil, err
	}
	return &Set{snap: newSnapshot(kept), skipped: skipped}, nil
}

// Len is the number of usable keys in the set.
func (s *Set) Len() int { return len(s.snap.keys) }

// uniqueAlgs is algs without repetitions, in their order.
func uniqueAlgs(algs []jwa.SignatureAlgorithm) []jwa.SignatureAlgorithm {
	out := make([]jwa.SignatureAlgorithm, 0, len(algs))
	for _, a := range algs {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// parseOne turns one member of "keys" into a usable key, or says why it is skipped.
func parseOne(raw json.RawMessage, algs []jwa.SignatureAlgorithm) (*parsedKey, *skippedKey) {
	var hint struct {
		Kty any `json:"kty"`
		Kid any `json:"kid"`
		D   any `json:"d"`
	}
	if err := json.Unmarshal(raw, &hint); err != nil {
		return nil, &skippedKey{reason: "not a JSON object", notable: true}
	}
	kid, _ := hint.Kid.(string)
	skip := func(notable bool, format string, args ...any) (*parsedKey, *skippedKey) {
		return nil, &skippedKey{kid: kid, reason: fmt.Sprintf(format, args...), notable: notable}
	}
	kty, _ := hint.Kty.(string)
	switch jwa.KeyType(kty) {
	case jwa.RSA, jwa.EC, jwa.OKP:
	case jwa.OctetSeq:
		return skip(true, "symmetric key (kty oct) published in a key set; never used")
	default:
		return skip(true, "unsupported key type %q", kty)
	}
	if hint.D != nil {
		// A published private key can sign anything: the issuer's key is compromised.
		return skip(true, "the key carries private material (\"d\"); never used, and the issuer should rotate it")
	}
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return skip(true, "unparsable %s key: %v", kty, err)
	}
	var fits []jwa.SignatureAlgorithm
	for _, a := range algs {
		if KeyFits(k, a) {
			fits = append(fits, a)
		}
	}
	if len(fits) == 0 {
		notable, format, args := whyUnfit(k)
		return skip(notable, format, args...)
	}
	public, err := material(k)
	if err != nil {
		return skip(true, "invalid %s key: %v", kty, err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return skip(true, "no thumbprint: %v", err)
	}
	published, err := publicOnly(k, public)
	if err != nil {
		return skip(true, "invalid %s key: %v", kty, err)
	}
	key, err := NewKey(k.KeyID(), base64.RawURLEncoding.EncodeToString(tp), public, published)
	if err != nil {
		return skip(true, "invalid %s key: %v", kty, err)
	}
	return &parsedKey{Key: key, algs: fits}, nil
}

// NewKey makes a Key of checked material (an RSA key is prepared for verification).
func NewKey(kid, thumbprint string, public any, published jwk.Key) (Key, error) {
	key := Key{KID: kid, Thumbprint: thumbprint, Public: public, JWK: published}
	if pub, ok := public.(*rsa.PublicKey); ok {
		var err error
		if key.RSA, err = rsakey.New(pub); err != nil {
			return Key{}, err
		}
	}
	return key, nil
}

// Verifying is the form of the key the signature verifiers take: RSA when the key set
// prepared it, Public otherwise.
func (k *Key) Verifying() any {
	if k.RSA != nil {
		return k.RSA
	}
	return k.Public
}

// publicOnly rebuilds k from its public material with the members a key set needs again (kid,
// alg, use, key_ops), so that whatever else the issuer published beside them (private CRT
// parameters without "d", unknown members) is never kept or persisted.
func publicOnly(k jwk.Key, public any) (jwk.Key, error) {
	out, err := jwk.FromRaw(public)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{jwk.KeyIDKey, jwk.AlgorithmKey, jwk.KeyUsageKey, jwk.KeyOpsKey} {
		if v, ok := k.Get(name); ok {
			if err := out.Set(name, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// whyUnfit explains why a key fits none of the allowed algorithms, and whether that deserves
// a warning: encryption keys and keys for algorithms not allowed here are routine (Keycloak
// publishes an RSA-OAEP encryption key beside its signing keys), weak keys are not.
func whyUnfit(k jwk.Key) (notable bool, format string, args []any) {
	switch {
	case k.KeyUsage() != "" && k.KeyUsage() != string(jwk.ForSignature):
		return false, "use %q is not sig", []any{k.KeyUsage()}
	case len(k.KeyOps()) > 0 && !slices.Contains(k.KeyOps(), jwk.KeyOpVerify):
		return false, "key_ops %v lack verify", []any{k.KeyOps()}
	case k.KeyType() == jwa.RSA && rsaBits(k) < minRSABits:
		return true, "RSA key of %d bits; at least %d are required", []any{rsaBits(k), minRSABits}
	}
	desc := string(k.KeyType())
	if crv := curveOf(k, k.KeyType()); crv != "" {
		desc += " " + crv.String()
	}
	if a := k.Algorithm().String(); a != "" {
		desc += " alg " + a
	}
	return false, "%s key fits none of the allowed algorithms", []any{desc}
}

// material converts a public JWK to the raw key the verifiers take, checking what jwx leaves
// unchecked: the RSA exponent and parity, the length of EC coordinates and that the point is on
// the curve, the length of an Ed25519 key and that it is a canonical point of large order.
func material(k jwk.Key) (any, error) {
	switch k := k.(type) {
	case jwk.RSAPublicKey:
		n := new(big.Int).SetBytes(k.N())
		if bits := n.BitLen(); bits > maxRSABits {
			return nil, fmt.Errorf("modulus of %d bits exceeds %d", bits, maxRSABits)
		}
		if n.Bit(0) == 0 {
			return nil, errors.New("even modulus")
		}
		e := new(big.Int).SetBytes(k.E())
		if e.BitLen() > 31 || e.Int64() < 3 || e.Bit(0) == 0 {
			return nil, errors.New("exponent out of range")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case jwk.ECDSAPublicKey:
		var curve elliptic.Curve
		switch k.Crv() {
		case jwa.P256:
			curve = elliptic.P256()
		case jwa.P384:
			curve = elliptic.P384()
		case jwa.P521:
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q", k.Crv())
		}
		size := (curve.Params().BitSize + 7) / 8
		x, y := k.X(), k.Y()
		if len(x) > size || len(y) > size {
			return nil, errors.New("coordinate longer than the curve")
		}
		// Uncompressed SEC 1 point; coordinates shorter than the field are left-padded.
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(x):1+size], x)
		copy(point[1+2*size-len(y):], y)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, errors.New("point is not on the curve")
		}
		return pub, nil
	case jwk.OKPPublicKey:
		if k.Crv() != jwa.Ed25519 {
			return nil, fmt.Errorf("curve %q", k.Crv())
		}
		if len(k.X()) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes", len(k.X()))
		}
		if err := checkEd25519(k.X()); err != nil {
			return nil, err
		}
		return ed25519.PublicKey(bytes.Clone(k.X())), nil
	}
	return nil, fmt.Errorf("unsupported key %T", k)
}

// checkEd25519 refuses the 32-byte Ed25519 public keys (RFC 8032 §5.1.2) that crypto/ed25519
// would use but nobody should trust:
//   - an encoding that is no point of the curve;
//   - a point of small order (8·A is the identity): the all-zero and identity encodings and the
//     other points of the 8-torsion subgroup, in any spelling. For such a key [k]A is one of 8
//     points whatever the message, so signatures verify without any private key (with A the
//     identity, R = [s]B and S = s verify for every message);
//   - a non-canonical encoding (y >= p, or x = 0 with the sign bit set), which no key generator
//     produces and implementations decode differently.
func checkEd25519(x []byte) error {
	p, err := new(edwards25519.Point).SetBytes(x) // accepts non-canonical encodings
	if err != nil {
		return errors.New("Ed25519 key is not a point on the curve")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errors.New("Ed25519 key is a point of small order; anyone can forge signatures for it")
	}
	if !bytes.Equal(p.Bytes(), x) {
		return errors.New("Ed25519 key is not canonically encoded (y >= p, or x = 0 with the sign bit set)")
	}
	return nil
}

func algList(algs []jwa.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = a.String()
	}
	return strings.Join(names, " ")
}
