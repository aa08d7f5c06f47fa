"""playbooks/status.yml shows the whole stack at a glance: the runbook's status tables for the deployed cluster with
each database's use of its space, the newest backup, the emergency node, the deployment lock, the gateway's side and
each APISIX node; the same as JSON on request."""

import json
import os
import re
import tempfile

from conftest import lab_host, printed_secrets, run_playbook


def test_status_playbook_shows_the_whole_stack(ansible_runner, etcd_names):
    rc, out = run_playbook(ansible_runner.inventory_file, 'status')
    assert rc == 0, out
    for name in etcd_names:
        assert re.search(r'\| %s +\| 3\.\d+\.\d+ +\| [0-9.]+ [kM]B +\| [0-9.]+ [kM]B +\| \d+%% +\| \d+%% ' % name, out), out
    assert 'IS LEADER' in out and 'RAFT INDEX' in out and 'ENDPOINT' not in out, out
    assert 'healthy true, quorum true (3/3 voting members healthy, 2 needed)' in out, out
    flat = ' '.join(out.split())  # the callback wraps long lines
    assert re.search(r'newest backup: /var/backups/etcd/etcd-[0-9TZ]+\.db on etcd01, [0-9.]+ h old', flat), out[-3000:]
    assert 'the etcd front sends the APISIX nodes to the cluster' in flat, out[-3000:]
    assert 'drained from the APISIX upstreams: none' in flat, out[-3000:]
    for node in ('apisix01', 'apisix02'):
        assert re.search(r'%s: ready, in the upstreams of the gateway, [1-9][0-9]* plugins loaded' % node, flat), out[-3000:]


def test_status_playbook_gives_every_column_and_json_on_request(ansible_runner, etcd_names):
    path = os.path.join(tempfile.mkdtemp(), 'stack.json')
    rc, out = run_playbook(ansible_runner.inventory_file, 'status', 'status_full=true', 'status_json_file=%s' % path)
    assert rc == 0, out[-3000:]
    assert 'ENDPOINT' in out and 'RAFT APPLIED INDEX' in out, out[-3000:]
    with open(path) as f:
        text = f.read()
    assert not printed_secrets(text)
    status = json.loads(text)
    assert sorted(m['name'] for m in status['cluster']['members']) == sorted(etcd_names)
    assert status['cluster']['healthy'] is True
    assert status['gateway']['gw01']['etcd_side'] == 'cluster'
    assert all(node['ready'] for node in status['apisix'].values()) and len(status['apisix']) == 2
    assert status['emergency']['etcd-single']['timer_active'] is True


def test_status_playbook_refuses_a_bad_request(ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'status', 'status_full=maybe', 'status_colour=blue')
    assert rc != 0
    flat = ' '.join(out.split())
    assert "status_full must be true or false (got 'maybe')" in flat and 'got also: status_colour' in flat, out[-3000:]


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
