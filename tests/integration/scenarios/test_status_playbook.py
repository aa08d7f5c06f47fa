"""playbooks/status.yml prints the runbook's status tables for the deployed cluster."""

import re

from conftest import lab_host, run_playbook


def test_status_playbook_shows_every_member_and_a_healthy_cluster(ansible_runner, etcd_names):
    rc, out = run_playbook(ansible_runner.inventory_file, 'status')
    assert rc == 0, out
    for name in etcd_names:
        assert name in out, out
    assert 'IS LEADER' in out and 'RAFT INDEX' in out, out
    assert 'healthy true, quorum true (3/3 voting members healthy, 2 needed)' in out, out


def test_status_playbook_shows_a_paused_refresh_timer_and_the_emergency_node(ansible_runner):
    emergency = lab_host('etcd-single')
    rc, out = run_playbook(ansible_runner.inventory_file, 'status')
    assert rc == 0, out[-3000:]
    flat = ' '.join(out.split())  # the callback wraps long lines
    assert 'emergency node etcd-single: standby' in flat and 'refresh timer: running' in flat, out[-3000:]
    # Free, or left by a run of this controller that ended failing (the default scenario's rolled-back update).
    assert re.search(r"deployment lock: (free'|held by \w+ \([^)]*\), a run that ended without giving it back)",
                     flat), out[-3000:]
    assert emergency.run('systemctl stop etcd-emergency-refresh.timer').rc == 0
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, 'status')
    finally:
        emergency.run('systemctl start etcd-emergency-refresh.timer')
    assert rc == 0, out[-3000:]
    assert 'refresh timer: PAUSED with no failover active: the node grows staler' in ' '.join(out.split()), \
        out[-3000:]
