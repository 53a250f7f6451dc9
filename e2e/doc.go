// Package e2e holds the end-to-end tests: a real Envoy (ext_authz over gRPC) in front of an
// echo upstream, the real Portcullis binary built from this module, and a real Keycloak serving
// the realm in envoy/realm-demo.json. Tokens come from Keycloak's password grant.
//
// The tests carry the build tag e2e and need Envoy, Keycloak and a Java 21+ runtime; the usual
// way in is scripts/e2e.sh (or `make e2e`), which installs both into ~/.cache/portcullis and runs
//
//	go test -tags e2e -count=1 -v -timeout 20m ./e2e/
//
// The forward-auth tests also run nginx and Caddy (Debian's binaries, unpacked into the cache by
// scripts/install-nginx.sh and scripts/install-caddy.sh) with the examples of examples/forward-auth/.
// The fail-closed tests (failclosed_test.go) run an Envoy and a Portcullis of their own, which
// they stop, stall, restart and reload.
// The Dex tests (dex_test.go) run a real Dex (built from the Go module proxy by
// scripts/install-dex.sh) with an Envoy and a Portcullis of their own, configured from
// testdata/dex/.
//
// Environment: PORTCULLIS_BIN (a prebuilt portcullis instead of building ./cmd/portcullis),
// PORTCULLIS_ENVOY (envoy binary), PORTCULLIS_NGINX, PORTCULLIS_CADDY, PORTCULLIS_DEX (nginx,
// caddy and dex binaries),
// PORTCULLIS_KEYCLOAK_HOME (unpacked Keycloak),
// JAVA_HOME (for Keycloak), PORTCULLIS_CACHE (where the install scripts put both),
// PORTCULLIS_E2E_KEEP=1 (keep the work directory with configs and logs).
package e2e
