# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-ins for the snapshot workflow's tests: a fake host (etcdctl/etcdutl/systemctl through one command runner,
an etcd that serves the revision written in its data dir) and a killer that stops a run at its Nth step the way
SIGKILL does (nothing after it runs, not even cleanup)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os
import shutil

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_snapshot_workflow import FileOps

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
SNAPSHOT = os.path.join(REPO, 'tests', 'unit', 'fixtures', 'snapshots', 'etcd-3.4.23-6keys.db')


def load_program(relpath, name):
    """A role's program (roles/.../files/x.py) as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Killed(BaseException):
    """SIGKILL: not an Exception, so no `except Exception` handler of the program sees it."""


class Killer(object):
    """Counts the steps (filesystem operations and commands); at step ``at`` the run dies, and stays dead."""

    def __init__(self, at=None):
        self.at = at
        self.count = 0
        self.dead = False
        self.killed_in = None

    def step(self, what):
        if self.dead:
            raise Killed(what)
        if self.at is not None and self.count == self.at:
            self.dead = True
            self.killed_in = what
            raise Killed(what)
        self.count += 1


class KillableOps(FileOps):

    def __init__(self, killer):
        self.killer = killer

    def rename(self, src, dst):
        self.killer.step('rename %s -> %s' % (src, dst))
        super(KillableOps, self).rename(src, dst)

    def fsync_dir(self, path):
        self.killer.step('fsync %s' % path)
        super(KillableOps, self).fsync_dir(path)

    def rmtree(self, path):
        self.killer.step('rmtree %s' % path)
        super(KillableOps, self).rmtree(path)

    def mkdtemp(self, prefix, parent):
        self.killer.step('mkdtemp %s' % prefix)
        return super(KillableOps, self).mkdtemp(prefix, parent)

    def write_json(self, path, doc, mode=0o600):
        self.killer.step('write %s' % path)
        super(KillableOps, self).write_json(path, doc, mode)


def status_json(revision):
    return json.dumps(dict(hash=938499975, revision=revision, totalKey=10, totalSize=20480))


class FakeHost(object):
    """The commands the workflow runs, answered from this object's state.

    The cluster (source endpoints) is at ``cluster_revision``; a save copies the real fixture snapshot and
    remembers the revision it was taken at; a restore writes ``rev=<n>`` into member/snap/db; the local etcd
    serves what its data dir says from its start on (revisions in ``unhealthy``: never)."""

    def __init__(self, local_url='http://127.0.0.1:2379', data_dir=None):
        self.local_url = local_url
        self.data_dir = data_dir
        self.cluster_revision = 10
        self.cluster_id = 4242
        self.saved = {}
        self.running = False
        self.serving = None
        self.calls = []
        self.restore_fails = False
        self.status_fails = False
        # etcd starts on these revisions but never becomes healthy.
        self.unhealthy = set()
        self.killer = None
        # `etcdctl alarm list` and `member list`: (member ID, alarm type) and (member ID, name).
        self.alarms = []
        self.members = [(0x8e9e05c52164694d, 'etcd01'), (0x91bc3c398fb3c146, 'etcd02')]

    def served_by_disk(self):
        try:
            with open(os.path.join(self.data_dir, 'member', 'snap', 'db')) as handle:
                text = handle.read()
        except (IOError, OSError):
            return None
        return int(text.split('=')[1]) if text.startswith('rev=') else None

    def __call__(self, argv, environ_update=None, timeout=None):
        if self.killer is not None:
            self.killer.step('run %s' % ' '.join(argv[:3]))
        self.calls.append(dict(argv=list(argv), env=dict(environ_update or {})))
        tool = os.path.basename(argv[0])
        if tool == 'systemctl':
            if argv[1] == 'stop':
                self.running, self.serving = False, None
            elif argv[1] == 'start':
                served = self.served_by_disk()
                self.running, self.serving = True, None if served in self.unhealthy else served
            return 0, '', ''
        endpoint = ([a.split('=', 1)[1] for a in argv if a.startswith('--endpoints=')] or [''])[0]
        if 'endpoint' in argv and 'status' in argv:
            if endpoint == self.local_url:
                if not self.running or self.serving is None:
                    return 1, '', 'context deadline exceeded'
                revision, db_size = self.serving, 20480
            elif 'dead' in endpoint:
                return 1, '', 'Failed to get the status of endpoint %s (context deadline exceeded)' % endpoint
            else:
                revision, db_size = self.cluster_revision, 20480
            return 0, json.dumps([dict(Endpoint=endpoint, Status=dict(
                header=dict(cluster_id=self.cluster_id, member_id=1, revision=revision, raft_term=2),
                version='3.5.16', dbSize=db_size, leader=1))]), ''
        if argv[-4:-2] in (['alarm', 'list'], ['member', 'list']):
            if 'dead' in endpoint:
                return 1, '', 'Error: context deadline exceeded'
            header = dict(cluster_id=self.cluster_id, member_id=1, revision=self.cluster_revision, raft_term=2)
            if argv[-4] == 'alarm':
                doc = dict(header=header)
                if self.alarms:
                    doc['alarms'] = [dict(memberID=member, alarm=alarm) for member, alarm in self.alarms]
            else:
                doc = dict(header=header, members=[dict(ID=member, name=name, peerURLs=['http://x:2380'])
                                                   for member, name in self.members])
            return 0, json.dumps(doc), ''
        if 'snapshot' in argv and 'save' in argv:
            dest = argv[argv.index('save') + 1]
            if 'dead' in endpoint:
                return 1, '', 'Error: context deadline exceeded'
            data = bytearray(open(SNAPSHOT, 'rb').read())
            if 'corrupt' in endpoint:
                data[10000] ^= 0xFF
            with open(dest + '.part', 'wb') as handle:
                handle.write(bytes(data))
            os.chmod(dest + '.part', 0o600)
            os.rename(dest + '.part', dest)
            self.saved[os.path.abspath(dest)] = self.cluster_revision
            return 0, 'Snapshot saved at %s' % dest, ''
        if 'snapshot' in argv and 'status' in argv:
            path = argv[argv.index('status') + 1]
            if self.status_fails:
                return 1, '', 'Error: invalid database'
            if path.endswith(os.path.join('member', 'snap', 'db')):
                with open(path) as handle:
                    return 0, status_json(int(handle.read().split('=')[1])), ''
            return 0, status_json(self.saved.get(os.path.abspath(path), 7)), ''
        if 'snapshot' in argv and 'restore' in argv:
            path = argv[argv.index('restore') + 1]
            target = argv[argv.index('--data-dir') + 1]
            os.makedirs(os.path.join(target, 'member', 'snap'))
            if self.restore_fails:
                return 1, '', 'Error: restore interrupted'
            os.makedirs(os.path.join(target, 'member', 'wal'))
            with open(os.path.join(target, 'member', 'wal', '0000000000000000-0000000000000000.wal'), 'w') as handle:
                handle.write('wal')
            with open(os.path.join(target, 'member', 'snap', 'db'), 'w') as handle:
                handle.write('rev=%d' % self.saved.get(os.path.abspath(path), 7))
            return 0, '', ''
        return 2, '', 'fake host: unexpected %r' % argv


def make_bin_dir(path):
    """etcdctl and etcdutl that SnapshotTools.find() accepts (the runner never executes them)."""
    os.makedirs(path)
    for tool in ('etcdctl', 'etcdutl'):
        with open(os.path.join(path, tool), 'w') as handle:
            handle.write('#!/bin/sh\nexit 99\n')
        os.chmod(os.path.join(path, tool), 0o755)
    return path


def copy_fixture(dest):
    shutil.copyfile(SNAPSHOT, dest)
    return dest
