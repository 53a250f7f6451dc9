package authz

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/reason"
)

// TestDPoPAuthorityNotHost: an authority (the :authority, or X-Forwarded-Host with
// dpop.forwarded_origin) that holds a character which ends an authority in a URI (/ ? # \ @,
// spaces, controls) is no host: the htu cannot be checked and the proof is refused. Otherwise
// "api.example.com?" would make every path's URI read as https://api.example.com/, and
// "api.example.com/v2" would move part of the path into the authority, so a proof for one URL
// would pass for another.
func TestDPoPAuthorityNotHost(t *testing.T) {
	key := newProofKey(t)
	cases := []struct {
		name, host, xfh, htu string
		forwarded            bool
	}{
		{"query in the authority", "api.example.com?", "", "https://api.example.com/", false},
		{"fragment in the authority", "api.example.com#", "", "https://api.example.com/", false},
		{"path in the authority", "api.example.com/v2", "", "https://api.example.com/v2/api/orders/42", false},
		{"path in X-Forwarded-Host", "orders.internal", "api.example.com/v2", "https://api.example.com/v2/api/orders/42", true},
		{"backslash in the authority", `api.example.com\`, "", `https://api.example.com\/api/orders/42`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, idp := senderEngine(t, SenderOptions{ForwardedOrigin: c.forwarded}, true)
			bound := keycloakLikeClaims(t, idp, jwa.RS256, map[string]any{"cnf": map[string]any{"jkt": key.jkt}})
			h := map[string]string{"authorization": "DPoP " + bound, "dpop": key.proof(t, "GET", c.htu, bound, senderNow)}
			if c.xfh != "" {
				h["x-forwarded-host"] = c.xfh
			}
			d := e.Decide(context.Background(), &Request{Method: "GET", Host: c.host, Scheme: "https", Path: "/api/orders/42", Headers: h})
			want := "the request's authority is not a host[:port], so htu cannot be checked"
			if d.Status != 401 || d.Reason != reason.InvalidDPoPProof || d.Detail != want {
				t.Errorf("got %d %s %q\nwant 401 invalid_dpop_proof %q", d.Status, d.Reason, d.Detail, want)
			}
		})
	}
}
