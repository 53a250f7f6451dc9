package authz

import (
	"context"
	"crypto"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// switchableKeys publishes the development issuer's public keys until they are withdrawn.
type switchableKeys struct {
	mu      sync.Mutex
	keys    []jwks.Key
	lookups int
}

func (s *switchableKeys) Lookup(_ context.Context, kid string, alg jwa.SignatureAlgorithm) ([]jwks.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	for _, k := range s.keys {
		if k.KID == kid && jwks.KeyFits(k.JWK, alg) {
			return []jwks.Key{k}, nil
		}
	}
	return nil, jwks.ErrUnknownKey
}

func (s *switchableKeys) Contains(tp string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Thumbprint == tp {
			return true
		}
	}
	return false
}

func (s *switchableKeys) withdraw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
}

func publicKeys(t *testing.T, idp *devidp.IdP) []jwks.Key {
	t.Helper()
	set, err := jwk.Parse(idp.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var out []jwks.Key
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		var raw any
		if err := k.Raw(&raw); err != nil {
			t.Fatal(err)
		}
		tp, _ := k.Thumbprint(crypto.SHA256)
		key, err := jwks.NewKey(k.KeyID(), base64.RawURLEncoding.EncodeToString(tp), raw, k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, key)
	}
	return out
}

// TestTokenCache: a repeated token is served from the cache; it is not served once expired
// or once its signing key is withdrawn; refused tokens are never cached; rules always run.
func TestTokenCache(t *testing.T) {
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(benchIssuer)
	keys := &switchableKeys{keys: publicKeys(t, idp)}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v, err := token.NewVerifier(token.Options{Issuers: []token.IssuerConfig{{Issuer: benchIssuer, Keys: keys, Algorithms: []string{"RS256"},
		Leeway: time.Second, RolesClaims: claimPaths(t, "realm_access.roles"), TokenTypes: []string{"Bearer"}}}, MaxBytes: 8192, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile([]rules.Spec{
		{Name: "admin", Match: rules.MatchSpec{Paths: []string{"/admin"}}, Require: rules.RequireSpec{AnyRoles: []string{"admin"}}},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var hits, misses int
	e := NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub"}), ForwardToken: true, CacheSize: 10,
		CacheLookups: func(hit bool) {
			if hit {
				hits++
			} else {
				misses++
			}
		}})
	tok, err := idp.MintAt(jwa.RS256, devidp.Claims{"sub": "u1", "typ": "Bearer", "realm_access": map[string]any{"roles": []string{"user"}}}, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	decide := func(path, tok string) *Decision {
		return e.Decide(context.Background(), &Request{Method: "GET", Host: "h", Path: path, Headers: map[string]string{"authorization": "Bearer " + tok}})
	}
	for i := 0; i < 3; i++ {
		if d := decide("/api/x", tok); !d.Allow || d.Upstream[0] != (Header{"x-user-id", "u1"}) {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	if hits != 2 || misses != 1 || keys.lookups != 1 {
		t.Errorf("hits %d misses %d key lookups %d; want 2 1 1", hits, misses, keys.lookups)
	}
	if d := decide("/admin", tok); d.Allow || d.Reason != reason.Forbidden {
		t.Errorf("rules must run on a cached identity: %s", d.Reason)
	}
	mu.Lock()
	now = now.Add(62 * time.Second)
	mu.Unlock()
	if d := decide("/api/x", tok); d.Reason != reason.Expired {
		t.Errorf("after expiry: %s", d.Reason)
	}
	mu.Lock()
	now = now.Add(-62 * time.Second)
	mu.Unlock()
	if d := decide("/api/x", tok); !d.Allow {
		t.Fatalf("re-verified: %s", d.Reason)
	}
	keys.withdraw()
	if d := decide("/api/x", tok); d.Reason != reason.UnknownKey {
		t.Errorf("after the key left the set: %s", d.Reason)
	}
	before := misses
	for i := 0; i < 2; i++ {
		decide("/api/x", "garbage.token.here")
	}
	if misses != before+2 {
		t.Errorf("a refused token was cached: misses %d -> %d", before, misses)
	}
}

// TestTokenCacheConcurrentHits: many goroutines deciding with the same cached token and with
// tokens of their own at once (run with -race) all get the same allow, and the token is
// verified once.
func TestTokenCacheConcurrentHits(t *testing.T) {
	e, idp := benchEngine(t, 100)
	shared := benchRequest(keycloakLike(t, idp, jwa.RS256))
	ctx := context.Background()
	first := e.Decide(ctx, shared)
	if !first.Allow {
		t.Fatalf("denied: %s %s", first.Reason, first.Detail)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 8; g++ {
		own := benchRequest(keycloakLikeSub(t, idp, jwa.RS256, "user-"+string(rune('a'+g))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				req := shared
				if i%4 == 0 {
					req = own
				}
				d := e.Decide(ctx, req)
				if !d.Allow {
					errs <- string(d.Reason) + ": " + d.Detail
					return
				}
				if req == shared && d.Identity != first.Identity {
					errs <- "the shared token was verified again"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
