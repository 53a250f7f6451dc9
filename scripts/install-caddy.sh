#!/usr/bin/env bash
# Provide Caddy for the forward-auth end-to-end test (it runs examples/forward-auth/Caddyfile)
# and print the path of the binary. Idempotent.
#
# Where apt-get is available (Debian, Ubuntu), Debian's `caddy` package is downloaded and
# unpacked into $PORTCULLIS_CACHE/caddy-VERSION (see deb_binary in lib.sh): nothing is installed
# into the system (no caddy service, and none of its dependencies, such as libnss3-tools, which
# would upgrade libnss3). Elsewhere, the caddy on PATH is used.
#
#   scripts/install-caddy.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  bin=$(deb_binary caddy usr/bin/caddy)
elif ! bin=$(command -v caddy 2>/dev/null); then
  die "no caddy: install it, or set PORTCULLIS_CADDY and run the tests with go test"
fi
log "$bin: caddy $("$bin" version 2>&1 | head -n1)"
printf '%s\n' "$bin"
