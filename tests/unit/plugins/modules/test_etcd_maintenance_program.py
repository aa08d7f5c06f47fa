# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/etcd_cluster/files/etcd_maintenance.py (the scheduled maintenance) against the replayed three-member cluster
of etcd_defrag's tests (FakeCluster, recorded etcd 3.4.23 / 3.5.16 answers): the same rule and order as the module,
and the gauges every run writes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os
import stat
import sys

import pytest

from test_etcd_defrag import FRAGMENTED, MIB, URLS, FakeCluster

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))
from textfile_format import parse  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
_spec = importlib.util.spec_from_file_location(
    'etcd_maintenance', os.path.join(REPO, 'roles', 'etcd_cluster', 'files', 'etcd_maintenance.py'))
program = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(program)

WITHIN = dict(m1=(20 * MIB, 18 * MIB), m2=(20 * MIB, 18 * MIB), m3=(20 * MIB, 18 * MIB))


@pytest.fixture
def box(tmp_path):
    metrics = tmp_path / 'textfile'
    metrics.mkdir()
    config = dict(lib_dir=str(tmp_path / 'lib'), endpoints=[URLS['m1']], timeout=5, ca_cert=None, client_cert=None,
                  client_key=None, user=None, credentials_file=None, compact=True, fragmentation_above=0.5,
                  quota_share_above=0.8, reclaimable_above=200 * MIB, quota_bytes=2048 * MIB, pause=0,
                  wait_timeout=5, defrag_timeout=30, health_timeout=5, leader_timeout=5,
                  metrics_textfile_dir=str(metrics), period_seconds=3600)
    path = tmp_path / 'maintenance.json'

    def run(**changes):
        path.write_text(json.dumps(dict(config, **changes)))
        return program.main(['--config', str(path)])

    def gauges():
        return parse((metrics / program.METRICS_FILE).read_text())
    return dict(run=run, gauges=gauges, metrics=metrics, tmp=tmp_path)


def test_within_the_rule_nothing_is_done_and_the_gauges_are_written(gateway, box, capsys):
    cluster = FakeCluster(gateway, WITHIN)
    assert box['run']() == 0
    assert cluster.writes() == [] and cluster.order == []
    assert 'nothing to do: every member is within the rule' in capsys.readouterr().out
    found = box['gauges']()
    assert found[('gatewayops_etcd_maintenance_last_run_success', ())] == 1
    assert found[('gatewayops_etcd_maintenance_period_seconds', ())] == 3600
    assert found[('gatewayops_etcd_maintenance_last_success_timestamp_seconds', ())] == \
        found[('gatewayops_etcd_maintenance_last_run_timestamp_seconds', ())] > 0
    for name in URLS:
        assert found[('gatewayops_etcd_db_size_bytes', (('member', name),))] == 20 * MIB
        assert found[('gatewayops_etcd_db_size_in_use_bytes', (('member', name),))] == 18 * MIB
    assert not [key for key in found if key[0] == 'gatewayops_etcd_alarm']
    assert stat.S_IMODE(os.stat(str(box['metrics'] / program.METRICS_FILE)).st_mode) == 0o644


def test_picked_members_are_defragmented_followers_first_the_leader_last(gateway, box, capsys):
    cluster = FakeCluster(gateway, FRAGMENTED)
    leader = cluster.leader_name
    followers = sorted(n for n in URLS if n != leader)
    assert box['run']() == 0
    assert cluster.order == followers + [leader]
    assert cluster.compacted == 100 and cluster.leader_name == followers[0]
    out = capsys.readouterr().out
    assert 'defragmented %s; compacted to revision 100; leader %s before, %s after' % (
        ', '.join(followers + [leader]), leader, followers[0]) in out
    found = box['gauges']()
    # The sizes after the run.
    assert all(found[('gatewayops_etcd_db_size_bytes', (('member', name),))] == 10 * MIB for name in URLS)


def test_an_alarm_refuses_the_run_and_is_a_gauge_named_by_member(gateway, box, capsys):
    cluster = FakeCluster(gateway, FRAGMENTED, alarm='NOSPACE')
    assert box['run']() == 1
    assert cluster.writes() == []
    err = capsys.readouterr().err
    assert 'etcd maintenance FAILED (done: nothing): Refusing to defragment: the cluster is out of space' in err
    found = box['gauges']()
    alarms = dict((key[1], value) for key, value in found.items() if key[0] == 'gatewayops_etcd_alarm')
    recorded = gateway.answer('alarm_list_nospace')['alarms'][0]
    member = cluster.names[int(recorded['memberID'])]
    assert alarms == {(('alarm', 'NOSPACE'), ('member', member)): 1}
    assert found[('gatewayops_etcd_maintenance_last_run_success', ())] == 0


def test_a_failed_run_keeps_the_time_of_the_last_success(gateway, box):
    FakeCluster(gateway, WITHIN)
    assert box['run']() == 0
    last = box['gauges']()[('gatewayops_etcd_maintenance_last_success_timestamp_seconds', ())]
    gateway.routes.clear()
    gateway.refuse(URLS['m1'])
    assert box['run']() == 1
    found = box['gauges']()
    assert found[('gatewayops_etcd_maintenance_last_success_timestamp_seconds', ())] == last
    assert found[('gatewayops_etcd_maintenance_last_run_success', ())] == 0
    # Nothing read, nothing said of the members or the alarms.
    assert sorted(key[0] for key in found) == sorted([
        'gatewayops_etcd_maintenance_last_run_timestamp_seconds', 'gatewayops_etcd_maintenance_last_run_success',
        'gatewayops_etcd_maintenance_last_success_timestamp_seconds', 'gatewayops_etcd_maintenance_period_seconds'])


def test_the_password_comes_from_the_credentials_file(gateway, box):
    FakeCluster(gateway, WITHIN)
    gateway.route('*', '/v3/auth/authenticate', 'auth_authenticate')
    credentials = box['tmp'] / 'credentials.json'
    credentials.write_text(json.dumps(dict(password='s3cret')))
    assert box['run'](user='root', credentials_file=str(credentials)) == 0
    logins = gateway.paths('/v3/auth/authenticate')
    assert logins and logins[0]['body'] == {'name': 'root', 'password': 's3cret'}


def test_the_program_never_forces_nor_recovers(gateway, box):
    assert 'force' not in program.PARAMETERS and 'recover_nospace' not in program.PARAMETERS
    FakeCluster(gateway, WITHIN)
    # A config that asks for them is not read for them.
    assert box['run'](force=True, recover_nospace=True) == 0
    assert gateway.paths('/v3/maintenance/defragment') == []
