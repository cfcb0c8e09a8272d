#!/usr/bin/env bash
# Puts Debian's nginx (with its WebDAV module) into .local/nginx/ for the telemetry tests, without a system-wide
# install: the .deb files are downloaded with apt and unpacked with dpkg-deb. Idempotent: does nothing when the
# binary is already there. Tests find it at $VIGIL_ROOT/.local/nginx/usr/sbin/nginx.
set -euo pipefail

root=${VIGIL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
dest="$root/.local/nginx"
say() { printf 'setup.d/nginx: %s\n' "$*" >&2; }

# Only the tests use it: skip when the main setup script runs without --test.
[ "${VIGIL_SETUP_TEST:-1}" = "0" ] && exit 0

if [ -x "$dest/usr/sbin/nginx" ] && "$dest/usr/sbin/nginx" -V 2>&1 | grep -q http_dav_module; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download nginx nginx-common >/dev/null 2>&1; then
  # A fresh machine may have no package lists yet.
  say "apt-get download failed; updating the package lists once"
  apt-get update -qq
  apt-get download nginx nginx-common >/dev/null
fi
rm -rf "$dest.new"
mkdir -p "$dest.new"
for deb in ./*.deb; do
  dpkg-deb -x "$deb" "$dest.new"
done
"$dest.new/usr/sbin/nginx" -V 2>&1 | grep -q http_dav_module || { say "nginx lacks the dav module"; exit 1; }
rm -rf "$dest"
mv "$dest.new" "$dest"
say "nginx $("$dest/usr/sbin/nginx" -v 2>&1 | sed 's/.*nginx\///') in $dest"
