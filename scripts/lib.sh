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

# apt_install PKG...: install the first Debian package of the list that installs, into the
# system, quietly (apt's and dpkg's output is shown only when the install fails). It never
# upgrades a package that is already installed: when apt's plan would, it stops and says which
# (PORTCULLIS_APT_UPGRADE=1 lets it go on). A policy-rc.d answering 101 ("action forbidden") is
# put in place for the install, so no package can start a service.
apt_install() {
  need apt-get "install $1 with your system's package manager"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2 || die "apt-get update failed"
  local policy=/usr/sbin/policy-rc.d pkg plan upgrades new ok="" created="" out
  out=$(mktemp)
  for pkg in "$@"; do
    plan=$(LC_ALL=C apt-get -s install --no-install-recommends "$pkg" 2>/dev/null) || continue
    # `Inst NAME [INSTALLED-VERSION] (NEW-VERSION ...)`: the bracket marks an upgrade.
    upgrades=$(printf '%s\n' "$plan" | sed -n 's/^Inst \([^ ]*\) \[.*/\1/p' | tr '\n' ' ')
    new=$(printf '%s\n' "$plan" | sed -n 's/^Inst \([^ ]*\) (.*/\1/p' | tr '\n' ' ')
    if [ -n "$upgrades" ] && [ "${PORTCULLIS_APT_UPGRADE:-}" != 1 ]; then
      rm -f "$out"
      die "apt-get install $pkg would upgrade packages already installed: ${upgrades% }. Install $pkg yourself, or run again with PORTCULLIS_APT_UPGRADE=1 to let the suite do it."
    fi
    if [ ! -e "$policy" ]; then
      as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
      created=1
      # Expanded now: the function's locals are gone when an interrupted script exits.
      trap "as_root rm -f '$policy'; rm -f '$out'" EXIT
    fi
    log "apt-get install $pkg: new packages ${new% }${upgrades:+; upgraded (PORTCULLIS_APT_UPGRADE=1): ${upgrades% }}"
    if as_root apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$pkg" >"$out" 2>&1; then
      ok=1
      break
    fi
    cat "$out" >&2
  done
  if [ -n "$created" ]; then
    as_root rm -f "$policy"
    trap - EXIT
  fi
  rm -f "$out"
  [ -n "$ok" ] || die "apt-get install $* failed"
}

# deb_binary PKG PATH: print the path of the program PATH (e.g. usr/sbin/nginx) of the Debian
# package PKG, unpacked from the package's .deb into $PORTCULLIS_CACHE/PKG-VERSION. The package
# is downloaded with `apt-get download` and unpacked with `dpkg-deb -x`: it is not installed, so
# nothing changes in the system (no dpkg database entry, no dependency, no service, no root
# needed unless apt's package lists must be fetched first). A copy unpacked before is reused.
deb_binary() {
  local pkg=$1 rel=$2 c found="" tmp deb version dest
  for c in "$PORTCULLIS_CACHE/$pkg"-[0-9]*/"$rel"; do
    [ -x "$c" ] && found=$c # the glob sorts: the last is the highest version
  done
  if [ -n "$found" ]; then printf '%s\n' "$found"; return 0; fi
  need apt-get "install $pkg with your system's package manager, or set the variable naming its binary"
  need dpkg-deb "install $pkg with your system's package manager"
  mkdir -p "$PORTCULLIS_CACHE"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-$pkg.XXXXXX")
  trap "rm -rf '$tmp'" EXIT
  # As root, apt downloads as its sandbox user _apt, which must be able to write there.
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
    log "apt-get download $pkg failed; updating apt's package lists and trying again"
    as_root apt-get update -qq >&2 || die "apt-get update failed"
    (cd "$tmp" && apt-get download -qq "$pkg" >&2) || die "apt-get download $pkg failed"
  fi
  deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)
  [ -n "$deb" ] || die "apt-get download $pkg left no .deb"
  version=$(dpkg-deb -f "$deb" Version)
  version=${version#*:} # no epoch in a directory name
  dest="$PORTCULLIS_CACHE/$pkg-$version"
  dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
  [ -x "$tmp/root/$rel" ] || die "$pkg $version has no $rel"
  rm -rf "$dest"
  mv "$tmp/root" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "$pkg $version unpacked into $dest (not installed in the system)"
  printf '%s\n' "$dest/$rel"
}

# enabled_units: the systemd unit files enabled on this machine, one a line, sorted; nothing
# where there is no systemctl.
enabled_units() {
  command -v systemctl >/dev/null 2>&1 || return 0
  systemctl list-unit-files --state=enabled --no-legend --no-pager 2>/dev/null | awk '{print $1}' | LC_ALL=C sort
}
