#!/usr/bin/env bash
# Install everything the lab and the tests need on a fresh Debian machine: system packages, the Docker
# engine, promtool, the Python venv (requirements.txt) and the lab's base images. Safe to run again: each step
# does nothing when its result is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

need=()
for cmd in debootstrap git; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# The Lua syntax checkers the apisix_plugin_sync unit tests run for real.
command -v luajit >/dev/null 2>&1 || need+=(luajit)
command -v luac5.1 >/dev/null 2>&1 || need+=(lua5.1)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

"$here/ensure-docker.sh"
# promtool alone (the alert rules' unit tests), unpacked from Debian's prometheus package into .build/tools.
"$here/install-promtool.sh"

# The venv is rebuilt when requirements.txt changes.
make_venv() {
  local stamp="$repo/.venv/.requirements.sha256" want
  want=$(sha256sum "$repo/requirements.txt" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || return 0
  python3 -m venv "$repo/.venv"
  # pip -q still warns about every package for index locations that some machines configure but lack.
  quiet() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }
  quiet "$repo/.venv/bin/pip" install -q --upgrade pip
  quiet "$repo/.venv/bin/pip" install -q -r "$repo/requirements.txt"
  echo "$want" >"$stamp"
}

# The venv and the images side by side: both mostly wait for downloads.
make_venv &
venv=$!
# shellcheck disable=SC2086 # a list of suites
"$here/build-images.sh" ${LAB_DISTROS:-bookworm trixie} || { wait "$venv"; exit 1; }
wait "$venv" || { echo "the venv could not be made (requirements.txt)" >&2; exit 1; }
