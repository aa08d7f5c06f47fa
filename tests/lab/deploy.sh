#!/usr/bin/env bash
# Deploy the whole stack into the local lab on the embedded default inventory (inventory/lab/hosts.yml), saying
# what it does as it goes: install what deploying needs (tests/lab/bootstrap.sh), create the lab's containers,
# run playbooks/site.yml, print the stack's status and the commands to go on with.
#
# usage: tests/lab/deploy.sh [ansible-playbook options for site.yml]
#   LAB_DISTRO=trixie picks Debian 13 (etcd 3.5) instead of Debian 12 (etcd 3.4).
#   LAB_SLOT=N (0-9, default 0) deploys a lab of its own beside others (inventory/lab/hosts.yml).
# tests/lab/destroy.sh takes it down.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
# shellcheck source=tests/lab/steps.sh
source tests/lab/steps.sh
export LAB_DISTRO=${LAB_DISTRO:-bookworm}
slot=${LAB_SLOT:-0}
started=$SECONDS

step "install what deploying needs: tests/lab/bootstrap.sh (seconds when done before; on a fresh machine about" \
  "2 min, 3 to 4 when the base image must be built)"
LAB_DISTROS=$LAB_DISTRO tests/lab/bootstrap.sh
# shellcheck source=tests/lab/env.sh
source tests/lab/env.sh

step "create the lab: 9 systemd containers from gatewayops-lab:$LAB_DISTRO, LAB_SLOT $slot:" \
  "tests/lab/create.yml (about 1 min alone on the machine)"
ansible-playbook tests/lab/create.yml
step "deploy the stack: playbooks/site.yml (about 3 min alone on the machine, several times that beside" \
  "other work)"
ansible-playbook playbooks/site.yml "$@"
step "the stack's status: playbooks/status.yml"
ansible-playbook playbooks/status.yml

took=$((SECONDS - started))
next() { printf '  %-48s # %s\n' "$1" "$2"; }
echo
echo "Deployed in $((took / 60)) min $((took % 60)) s. Next, from $repo:"
lab_env=""
[ "$slot" = 0 ] || lab_env+=" LAB_SLOT=$slot"
[ "$LAB_DISTRO" = bookworm ] || lab_env+=" LAB_DISTRO=$LAB_DISTRO"
[ -z "$lab_env" ] || next "export$lab_env" "the lab the commands below work on"
next "source tests/lab/env.sh" "the venv and the collection, in this shell"
next "ansible-playbook playbooks/status.yml" "the status again (-e status_full=true: every column)"
next "ansible-playbook playbooks/backup.yml" "an operation: a snapshot of the cluster (docs/backup.md)"
next "tests/lab/destroy.sh" "take the lab down (deploy.sh brings it back)"
echo "The lab's etcd passwords and CA: inventory/lab/.credentials/lab$slot/ (etcd-root, etcd-apisix, etcd-pki/)."
