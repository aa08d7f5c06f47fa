#!/usr/bin/env bash
# Take down the lab tests/lab/deploy.sh made: its containers and its docker network (tests/lab/destroy.yml). The
# base images, the venv and the generated credentials stay (the next deploy reuses them).
#
# usage: tests/lab/destroy.sh       LAB_SLOT=N: the lab of that slot, as for deploy.sh (default 0)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
# shellcheck source=tests/lab/steps.sh
source tests/lab/steps.sh
# shellcheck source=tests/lab/env.sh
source tests/lab/env.sh
[ -x .venv/bin/ansible-playbook ] || { echo "no .venv/bin/ansible-playbook: deploy.sh makes it" >&2; exit 1; }
step "remove the containers and the network of the lab of LAB_SLOT ${LAB_SLOT:-0}: tests/lab/destroy.yml (seconds)"
ansible-playbook tests/lab/destroy.yml
