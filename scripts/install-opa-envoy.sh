#!/usr/bin/env bash
# Build a pinned OPA-Envoy (OPA with the Envoy ext_authz gRPC plugin,
# github.com/open-policy-agent/opa-envoy-plugin) for the peer benchmark (bench/peers), from its
# source on the Go module proxy, into $PORTCULLIS_CACHE/opa-envoy-VERSION/bin/opa-envoy, and print
# the binary's path on stdout. Idempotent: a binary built before is reused.
#
#   scripts/install-opa-envoy.sh
#
# `go install ...@version` cannot be used: it asks the proxy for the module's version list to
# check for a deprecation, which the proxy here does not serve. So the source is downloaded
# with `go mod download`, copied to a scratch directory (the module cache is read-only) and built
# with `go build`, its dependencies checked against its own go.sum. No cgo. Nothing is installed
# into the system; the first build takes one to three minutes, later runs none.
#
# Env: OPA_ENVOY_VERSION (default below), PORTCULLIS_CACHE (default ~/.cache/portcullis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The release of OPA-Envoy built on OPA v1.15.2.
OPA_ENVOY_VERSION="${OPA_ENVOY_VERSION:-v1.15.2-envoy}"
module=github.com/open-policy-agent/opa-envoy-plugin
dest="$PORTCULLIS_CACHE/opa-envoy-$OPA_ENVOY_VERSION"
bin="$dest/bin/opa-envoy"

if [ -x "$bin" ] && [ -f "$dest/.portcullis-installed" ]; then
  log "opa-envoy $OPA_ENVOY_VERSION already built in $dest"
  printf '%s\n' "$bin"
  exit 0
fi

need go "install Go"
mkdir -p "$PORTCULLIS_CACHE"
tmp=$(mktemp -d "$PORTCULLIS_CACHE/.opa-envoy-build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
out="$tmp/go.log"
start=$(date +%s)
log "building opa-envoy ($module@$OPA_ENVOY_VERSION) from the Go module proxy"

# The go command's output (its `go: downloading` lines) is shown only when a step fails.
run() {
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "$* failed"
  fi
}

run env GOFLAGS=-mod=mod go mod download -json "$module@$OPA_ENVOY_VERSION"
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$out" | head -n1)
[ -n "$src" ] && [ -f "$src/go.mod" ] || die "go mod download printed no source directory for $module@$OPA_ENVOY_VERSION"

cp -R "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
cd "$tmp/src"
run env CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$tmp/opa-envoy" ./cmd/opa-envoy-plugin

"$tmp/opa-envoy" version >"$out" 2>&1 || { cat "$out" >&2; die "the opa-envoy built does not run"; }
cd /
rm -rf "$dest"
mkdir -p "$dest/bin"
mv "$tmp/opa-envoy" "$bin"
touch "$dest/.portcullis-installed"
log "opa-envoy $OPA_ENVOY_VERSION built into $dest in $(( $(date +%s) - start ))s (not installed in the system)"
printf '%s\n' "$bin"
