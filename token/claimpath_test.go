package token

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// claimPaths compiles claim paths for a test.
func claimPaths(t testing.TB, names ...string) []ClaimPath {
	t.Helper()
	out := make([]ClaimPath, len(names))
	for i, n := range names {
		p, err := CompileClaimPath(n)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// lookupClaims holds every shape a path meets: names with dots, nested objects, arrays, scalars
// midway, null, and keys that make a dotted name ambiguous.
func lookupClaims() map[string]any {
	return map[string]any{
		"sub":                       "u1",
		"https://example.com/tier":  "gold",
		"https://example.com/roles": []any{"admin", "auditor"},
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "web", "uid": "0b6e"},
		},
		"realm_access": map[string]any{"roles": []any{"user"}},
		"groups":       []any{"g1", map[string]any{"name": "nested-in-array"}},
		"email":        "a@example.com",
		"x.y.z":        "whole name",
		"x":            map[string]any{"y": map[string]any{"z": "nested"}},
		"a":            map[string]any{"b.c": "a / b.c", "b": map[string]any{"c": "a / b / c"}},
		"a.b":          map[string]any{"c": "a.b / c", "e": "a.b / e"},
		"nothing":      nil,
		"n":            map[string]any{"x": nil},
	}
}

// TestClaimPathLookup: the whole name first, then each dot in turn from the left, each cut looked
// up inside the object by the same order; arrays and scalars are never entered.
func TestClaimPathLookup(t *testing.T) {
	cases := []struct {
		path string
		want string // fmt.Sprint of the value, or "absent"
	}{
		{"sub", "u1"},
		{"https://example.com/tier", "gold"},             // a top-level name with dots (Auth0)
		{"https://example.com/roles", "[admin auditor]"}, // an array is a value
		{"kubernetes.io.namespace", "shop"},              // "kubernetes" absent, "kubernetes.io" an object
		{"kubernetes.io.serviceaccount.name", "web"},
		{"kubernetes.io", "map[namespace:shop serviceaccount:map[name:web uid:0b6e]]"},
		{"realm_access.roles", "[user]"},
		{"missing", "absent"},
		{"realm_access.missing", "absent"},
		{"kubernetes.io.namespace.more", "absent"},
		{"email.domain", "absent"}, // a scalar midway
		{"groups.0", "absent"},     // arrays are not entered by index...
		{"groups.name", "absent"},  // ...nor by their elements' members
		{"x.y.z", "whole name"},    // the whole name wins over the nested path
		{"x.y", "map[z:nested]"},   // x.y is not a key: x, then y
		{"a.b.c", "a / b.c"},       // first dot first; inside a, the whole rest "b.c" first
		{"a.b.e", "a.b / e"},       // a holds no b.e: back out, then a.b, then e
		{"a.b.f", "absent"},        // no cut finds it
		{"nothing", "<nil>"},       // null is a value
		{"n.x", "<nil>"},           // also when nested
		{"sub.x", "absent"},        // a string is not an object
		{"https://example.com/tier.x", "absent"},
	}
	claims := lookupClaims()
	for _, c := range cases {
		p, err := CompileClaimPath(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		got := "absent"
		if v, ok := p.Lookup(claims); ok {
			got = fmt.Sprint(v)
		}
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.path, got, c.want)
		}
	}
	var zero ClaimPath
	if v, ok := zero.Lookup(map[string]any{"": "empty key"}); ok {
		t.Errorf("the zero path found %v", v)
	}
	if v, ok := claimPaths(t, "a.b")[0].Lookup(nil); ok {
		t.Errorf("nil claims gave %v", v)
	}
}

func TestCompileClaimPath(t *testing.T) {
	for _, bad := range []string{"", ".", ".sub", "sub.", "realm_access..roles", "https://example.com/tier."} {
		_, err := CompileClaimPath(bad)
		want := fmt.Sprintf("%q is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)", bad)
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %s", bad, err, want)
		}
	}
	for _, good := range []string{"sub", "a.b", "https://example.com/tier", "kubernetes.io.namespace", " spaced "} {
		p, err := CompileClaimPath(good)
		if err != nil || p.String() != good {
			t.Errorf("%q: %v, %q", good, err, p.String())
		}
	}
}

func TestClaimPathTopLevel(t *testing.T) {
	for path, want := range map[string]string{
		"sub":                      "sub",
		"realm_access.roles":       "realm_access.roles realm_access",
		"https://example.com/tier": "https://example.com/tier https://example",
		"kubernetes.io.namespace":  "kubernetes.io.namespace kubernetes kubernetes.io",
	} {
		if got := strings.Join(claimPaths(t, path)[0].TopLevel(), " "); got != want {
			t.Errorf("%s: TopLevel = %s, want %s", path, got, want)
		}
	}
	if got := (ClaimPath{}).TopLevel(); got != nil {
		t.Errorf("the zero path reads %v", got)
	}
}

// TestClaimPathLookupAllocates: looking a claim up allocates nothing, whatever the outcome.
func TestClaimPathLookupAllocates(t *testing.T) {
	claims := lookupClaims()
	paths := claimPaths(t, "sub", "a.b.e", "kubernetes.io.serviceaccount.name", "missing.x.y")
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			p.Lookup(claims)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestCompileAttribute(t *testing.T) {
	for name, want := range map[string]Field{"roles": FieldRoles, "scopes": FieldScopes, "sub": FieldSubject, "iss": FieldIssuer, "payload": FieldPayload, "email": FieldClaim, "https://example.com/tier": FieldClaim} {
		a, err := CompileAttribute(name)
		if err != nil || a.Field() != want || a.String() != name {
			t.Errorf("%s: %v, field %d, %q", name, err, a.Field(), a.String())
		}
		if path := a.Path().String(); (want == FieldClaim) != (path == name) || (want != FieldClaim && path != "") {
			t.Errorf("%s: path %q", name, path)
		}
	}
	if _, err := CompileAttribute("a..b"); err == nil || err.Error() != `"a..b" is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)` {
		t.Errorf("a..b: %v", err)
	}
}

// TestRolesClaimsAddressedLikeRules: roles_claims use the same claim paths as the rules, so an
// Auth0 namespaced claim ("https://example.com/roles") is read whole and a Kubernetes one is
// found inside its "kubernetes.io" object.
func TestRolesClaimsAddressedLikeRules(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, func(ic *IssuerConfig) {
		ic.RolesClaims = claimPaths(t, "https://example.com/roles", "kubernetes.io.groups", "realm_access.roles")
	})
	tok := sign(t, rsHeader("rsa-1"), f.claims(map[string]any{
		"https://example.com/roles": []string{"admin", "auditor"},
		"kubernetes.io":             map[string]any{"groups": []string{"system:serviceaccounts"}},
	}), "RS256", f.rsaKey)
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(id.Roles, ","); got != "admin,auditor,system:serviceaccounts,user" {
		t.Errorf("roles = %s", got)
	}
}

// TestKeepClaimsByPath: an identity keeps the top-level claims its paths may read, and nothing
// else; every path answers from the kept claims as from the whole token.
func TestKeepClaimsByPath(t *testing.T) {
	f := newFixture(t)
	keep := claimPaths(t, "https://example.com/tier", "kubernetes.io.namespace", "realm_access.roles", "email")
	v, err := NewVerifier(Options{Issuers: []IssuerConfig{{Issuer: issA, Keys: f.keysA, Algorithms: []string{"RS256"}, TokenTypes: []string{"Bearer"}}},
		MaxBytes: 4096, Now: func() time.Time { return f.now }, KeepClaims: keep})
	if err != nil {
		t.Fatal(err)
	}
	all := f.claims(map[string]any{
		"https://example.com/tier": "gold",
		"kubernetes.io":            map[string]any{"namespace": "shop"},
		"unrelated":                "dropped",
	})
	id, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), all, "RS256", f.rsaKey))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for name := range id.Claims {
		kept = append(kept, name)
	}
	slices.Sort(kept)
	if got := strings.Join(kept, " "); got != "https://example.com/tier kubernetes.io realm_access" {
		t.Errorf("kept %s", got)
	}
	for _, p := range keep[:3] {
		if _, ok := p.Lookup(id.Claims); !ok {
			t.Errorf("%s is not found in the kept claims", p)
		}
	}
	v, err = NewVerifier(Options{Issuers: []IssuerConfig{{Issuer: issA, Keys: f.keysA, Algorithms: []string{"RS256"}, TokenTypes: []string{"Bearer"}}},
		MaxBytes: 4096, Now: func() time.Time { return f.now }, KeepClaims: []ClaimPath{}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err = v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), all, "RS256", f.rsaKey)); err != nil || len(id.Claims) != 0 {
		t.Errorf("no path keeps no claim: %v %v", err, id.Claims)
	}
}

// referenceLookup is Lookup written another way: every way of cutting the name at its dots,
// tried in Lookup's order, each walked strictly segment by segment. At each step the whole rest
// comes before any cut, and shorter cuts before longer ones.
func referenceLookup(claims map[string]any, name string) (any, bool) {
	for _, segs := range segmentations(name) {
		var cur any = claims
		ok := true
		for _, s := range segs {
			m, isMap := cur.(map[string]any)
			if !isMap {
				ok = false
				break
			}
			if cur, ok = m[s]; !ok {
				break
			}
		}
		if ok {
			return cur, true
		}
	}
	return nil, false
}

// segmentations lists the ways of cutting name at its dots, in Lookup's order.
func segmentations(name string) [][]string {
	out := [][]string{{name}}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		for _, rest := range segmentations(name[i+1:]) {
			out = append(out, append([]string{name[:i]}, rest...))
		}
	}
	return out
}

// FuzzClaimPath checks Lookup against referenceLookup, and that claims reduced to TopLevel
// give the same answer as the whole claims (what a cached identity relies on).
func FuzzClaimPath(f *testing.F) {
	doc, err := json.Marshal(lookupClaims())
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"sub", "a.b.c", "a.b.e", "x.y.z", "kubernetes.io.serviceaccount.name", "groups.0", "email.domain", "https://example.com/tier"} {
		f.Add(name, doc)
	}
	f.Add("a.b.c.d", []byte(`{"a":{"b":{"c.d":1},"b.c":{"d":2}},"a.b":{"c":{"d":3}}}`))
	f.Fuzz(func(t *testing.T, name string, doc []byte) {
		p, err := CompileClaimPath(name)
		if err != nil || strings.Count(name, ".") > 12 {
			return
		}
		var claims map[string]any
		if json.Unmarshal(doc, &claims) != nil {
			return
		}
		got, found := p.Lookup(claims)
		want, wantFound := referenceLookup(claims, name)
		if found != wantFound || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: Lookup = %v %v, reference %v %v", name, got, found, want, wantFound)
		}
		kept := map[string]any{}
		for _, top := range p.TopLevel() {
			if v, ok := claims[top]; ok {
				kept[top] = v
			}
		}
		fromKept, keptFound := p.Lookup(kept)
		if keptFound != found || !reflect.DeepEqual(fromKept, got) {
			t.Fatalf("%q: kept claims give %v %v, the whole claims %v %v", name, fromKept, keptFound, got, found)
		}
	})
}
