#!/usr/bin/env bash
# Install what the lab needs on a fresh Debian machine, saying what it does as it goes: system packages, the Docker
# engine, the Python venv .venv and the lab's base images. Safe to run again: each step does nothing when its
# result is already there (a re-run takes seconds).
#
# usage: tests/lab/bootstrap.sh [--tests]
#   no option  what deploying needs (tests/lab/deploy.sh): requirements.txt in the venv
#   --tests    the test tool chain too (tests/run): tests/requirements.txt, promtool, the Lua syntax checkers
#   LAB_DISTROS="bookworm trixie" (the default): the base images to build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lab/steps.sh
source "$here/steps.sh"
tests=false
case "${1:-}" in
  '') ;;
  --tests) tests=true ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
logs=$repo/.build/logs/bootstrap
started=$SECONDS

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if $tests; then
  command -v git >/dev/null 2>&1 || need+=(git)
  # The Lua syntax checkers the apisix_plugin_sync unit tests run for real.
  command -v luajit >/dev/null 2>&1 || need+=(luajit)
  command -v luac5.1 >/dev/null 2>&1 || need+=(lua5.1)
fi
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get: ${need[*]} (about 1 min; more for docker.io on a machine that has none)"
  export DEBIAN_FRONTEND=noninteractive
  run_logged apt "$logs/apt.log" sh -c "apt-get update && apt-get install -y ${need[*]}"
fi

step "the Docker engine (seconds when it runs)"
"$here/ensure-docker.sh"
if $tests; then
  # promtool alone (the alert rules' unit tests), unpacked from Debian's prometheus package into .build/tools.
  step "promtool, for the alert rules' unit tests (seconds)"
  "$here/install-promtool.sh"
fi

# The venv: the deploy set, then with --tests the test set on top. A set is installed again only when its files
# change (its stamp in .venv holds their sha256).
install_requirements() {
  local name=$1 file=$2 took=$3 stamp want
  stamp="$repo/.venv/.$name-requirements.sha256"
  want=$(cat "$repo/requirements.txt" "$file" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "    venv: the $name set is installed (${file#"$repo"/} unchanged)"
    return 0
  fi
  step "pip: the $name set into .venv ($took): $(grep -Eo '^[A-Za-z][^ #]*' "$file" | paste -sd' ')"
  # --no-compile: byte-compiling every file of the `ansible` package (its ~100 collections) takes minutes; Python
  # compiles what a run imports, once, on first use.
  run_logged "pip ($name)" "$logs/pip-$name.log" \
    "$repo/.venv/bin/pip" install --disable-pip-version-check --no-compile -r "$file"
  echo "$want" >"$stamp"
}
make_venv() {
  if [ ! -x "$repo/.venv/bin/pip" ]; then
    step "a Python venv in .venv, with the newest pip (seconds)"
    python3 -m venv "$repo/.venv"
    run_logged "pip (itself)" "$logs/pip-upgrade.log" \
      "$repo/.venv/bin/pip" install --disable-pip-version-check --upgrade pip
  fi
  install_requirements deploy "$repo/requirements.txt" "about 1 min on a fresh machine"
  if $tests; then
    install_requirements test "$repo/tests/requirements.txt" "about 1 min more on a fresh machine"
  fi
}

# The venv and the images side by side: both mostly wait for downloads.
make_venv &
venv=$!
suites=${LAB_DISTROS:-bookworm trixie}
step "the lab's base images for $suites (seconds when built; to build: debootstrap, packages, docker import," \
  "about 3 min, both side by side)"
# build-images.sh prints its own lines unchanged (its hash is the images' recipe label: editing it rebuilds them).
# shellcheck disable=SC2086 # a list of suites
run_logged images "$logs/images.log" "$here/build-images.sh" $suites || { wait "$venv"; exit 1; }
sed 's/^/    /' "$logs/images.log"
wait "$venv" || { echo "the venv could not be made: see the pip logs in ${logs#"$repo"/}" >&2; exit 1; }
echo "    bootstrap: done in $((SECONDS - started)) s"
