#!/usr/bin/env bash
# Build the pinned grpcurl (github.com/fullstorydev/grpcurl) into $PORTCULLIS_CACHE/grpcurl-VERSION/bin
# and print that directory on stdout, for the test that runs `portcullis dev`'s printed
# commands verbatim (cmd/portcullis/dev_commands_test.go). Idempotent: a binary built before is
# reused. Nothing is installed into the system.
#
#   PATH="$(scripts/install-grpcurl.sh):$PATH" go test ./cmd/portcullis/
#
# Env: GRPCURL_VERSION (default below), PORTCULLIS_CACHE (default ~/.cache/portcullis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

GRPCURL_VERSION="${GRPCURL_VERSION:-1.9.4}"
dest="$PORTCULLIS_CACHE/grpcurl-$GRPCURL_VERSION/bin"

if [ -x "$dest/grpcurl" ]; then
  printf '%s\n' "$dest"
  exit 0
fi
need go "install Go"
mkdir -p "$dest"
log "building grpcurl v$GRPCURL_VERSION into $dest"
GOBIN="$dest" CGO_ENABLED=0 go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@v$GRPCURL_VERSION" >&2 \
  || die "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v$GRPCURL_VERSION failed"
printf '%s\n' "$dest"
