// Package rules holds Portcullis's route-to-role rules: their configuration (Spec), their
// validation and compilation once at load (Compile, `when` conditions in CEL included), the
// normalisation of request paths (NormalizePath), the choice of the rule for a request
// (Set.MatchRequest, first match in file order, on host, method, path and Envoy context
// extensions, with the pattern's {name} params), and the check of a verified principal and the
// request (Input) against the rule's requirements (Rule.Check: audiences, roles, scopes,
// claims, conditions, alternatives).
//
// It knows nothing of tokens' wire format, of gRPC or of HTTP; a compiled Set is immutable and
// safe for concurrent use.
package rules

// Spec is one rule as written in the configuration file's `rules` list.
//
//	rules:
//	  - name: orders-write
//	    match: { paths: ["/api/orders/*"], methods: [POST, PUT, DELETE] }
//	    require: { all_roles: ["orders-api:writer"], scopes: ["orders:write"] }
type Spec struct {
	// Name identifies the rule in logs, in Envoy's dynamic metadata and in the per-route
	// context extension `portcullis-rule`. Required, unique, made of letters, digits and
	// "-", "_", ".", ":".
	Name string `yaml:"name"`
	// Match selects the requests the rule applies to.
	Match MatchSpec `yaml:"match"`
	// Public lets requests through without a token (a valid token still yields identity
	// headers). A public rule has no requirements.
	Public bool `yaml:"public"`
	// DryRun makes the rule's decision logged and counted only: the request is allowed.
	DryRun bool `yaml:"dry_run"`
	// Require lists what the token must prove. Nothing listed: any valid token.
	Require RequireSpec `yaml:"require"`
}

// MatchSpec selects requests. A request matches when its host, its method and its path each
// match one entry of the corresponding list; an omitted list matches everything.
type MatchSpec struct {
	// Hosts are exact names ("api.example.com"), wildcards ("*.example.com": any subdomain at
	// any depth, such as "a.example.com" and "a.b.example.com", but not "example.com" itself)
	// or IP addresses ("10.0.0.1", "[::1]"). They are compared ignoring letter case, the port
	// and a final dot.
	Hosts []string `yaml:"hosts"`
	// Methods are upper-case HTTP methods. A request's method is compared ignoring letter case,
	// and GET also matches HEAD (a HEAD request runs the GET handler on most servers; list HEAD
	// in an earlier rule to treat it apart).
	Methods []string `yaml:"methods"`
	// Paths are patterns matched against the normalised path (see NormalizePath), segment by
	// segment: a literal segment matches itself; "*" matches exactly one segment; "{name}" is
	// "*" named for readability; "**" matches zero or more segments, at the end ("/api/**"
	// matches "/api", "/api/" and "/api/x/y") or in the middle ("/api/**/edit"). A trailing
	// slash is ignored: "/api" matches "/api" and "/api/". Literal segments are written as in
	// the request, percent-escapes included ("/files/a%20b").
	Paths []string `yaml:"paths"`
	// Context lists Envoy context_extensions (set per route) that must be present with these
	// values for the rule to match: `context: { portcullis-zone: internal }`. A request
	// without them goes on to the next rule. The `portcullis-rule` extension keeps its own
	// meaning (it names the rule to apply) and cannot be listed here.
	Context map[string]string `yaml:"context"`
}

// RequireSpec lists what a verified token must prove. Every listed requirement must be met.
type RequireSpec struct {
	// AnyRoles: the token carries at least one of these roles.
	AnyRoles []string `yaml:"any_roles"`
	// AllRoles: the token carries every one of these roles. Keycloak client roles are written
	// "<client-id>:<role>".
	AllRoles []string `yaml:"all_roles"`
	// Scopes: the token grants every one of these scopes. Unmet alone, it is answered 403
	// insufficient_scope (RFC 6750 §3.1).
	Scopes []string `yaml:"scopes"`
	// Claims: each claim equals the value given, a string, number or boolean. A key is a
	// token.ClaimPath: first looked up as a whole ("https://example.com/tier"), then as a dotted
	// path into nested objects ("address.country"). When the claim is an array, it must contain
	// the value.
	// Numbers compare by value (5 equals 5.0); strings and booleans exactly, type included.
	Claims map[string]any `yaml:"claims"`
	// When is a CEL expression (https://cel.dev) that must evaluate to true, compiled once at
	// load. Its variables: claims (map), roles and scopes (lists of strings), params (the path
	// pattern's {name} segments, percent-decoded), request.method, request.host, request.path,
	// request.headers, request.query, source.address, context (Envoy's context_extensions)
	// and now (timestamp). The cel-go string extensions and network library are available:
	// cidr("10.0.0.0/8").containsIP(source.address). An expression that fails to evaluate
	// (a missing key, a type error) denies.
	When string `yaml:"when"`
	// AnyOf lists alternatives, each a requirement block of its own (any_roles, all_roles,
	// scopes, claims, when, nested any_of): at least one must hold entirely. The
	// requirements beside any_of must hold too.
	AnyOf []RequireSpec `yaml:"any_of"`
	// Audiences: the token's aud claim must contain one of these, for this rule (in addition to
	// the issuer's own audience check). Unmet, it is answered 401 invalid_token, reason
	// wrong_audience. Only at the top of require, not inside any_of.
	Audiences []string `yaml:"audiences"`
	// Active: the token must be active at its issuer now, by token introspection (RFC 7662;
	// issuers[].introspection): a verified JWT is introspected too, after its signature, so a
	// revoked token or an ended session is refused within the introspection cache_ttl rather
	// than at exp. Only at the top of require, not inside any_of.
	Active bool `yaml:"active"`
	// SenderConstrained: the token must be bound to the client, by a DPoP key (cnf.jkt, RFC
	// 9449) or a client certificate (cnf.x5t#S256, RFC 8705), and the binding proven on the
	// request; an unbound bearer token is answered 401 invalid_token with a DPoP challenge.
	// Only at the top of require, not inside any_of.
	SenderConstrained bool `yaml:"sender_constrained"`
}

func (r *RequireSpec) empty() bool {
	return len(r.AnyRoles) == 0 && len(r.AllRoles) == 0 && len(r.Scopes) == 0 && len(r.Claims) == 0 &&
		r.When == "" && r.AnyOf == nil && r.Audiences == nil && !r.Active && !r.SenderConstrained
}

// clone returns a deep copy, so that a compiled rule cannot be changed through its Spec.
func (s Spec) clone() Spec {
	c := s
	c.Match.Hosts = cloneList(s.Match.Hosts)
	c.Match.Methods = cloneList(s.Match.Methods)
	c.Match.Paths = cloneList(s.Match.Paths)
	if s.Match.Context != nil {
		c.Match.Context = make(map[string]string, len(s.Match.Context))
		for k, v := range s.Match.Context {
			c.Match.Context[k] = v
		}
	}
	c.Require = s.Require.clone()
	return c
}

func (r RequireSpec) clone() RequireSpec {
	c := r
	c.AnyRoles = cloneList(r.AnyRoles)
	c.AllRoles = cloneList(r.AllRoles)
	c.Scopes = cloneList(r.Scopes)
	c.Audiences = cloneList(r.Audiences)
	if r.Claims != nil {
		c.Claims = make(map[string]any, len(r.Claims))
		for k, v := range r.Claims {
			c.Claims[k] = v // scalars only, once compiled
		}
	}
	if r.AnyOf != nil {
		c.AnyOf = make([]RequireSpec, len(r.AnyOf))
		for i := range r.AnyOf {
			c.AnyOf[i] = r.AnyOf[i].clone()
		}
	}
	return c
}

func cloneList(l []string) []string {
	if l == nil {
		return nil
	}
	return append(make([]string, 0, len(l)), l...)
}
