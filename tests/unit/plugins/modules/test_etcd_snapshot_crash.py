# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_snapshot state=restored killed with SIGKILL at each step that changes the disk: the data dir is a whole
generation (the old one or the restored one), and the next run with the same arguments recovers by itself.

The module runs in a forked child; at step N of its filesystem operations (etcd_snapshot's FileOps, the module's
seam) the child sends itself SIGKILL. "During the restore" is the stand-in etcdutl killing the module (its
parent) once it has written half of the new data dir."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import sys

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_snapshot

from sigkill_steps import install_killer, run_module_in_child

SNAPSHOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'snapshots',
                                        'etcd-3.4.23-6keys.db'))

# A stand-in etcdutl; with KILL_DURING_RESTORE set it writes half the data dir, then SIGKILLs the module.
FAKE_ETCDUTL = r'''#!{python}
import json, os, signal, sys
argv = sys.argv[1:]
if argv[:2] == ['snapshot', 'status']:
    print(json.dumps(dict(hash=938499975, revision=7, totalKey=10, totalSize=20480)))
    sys.exit(0)
if argv[:2] == ['snapshot', 'restore']:
    target = argv[argv.index('--data-dir') + 1]
    os.makedirs(os.path.join(target, 'member', 'snap'))
    open(os.path.join(target, 'member', 'snap', 'db'), 'w').write('restored')
    if os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), 'KILL_DURING_RESTORE')):
        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(1)
    os.makedirs(os.path.join(target, 'member', 'wal'))
    open(os.path.join(target, 'member', 'wal', '0.wal'), 'w').write('wal')
    sys.exit(0)
sys.exit(2)
'''

DURING_RESTORE = 'during the restore'


class KillingOps(etcd_snapshot.FileOps):
    """The module's filesystem steps; at step ``at`` the process SIGKILLs itself (nothing after it runs)."""

    at = None
    steps = []

    def step(self, what):
        if KillingOps.at is not None and len(KillingOps.steps) == KillingOps.at:
            os.kill(os.getpid(), signal.SIGKILL)
        KillingOps.steps.append(what)

    def rename(self, src, dst):
        self.step('rename %s -> %s' % (os.path.basename(src), os.path.basename(dst)))
        super(KillingOps, self).rename(src, dst)

    def fsync_dir(self, path):
        self.step('fsync %s' % os.path.basename(path))
        super(KillingOps, self).fsync_dir(path)

    def rmtree(self, path):
        self.step('remove %s' % os.path.basename(path))
        super(KillingOps, self).rmtree(path)

    def mkdtemp(self, prefix, parent):
        self.step('mkdtemp %s' % prefix)
        return super(KillingOps, self).mkdtemp(prefix, parent)

    def write_json(self, path, doc, mode=0o600):
        self.step('write %s' % os.path.basename(path))
        super(KillingOps, self).write_json(path, doc, mode)


def run_child(args, out, at=None, syscalls=False):
    """Run the module in a forked child -> (result or None when it was killed, the steps it went through).
    ``syscalls``: the steps are the child's every call that changes the disk, not the module's FileOps."""
    def prepare():
        KillingOps.at, KillingOps.steps = at, []
        if syscalls:
            install_killer(at, KillingOps.steps)
        else:
            etcd_snapshot.FileOps = KillingOps
        return KillingOps.steps
    return run_module_in_child(etcd_snapshot.main, args, out, prepare)


class Member(object):
    """A member's parent dir in tmp_path, with its data dir in one of the states the module starts from."""

    def __init__(self, tmp_path, start):
        self.root = str(tmp_path)
        self.parent = os.path.join(self.root, 'etcd')
        self.data_dir = os.path.join(self.parent, 'data')
        self.bin = os.path.join(self.root, 'bin')
        os.makedirs(self.bin)
        os.makedirs(self.parent)
        tool = os.path.join(self.bin, 'etcdutl')
        with open(tool, 'w') as handle:
            handle.write(FAKE_ETCDUTL.replace('{python}', sys.executable))
        os.chmod(tool, 0o755)
        self.start = start
        if start == 'empty':
            os.mkdir(self.data_dir)
        elif start == 'initialised':
            for sub in ('snap', 'wal'):
                os.makedirs(os.path.join(self.data_dir, 'member', sub))
            with open(os.path.join(self.data_dir, 'member', 'snap', 'db'), 'w') as handle:
                handle.write('old')
            with open(os.path.join(self.data_dir, 'member', 'wal', '0.wal'), 'w') as handle:
                handle.write('old wal')
        # The user's own directory beside the data dir, with a name the module once used: never touched.
        os.makedirs(os.path.join(self.data_dir + '.unused', 'mine'))
        self.args = dict(state='restored', path=SNAPSHOT, data_dir=self.data_dir, name='m1',
                         initial_cluster='m1=http://127.0.0.1:32580', initial_cluster_token='unit-token',
                         initial_advertise_peer_urls=['http://127.0.0.1:32580'], bin_dir=self.bin,
                         force=start == 'initialised')

    def run(self, at=None, kill_during_restore=False, syscalls=False):
        flag = os.path.join(self.bin, 'KILL_DURING_RESTORE')
        if kill_during_restore:
            open(flag, 'w').close()
        try:
            return run_child(self.args, os.path.join(self.root, 'result.json'), at, syscalls)
        finally:
            if os.path.exists(flag):
                os.unlink(flag)

    def generation(self, path=None):
        """What ``path`` (the data dir) holds as a whole: 'new', 'old', 'empty', None (absent), else 'HALF'."""
        path = path or self.data_dir
        if not os.path.lexists(path):
            return None
        if os.listdir(path) == []:
            return 'empty'
        found = {}
        for rel in (('member', 'snap', 'db'), ('member', 'wal', '0.wal')):
            try:
                with open(os.path.join(path, *rel)) as handle:
                    found[rel[-1]] = handle.read()
            except (IOError, OSError):
                found[rel[-1]] = None
        if found == {'db': 'restored', '0.wal': 'wal'}:
            return 'new'
        if found == {'db': 'old', '0.wal': 'old wal'}:
            return 'old'
        return 'HALF %r' % found

    def beside(self):
        """What the parent holds beside the data dir: the kept previous generations and anything else."""
        names = sorted(set(os.listdir(self.parent)) - set(['data', 'data.unused']))
        kept = [n for n in names if n.startswith('data.replaced-')]
        return kept, sorted(set(names) - set(kept))


STARTS = ('absent', 'empty', 'initialised')


def kill_points(start, tmp_path_factory):
    member = Member(tmp_path_factory.mktemp('count-' + start), start)
    result, steps = member.run()
    assert not result.get('failed'), result
    return [DURING_RESTORE] + list(range(len(steps)))


@pytest.fixture(scope='module')
def points(tmp_path_factory):
    return dict((start, kill_points(start, tmp_path_factory)) for start in STARTS)


def test_the_kills_cover_every_step(points, tmp_path):
    # mkdtemp, the journal, the renames (two when a data dir is replaced), the fsync, the journal's and the staging
    # dir's removal.
    member = Member(tmp_path, 'initialised')
    result, steps = member.run()
    assert result['changed'] is True and member.generation() == 'new'
    assert [s.split(' ')[0] for s in steps] == ['mkdtemp', 'write', 'rename', 'rename', 'fsync', 'remove', 'remove']
    assert len(points['absent']) == 1 + 6 and len(points['initialised']) == 1 + 7


@pytest.mark.parametrize('start', STARTS)
@pytest.mark.parametrize('at', range(8))
def test_killed_at_any_step_the_data_dir_is_whole_and_the_next_run_recovers(points, tmp_path, start, at):
    if at >= len(points[start]):
        pytest.skip('%s: %d steps' % (start, len(points[start])))
    point = points[start][at]
    member = Member(tmp_path, start)
    old = member.generation()
    if point == DURING_RESTORE:
        result = member.run(kill_during_restore=True)[0]
    else:
        result = member.run(at=point)[0]
    assert result is None, 'the run was not killed'

    # Right after the kill: the data dir holds the old generation or the new one, whole; only between the two
    # renames of a replacement it is absent, the old generation whole under its kept name.
    now = member.generation()
    kept = member.beside()[0]
    if now is None and old == 'old':
        assert [member.generation(os.path.join(member.parent, k)) for k in kept] == ['old']
    else:
        assert now in (old, 'new'), now

    # The next run, same arguments: it recovers by itself and says what it did.
    result = member.run()[0]
    assert not result.get('failed'), result
    assert member.generation() == 'new'
    kept, others = member.beside()
    assert others == [], 'left beside the data dir: %s' % others
    kept_generations = sorted(member.generation(os.path.join(member.parent, k)) for k in kept)
    if old == 'old':
        # Never lost, never half: the old generation kept; a forced re-run after a finished swap also keeps the one
        # it replaces.
        assert 'old' in kept_generations and set(kept_generations) <= set(['old', 'new']), kept_generations
        assert result['replaced_dir'] in [os.path.join(member.parent, k) for k in kept]
    else:
        assert kept_generations == []
    if result['changed'] is False:
        # Only when the killed run had finished its swap, and the data dir was not to be replaced (no force).
        assert 'already initialised' in result['msg'] and start != 'initialised'
    assert os.listdir(member.data_dir + '.unused') == ['mine']


def test_a_restore_that_finds_the_killed_runs_swap_says_it_put_the_data_dir_back(tmp_path):
    member = Member(tmp_path, 'initialised')
    assert member.run(at=3)[0] is None  # killed between the two renames: the data dir is absent
    assert member.generation() is None
    result = member.run()[0]
    assert result['changed'] is True and result['data_dir_state'] == 'initialised', result
    assert any(a.startswith('put %s back as it was before a restore that was killed' % member.data_dir)
               for a in result['actions']), result['actions']
    assert member.generation() == 'new'
    kept = member.beside()[0]
    assert [member.generation(os.path.join(member.parent, k)) for k in kept] == ['old']


def test_a_restore_into_an_absent_dir_leaves_the_directories_beside_it_alone(tmp_path):
    member = Member(tmp_path, 'absent')
    result = member.run()[0]
    assert result['changed'] is True and member.generation() == 'new'
    assert os.listdir(member.data_dir + '.unused') == ['mine']


@pytest.mark.parametrize('start', STARTS)
def test_killed_at_any_call_that_changes_the_disk_the_next_run_recovers(tmp_path, start):
    """Finer than the FileOps steps: every rename, mkdir, chmod, chown, fsync, unlink, creation of a file."""
    result, steps = Member(tmp_path / 'count', start).run(syscalls=True)
    assert not result.get('failed') and len(steps) > 10, (result, steps)
    for at, where in enumerate(steps):
        member = Member(tmp_path / str(at), start)
        old = member.generation()
        assert member.run(at=at, syscalls=True)[0] is None, 'not killed at %d (%s)' % (at, where)
        now = member.generation()
        if now is None and old == 'old':
            kept = member.beside()[0]
            assert [member.generation(os.path.join(member.parent, k)) for k in kept] == ['old'], (at, where)
        else:
            assert now in (old, 'new'), 'killed at %d (%s): %s' % (at, where, now)
        result = member.run()[0]
        assert not result.get('failed'), (at, where, result)
        assert member.generation() == 'new' and member.beside()[1] == [], (at, where, member.beside())
