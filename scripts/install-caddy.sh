#!/usr/bin/env bash
# Install Caddy from Debian's packages if it is not there yet (the forward-auth end-to-end test
# runs examples/forward-auth/Caddyfile with it). Idempotent. Prints the path of the caddy
# binary. No service is started or enabled.
#
#   scripts/install-caddy.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

find_caddy() { command -v caddy 2>/dev/null || { [ -x /usr/bin/caddy ] && echo /usr/bin/caddy; }; }

if ! bin=$(find_caddy); then
  apt_install caddy
  bin=$(find_caddy) || die "caddy installed but no binary found"
else
  log "caddy already installed"
fi
log "caddy $("$bin" version 2>&1 | head -n1)"
printf '%s\n' "$bin"
