package token

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/portcullis-authz/portcullis/reason"
)

// This file diagnoses what people actually paste and send: a token with its authorization
// scheme still in front, a refresh or ID token where an access token belongs, an iss spelled
// differently from the configured issuer. The diagnoses only set Error.Hint: the reason and
// detail of a refusal never depend on them.

// explain adds a hint to a refusal of raw when the token's shape says what went wrong.
func (v *Verifier) explain(raw string, err error) {
	te, ok := err.(*Error)
	if !ok || te.Reason == reason.Unavailable || te.Reason == reason.UnknownIssuer {
		return
	}
	if h := schemeHint(raw); h != "" {
		te.Hint = h
		return
	}
	c, perr := parseCompact(raw)
	if perr != nil {
		return
	}
	var all map[string]any
	if json.Unmarshal(c.payload, &all) != nil {
		return
	}
	if h := shapeHint(&c.header, all); h != "" {
		te.Hint = h
	}
}

// schemeHint recognises a token given with the scheme of its Authorization header in front
// ("Bearer eyJ…", "DPoP eyJ…", or the whole "Authorization: Bearer eyJ…" line).
func schemeHint(raw string) string {
	rest := raw
	if name, after, ok := strings.Cut(rest, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "authorization") {
		rest = strings.TrimSpace(after)
	}
	scheme, tok, ok := strings.Cut(rest, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "dpop") {
		return ""
	}
	if _, err := parseCompact(strings.TrimSpace(tok)); err != nil {
		return ""
	}
	what := fmt.Sprintf("the scheme %q", scheme)
	if rest != raw {
		what = "a whole Authorization header"
	}
	return fmt.Sprintf("the token begins with %s: pass the token alone, without it (the Authorization header carries the scheme once, before the token)", what)
}

// shapeHint recognises tokens that are not access tokens by the claims their issuers give
// them: Keycloak's refresh and offline tokens (typ Refresh or Offline, signed with the realm's
// own HS* secret), and OpenID Connect ID tokens (typ ID in Keycloak; at_hash or c_hash, or a
// nonce with aud naming just the client, anywhere: OpenID Connect Core §2, §3.1.3.6).
func shapeHint(h *header, all map[string]any) string {
	const useAccess = "send the access_token of the token response instead"
	typ, _ := all["typ"].(string)
	secret := ""
	if strings.HasPrefix(strings.ToUpper(h.Alg), "HS") {
		secret = fmt.Sprintf(", signed %s with the identity provider's own secret", h.Alg)
	}
	switch {
	case strings.EqualFold(typ, "Refresh"):
		return fmt.Sprintf("this is a refresh token (typ %q%s): it is for the identity provider's token endpoint, never for APIs; %s", typ, secret, useAccess)
	case strings.EqualFold(typ, "Offline"):
		return fmt.Sprintf("this is an offline token, a long-lived refresh token (typ %q%s): it is for the identity provider's token endpoint, never for APIs; %s", typ, secret, useAccess)
	}
	var sign string
	switch {
	case strings.EqualFold(typ, "ID"):
		sign = fmt.Sprintf("typ %q", typ)
	case all["at_hash"] != nil:
		sign = "it carries at_hash"
	case all["c_hash"] != nil:
		sign = "it carries c_hash"
	case all["nonce"] != nil && all["azp"] != nil && slices.Equal(audOf(all), []string{fmt.Sprint(all["azp"])}):
		sign = "it carries a nonce and is addressed to its client alone"
	default:
		return ""
	}
	aud := ""
	if a := audOf(all); len(a) > 0 {
		aud = fmt.Sprintf(" (aud %q)", strings.Join(a, " "))
	}
	if !strings.EqualFold(typ, "ID") {
		// A sign, not a proof: Dex, for one, puts at_hash in its access tokens too.
		return fmt.Sprintf("this may be an OpenID Connect ID token (%s): an ID token tells the client%s who signed in and is not meant for APIs; if it is the id_token of the token response, %s", sign, aud, useAccess)
	}
	return fmt.Sprintf("this is an OpenID Connect ID token (%s): it tells the client%s who signed in and is not meant for APIs; %s", sign, aud, useAccess)
}

func audOf(all map[string]any) []string {
	switch a := all["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// issuerHint explains an iss that no issuer is configured for: the configured issuer it misses
// only by spelling (host, scheme, port, trailing slash, letter case), if any, and the configured
// issuers when there are several. configured holds every spelling (issuers, aliases,
// templates).
func issuerHint(iss string, configured []string) string {
	configured = slices.Sorted(slices.Values(configured))
	list := ""
	if len(configured) > 1 {
		const most = 10
		quoted := make([]string, 0, most)
		for i, name := range configured {
			if i == most {
				quoted = append(quoted, fmt.Sprintf("and %d more", len(configured)-most))
				break
			}
			quoted = append(quoted, fmt.Sprintf("%q", name))
		}
		list = "configured issuers: " + strings.Join(quoted, ", ")
	}
	for _, name := range configured {
		if d := spellingDifference(iss, withTenantOf(iss, name)); d != "" {
			h := fmt.Sprintf("token iss is %s but the configured issuer is %s: they differ only in %s, and issuers are compared exactly; "+
				"configure the issuer as the token spells it, or get tokens from the identity provider at the configured URL (Keycloak writes the URL it was reached at into iss)", iss, name, d)
			if list != "" {
				h += "; " + list
			}
			return h
		}
	}
	switch {
	case list != "":
		return list + " (the token's iss must equal one of them exactly)"
	case len(configured) == 1:
		return fmt.Sprintf("the configured issuer is %s (the token's iss must equal it exactly)", configured[0])
	}
	return ""
}

// withTenantOf fills the tenant placeholder of a template spelling with the path segment of iss
// in the same place, so that the spellings can be compared; other names are returned as they
// are.
func withTenantOf(iss, name string) string {
	prefix, suffix, ok := strings.Cut(name, TenantPlaceholder)
	if !ok {
		return name
	}
	segments := strings.Split(iss, "/")
	at := strings.Count(prefix, "/")
	if at >= len(segments) || segments[at] == "" {
		return name
	}
	return prefix + segments[at] + suffix
}

// spellingDifference names how iss and name differ when both name the same issuer URL spelt
// differently — the host (letter case, or localhost, 127.0.0.1 and ::1 for the same machine),
// the scheme, the port, a trailing slash or the path's letter case — and is "" when they differ
// in more (or are equal).
func spellingDifference(iss, name string) string {
	if iss == name {
		return ""
	}
	a, errA := url.Parse(iss)
	b, errB := url.Parse(name)
	if errA != nil || errB != nil || a.Host == "" || b.Host == "" || a.Opaque != "" || b.Opaque != "" {
		switch {
		case strings.TrimSuffix(iss, "/") == strings.TrimSuffix(name, "/"):
			return "the trailing slash"
		case strings.EqualFold(iss, name):
			return "letter case"
		}
		return ""
	}
	if a.User.String() != b.User.String() || a.RawQuery != b.RawQuery || a.Fragment != b.Fragment {
		return ""
	}
	var diffs []string
	if a.Scheme != b.Scheme { // url.Parse lowers the scheme's letters
		diffs = append(diffs, fmt.Sprintf("the scheme (%s, %s)", a.Scheme, b.Scheme))
	}
	ha, hb := a.Hostname(), b.Hostname()
	switch {
	case ha == hb:
	case strings.EqualFold(ha, hb):
		diffs = append(diffs, "the letter case of the host")
	case loopback(ha) && loopback(hb):
		diffs = append(diffs, fmt.Sprintf("the host's spelling (%s, %s: the same machine, two names)", ha, hb))
	default:
		return ""
	}
	if pa, pb := a.Port(), b.Port(); pa != pb {
		switch {
		case portOf(a) == portOf(b):
			diffs = append(diffs, fmt.Sprintf("the port (%s written out in one)", portOf(a)))
		default:
			diffs = append(diffs, fmt.Sprintf("the port (%s, %s)", portOf(a), portOf(b)))
		}
	}
	if pa, pb := a.EscapedPath(), b.EscapedPath(); pa != pb {
		ta, tb := strings.TrimSuffix(pa, "/"), strings.TrimSuffix(pb, "/")
		switch {
		case ta == tb:
			diffs = append(diffs, "the trailing slash")
		case strings.EqualFold(pa, pb):
			diffs = append(diffs, "the letter case of the path")
		case strings.EqualFold(ta, tb):
			diffs = append(diffs, "the trailing slash", "the letter case of the path")
		default:
			return ""
		}
	}
	switch len(diffs) {
	case 0: // only the scheme's letter case, which url.Parse does not keep
		if strings.EqualFold(iss, name) {
			return "letter case"
		}
		return ""
	case 1:
		return diffs[0]
	}
	return strings.Join(diffs[:len(diffs)-1], ", ") + " and " + diffs[len(diffs)-1]
}

// loopback reports whether host names this machine: localhost or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// portOf is u's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return "(none)"
}
