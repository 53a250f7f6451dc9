#!/bin/sh
# Render a config file of envoy/ with other addresses:
#
#   scripts/render-config.sh IN OUT name=value...
#
# A line of IN that ends with the marker comment `# @name` has its value replaced by the given
# value; every other byte is copied. The value is the scalar after `key:` and before the comment
# in YAML, and otherwise the last word before the comment, less a closing `;` (nginx, Caddyfile:
# `listen 127.0.0.1:8080;  # @listen-addr`). Values are written as given, so quote strings that
# YAML needs quoted:
#
#   scripts/render-config.sh envoy/portcullis.yaml /tmp/p.yaml 'issuer="http://localhost:8080/realms/demo"'
#
# The end-to-end tests (e2e/harness_test.go) run this script. POSIX sh and sed only
# (docker-compose.yaml runs it in a busybox container). A name without its marker is an error.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 IN OUT name=value..." >&2; exit 2; }
in=$1 out=$2
shift 2
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }

script=
for pair in "$@"; do
  name=${pair%%=*}
  value=${pair#*=}
  [ "$name" != "$pair" ] || { echo "$0: '$pair' is not name=value" >&2; exit 2; }
  grep -q "# @$name[[:space:]]*\$" "$in" || { echo "$0: $in has no '# @$name' marker" >&2; exit 1; }
  # Escape what sed's replacement treats specially: backslash, the delimiter, and &.
  esc=$(printf '%s' "$value" | sed -e 's/[\\|&]/\\&/g')
  # YAML first; a line it rewrote skips the rest (`t`), since a line carries one marker.
  script="$script
s|^\\([[:space:]]*\\(- \\)\\{0,1\\}[A-Za-z0-9_.-]*:[[:space:]]*\\)[^[:space:]]*\\([[:space:]][[:space:]]*# @$name[[:space:]]*\\)\$|\\1$esc\\3|
t
s|^\\(.*[[:space:]]\\)[^[:space:];][^[:space:];]*\\(;\\{0,1\\}[[:space:]][[:space:]]*# @$name[[:space:]]*\\)\$|\\1$esc\\2|
t"
done

tmp="$out.tmp.$$"
sed -e "$script" "$in" > "$tmp"
mv "$tmp" "$out"
