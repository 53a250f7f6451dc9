#!/usr/bin/env bash
# Provide nginx for the forward-auth end-to-end test (it runs examples/forward-auth/nginx.conf)
# and print the path of the binary. Idempotent.
#
# Where apt-get is available (Debian, Ubuntu), Debian's `nginx` package is downloaded and
# unpacked into $PORTCULLIS_CACHE/nginx-VERSION (see deb_binary in lib.sh): nothing is installed
# into the system, so no nginx service exists to start or to enable. Elsewhere, the nginx on PATH
# is used.
#
#   scripts/install-nginx.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  bin=$(deb_binary nginx usr/sbin/nginx)
elif ! bin=$(command -v nginx 2>/dev/null); then
  die "no nginx: install it (with the auth_request module), or set PORTCULLIS_NGINX and run the tests with go test"
fi
# auth_request is what the example relies on; Debian builds it in, others may not.
"$bin" -V 2>&1 | grep -q -- --with-http_auth_request_module \
  || die "$bin lacks the auth_request module (--with-http_auth_request_module)"
log "$bin: $("$bin" -v 2>&1)"
printf '%s\n' "$bin"
