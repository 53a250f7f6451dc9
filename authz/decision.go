package authz

import (
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/token"
)

// Request is the original request being authorised, as any front sees it.
type Request struct {
	Method string
	// Host is the :authority (or Host), possibly with a port.
	Host string
	// Path is the raw request target: undecoded, possibly with query and fragment.
	Path string
	// Headers has lower-case names; repeated headers are joined with commas (Envoy's convention).
	Headers map[string]string
	// RuleName, when set, names the rule to apply instead of matching (Envoy's per-route
	// context extension `portcullis-rule`).
	RuleName string
	// Context holds Envoy's per-route context_extensions (nil when there are none): matched by
	// rules' match.context and read by conditions as `context`.
	Context map[string]string
	// SourceAddress is the address of the client as Envoy reports it
	// (attributes.source.address.socket_address.address): `source.address` in conditions; ""
	// on the HTTP forward-auth front, which sees only its proxy.
	SourceAddress string
	// Scheme is the scheme the client used, "http" or "https" (attributes.request.http.scheme;
	// X-Forwarded-Proto on the HTTP forward-auth front): the scheme of a DPoP proof's htu.
	Scheme string
	// ClientCert is the client certificate of the downstream connection as Envoy sends it
	// (attributes.source.certificate: URL-encoded PEM, with include_peer_certificate: true);
	// "" when there is none, and on the HTTP forward-auth front.
	ClientCert string
	// Invalid, when set, says why the front could not reconstruct the original request; the
	// engine answers 400 bad_request.
	Invalid string
}

// Header is one header of a decision: set on the upstream request (Decision.Upstream) or sent
// to the client with a deny (Decision.Answer).
type Header struct {
	Name, Value string
}

// Decision is the engine's answer, with everything a front needs to build its wire answer and
// everything a log line or `portcullis check` needs to explain it. Each field has one meaning:
// Upstream and UpstreamRemove are filled on an allow only, Answer and Body on a deny only.
type Decision struct {
	Allow bool
	// Cached is set when Identity came from the verified-token cache (no signature check).
	// (Beside Allow, in its padding: the struct keeps its size class.)
	Cached bool
	// Status is the HTTP status answered: 200 on an allow.
	Status int
	// Reason is the decision's reason; a deny's status, body and answer headers are its row of
	// the reason table. A dry-run rule's would-be deny is served as an allow with the deny's
	// reason (docs/decisions.md#dry_run).
	Reason reason.Code
	// Rule is the name of the matched rule ("" when none matched).
	Rule string

	// Upstream are the headers to set on the upstream request (allow only): the identity
	// headers the token carries and, with forward_token: false, the Cookie header without the
	// token cookies. Shared with the token cache: never modified.
	Upstream []Header
	// UpstreamRemove are the headers to remove from the upstream request (allow only): every
	// configured identity header not in Upstream and, with forward_token: false, the token's
	// header (or Cookie, when nothing but the token was in it). Shared like Upstream.
	UpstreamRemove []string

	// ConditionErrors are the rule's `when` conditions that could not be evaluated (each
	// names its field, rule and CEL's error): such a condition does not hold. Logged at warn.
	ConditionErrors []string

	// Answer are the headers of the answer to the client (deny only): content-type and, as the
	// reason's row says, WWW-Authenticate.
	Answer []Header
	// Body is the JSON deny body (deny only).
	Body []byte

	// Identity is the verified token's identity, if any (an allow, or a deny for unmet
	// requirements).
	Identity *token.Identity
	// roles is Identity's roles comma-separated (for Envoy's dynamic metadata).
	roles string

	// Detail explains the reason precisely (never the token itself); Hint says what to change.
	Detail, Hint string
	// Missing lists unmet requirements on a 403.
	Missing []string
	// Introspection is what token introspection answered (require.active, an opaque token);
	// nil when nothing was introspected.
	Introspection *Introspection

	// senderError says the deny concerns a sender-constrained token (a DPoP proof, a token bound
	// to a DPoP key, a sender_constrained rule): its error goes in the DPoP challenge.
	senderError bool
	// proofAlgs are the algs of the DPoP challenge when the token's issuer is known.
	proofAlgs []string

	// DryRun is set when the matched rule is in dry-run mode: it is the decision the rule made,
	// whole, allow or deny. The decision served is then an allow whatever DryRun says.
	DryRun *Decision
}

// Evaluated is the decision the matched rule made: DryRun for a dry-run rule, d itself
// otherwise. Its Detail, Hint and Missing explain the decision, a dry-run rule's would-be deny
// included.
func (d *Decision) Evaluated() *Decision {
	if d.DryRun != nil {
		return d.DryRun
	}
	return d
}
