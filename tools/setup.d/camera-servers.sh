#!/usr/bin/env bash
# Test servers for the camera sources: ustreamer (serves its "no signal" picture over HTTP without a camera),
# GStreamer's RTSP server library with Python bindings (tests/rtsp_server.py serves a test pattern as RTP/JPEG),
# and v4l-utils (v4l2-ctl, to list camera formats by hand). ffmpeg comes from tools/setup.sh --test.
# Idempotent: installs only what is missing.
set -euo pipefail
[ "${VIGIL_SETUP_TEST:-1}" = "0" ] && exit 0
say() { printf 'setup.d/camera-servers: %s\n' "$*" >&2; }
pkgs=(ustreamer v4l-utils python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
say "installing ${missing[*]}"
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
