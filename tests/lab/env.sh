# shellcheck shell=bash
# Source this to work with the checkout: the venv and promtool on PATH, the collection found under
# .build/collections (the checkout itself must sit on an ansible_collections/gatewayops/apisix_ha path),
# and the etcd3 test client's protobuf switch (tests only; the collection never needs it).
GATEWAYOPS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export GATEWAYOPS_REPO
# .build/tools/bin: promtool (tests/lab/install-promtool.sh), for the alert rules' unit tests.
export PATH="$GATEWAYOPS_REPO/.venv/bin:$GATEWAYOPS_REPO/.build/tools/bin:$PATH"
mkdir -p "$GATEWAYOPS_REPO/.build/collections/ansible_collections/gatewayops"
ln -sfn ../../../.. "$GATEWAYOPS_REPO/.build/collections/ansible_collections/gatewayops/apisix_ha"
export ANSIBLE_COLLECTIONS_PATH="$GATEWAYOPS_REPO/.build/collections"
export ANSIBLE_CONFIG="$GATEWAYOPS_REPO/ansible.cfg"
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
export MOLECULE_GLOB='molecule/*/molecule.yml'
