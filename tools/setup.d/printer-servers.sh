#!/usr/bin/env bash
# Test servers for the printer adapters: OctoPrint (with its bundled Virtual Printer) and Moonraker, each from
# PyPI at a pinned version in its own venv under .local/. Tests find them at .local/octoprint/bin/octoprint and
# .local/moonraker/bin/moonraker. Idempotent: a venv that already has the pinned version is left alone.
set -euo pipefail
[ "${VIGIL_SETUP_TEST:-1}" = "0" ] && exit 0
root=${VIGIL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
say() { printf 'setup.d/printer-servers: %s\n' "$*" >&2; }
py=/usr/bin/python3
if ! $py -c 'import venv, ensurepip' 2>/dev/null; then
  say "installing python3-venv"
  if [ "$(id -u)" -eq 0 ]; then
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null 2>&1 \
      || { apt-get update -qq; env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
  else
    sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
fi
venv() { # name package version
  local dest="$root/.local/$1"
  if [ -x "$dest/bin/python" ] && "$dest/bin/python" -m pip show "$2" 2>/dev/null | grep -qx "Version: $3"; then
    return 0
  fi
  say "installing $2 $3 into $dest"
  rm -rf "$dest"
  $py -m venv "$dest"
  "$dest/bin/python" -m pip install -q --disable-pip-version-check "$2==$3"
}
venv octoprint octoprint 1.11.8
venv moonraker moonraker 0.11.0
