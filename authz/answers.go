package authz

import (
	"slices"
	"strconv"
	"strings"

	"github.com/portcullis-authz/portcullis/reason"
)

// allow builds an allow: the identity headers of ci set upstream and every other identity
// header removed (all of them for an anonymous allow, ci nil), and with forward_token: false the
// token cut out of the upstream request. The header lists of a cached identity are shared: they
// are copied before anything is added.
func (e *Engine) allow(code reason.Code, ci *identity, r *Request) *Decision {
	d := &Decision{Allow: true, Status: 200, Reason: code}
	if ci == nil {
		d.UpstreamRemove = e.removeAll
	} else {
		d.Identity, d.roles, d.Upstream, d.UpstreamRemove = ci.id, ci.roles, ci.upstream, ci.remove
	}
	if !e.forwardToken {
		d.Upstream, d.UpstreamRemove = slices.Clone(d.Upstream), slices.Clone(d.UpstreamRemove)
		e.stripToken(d, r.Headers)
	}
	return d
}

// realm is the realm of every Bearer challenge (RFC 6750 §3).
const realm = `Bearer realm="portcullis"`

// deny builds the deny answer of code from its row of the reason table (package reason): the
// status, the JSON body, and the answer headers content-type and, as the row's challenge says,
// WWW-Authenticate. scopes are the missing scopes an insufficient_scope challenge names. A code
// that is not the reason of a deny is a programming mistake: it is answered as forbidden, so the
// mistake fails closed and the metric label stays in the fixed set.
func (e *Engine) deny(code reason.Code, scopes []string) *Decision {
	a, ok := reason.Of(code)
	if !ok || a.Allow() {
		a, _ = reason.Of(reason.Forbidden)
	}
	d := &Decision{Status: a.Status, Reason: a.Code, Body: denyBody(a.Error, a.Description)}
	d.Answer = append(make([]Header, 0, 2), Header{"content-type", "application/json"})
	switch a.Challenge {
	case reason.ChallengeBare:
		d.Answer = append(d.Answer, Header{"www-authenticate", realm})
	case reason.ChallengeInvalidToken:
		d.Answer = append(d.Answer, Header{"www-authenticate", realm + `, error="invalid_token", error_description="` + a.Description + `"`})
	case reason.ChallengeInvalidDPoPProof:
		// Completed with algs and the Bearer challenge by senderChallenge.
		d.Answer = append(d.Answer, Header{"www-authenticate", `DPoP error="invalid_dpop_proof", error_description="` + a.Description + `"`})
	case reason.ChallengeInsufficientScope:
		v := realm + `, error="insufficient_scope", error_description="` + a.Description + `"`
		if len(scopes) > 0 {
			v += `, scope="` + strings.Join(scopes, " ") + `"`
		}
		d.Answer = append(d.Answer, Header{"www-authenticate", v})
	}
	return d
}

// denyBody renders {"error": ..., "error_description": ...}; both are fixed strings of the
// reason table, so no escaping of user data is ever needed.
func denyBody(code, description string) []byte {
	return []byte(`{"error":` + strconv.Quote(code) + `,"error_description":` + strconv.Quote(description) + `}`)
}
