"""playbooks/status.yml prints the runbook's status tables for the deployed cluster."""

import os
import subprocess


def test_status_playbook_shows_every_member_and_a_healthy_cluster(ansible_runner, etcd_names):
    done = subprocess.run(['ansible-playbook', '-i', ansible_runner.inventory_file, 'gatewayops.apisix_ha.status'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1'))
    assert done.returncode == 0, done.stdout
    for name in etcd_names:
        assert name in done.stdout, done.stdout
    assert 'IS LEADER' in done.stdout and 'RAFT INDEX' in done.stdout, done.stdout
    assert 'healthy true, quorum true (3/3 voting members healthy, 2 needed)' in done.stdout, done.stdout
