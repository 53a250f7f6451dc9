#!/usr/bin/env bash
# Install nginx from Debian's packages if it is not there yet (the forward-auth tests use it).
# Prints the path of the nginx binary. The service is not started or enabled here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if bin=$(command -v nginx 2>/dev/null) || { [ -x /usr/sbin/nginx ] && bin=/usr/sbin/nginx; }; then
  log "nginx already installed: $("$bin" -v 2>&1)"
  printf '%s\n' "$bin"
  exit 0
fi
need apt-get "install nginx with your system's package manager"
log "installing nginx-light with apt-get"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq >&2 || die "apt-get update failed"
# The package's post-install starts a system nginx on :80 where an init system runs;
# policy-rc.d 101 forbids that for this install only.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
  trap 'as_root rm -f "$policy"' EXIT
fi
as_root apt-get install -y -qq --no-install-recommends nginx-light >&2 \
  || as_root apt-get install -y -qq --no-install-recommends nginx >&2 \
  || die "apt-get install nginx-light (or nginx) failed"
bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$bin" ] || die "nginx installed but no binary found"
log "$("$bin" -v 2>&1)"
printf '%s\n' "$bin"
