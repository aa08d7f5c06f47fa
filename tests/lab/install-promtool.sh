#!/usr/bin/env bash
# promtool for the unit tests of the alert rules (tests/unit/test_alert_rules.py runs `promtool check rules` and
# `promtool test rules`), without a Prometheus server on this machine: Debian's prometheus package (Debian 12:
# 2.42) is downloaded, not installed, and only its promtool is unpacked, into .build/tools/bin (tests/lab/env.sh
# puts it on PATH). Does nothing when a promtool is already there or on PATH.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin="$repo/.build/tools/bin"

if "$bin/promtool" --version >/dev/null 2>&1; then
  exit 0
fi
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi

# `apt-get download` needs the package lists: a machine on which nothing was installed may have none yet.
candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [ -z "$(candidate)" ] || [ "$(candidate)" = "(none)" ]; then
  apt-get update -qq
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt downloads as its unprivileged user when it may write there (else it warns and downloads as root).
if id _apt >/dev/null 2>&1; then
  chown _apt "$tmp"
fi
(cd "$tmp" && apt-get download -qq prometheus)
deb=$(find "$tmp" -maxdepth 1 -name 'prometheus_*.deb' -print -quit)
[ -n "$deb" ] || { echo "apt-get download prometheus gave no package" >&2; exit 1; }
dpkg-deb -x "$deb" "$tmp/root"
mkdir -p "$bin"
install -m 0755 "$tmp/root/usr/bin/promtool" "$bin/promtool.new"
mv "$bin/promtool.new" "$bin/promtool"
"$bin/promtool" --version | head -n 1
