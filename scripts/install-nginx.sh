#!/usr/bin/env bash
# Install nginx from Debian's packages if it is not there yet (the forward-auth end-to-end test
# runs examples/forward-auth/nginx.conf with it). Idempotent. Prints the path of the nginx
# binary. No service is started or enabled.
#
#   scripts/install-nginx.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

if ! bin=$(find_nginx); then
  apt_install nginx-light nginx
  bin=$(find_nginx) || die "nginx installed but no binary found"
else
  log "nginx already installed"
fi
# auth_request is what the example relies on; Debian builds it in, others may not.
"$bin" -V 2>&1 | grep -q -- --with-http_auth_request_module \
  || die "$bin lacks the auth_request module (--with-http_auth_request_module)"
log "$("$bin" -v 2>&1)"
printf '%s\n' "$bin"
