// Package token verifies bearer tokens: it parses a compact JWS strictly, routes it to its issuer by
// its `iss` (an issuer's exact spelling, an alias, or a {tenantid} template), checks the
// signature with a key from that issuer's published set (never one named by the token), and
// validates the claims of an OAuth 2.0 access token (RFC 7519, RFC 8725,
// RFC 9068). It knows nothing of rules, gRPC or HTTP.
package token

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
)

// KeySet gives the verification keys an issuer publishes for a key id and algorithm, and says
// whether a key is still published (so cached identities die with their key).
// *jwks.Cache implements it; tests use a fake.
type KeySet interface {
	Lookup(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]jwks.Key, error)
	// Contains reports whether the key with this RFC 7638 thumbprint is still published.
	Contains(thumbprint string) bool
}

var _ KeySet = (*jwks.Cache)(nil)

// IssuerConfig is what the verifier needs to know of one issuer.
type IssuerConfig struct {
	// Issuer is the `iss` of its tokens, or a template holding TenantPlaceholder as one path
	// segment (Entra ID's multi-tenant issuers): a token is routed to a template when its iss
	// matches with a tenant id in that place.
	Issuer string
	// Aliases are other spellings of iss accepted for the same issuer and keys (Google's
	// "accounts.google.com", Entra's v1 issuer beside its v2 one). The aliases of a template are
	// templates too.
	Aliases []string
	// Tenants are the tenants a template accepts; AnyTenant accepts every tenant instead.
	// Either way the tenant in iss must equal the token's `tid` claim.
	Tenants   []string
	AnyTenant bool
	Keys      KeySet
	Audiences []string // any-of; empty = not checked
	// AudienceClaims name, in order, the claims that may carry the audience: the first present
	// is the audience (AWS Cognito's access tokens carry client_id, not aud). Empty = [aud].
	AudienceClaims    []string
	AuthorizedParties []string // allow-list for the authorized party; empty = not checked
	// AuthorizedPartyClaims name, in order, the claims that may carry the authorized party (Entra
	// v1 tokens carry appid where v2 tokens carry azp). Empty = [azp].
	AuthorizedPartyClaims []string
	Algorithms            []string // allow-list
	Leeway                time.Duration
	RolesClaims           []ClaimPath // the claims whose roles are merged (roles_claims)
	TokenTypes            []string    // accepted typ values (claim or header), compared case-insensitively
}

// TenantPlaceholder marks the tenant's place in a template issuer (IssuerConfig.Issuer).
const TenantPlaceholder = "{tenantid}"

// IsTemplate reports whether an issuer (or alias) spelling is a tenant template.
func IsTemplate(iss string) bool { return strings.Contains(iss, TenantPlaceholder) }

type issuer struct {
	IssuerConfig
	algs        map[string]jwa.SignatureAlgorithm
	audClaims   []string
	partyClaims []string
}

// template is one spelling of a template issuer, split around its TenantPlaceholder.
type template struct {
	prefix, suffix string
	is             *issuer
}

// match returns the tenant when iss is this template with a tenant in its place: a non-empty
// string without "/".
func (t template) match(iss string) (string, bool) {
	if len(iss) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(iss, t.prefix) || !strings.HasSuffix(iss, t.suffix) {
		return "", false
	}
	tenant := iss[len(t.prefix) : len(iss)-len(t.suffix)]
	if strings.ContainsAny(tenant, "/?#") {
		return "", false
	}
	return tenant, true
}

// Verifier verifies tokens of a fixed set of issuers. It is safe for concurrent use.
type Verifier struct {
	issuers   map[string]*issuer // by exact spelling: issuers and their aliases
	templates []template         // in configuration order
	maxBytes  int
	now       func() time.Time
	keep      map[string]bool
	payload   bool // keep the payload in Identity.Payload
}

// Options configure a Verifier.
type Options struct {
	Issuers  []IssuerConfig
	MaxBytes int              // tokens larger than this are refused unread
	Now      func() time.Time // the clock; nil = time.Now
	// KeepClaims, when not nil, are the paths anything reads from Identity.Claims after
	// verification (rules' claim requirements, identity headers). An Identity keeps just the
	// top-level claims these paths may read (ClaimPath.TopLevel), so that a cached identity stays
	// small and still answers every one of them; the others are dropped once roles and scopes are
	// read. Non-nil and empty keeps no claim.
	KeepClaims []ClaimPath
	// KeepPayload keeps the whole verified payload in Identity.Payload (an identity header
	// carrying "payload" reads it).
	KeepPayload bool
}

// supportedAlgorithms are the JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) Portcullis verifies,
// in the order docs and messages list them. HMAC and "none" are absent on purpose: Portcullis
// verifies only with an issuer's published public keys, never with a shared secret.
var supportedAlgorithms = [...]jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// SupportedAlgorithms lists the JWS algorithms a Verifier accepts in IssuerConfig.Algorithms.
// It is also the default allow-list of an issuer that names none (DefaultAlgorithms).
func SupportedAlgorithms() []string {
	names := make([]string, len(supportedAlgorithms))
	for i, a := range supportedAlgorithms {
		names[i] = a.String()
	}
	return names
}

// DefaultAlgorithms is the allow-list of an issuer whose configuration names none: every
// supported algorithm.
func DefaultAlgorithms() []string { return SupportedAlgorithms() }

// KeyAlgorithms converts algorithm names to the jwa values a key set is asked for (jwks.Options.Algorithms).
func KeyAlgorithms(names []string) []jwa.SignatureAlgorithm {
	algs := make([]jwa.SignatureAlgorithm, len(names))
	for i, a := range names {
		algs[i] = jwa.SignatureAlgorithm(a)
	}
	return algs
}

// verifiers are the stateless signature verifiers, one per supported algorithm, built once:
// jwx's, but for RSASSA-PSS, whose salt length jwx does not check (see pssVerifier), and for
// RSASSA-PKCS1-v1_5, which verifies with the key set's prepared RSA keys (pkcs1Verifier).
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := make(map[jwa.SignatureAlgorithm]jws.Verifier, len(supportedAlgorithms))
	for _, a := range supportedAlgorithms {
		switch a {
		case jwa.RS256:
			m[a] = pkcs1Verifier{crypto.SHA256}
		case jwa.RS384:
			m[a] = pkcs1Verifier{crypto.SHA384}
		case jwa.RS512:
			m[a] = pkcs1Verifier{crypto.SHA512}
		case jwa.PS256:
			m[a] = pssVerifier{crypto.SHA256}
		case jwa.PS384:
			m[a] = pssVerifier{crypto.SHA384}
		case jwa.PS512:
			m[a] = pssVerifier{crypto.SHA512}
		default:
			v, err := jws.NewVerifier(a)
			if err != nil {
				panic(fmt.Sprintf("token: jwx has no verifier for %s: %v", a, err))
			}
			m[a] = v
		}
	}
	return m
}()

// NewVerifier builds a verifier.
func NewVerifier(o Options) (*Verifier, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{issuers: make(map[string]*issuer, len(o.Issuers)), maxBytes: o.MaxBytes, now: now, payload: o.KeepPayload}
	if o.KeepClaims != nil {
		v.keep = make(map[string]bool, len(o.KeepClaims))
		for _, p := range o.KeepClaims {
			for _, name := range p.TopLevel() {
				v.keep[name] = true
			}
		}
	}
	for _, ic := range o.Issuers {
		is := &issuer{IssuerConfig: ic, algs: map[string]jwa.SignatureAlgorithm{}}
		for _, a := range ic.Algorithms {
			alg := jwa.SignatureAlgorithm(a)
			if _, ok := verifiers[alg]; !ok {
				return nil, fmt.Errorf("token: issuer %s: algorithm %q is not supported", ic.Issuer, a)
			}
			is.algs[a] = alg
		}
		if ic.Keys == nil {
			return nil, fmt.Errorf("token: issuer %s has no key set", ic.Issuer)
		}
		is.audClaims, is.partyClaims = ic.AudienceClaims, ic.AuthorizedPartyClaims
		if len(is.audClaims) == 0 {
			is.audClaims = []string{"aud"}
		}
		if len(is.partyClaims) == 0 {
			is.partyClaims = []string{"azp"}
		}
		for _, spelling := range append([]string{ic.Issuer}, ic.Aliases...) {
			if IsTemplate(ic.Issuer) != IsTemplate(spelling) {
				return nil, fmt.Errorf("token: issuer %s: alias %s is not a template like its issuer", ic.Issuer, spelling)
			}
			if !IsTemplate(spelling) {
				v.issuers[spelling] = is
				continue
			}
			prefix, suffix, _ := strings.Cut(spelling, TenantPlaceholder)
			if strings.Contains(suffix, TenantPlaceholder) {
				return nil, fmt.Errorf("token: issuer %s: %s holds %s twice", ic.Issuer, spelling, TenantPlaceholder)
			}
			v.templates = append(v.templates, template{prefix: prefix, suffix: suffix, is: is})
		}
	}
	return v, nil
}

// route finds the issuer of an iss: an exact spelling first, then the templates in
// configuration order. tenant is the tenant in iss when a template matched, "" otherwise.
func (v *Verifier) route(iss string) (is *issuer, tenant string, ok bool) {
	if is, ok := v.issuers[iss]; ok {
		return is, "", true
	}
	for _, t := range v.templates {
		if tenant, ok := t.match(iss); ok {
			return t.is, tenant, true
		}
	}
	return nil, "", false
}

// Verify checks a raw bearer token and returns the identity it proves. Every failure is an
// *Error with a Reason; nothing but a fully verified token yields an Identity.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if len(raw) > v.maxBytes {
		return nil, refuse(reason.InvalidToken, "token is %d bytes, more than tokens.max_bytes (%d)", len(raw), v.maxBytes)
	}
	id, err := v.verify(ctx, raw)
	if err != nil {
		v.explain(raw, err) // hints.go
	}
	return id, err
}

// Fresh reports whether an identity verified earlier is still good now: within exp and nbf
// (with leeway) and signed by a key its issuer still publishes. A cache of verified tokens
// calls it on every hit.
func (v *Verifier) Fresh(id *Identity) bool {
	is, tenant, ok := v.route(id.Issuer)
	if !ok || tenant != id.Tenant || (tenant != "" && !is.tenantAllowed(tenant)) {
		return false
	}
	now := v.now()
	if now.After(id.ExpiresAt.Add(is.Leeway)) {
		return false
	}
	if !id.NotBefore.IsZero() && id.NotBefore.After(now.Add(is.Leeway)) {
		return false
	}
	return is.Keys.Contains(id.KeyThumbprint)
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, error) {
	c, terr := parseCompact(raw)
	if terr != nil {
		return nil, terr
	}
	alg := c.header.Alg
	if alg == "" || strings.EqualFold(alg, "none") {
		return nil, refuse(reason.InvalidToken, "unsigned token (alg %q)", alg)
	}
	// The payload is read before the signature is checked only to choose the issuer; nothing in
	// it is trusted until the signature verifies with that issuer's key.
	var members [topMembers]member // the top-level claims; a Keycloak token has about twenty
	var cl claims
	var err error
	if cl.p, err = scanPayload(c.payload, &members); err != nil {
		if errors.Is(err, errNumber) { // as decoding the claims into a map refused it
			return nil, refuse(reason.InvalidToken, "claims are not valid JSON")
		}
		return nil, refuse(reason.InvalidToken, "claims: %v", err)
	}
	if terr := cl.readRegistered(); terr != nil {
		return nil, terr
	}
	is, tenant, ok := v.route(cl.iss)
	if !ok {
		return nil, v.unknownIssuer(cl.iss)
	}
	if tenant != "" && !is.tenantAllowed(tenant) {
		return nil, refuse(reason.UnknownIssuer, "tenant %q is not among the tenants of issuer %s", tenant, is.Issuer)
	}
	jalg, ok := is.algs[alg]
	if !ok {
		return nil, refuse(reason.InvalidToken, "algorithm %q is not allowed for this issuer (allowed: %s)", alg, strings.Join(is.Algorithms, " "))
	}
	keys, err := is.Keys.Lookup(ctx, c.header.Kid, jalg)
	switch {
	case errors.Is(err, jwks.ErrNotLoaded):
		return nil, &Error{Reason: reason.Unavailable, Detail: "the keys of issuer " + is.Issuer + " have never been loaded", Err: err}
	case errors.Is(err, jwks.ErrUnknownKey):
		return nil, &Error{Reason: reason.UnknownKey, Detail: fmt.Sprintf("kid %q is not in the key set of %s", c.header.Kid, is.Issuer), Err: err}
	case err != nil:
		return nil, &Error{Reason: reason.Unavailable, Detail: "key lookup failed: " + err.Error(), Err: err}
	case len(keys) == 0:
		return nil, refuse(reason.UnknownKey, "no key of %s fits algorithm %s", is.Issuer, alg)
	}
	verifier := verifiers[jalg]
	var used *jwks.Key
	// The verifiers only read the signing input: the token's own bytes are not copied.
	input := unsafe.Slice(unsafe.StringData(c.signingInput), len(c.signingInput))
	for i := range keys {
		if verifier.Verify(input, c.signature, keys[i].Verifying()) == nil {
			used = &keys[i]
			break
		}
	}
	if used == nil {
		return nil, refuse(reason.BadSignature, "signature does not verify with the %s key of %s", alg, is.Issuer)
	}
	if terr := is.checkTenant(&cl, tenant); terr != nil {
		return nil, terr
	}
	if terr := is.checkClaims(&cl, &c.header, v.now()); terr != nil {
		return nil, terr
	}
	cnf, terr := readConfirmation(&cl.p)
	if terr != nil {
		return nil, terr
	}
	id := is.identity(&cl, used.Thumbprint, v.keep)
	id.Tenant, id.Confirmation = tenant, cnf
	if v.payload {
		id.Payload = base64.RawURLEncoding.EncodeToString(c.payload)
	}
	return id, nil
}

func (v *Verifier) unknownIssuer(iss string) *Error {
	e := refuse(reason.UnknownIssuer, "issuer %q is not configured", iss)
	names := make([]string, 0, len(v.issuers)+len(v.templates))
	for name := range v.issuers {
		names = append(names, name)
	}
	for _, t := range v.templates {
		names = append(names, t.prefix+TenantPlaceholder+t.suffix)
	}
	e.Hint = issuerHint(iss, names) // hints.go
	return e
}

// tenantAllowed reports whether a template accepts a tenant.
func (is *issuer) tenantAllowed(tenant string) bool {
	return is.AnyTenant || slices.Contains(is.Tenants, tenant)
}

// checkTenant holds the tenant in the iss of a template (tenant != "") to the token's signed
// `tid` claim. A template's keys are shared by all its tenants (Entra ID's common keys), so
// the signature alone does not say which tenant issued the token: without this check any
// tenant's token could claim the iss of another.
func (is *issuer) checkTenant(cl *claims, tenant string) *Error {
	if tenant == "" {
		return nil
	}
	tid, ok := cl.p.str("tid")
	switch {
	case !ok:
		return refuse(reason.InvalidToken, "the tid claim is missing or not a string; a token of the template issuer %s must carry its tenant in tid", is.Issuer)
	case tid != tenant:
		return refuse(reason.InvalidToken, "tid %q differs from the tenant %q in iss", tid, tenant)
	}
	return nil
}

// audience returns the audience of a token: the value of the first of the issuer's
// audience_claims the token carries, and that claim's name ("" when it carries none).
func (is *issuer) audience(cl *claims) (string, []string, *Error) {
	for _, name := range is.audClaims {
		if name == "aud" {
			if cl.p.has("aud") {
				return name, cl.aud, nil // read and type-checked with the registered claims
			}
			continue
		}
		raw, ok := cl.p.get(name)
		if !ok {
			continue
		}
		switch raw[0] {
		case '"':
			return name, []string{decodeString(raw)}, nil
		case '[':
			var out []string
			it := newArrayIter(raw)
			for x, ok := it.next(); ok; x, ok = it.next() {
				if x[0] != '"' {
					return "", nil, refuse(reason.InvalidToken, "the %s claim holds a non-string value", name)
				}
				out = append(out, decodeString(x))
			}
			return name, out, nil
		}
		return "", nil, refuse(reason.InvalidToken, "the %s claim is neither a string nor an array of strings", name)
	}
	return "", nil, nil
}

// authorizedParty returns the value of the first of the issuer's authorized_party_claims the
// token carries, and that claim's name ("" when it carries none).
func (is *issuer) authorizedParty(cl *claims) (string, string, *Error) {
	for _, name := range is.partyClaims {
		raw, ok := cl.p.get(name)
		if !ok {
			continue
		}
		if raw[0] != '"' {
			return "", "", refuse(reason.InvalidToken, "the %s claim is not a string", name)
		}
		return name, decodeString(raw), nil
	}
	return "", "", nil
}

// checkClaims validates time, audience, authorized party and token type.
func (is *issuer) checkClaims(cl *claims, h *header, now time.Time) *Error {
	if !cl.hasExp {
		return refuse(reason.InvalidToken, "the exp claim is missing; access tokens must expire")
	}
	if exp := cl.exp; now.After(exp.Add(is.Leeway)) {
		return refuse(reason.Expired, "expired %s ago", now.Sub(exp).Truncate(time.Second))
	}
	const skewHint = "the identity provider's clock is ahead of this machine's: check NTP on both (leeway covers small skews)"
	if cl.hasNbf && cl.nbf.After(now.Add(is.Leeway)) {
		e := refuse(reason.InvalidToken, "not valid before %s (%s from now; leeway %s)", cl.nbf.UTC().Format(time.RFC3339), cl.nbf.Sub(now).Truncate(time.Second), is.Leeway)
		e.Hint = skewHint
		return e
	}
	if cl.hasIat && cl.iat.After(now.Add(is.Leeway)) {
		e := refuse(reason.InvalidToken, "issued in the future (iat %s from now)", cl.iat.Sub(now).Truncate(time.Second))
		e.Hint = skewHint
		return e
	}
	if len(is.Audiences) > 0 {
		name, aud, terr := is.audience(cl)
		if terr != nil {
			return terr
		}
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(is.Audiences, a) }) {
			var e *Error
			if name == "" && len(is.audClaims) > 1 {
				e = refuse(reason.WrongAudience, "none of the audience claims (%s) is present; expected one of %q", strings.Join(is.audClaims, ", "), is.Audiences)
			} else {
				if name == "" {
					name = is.audClaims[0]
				}
				e = refuse(reason.WrongAudience, "%s is %q; expected one of %q", name, aud, is.Audiences)
			}
			if name == "aud" && (slices.Equal(aud, []string{"account"}) || len(aud) == 0) {
				e.Hint = fmt.Sprintf("add an audience mapper for %s in Keycloak so its access tokens carry it in aud", is.Audiences[0])
			}
			return e
		}
	}
	if len(is.AuthorizedParties) > 0 {
		name, party, terr := is.authorizedParty(cl)
		if terr != nil {
			return terr
		}
		if name == "" {
			name = is.partyClaims[0]
		}
		if !slices.Contains(is.AuthorizedParties, party) {
			return refuse(reason.InvalidToken, "%s %q is not an authorized party (%q)", name, party, is.AuthorizedParties)
		}
	}
	if use, ok := cl.p.str("token_use"); ok && !strings.EqualFold(use, "access") {
		// AWS Cognito names its token kinds in token_use; its ID tokens carry the client id in
		// aud, which audience_claims [aud, client_id] would accept.
		return refuse(reason.InvalidToken, "token type %q (token_use claim) is not accepted as an access token", use)
	}
	if h.Typ != "" && !strings.EqualFold(h.Typ, "JWT") && !is.typeAccepted(strings.TrimPrefix(strings.ToLower(h.Typ), "application/")) {
		return refuse(reason.InvalidToken, "token type %q (header typ) is not accepted as an access token", h.Typ)
	}
	if cl.hasTyp && !is.typeAccepted(cl.typ) && !dpopTyped(cl) {
		return refuse(reason.InvalidToken, "token type %q (typ claim) is not accepted as an access token", cl.typ)
	}
	return nil
}

func (is *issuer) typeAccepted(typ string) bool {
	for _, t := range is.TokenTypes {
		if strings.EqualFold(t, typ) {
			return true
		}
	}
	return false
}

// numericDate converts a JSON NumericDate (RFC 7519 §2), as written, refusing other types,
// negative, non-finite and absurd values.
func numericDate(raw []byte) (time.Time, bool) {
	switch raw[0] {
	case '"', '{', '[', 't', 'f', 'n':
		return time.Time{}, false
	}
	f, err := parseNumber(raw)
	if err != nil {
		return time.Time{}, false
	}
	return NumericDate(f)
}

// NumericDate converts a NumericDate's number (RFC 7519 §2: seconds since the epoch, possibly
// fractional), refusing negative, non-finite and absurd values (past the year 5138). Every
// reader of a NumericDate (token claims, introspection answers) goes through it.
func NumericDate(f float64) (time.Time, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
