#!/usr/bin/env bash
# End-to-end suite: install (or reuse) Envoy, Keycloak, nginx, Caddy, Dex and an OpenTelemetry
# Collector in the cache directory
# (README.md, "What `make test` installs", says exactly what and where), check that no service
# was enabled on the way, then run the e2e Go tests against them. Extra arguments go to
# `go test` (e.g. -run TestKeyRotation).
#
#   scripts/e2e.sh
#   PORTCULLIS_CACHE=/somewhere scripts/e2e.sh -run 'TestAlice|TestNoToken'
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need go "install Go"
start=$(date +%s)
units_before=$(enabled_units)

PORTCULLIS_ENVOY=$(bash scripts/install-envoy.sh)
kc=$(bash scripts/install-keycloak.sh)
PORTCULLIS_KEYCLOAK_HOME=$(printf '%s\n' "$kc" | sed -n 's/^KEYCLOAK_HOME=//p')
JAVA_HOME=$(printf '%s\n' "$kc" | sed -n 's/^JAVA_HOME=//p')
[ -n "$PORTCULLIS_KEYCLOAK_HOME" ] && [ -n "$JAVA_HOME" ] || die "install-keycloak.sh printed no KEYCLOAK_HOME/JAVA_HOME"
PORTCULLIS_NGINX=$(bash scripts/install-nginx.sh)
PORTCULLIS_CADDY=$(bash scripts/install-caddy.sh)
PORTCULLIS_DEX=$(bash scripts/install-dex.sh)
PORTCULLIS_OTELCOL=$(bash scripts/install-otelcol.sh)
# The installers must leave nothing that starts at boot (nginx and Caddy would take port 80).
units_new=$(LC_ALL=C comm -13 <(printf '%s\n' "$units_before") <(enabled_units) | tr '\n' ' ')
[ -z "$units_new" ] || die "the installers left services enabled: ${units_new% }"
export PORTCULLIS_CACHE PORTCULLIS_ENVOY PORTCULLIS_KEYCLOAK_HOME JAVA_HOME PORTCULLIS_NGINX PORTCULLIS_CADDY PORTCULLIS_DEX PORTCULLIS_OTELCOL
log "tools ready in $(( $(date +%s) - start ))s: envoy=$PORTCULLIS_ENVOY keycloak=$PORTCULLIS_KEYCLOAK_HOME java=$JAVA_HOME nginx=$PORTCULLIS_NGINX caddy=$PORTCULLIS_CADDY dex=$PORTCULLIS_DEX otelcol=$PORTCULLIS_OTELCOL"

status=0
go test -tags e2e -count=1 -v -timeout 20m ./e2e/ "$@" || status=$?
log "finished in $(( $(date +%s) - start ))s (exit $status)"
exit "$status"
