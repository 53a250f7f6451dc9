package token

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portcullis-authz/portcullis/reason"
)

// The payload is read as written (payload.go) rather than decoded into a map. These targets
// hold it to what decoding the whole payload with encoding/json gave before: the same payloads
// accepted, the same value for every claim, path, role list and scope list, and the same
// registered claims and refusals. The map-based readers are the reference.

// payloadSeeds are claims objects of the shapes tokens carry, and the ones that used to trip
// decoders.
var payloadSeeds = []string{
	`{"iss":"https://sso.example.com/realms/demo","sub":"u","aud":["orders-api","account"],"exp":1800000300,"iat":1.8e9,"nbf":0}`,
	`{"realm_access":{"roles":["user","","x",1]},"resource_access":{"orders-api":{"roles":["writer"]},"account":{"roles":"no"},"x":3},"scope":"openid  email"}`,
	`{"scp":["a","b"],"kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"sa"}},"kubernetes.io.namespace":null}`,
	`{"a":{"b":{"c":[1,{"d":null}]}},"a.b":true,"e":"\u00e9\ud800\n","\u0069ss":"x"}`,
	`{"iss":1,"aud":null,"exp":"1"}`,
	`{"x":1e999}`,
	`{"x":-0.0e-400,"y":[],"z":{}}`,
	"{\"\xff\":1,\"\xfe\":2}",
	"{\"s\":\"\xff\"}",
	`{"a":1,"a":2}`,
	`{"iss":"i","aud":[1]}`,
	`{"iss":"i","exp":-1}`,
	`{"iss":"i","sub":{"x":1}}`,
	`[]`,
	`{"a":"\x"}`,
}

// FuzzPayload compares scanPayload and the readers of payload.go with checkJSONObject plus
// json.Unmarshal into a map and the map-based readers.
func FuzzPayload(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	paths := []ClaimPath{}
	for _, n := range []string{"a", "a.b", "a.b.c", "iss", "realm_access.roles", "resource_access", "kubernetes.io.namespace", "kubernetes.io.serviceaccount.name", "e", "x.y"} {
		p, err := CompileClaimPath(n)
		if err != nil {
			f.Fatal(err)
		}
		paths = append(paths, p)
	}
	roleSets := [][]ClaimPath{paths[4:6], paths[:3], paths[6:8]}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]any
		before := checkJSONObject(b) == nil && json.Unmarshal(b, &m) == nil
		var buf [topMembers]member
		p, err := scanPayload(b, &buf)
		if after := err == nil; after != before {
			// Stricter on one point: two names that differ only in invalid UTF-8, which both
			// decode to U+FFFD, are duplicates (encoding/json kept the last silently).
			if before && err == errDuplicate && !utf8.Valid(b) {
				return
			}
			t.Fatalf("%q: accepted before %t, now %t (%v)", b, before, after, err)
		}
		if err != nil {
			return
		}
		if len(p.members) != len(m) {
			t.Fatalf("%q: %d members, the map has %d", b, len(p.members), len(m))
		}
		for _, mb := range p.members {
			want, ok := m[string(mb.name)]
			if !ok {
				t.Fatalf("%q: member %q is not in the map", b, mb.name)
			}
			if got := decodeAny(mb.raw); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: member %q decodes to %#v, json to %#v", b, mb.name, got, want)
			}
		}
		for _, path := range paths {
			want, wok := path.Lookup(m)
			raw, gok := path.lookupRaw(&p)
			if gok != wok || gok && !reflect.DeepEqual(decodeAny(raw), want) {
				t.Fatalf("%q: path %s finds %t %s, Lookup %t %#v", b, path, gok, raw, wok, want)
			}
		}
		for _, set := range roleSets {
			if got, want := rolesFromPayload(&p, set), rolesFrom(m, set); !slices.Equal(got, want) {
				t.Fatalf("%q: roles %q, the map gives %q", b, got, want)
			}
		}
		if got, want := scopesFromPayload(&p), scopesFrom(m); !slices.Equal(got, want) {
			t.Fatalf("%q: scopes %q, the map gives %q", b, got, want)
		}
		got := claims{p: p}
		gerr := got.readRegistered()
		want := mapClaims{all: m}
		werr := want.readRegistered()
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Detail != werr.Detail {
			t.Fatalf("%q: registered claims refused with %v, the map with %v", b, gerr, werr)
		}
		if gerr == nil && (got.iss != want.iss || got.sub != want.sub || got.azp != want.azp || got.typ != want.typ || got.hasTyp != want.hasTyp ||
			!slices.Equal(got.aud, want.aud) || !got.exp.Equal(want.exp) || !got.nbf.Equal(want.nbf) || !got.iat.Equal(want.iat) ||
			got.hasExp != want.hasExp || got.hasNbf != want.hasNbf || got.hasIat != want.hasIat) {
			t.Fatalf("%q: registered claims %+v, the map gives %+v", b, got, want)
		}
	})
}

// mapClaims is the reader of the registered claims as it was on a decoded map: the reference
// of FuzzPayload.
type mapClaims struct {
	all                    map[string]any
	iss, sub, azp, typ     string
	aud                    []string
	exp, nbf, iat          time.Time
	hasExp, hasNbf, hasIat bool
	hasTyp                 bool
}

func (c *mapClaims) readRegistered() *Error {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &c.iss}, {"sub", &c.sub}, {"azp", &c.azp}, {"typ", &c.typ}} {
		v, ok := c.all[f.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return refuse(reason.InvalidToken, "the %s claim is not a string", f.name)
		}
		*f.dst = s
	}
	_, c.hasTyp = c.all["typ"]
	if c.iss == "" {
		return refuse(reason.InvalidToken, "the iss claim is missing")
	}
	switch a := c.all["aud"].(type) {
	case nil:
	case string:
		c.aud = []string{a}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return refuse(reason.InvalidToken, "the aud claim holds a non-string value")
			}
			c.aud = append(c.aud, s)
		}
	default:
		return refuse(reason.InvalidToken, "the aud claim is neither a string nor an array of strings")
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
		has  *bool
	}{{"exp", &c.exp, &c.hasExp}, {"nbf", &c.nbf, &c.hasNbf}, {"iat", &c.iat, &c.hasIat}} {
		v, ok := c.all[f.name]
		if !ok {
			continue
		}
		n, ok := v.(float64)
		if !ok || math.IsNaN(n) || math.IsInf(n, 0) || n < 0 || n > 1e11 {
			return refuse(reason.InvalidToken, "the %s claim is not a valid NumericDate", f.name)
		}
		sec, frac := math.Modf(n)
		*f.dst, *f.has = time.Unix(int64(sec), int64(frac*1e9)), true
	}
	return nil
}

// FuzzDecodeHeader compares decodeHeader with checkJSONObject plus json.Unmarshal into the
// header struct, which parseCompact used before.
func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{`{"alg":"RS256","typ":"JWT","kid":"k"}`, `{"alg":"RS256","ALG":"none"}`, `{"Alg":"ES256","KID":null,"b64":false}`,
		`{"alg":1}`, `{"crit":["b64"],"CRIT":[null]}`, `{"crit":[]}`, `{"crit":null,"b64":null}`, `{"b64":"x"}`, `{"\u212aid":"kelvin"}`,
		`{"typ":"\u0041T+JWT","x":1e999}`, `{"crit":[1]}`, `{"alg":"a","alg":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want header
		werr := checkJSONObject(b)
		if werr == nil {
			werr = json.Unmarshal(b, &want)
		}
		var got header
		gerr := decodeHeader(b, &got)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: decodeHeader error %v, json %v", b, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decodeHeader %+v, json %+v", b, got, want)
		}
	})
}

// rolesFrom merges the roles found at each path (looked up as ClaimPath documents). A list of
// strings gives plain role names; an object of clients each holding a `roles` list (Keycloak's
// resource_access) gives "<client>:<role>". The result is sorted and free of duplicates.
// It is the map-based reader the payload's readers replaced: FuzzPayload holds
// rolesFromPayload to its answers.
func rolesFrom(claims map[string]any, paths []ClaimPath) []string {
	var roles []string
	for _, p := range paths {
		v, ok := p.Lookup(claims)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case []any:
			roles = appendStrings(roles, "", v)
		case string:
			roles = append(roles, strings.Fields(v)...)
		case map[string]any:
			for client, entry := range v {
				if e, ok := entry.(map[string]any); ok {
					if list, ok := e["roles"].([]any); ok {
						roles = appendStrings(roles, client+":", list)
					}
				}
			}
		}
	}
	return sortedUnique(roles)
}

func appendStrings(dst []string, prefix string, list []any) []string {
	for _, x := range list {
		if s, ok := x.(string); ok && s != "" {
			dst = append(dst, prefix+s)
		}
	}
	return dst
}

// scopesFrom is scopesFromPayload on decoded claims: the reference FuzzPayload holds it to.
func scopesFrom(claims map[string]any) []string {
	for _, name := range scopeClaims {
		switch v := claims[name].(type) {
		case string:
			return strings.Fields(v)
		case []any:
			return appendStrings(nil, "", v)
		}
	}
	return nil
}
