# Shared helpers for the install scripts. Sourced, never executed.
# Downloads and unpacked tools live OUTSIDE the repository, in the cache directory.

PORTCULLIS_CACHE="${PORTCULLIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; $2"
}

# as_root CMD...: run as root, through sudo when needed and available.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# apt_install PKG...: install the first Debian package of the list that installs, without
# letting its post-install script start a system service (nginx and caddy would take :80):
# a policy-rc.d answering 101 ("action forbidden") is put in place for this install only.
apt_install() {
  need apt-get "install $1 with your system's package manager"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2 || die "apt-get update failed"
  local policy=/usr/sbin/policy-rc.d pkg ok=""
  local created=""
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
    created=1
    # Expanded now: the function's locals are gone when an interrupted script exits.
    trap "as_root rm -f '$policy'" EXIT
  fi
  for pkg in "$@"; do
    log "installing $pkg with apt-get"
    if as_root apt-get install -y -qq --no-install-recommends "$pkg" >&2; then ok=1; break; fi
  done
  if [ -n "$created" ]; then
    as_root rm -f "$policy"
    trap - EXIT
  fi
  [ -n "$ok" ] || die "apt-get install $* failed"
}
