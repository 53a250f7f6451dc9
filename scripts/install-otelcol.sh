#!/usr/bin/env bash
# Build a pinned OpenTelemetry Collector for the tracing end-to-end test, with the collector's own
# `builder` (go.opentelemetry.io/collector/cmd/builder) from the Go module proxy, into
# $PORTCULLIS_CACHE/otelcol-VERSION/bin/otelcol-portcullis, and print the binary's path on stdout.
# Idempotent: a binary built before is reused.
#
#   scripts/install-otelcol.sh
#
# The distribution holds only what the test needs: the OTLP receiver (gRPC and HTTP) and the file
# exporter (OTLP JSON, one line per batch), with the file and env config providers. The builder
# and the core modules are one release (v0.161.0 / v1.67.0); the file exporter from contrib is
# the same release (its newer versions need modules the proxy does not serve). Nothing is
# installed into the system; the first build takes a few minutes, later runs none.
#
# Env: OTELCOL_VERSION, OTELCOL_STABLE_VERSION (defaults below, change together),
# PORTCULLIS_CACHE (default ~/.cache/portcullis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OTELCOL_VERSION="${OTELCOL_VERSION:-0.161.0}"
OTELCOL_STABLE_VERSION="${OTELCOL_STABLE_VERSION:-1.67.0}"
dest="$PORTCULLIS_CACHE/otelcol-$OTELCOL_VERSION"
bin="$dest/bin/otelcol-portcullis"

if [ -x "$bin" ] && [ -f "$dest/.portcullis-installed" ]; then
  log "otelcol $OTELCOL_VERSION already built in $dest"
  printf '%s\n' "$bin"
  exit 0
fi

need go "install Go"
mkdir -p "$PORTCULLIS_CACHE"
tmp=$(mktemp -d "$PORTCULLIS_CACHE/.otelcol-build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
out="$tmp/go.log"
start=$(date +%s)
log "building otelcol $OTELCOL_VERSION (collector builder, otlpreceiver, fileexporter) from the Go module proxy"

run() {
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "$* failed"
  fi
}

cat >"$tmp/manifest.yaml" <<MANIFEST
dist:
  name: otelcol-portcullis
  description: OpenTelemetry Collector for the Portcullis tracing end-to-end test
  version: $OTELCOL_VERSION
  output_path: $tmp/dist
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v$OTELCOL_VERSION
exporters:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v$OTELCOL_VERSION
providers:
  - gomod: go.opentelemetry.io/collector/confmap/provider/envprovider v$OTELCOL_STABLE_VERSION
  - gomod: go.opentelemetry.io/collector/confmap/provider/fileprovider v$OTELCOL_STABLE_VERSION
MANIFEST

run env GOFLAGS=-buildvcs=false GOBIN="$tmp/gobin" go install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION"
run env GOFLAGS=-buildvcs=false "$tmp/gobin/builder" --config "$tmp/manifest.yaml"
[ -x "$tmp/dist/otelcol-portcullis" ] || die "the builder left no binary in $tmp/dist"
"$tmp/dist/otelcol-portcullis" --version >"$out" 2>&1 || { cat "$out" >&2; die "the otelcol built does not run"; }

cd /
rm -rf "$dest"
mkdir -p "$dest/bin"
mv "$tmp/dist/otelcol-portcullis" "$bin"
touch "$dest/.portcullis-installed"
log "otelcol $OTELCOL_VERSION built into $dest in $(( $(date +%s) - start ))s (not installed in the system)"
printf '%s\n' "$bin"
