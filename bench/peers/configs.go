package main

import (
	"fmt"
	"strings"
)

// portcullisConfig serves the gRPC front, the HTTP forward-auth front (Envoy http_service with
// path_prefix /authz) and the admin endpoint (for the token cache's counters), with rules like
// those of examples/portcullis.yaml and the default identity headers.
func portcullisConfig(grpcAddr, httpAddr, adminAddr string, cache int) string {
	return fmt.Sprintf(`
server: { grpc_addr: %q, http_addr: %q, admin_addr: %q }
issuers:
  - issuer: %s
    jwks_file: keys.json
    audiences: [%s]
    algorithms: [RS256]
cache: { tokens: %d }
forward_auth: { trusted_headers: [], path_prefix: /authz }
rules:
  - name: health
    match: { paths: ["/healthz"], methods: [GET] }
    public: true
  - name: admin
    match: { paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
  - name: api
    match: { paths: ["/api/**"] }
    require: { any_roles: [%s] }
`, grpcAddr, httpAddr, adminAddr, issuer, audience, cache, role)
}

// opaPolicy is the Rego policy doing Portcullis's job: the bearer token verified with
// io.jwt.decode_verify against the same JWKS (RS256 only, the issuer, the audience; exp and nbf
// are checked by the built-in), the same token type and role, and the same x-user-id header.
func opaPolicy(jwks string) string {
	return `package envoy.authz

import rego.v1

jwks := ` + "`" + jwks + "`" + `

default result := {"allowed": false, "http_status": 401}

token := t if {
	auth := input.attributes.request.http.headers.authorization
	lower(substring(auth, 0, 7)) == "bearer "
	t := substring(auth, 7, -1)
}

verified := io.jwt.decode_verify(token, {"cert": jwks, "alg": "RS256", "iss": "` + issuer + `", "aud": "` + audience + `"})

claims := verified[2] if verified[0]

result := {"allowed": true, "headers": {"x-user-id": claims.sub}} if {
	claims.typ == "Bearer"
	"` + role + `" in claims.realm_access.roles
}
`
}

// opaConfig runs the ext_authz gRPC plugin on addr with the policy's result, decision logs
// off, and OPA's JWT verification cache on with as many entries as Portcullis's token cache.
func opaConfig(addr string, cache int) string {
	return fmt.Sprintf(`plugins:
  envoy_ext_authz_grpc:
    addr: %s
    path: envoy/authz/result
    enable-reflection: false
    skip-request-body-parse: true
decision_logs:
  console: false
caching:
  inter_query_builtin_value_cache:
    named:
      io_jwt:
        max_num_entries: %d
`, addr, cache)
}

// extAuthz is one configuration of Envoy's ext_authz filter, gRPC or HTTP.
type extAuthz struct {
	cluster        string
	http           bool     // http_service (path_prefix /authz) instead of grpc_service
	allowedHeaders []string // allowed_headers; none = Envoy's default (every header for gRPC)
	rawHeaders     bool     // encode_raw_headers: header_map instead of headers
	noClusterStats bool     // charge_cluster_response_stats: false
	noMetadata     bool     // enable_dynamic_metadata_ingestion: false
}

// filter is the ext_authz HTTP filter's YAML, indented for the listener template.
func (x extAuthz) filter() string {
	var b strings.Builder
	if x.http {
		// As examples/forward-auth/envoy-http-service.yaml: on 200 Envoy copies the answer's
		// x-user-* headers but leaves a client-sent one the answer lacks, so they go first.
		b.WriteString(`- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
    mutations:
      request_mutations:
        - remove_on_match: { key_matcher: { prefix: x-user- } }
`)
	}
	b.WriteString(`- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    failure_mode_allow: false
    status_on_error: { code: ServiceUnavailable }
`)
	if x.http {
		fmt.Fprintf(&b, `    http_service:
      server_uri: { uri: "http://portcullis", cluster: %s, timeout: 0.5s }
      path_prefix: /authz
      authorization_response:
        allowed_upstream_headers:
          patterns: [{ prefix: x-user- }]
        allowed_client_headers:
          patterns: [{ exact: www-authenticate }, { exact: content-type }]
`, x.cluster)
	} else {
		fmt.Fprintf(&b, "    grpc_service: { envoy_grpc: { cluster_name: %s }, timeout: 0.5s }\n", x.cluster)
	}
	if len(x.allowedHeaders) > 0 {
		b.WriteString("    allowed_headers:\n      patterns:\n")
		for _, h := range x.allowedHeaders {
			fmt.Fprintf(&b, "        - exact: %s\n", h)
		}
	}
	if x.rawHeaders {
		b.WriteString("    encode_raw_headers: true\n")
	}
	if x.noClusterStats {
		b.WriteString("    charge_cluster_response_stats: false\n")
	}
	if x.noMetadata {
		b.WriteString("    enable_dynamic_metadata_ingestion: false\n")
	}
	return b.String()
}

// jwtAuthnFilters are Envoy's in-proxy alternative: jwt_authn against the same JWKS (inline),
// issuer and audience, its token cache on, the subject in x-user-id; then RBAC allowing only a
// payload whose realm_access.roles holds the role.
func jwtAuthnFilters(jwks string, cache int) string {
	return fmt.Sprintf(`- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      bench:
        issuer: %s
        audiences: [%s]
        local_jwks: { inline_string: %q }
        forward: true
        payload_in_metadata: jwt_payload
        claim_to_headers: [{ header_name: x-user-id, claim_name: sub }]
        jwt_cache_config: { jwt_cache_size: %d }
    rules:
      - match: { prefix: / }
        requires: { provider_name: bench }
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        role:
          permissions: [{ any: true }]
          principals:
            - metadata:
                filter: envoy.filters.http.jwt_authn
                path: [{ key: jwt_payload }, { key: realm_access }, { key: roles }]
                value: { list_match: { one_of: { string_match: { exact: %s } } } }
`, issuer, audience, jwks, cache, role)
}

// listener is one Envoy listener: its name, port and HTTP filters before the router, which
// answers 200 itself (direct_response): no upstream.
type listener struct {
	name    string
	port    int
	filters string
}

// envoyBootstrap is Envoy's whole configuration: the listeners and the clusters of the
// ext_authz servers (gRPC ones over HTTP/2).
func envoyBootstrap(adminPort int, ls []listener, grpcClusters, httpClusters map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin:\n  address: { socket_address: { address: 127.0.0.1, port_value: %d } }\nstatic_resources:\n  listeners:\n", adminPort)
	for _, l := range ls {
		fmt.Fprintf(&b, `  - name: %s
    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
    filter_chains:
      - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: %s
              normalize_path: true
              merge_slashes: true
              path_with_escaped_slashes_action: REJECT_REQUEST
              route_config:
                virtual_hosts:
                  - name: all
                    domains: ["*"]
                    routes:
                      - match: { prefix: / }
                        direct_response: { status: 200 }
              http_filters:
`, l.name, l.port, l.name)
		for _, line := range strings.Split(strings.TrimRight(l.filters, "\n"), "\n") {
			if line != "" {
				b.WriteString("                " + line + "\n")
			}
		}
		b.WriteString(`                - name: envoy.filters.http.router
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`)
	}
	b.WriteString("  clusters:\n")
	cluster := func(name, addr string, h2 bool) {
		host, port, _ := strings.Cut(addr, ":")
		fmt.Fprintf(&b, "  - name: %s\n    type: STATIC\n    connect_timeout: 1s\n", name)
		if h2 {
			b.WriteString(`    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
`)
		}
		fmt.Fprintf(&b, "    load_assignment:\n      cluster_name: %s\n      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: %s, port_value: %s } } } }] }]\n", name, host, port)
	}
	for _, name := range sortedKeys(grpcClusters) {
		cluster(name, grpcClusters[name], true)
	}
	for _, name := range sortedKeys(httpClusters) {
		cluster(name, httpClusters[name], false)
	}
	return b.String()
}
