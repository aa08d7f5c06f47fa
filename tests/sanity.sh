#!/usr/bin/env bash
# ansible-test sanity, with no ignore files, on a copy of the checkout placed on an
# ansible_collections/gatewayops/apisix_ha path (ansible-test reads the real path of the working directory,
# so a link will not do). ansible-test gets a virtual environment of its own for the requirements it pins.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work="${TMPDIR:-/tmp}/gatewayops-sanity"
# Outside the checkout: ansible-test would otherwise list files through the checkout's git, which ignores the copy.
dest="$work/ansible_collections/gatewayops/apisix_ha"
venv="$work/venv"

rm -rf "$dest"
mkdir -p "$dest"
cd "$repo"
# Tracked and new (not ignored) files: what a clean clone would hold.
git ls-files --cached --others --exclude-standard -z | xargs -0 -r ls -d 2>/dev/null | tar -c -T - | tar -x -C "$dest"

core=$(grep -E '^ansible-core==' "$repo/requirements.txt")
if [ ! -x "$venv/bin/ansible-test" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -x "$core" >/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$core"
fi

# ansible-test bootstraps pip in the venvs it makes with a script downloaded from a host this machine cannot
# reach: stand in for it with the standard library's ensurepip, and hand this shell's pip settings (a CA
# bundle, an index) to those venvs, which do not see them otherwise.
"$venv/bin/python" "$repo/tests/lab/write_get_pip.py" "$(pip config list 2>/dev/null || true)"

cd "$dest"
py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH="$venv/bin:$PATH" ansible-test sanity --color no --python "$py" --requirements "$@"
