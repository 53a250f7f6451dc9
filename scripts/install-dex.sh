#!/usr/bin/env bash
# Build a pinned Dex (the OpenID Connect provider, github.com/dexidp/dex) for the Dex end-to-end
# test, from its source on the Go module proxy, into $PORTCULLIS_CACHE/dex-VERSION/bin/dex, and
# print the binary's path on stdout. Idempotent: a binary built before is reused.
#
#   scripts/install-dex.sh
#
# Dex's release tags (v2.x) are not valid versions of its module (its go.mod says
# github.com/dexidp/dex, not .../v2), so the proxy serves a release by the pseudo-version of its
# commit. `go install ...@version` refuses Dex (its go.mod replaces github.com/dexidp/dex/api/v2
# with the directory ./api/v2, which is a module of its own and not in the source zip), so the
# source is downloaded with `go mod download`, copied to a scratch directory, the replacement
# pointed at the api/v2 module from the proxy, and built with `go build`. The api/v2 module is
# its first release with everything this commit's server uses (v2.1.0 lacks the connector
# API); the checksum database knows it, which it does not the same commit's pseudo-version. The
# build needs cgo (Dex's SQLite storage is compiled in), so a C compiler. Nothing is installed
# into the system; the first build takes one to three minutes, later runs none.
#
# Env: DEX_VERSION, DEX_MODULE_VERSION, DEX_API_VERSION (defaults below, change together),
# PORTCULLIS_CACHE (default ~/.cache/portcullis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEX_VERSION="${DEX_VERSION:-2.41.1}"
# Commit 43956db7fd75 of github.com/dexidp/dex: the v2.41.1 release.
DEX_MODULE_VERSION="${DEX_MODULE_VERSION:-v0.0.0-20240807174518-43956db7fd75}"
DEX_API_VERSION="${DEX_API_VERSION:-v2.2.0}"
dest="$PORTCULLIS_CACHE/dex-$DEX_VERSION"
bin="$dest/bin/dex"

if [ -x "$bin" ] && [ -f "$dest/.portcullis-installed" ]; then
  log "dex $DEX_VERSION already built in $dest"
  printf '%s\n' "$bin"
  exit 0
fi

need go "install Go"
[ "$(go env CGO_ENABLED)" = 1 ] || die "Dex needs cgo (its SQLite storage): install a C compiler (Debian: apt-get install gcc) or set CGO_ENABLED=1"

mkdir -p "$PORTCULLIS_CACHE"
tmp=$(mktemp -d "$PORTCULLIS_CACHE/.dex-build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
out="$tmp/go.log"
start=$(date +%s)
log "building dex $DEX_VERSION (github.com/dexidp/dex@$DEX_MODULE_VERSION) from the Go module proxy"

# The go command's output (its `go: downloading` lines) is shown only when a step fails.
run() {
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "$* failed"
  fi
}

run env GOFLAGS=-mod=mod go mod download -json "github.com/dexidp/dex@$DEX_MODULE_VERSION"
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$out" | head -n1)
[ -n "$src" ] && [ -f "$src/go.mod" ] || die "go mod download printed no source directory for github.com/dexidp/dex@$DEX_MODULE_VERSION"

# The module cache is read-only, and the build edits go.mod: build in a copy.
cp -R "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
cd "$tmp/src"
run go mod edit -replace "github.com/dexidp/dex/api/v2=github.com/dexidp/dex/api/v2@$DEX_API_VERSION"
# -mod=mod records the replacement's checksum in go.sum, checked against the checksum database.
run env GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath \
  -ldflags "-X main.version=v$DEX_VERSION" -o "$tmp/dex" ./cmd/dex

"$tmp/dex" version >"$out" 2>&1 || { cat "$out" >&2; die "the dex built does not run"; }
cd /
rm -rf "$dest"
mkdir -p "$dest/bin"
mv "$tmp/dex" "$bin"
touch "$dest/.portcullis-installed"
log "dex $DEX_VERSION built into $dest in $(( $(date +%s) - start ))s (not installed in the system)"
printf '%s\n' "$bin"
