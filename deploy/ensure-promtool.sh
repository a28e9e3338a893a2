#!/usr/bin/env bash
# Make sure `promtool` is on PATH, so the test suite checks and unit-tests the alert rules (and the metrics
# pages); the tests skip where it is missing, so this never fails the build.
#
# Debian's `prometheus` package ships promtool, but installing that package also installs a Prometheus server
# (a user, an init script and a systemd unit on port 9090, started wherever systemd runs). Only the promtool
# binary is wanted: the package is downloaded, unpacked aside, and promtool alone is copied to /usr/local/bin.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is not installed: the alert-rule tests will be skipped" \
       "(install Debian's 'prometheus' package, or put promtool on PATH)" >&2
  exit 0
fi
echo "promtool not found: taking it from Debian's prometheus package" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"   # apt's download user must be able to write here
export DEBIAN_FRONTEND=noninteractive
if ! (cd "$work" && { apt-get download -qq prometheus 2>/dev/null \
      || { apt-get update -qq && apt-get download -qq prometheus; }; }); then
  echo "could not download Debian's prometheus package: the alert-rule tests will be skipped" >&2
  exit 0
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/unpacked"
install -m 0755 "$work/unpacked/usr/bin/promtool" /usr/local/bin/promtool
promtool --version | head -1 >&2
