#!/usr/bin/env bash
# Deploy the whole stack into the local lab on the embedded default inventory (inventory/lab/hosts.yml):
# install what the lab needs, create its containers, run playbooks/site.yml, print the cluster status.
#
# usage: tests/lab/deploy.sh [ansible-playbook options for site.yml]
#   LAB_DISTRO=trixie picks Debian 13 (etcd 3.5) instead of Debian 12 (etcd 3.4).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
LAB_DISTROS=${LAB_DISTRO:-bookworm} tests/lab/bootstrap.sh
# shellcheck source=tests/lab/env.sh
source tests/lab/env.sh
ansible-playbook tests/lab/create.yml
ansible-playbook playbooks/site.yml "$@"
ansible-playbook playbooks/status.yml
