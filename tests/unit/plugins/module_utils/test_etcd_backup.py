# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/etcd_cluster/files/etcd_backup.py (the scheduled backup) against a fake host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import time

import pytest

from snapshot_fakes import FakeHost, Killed, Killer, KillableOps, SNAPSHOT, copy_fixture, load_program, make_bin_dir
from textfile_format import parse

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_file as sf

backup = load_program('roles/etcd_cluster/files/etcd_backup.py', 'etcd_backup')


@pytest.fixture
def box(tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir(mode=0o700)
    config = dict(lib_dir=str(tmp_path / 'lib'), dir=str(backups), bin_dir=make_bin_dir(str(tmp_path / 'bin')),
                  endpoints=['http://dead.invalid:2379', 'http://10.0.0.2:2379'], keep_days=7, keep_newest=2,
                  free_space_margin_mb=1, ca_cert=None, client_cert=None, client_key=None, user='root',
                  password='s3cret')
    path = tmp_path / 'backup.json'
    path.write_text(json.dumps(config))
    host = FakeHost()

    def run(killer=None, **changes):
        config.update(changes)
        path.write_text(json.dumps(config))
        host.killer = killer
        try:
            return backup.main(['--config', str(path)], run=host, ops=KillableOps(killer or Killer()))
        finally:
            host.killer = None
    return dict(dir=str(backups), run=run, host=host)


def snapshots(box):
    return sorted(n for n in os.listdir(box['dir']) if not n.startswith('.'))


def test_a_backup_is_saved_verified_and_private(box, capsys):
    assert box['run']() == 0
    names = snapshots(box)
    assert len(names) == 1 and names[0].startswith('etcd-') and names[0].endswith('Z.db')
    path = os.path.join(box['dir'], names[0])
    assert sf.check_snapshot(path)['sha256'] == sf.file_sha256(SNAPSHOT)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(box['dir']) == [names[0]]
    out = capsys.readouterr().out
    # The origin: the cluster ID the endpoint reported, the members the file holds.
    assert ('saved %s from http://10.0.0.2:2379 (cluster %016x, members d34 (http://127.0.0.1:32380)): revision 10'
            % (path, 4242)) in out
    calls = box['host'].calls
    # One probe per endpoint, a save from the first that answered, one status of the file.
    probes = [c['argv'][1] for c in calls if 'endpoint' in c['argv'] and 'status' in c['argv']]
    assert probes == ['--endpoints=http://dead.invalid:2379', '--endpoints=http://10.0.0.2:2379']
    assert len([c for c in calls if 'save' in c['argv']]) == 1
    assert len([c for c in calls if 'snapshot' in c['argv'] and 'status' in c['argv']]) == 1
    assert all('s3cret' not in ' '.join(c['argv']) for c in calls)


def test_retention_runs_after_the_new_backup(box):
    old = []
    for n, age in enumerate((1, 20, 30)):
        path = copy_fixture(os.path.join(box['dir'], 'etcd-old%d.db' % n))
        os.utime(path, (time.time() - age * 86400,) * 2)
        old.append(path)
    assert box['run']() == 0
    left = snapshots(box)
    assert 'etcd-old0.db' in left and 'etcd-old2.db' not in left and 'etcd-old1.db' not in left
    assert len(left) == 2


@pytest.mark.parametrize('endpoints,text', [
    (['http://corrupt:2379'], 'hash mismatch'),
    (['http://dead.invalid:2379'], 'no endpoint gave a snapshot'),
])
def test_a_failed_backup_removes_nothing_and_leaves_nothing(box, capsys, endpoints, text):
    old = copy_fixture(os.path.join(box['dir'], 'etcd-old.db'))
    os.utime(old, (time.time() - 90 * 86400,) * 2)
    assert box['run'](endpoints=endpoints) == 1
    assert os.listdir(box['dir']) == ['etcd-old.db']
    err = capsys.readouterr().err
    assert 'etcd backup FAILED, older backups left as they are' in err and text in err


def test_not_enough_space_takes_nothing(box, capsys):
    assert box['run'](free_space_margin_mb=10 ** 12) == 1
    assert 'not enough free space' in capsys.readouterr().err
    assert not [c for c in box['host'].calls if 'save' in c['argv']]
    assert snapshots(box) == []


# The steps of a backup: mkdtemp, two probes, the save, the status, the removal of the temporary dir.
STEPS = 6


def test_a_backup_has_the_steps_the_kills_cover(box):
    counter = Killer()
    assert box['run'](killer=counter) == 0
    assert counter.count == STEPS


@pytest.mark.parametrize('at', range(STEPS))
def test_killed_at_any_step_the_next_run_cleans_up(box, at):
    with pytest.raises(Killed):
        box['run'](killer=Killer(at))
    assert box['run']() == 0
    names = snapshots(box)
    assert sorted(os.listdir(box['dir'])) == names
    for name in names:
        assert sf.check_snapshot(os.path.join(box['dir'], name))


# --- the gauges for node_exporter's textfile collector ---------------------------------------------------

def gauges(box):
    with open(os.path.join(box['metrics'], 'gatewayops-etcd-backup.prom')) as handle:
        return parse(handle.read())


@pytest.fixture
def metered(box, tmp_path):
    metrics = tmp_path / 'node-exporter'
    metrics.mkdir()
    box['metrics'] = str(metrics)
    box['config'] = dict(metrics_textfile_dir=str(metrics), period_seconds=3600)
    return box


def test_a_backup_writes_its_gauges(metered):
    before = time.time()
    assert metered['run'](**metered['config']) == 0
    values = gauges(metered)
    assert before <= values[('gatewayops_etcd_backup_last_success_timestamp_seconds', ())] <= time.time()
    assert values[('gatewayops_etcd_backup_last_revision', ())] == 10
    assert values[('gatewayops_etcd_backup_last_run_success', ())] == 1
    assert values[('gatewayops_etcd_backup_period_seconds', ())] == 3600
    assert not [key for key in values if key[0] == 'gatewayops_etcd_alarm']
    assert os.listdir(metered['metrics']) == ['gatewayops-etcd-backup.prom']
    assert stat.S_IMODE(os.stat(os.path.join(metered['metrics'], 'gatewayops-etcd-backup.prom')).st_mode) == 0o644


def test_a_failed_backup_keeps_the_last_success(metered):
    assert metered['run'](**metered['config']) == 0
    good = gauges(metered)
    metered['host'].cluster_revision = 99
    assert metered['run'](endpoints=['http://corrupt:2379'], **metered['config']) == 1
    values = gauges(metered)
    assert values[('gatewayops_etcd_backup_last_run_success', ())] == 0
    for name in ('gatewayops_etcd_backup_last_success_timestamp_seconds', 'gatewayops_etcd_backup_last_revision'):
        assert values[(name, ())] == good[(name, ())]


def test_a_first_failed_backup_says_no_success_yet(metered, capsys):
    assert metered['run'](endpoints=['http://dead.invalid:2379'], **metered['config']) == 1
    values = gauges(metered)
    assert values[('gatewayops_etcd_backup_last_success_timestamp_seconds', ())] == 0
    assert values[('gatewayops_etcd_backup_last_run_success', ())] == 0
    # No endpoint answered the alarm list either: no alarm series, and the journal says why.
    assert not [key for key in values if key[0] == 'gatewayops_etcd_alarm']
    assert 'no endpoint answered alarm list' in capsys.readouterr().err


def test_active_alarms_are_gauges_named_by_member(metered):
    metered['host'].alarms = [(0x91bc3c398fb3c146, 1), (0xabc, 2)]
    assert metered['run'](**metered['config']) == 0
    values = gauges(metered)
    assert values[('gatewayops_etcd_alarm', (('alarm', 'NOSPACE'), ('member', 'etcd02')))] == 1
    # A member the list does not name (removed meanwhile): its ID in hex.
    assert values[('gatewayops_etcd_alarm', (('alarm', 'CORRUPT'), ('member', 'abc')))] == 1
    # From the first endpoint that answers, with the backup's connection and the password in the environment.
    asked = [c for c in metered['host'].calls if 'alarm' in c['argv']]
    assert [c['argv'][1] for c in asked] == ['--endpoints=http://dead.invalid:2379', '--endpoints=http://10.0.0.2:2379']
    assert asked[-1]['env'].get('ETCDCTL_PASSWORD') == 's3cret' and '--user' in asked[-1]['argv']
    # Cleared: the series goes.
    metered['host'].alarms = []
    assert metered['run'](**metered['config']) == 0
    assert not [key for key in gauges(metered) if key[0] == 'gatewayops_etcd_alarm']


def test_the_alarms_are_left_to_the_scheduled_maintenance_installed_on_the_host(metered, tmp_path):
    metered['host'].alarms = [(0x91bc3c398fb3c146, 1)]
    maintenance = tmp_path / 'maintenance.json'
    maintenance.write_text('{}')
    assert metered['run'](maintenance_config=str(maintenance), **metered['config']) == 0
    assert not [key for key in gauges(metered) if key[0] == 'gatewayops_etcd_alarm']
    assert not [c for c in metered['host'].calls if 'alarm' in c['argv']]
    # Removed (the schedule turned off): the backup writes them again.
    maintenance.unlink()
    assert metered['run'](maintenance_config=str(maintenance), **metered['config']) == 0
    assert gauges(metered)[('gatewayops_etcd_alarm', (('alarm', 'NOSPACE'), ('member', 'etcd02')))] == 1


def test_gauges_that_cannot_be_written_do_not_fail_the_backup(metered, capsys):
    config = dict(metered['config'], metrics_textfile_dir=os.path.join(metered['metrics'], 'missing'))
    assert metered['run'](**config) == 0
    assert 'the gauges were not written' in capsys.readouterr().err
    assert len(snapshots(metered)) == 1


def test_no_textfile_dir_no_gauges_and_no_alarm_query(box):
    assert box['run'](metrics_textfile_dir='') == 0
    assert not [c for c in box['host'].calls if 'alarm' in c['argv']]
