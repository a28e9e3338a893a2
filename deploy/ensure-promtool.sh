#!/usr/bin/env bash
# Make sure promtool is on PATH, for the test that checks the /metrics expositions with `promtool check metrics`
# (it skips where promtool is missing). Debian ships promtool in its `prometheus` package (~19 MB download);
# installing it does not start a Prometheus server where systemd does not run, and the tests never need one.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  exit 0
fi
echo "promtool is not installed (e.g. 'sudo apt-get install prometheus'); the promtool checks will be skipped" >&2
exit 0
