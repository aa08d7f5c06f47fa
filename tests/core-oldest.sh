#!/usr/bin/env bash
# The unit tests on the oldest ansible-core the collection supports: the modules' and plugins' tests, and
# test_collection_build.py (the collection built, installed alone and every playbook syntax-checked). In a venv of
# its own, .build/venv-core-oldest, made from tests/requirements-core-oldest.txt and again only when that file
# changes. tests/run's core-oldest stage. Arguments: pytest's (default: those two; the rest of tests/unit - the
# lab's and the docs' tests, promtool, the roles rendered - runs on the newest core in the unit stage, and beside
# the labs a second whole run would only slow them).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$repo/.build/venv-core-oldest
pins=$repo/tests/requirements-core-oldest.txt

want=$(sha256sum "$pins" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "making $venv from $pins (about 90 s: the ansible package is large)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # pip -q still warns about every package for index locations that some machines configure but lack.
  "$venv/bin/pip" install -q --no-compile -r "$pins" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  echo "$want" >"$venv/.requirements.sha256"
fi

# The core tested must be the one the range starts at.
claimed=$(sed -n 's/^requires_ansible: ">=\([0-9.]*\)"$/\1/p' "$repo/meta/runtime.yml")
have=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
if [ "$have" != "$claimed" ]; then
  echo "$venv has ansible-core $have, meta/runtime.yml's requires_ansible starts at $claimed: change $pins" >&2
  exit 1
fi
echo "ansible-core $have ($venv)"
cd "$repo"
[ $# -gt 0 ] || set -- tests/unit/plugins tests/unit/test_collection_build.py
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
