# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot workflow (module_utils/_etcd_snapshot_workflow.py): save, verify, restore beside, swap."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from snapshot_fakes import FakeHost, Killed, Killer, KillableOps, copy_fixture, make_bin_dir

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_file as sf
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_workflow as wf

MEMBER = dict(name='m1', initial_cluster='m1=http://127.0.0.1:2380', initial_cluster_token='t',
              initial_advertise_peer_urls=['http://127.0.0.1:2380'])


@pytest.fixture
def flow(tmp_path):
    host = FakeHost()
    tools = sf.SnapshotTools.find(make_bin_dir(str(tmp_path / 'bin')))
    notes = []
    return wf.SnapshotWorkflow(tools, host, log=notes.append), host, notes


def generation(path, revision):
    os.makedirs(os.path.join(path, 'member', 'snap'))
    with open(os.path.join(path, 'member', 'snap', 'db'), 'w') as handle:
        handle.write('rev=%d' % revision)


def revision_at(path):
    try:
        with open(os.path.join(path, 'member', 'snap', 'db')) as handle:
            return int(handle.read().split('=')[1])
    except (IOError, OSError):
        return None


def test_save_uses_the_first_endpoint_that_answers_its_one_probe(flow, tmp_path):
    flow, host, notes = flow
    tmp = str(tmp_path / 'snap.db')
    endpoint, probed = flow.save(tmp, ['http://dead.invalid:2379', 'http://10.0.0.2:2379'], dict(user='root'),
                                 password='pw', probe=flow.etcdctl_probe(dict(user='root', timeout=1), 'pw'))
    assert endpoint == 'http://10.0.0.2:2379' and probed['db_size'] == 20480 and probed['cluster_id'] == 4242
    assert [c['argv'][1:] for c in host.calls if 'save' in c['argv']] == [
        ['--endpoints=http://10.0.0.2:2379', '--user', 'root', 'snapshot', 'save', tmp]]
    assert notes == ['http://dead.invalid:2379: endpoint status failed (rc=1), not used']
    assert flow.verify(tmp)['revision'] == 10


def test_save_without_probe_tries_the_next_endpoint_after_a_failed_save(flow, tmp_path):
    flow, host, notes = flow
    tmp = str(tmp_path / 'snap.db')
    assert flow.save(tmp, ['http://dead.invalid:2379', 'http://10.0.0.2:2379'], {})[0] == 'http://10.0.0.2:2379'
    assert notes == ['http://dead.invalid:2379 did not give a snapshot (rc=1)']
    with pytest.raises(wf.SnapshotStepError) as failed:
        flow.save(tmp, ['http://dead.invalid:2379'], {})
    assert failed.value.extra['endpoint_errors'] == ['http://dead.invalid:2379: Error: context deadline exceeded']


def test_verify_reads_the_status_while_hashing_and_reports_a_broken_file_first(flow, tmp_path):
    flow, host, notes = flow
    good = copy_fixture(str(tmp_path / 'good.db'))
    info = flow.verify(good)
    assert info['integrity_ok'] and info['revision'] == 7 and info['total_keys'] == 10
    assert [c['argv'][1:3] for c in host.calls] == [['snapshot', 'status']]
    host.status_fails = True
    with pytest.raises(wf.SnapshotStepError) as failed:
        flow.verify(good)
    assert '"snapshot status" of %s failed (rc=1): Error: invalid database' % good in str(failed.value)
    broken = str(tmp_path / 'broken.db')
    with open(good, 'rb') as source, open(broken, 'wb') as target:
        data = bytearray(source.read())
        data[10000] ^= 0xFF
        target.write(bytes(data))
    with pytest.raises(sf.SnapshotHashMismatchError):
        flow.verify(broken)
    assert flow.verify(good, read_status=False) == dict(integrity_ok=True, sha256=info['sha256'], size=info['size'],
                                                        origin=info['origin'])


def test_restore_beside_proves_the_result(flow, tmp_path):
    flow, host, notes = flow
    snapshot = copy_fixture(str(tmp_path / 's.db'))
    root = str(tmp_path / 'stage')
    os.mkdir(root)
    staged = flow.restore_beside(snapshot, 7, str(tmp_path / 'data'), root, MEMBER)
    assert staged == os.path.join(root, 'data') and revision_at(staged) == 7
    assert stat.S_IMODE(os.stat(staged).st_mode) == 0o700
    assert notes[-1] == 'checked the restored data (member/snap/db, WAL, revision 7)'
    with pytest.raises(wf.SnapshotStepError) as wrong:
        flow.restore_beside(snapshot, 8, str(tmp_path / 'other'), root, MEMBER)
    assert 'the restored database is at revision 7, the snapshot at 8' in str(wrong.value)
    host.restore_fails = True
    with pytest.raises(wf.SnapshotStepError) as failed:
        flow.restore_beside(snapshot, 7, str(tmp_path / 'third'), root, MEMBER)
    assert '"snapshot restore" of %s failed (rc=1)' % snapshot in str(failed.value)


def swap_setup(tmp_path, with_previous):
    parent = tmp_path / 'etcd'
    parent.mkdir()
    data_dir, keep = str(parent / 'data'), str(parent / 'data.previous')
    generation(data_dir, 2)
    if with_previous:
        generation(keep, 1)
    root = wf.FileOps().mkdtemp(wf.staging_prefix(data_dir, 'refresh'), str(parent))
    generation(os.path.join(root, 'data'), 3)
    return str(parent), data_dir, keep, root


@pytest.mark.parametrize('with_previous', [True, False])
def test_swap_forward_and_commit(tmp_path, with_previous):
    parent, data_dir, keep, root = swap_setup(tmp_path, with_previous)
    swap = wf.DataDirSwap(data_dir, keep, root)
    swap.forward()
    swap.commit()
    assert (revision_at(data_dir), revision_at(keep)) == (3, 2)
    assert sorted(os.listdir(parent)) == ['data', 'data.previous']


@pytest.mark.parametrize('with_previous,at', [(w, at) for w in (True, False) for at in range(4 if w else 3)])
def test_swap_killed_at_each_step_rolls_back_in_a_later_run(tmp_path, with_previous, at):
    parent, data_dir, keep, root = swap_setup(tmp_path, with_previous)
    replaces = wf.has_content(data_dir)
    with pytest.raises(Killed):
        wf.DataDirSwap(data_dir, keep, root, KillableOps(Killer(at))).forward()
    # Each step leaves whole generations under known names.
    assert revision_at(data_dir) in (None, 2, 3)
    later = wf.DataDirSwap(data_dir, keep, root, replaces=replaces)
    later.rollback()
    later.rollback()  # a rollback killed and run again ends the same
    assert revision_at(data_dir) == 2
    assert revision_at(keep) == (1 if with_previous else None)
    assert revision_at(os.path.join(root, 'data')) == 3
    later.commit()
    assert sorted(os.listdir(parent)) == ['data'] + (['data.previous'] if with_previous else [])


def test_swap_into_an_empty_or_absent_data_dir_keeps_nothing(tmp_path):
    parent = tmp_path / 'p'
    parent.mkdir()
    for name, make in (('empty', True), ('absent', False)):
        data_dir = str(parent / name)
        if make:
            os.mkdir(data_dir)
        root = wf.FileOps().mkdtemp(wf.staging_prefix(data_dir, 'restore'), str(parent))
        generation(os.path.join(root, name), 5)
        swap = wf.DataDirSwap(data_dir, data_dir + '.replaced', root)
        assert swap.replaces is False
        swap.forward()
        swap.commit()
        assert revision_at(data_dir) == 5 and not os.path.exists(data_dir + '.replaced')
    assert sorted(os.listdir(str(parent))) == ['absent', 'empty']


def test_write_json_is_private_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / 'j.json')
    wf.FileOps().write_json(path, dict(a=1))
    assert wf.read_json(path) == dict(a=1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ['j.json']
    assert wf.read_json(str(tmp_path / 'none.json')) is None


def test_leftovers_lists_only_the_prefix(tmp_path):
    for name in ('.data.refresh-a', '.data.refresh-b', 'data', '.other'):
        (tmp_path / name).mkdir()
    found = wf.leftovers(str(tmp_path), wf.staging_prefix(str(tmp_path / 'data'), 'refresh'),
                         keep=[str(tmp_path / '.data.refresh-b')])
    assert found == [str(tmp_path / '.data.refresh-a')]
