package authz

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
)

// TestDryRunKeepsTheWholeDecision: a dry-run rule's decision is served as an allow, and the
// decision the rule made is kept whole in DryRun: field for field (reflect.DeepEqual over the
// whole struct) what the same rule without dry_run decides, so a field added to Decision can
// never be dropped on the way. The allow served carries the token's identity headers (with
// forward_token: false the token removed) and the reason the rule decided for.
func TestDryRunKeepsTheWholeDecision(t *testing.T) {
	v, idp := benchVerifier(t)
	tok := keycloakLike(t, idp, "RS256")
	specs := func(dryRun bool) []rules.Spec {
		return []rules.Spec{
			{Name: "reports", Match: rules.MatchSpec{Paths: []string{"/api/reports/**"}}, Require: rules.RequireSpec{Scopes: []string{"reports:read"}}, DryRun: dryRun},
			{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}, Require: rules.RequireSpec{AnyRoles: []string{"user"}}, DryRun: dryRun},
		}
	}
	engine := func(dryRun bool) *Engine {
		set, err := rules.Compile(specs(dryRun))
		if err != nil {
			t.Fatal(err)
		}
		return NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
			IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub", "x-user-email": "email", "x-user-tier": "tier"}),
			ForwardToken:    false, CacheSize: 16})
	}
	dry, enforcing := engine(true), engine(false)
	ctx := context.Background()
	req := func(path, auth string) *Request {
		h := map[string]string{}
		if auth != "" {
			h["authorization"] = auth
		}
		return &Request{Method: "GET", Host: "api.example.com", Path: path, Headers: h}
	}
	const sub = "6f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b"
	cases := []struct {
		name     string
		r        *Request
		reason   reason.Code
		upstream string // fmt of the allow's Upstream
		remove   string // fmt of the allow's UpstreamRemove
		sub      string
	}{
		{"would deny: unmet requirements", req("/api/reports/q1", "Bearer "+tok), reason.InsufficientScope,
			"[{x-user-email alice@example.com} {x-user-id " + sub + "}]", "[x-user-tier authorization]", sub},
		{"would deny: no token", req("/api/reports/q1", ""), reason.NoToken,
			"[]", "[x-user-email x-user-id x-user-tier]", ""},
		{"would deny: invalid token", req("/api/reports/q1", "Bearer not-a-jwt"), reason.InvalidToken,
			"[]", "[x-user-email x-user-id x-user-tier authorization]", ""},
		{"would allow", req("/api/orders/1", "Bearer "+tok), reason.OK,
			"[{x-user-email alice@example.com} {x-user-id " + sub + "}]", "[x-user-tier authorization]", sub},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := dry.Decide(ctx, c.r)
			want := enforcing.Decide(ctx, c.r)
			if d.DryRun == nil {
				t.Fatal("DryRun is nil on a dry-run rule's decision")
			}
			if !reflect.DeepEqual(*d.DryRun, *want) {
				t.Errorf("the rule's decision, kept:\n got %+v\nwant %+v", *d.DryRun, *want)
			}
			if d.Evaluated() != d.DryRun || want.Evaluated() != want {
				t.Error("Evaluated is not the rule's decision")
			}
			gotSub := ""
			if d.Identity != nil {
				gotSub = d.Identity.Subject
			}
			if !d.Allow || d.Status != 200 || d.Reason != c.reason || d.Rule != want.Rule || gotSub != c.sub ||
				fmt.Sprint(d.Upstream) != c.upstream || fmt.Sprint(d.UpstreamRemove) != c.remove || d.Answer != nil || d.Body != nil {
				t.Errorf("served: allow %v status %d reason %s rule %s sub %q upstream %v remove %v answer %v body %s",
					d.Allow, d.Status, d.Reason, d.Rule, gotSub, d.Upstream, d.UpstreamRemove, d.Answer, d.Body)
			}
		})
	}
}
