"""playbooks/status.yml prints the runbook's status tables for the deployed cluster."""

from conftest import run_playbook


def test_status_playbook_shows_every_member_and_a_healthy_cluster(ansible_runner, etcd_names):
    rc, out = run_playbook(ansible_runner.inventory_file, 'status')
    assert rc == 0, out
    for name in etcd_names:
        assert name in out, out
    assert 'IS LEADER' in out and 'RAFT INDEX' in out, out
    assert 'healthy true, quorum true (3/3 voting members healthy, 2 needed)' in out, out
