# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apisix_plugin_sync killed with SIGKILL at each step that changes the disk: plugins_dest holds the whole old set
of plugins or the whole new one, the next run with the same arguments completes by itself, and the backup it
points to (latest) puts back the old set.

The module runs in a forked child whose filesystem calls (os.rename, os.link, os.mkdir, os.unlink, os.rmdir,
chmod, chown, fsync, the creation of a file, the exchange of two directories) count the steps; at step N the
child sends itself SIGKILL."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _file_tx
from ansible_collections.gatewayops.apisix_ha.plugins.modules import apisix_plugin_sync

from sigkill_steps import install_killer, run_module_in_child


def _no_exchange(a, b):
    raise OSError(errno.ENOSYS, 'renameat2 is not available')


def run_child(args, out, at=None, exchange=True):
    """The module in a forked child -> (result, steps), or (None, None) when it was killed."""
    def prepare():
        if not exchange:
            _file_tx.exchange = _no_exchange
        steps = []
        install_killer(at, steps)
        return steps
    return run_module_in_child(apisix_plugin_sync.main, args, out, prepare)


def write(path, data, mode=0o644):
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)


def tree(root):
    """Everything below root: {rel: ('file', bytes, mode) or ('dir', mode)}; None when root does not exist."""
    if not os.path.lexists(root):
        return None
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                out[os.path.relpath(full, root)] = ('dir', stat.S_IMODE(st.st_mode))
            else:
                with open(full, 'rb') as handle:
                    out[os.path.relpath(full, root)] = ('file', handle.read(), stat.S_IMODE(st.st_mode))
    return out


class Node(object):
    """An APISIX node with its own plugins and config, and a checkout that changes, adds and removes some."""

    def __init__(self, root):
        self.root = str(root)
        src = os.path.join(self.root, 'checkout', 'plugins')
        self.dest = os.path.join(self.root, 'node', 'custom', 'plugins')
        self.conf = os.path.join(self.root, 'node', 'conf', 'config.yaml')
        self.backups = os.path.join(self.root, 'node', 'backup')
        conf_src = os.path.join(self.root, 'checkout', 'config.yaml')
        write(os.path.join(src, 'my-auth.lua'), b'return "auth v2"\n', 0o644)
        write(os.path.join(src, 'my-log.lua'), b'return "log v2"\n', 0o755)
        write(os.path.join(src, 'utils', 'jwt.lua'), b'return "jwt"\n', 0o600)
        write(os.path.join(src, 'utils', 'deep', 'leaf.lua'), b'return "leaf"\n', 0o640)
        write(conf_src, b'apisix:\n  node_listen: 9080\n', 0o644)
        write(os.path.join(self.dest, 'my-auth.lua'), b'return "auth v1"\n', 0o600)
        write(os.path.join(self.dest, 'my-log.lua'), b'return "log v1"\n', 0o644)
        write(os.path.join(self.dest, 'retired', 'old.lua'), b'return "old"\n', 0o755)
        write(os.path.join(self.dest, 'keep.swp'), b'excluded, kept\n', 0o600)
        os.chmod(os.path.join(self.dest, 'retired'), 0o750)
        write(self.conf, b'apisix:\n  node_listen: 9000\n', 0o640)
        self.args = dict(plugins_src=src, plugins_dest=self.dest, config_src=conf_src, config_dest=self.conf,
                         backup_dir=self.backups, delete=True, exclude=['*.swp'], lua_check=False)

    def run(self, at=None, exchange=True, **args):
        return run_child(dict(self.args, **args), os.path.join(self.root, 'result.json'), at, exchange)

    def served(self):
        return tree(self.dest), tree(os.path.dirname(self.conf))

    def beside(self):
        """What a run left beside the plugins and in the backup dir beyond the backups."""
        extra = sorted(set(os.listdir(os.path.dirname(self.dest))) - set(['plugins']))
        if os.path.isdir(self.backups):
            extra += sorted(n for n in os.listdir(self.backups) if not _file_tx.BACKUP_NAME.match(n))
        for top in (self.dest, os.path.dirname(self.conf)):
            for dirpath, dirnames, filenames in os.walk(top):
                extra += [n for n in filenames if n.startswith(apisix_plugin_sync.TMP_PREFIX)]
        return extra


@pytest.fixture(scope='module', params=['exchange', 'two renames'])
def reference(request, tmp_path_factory):
    """The old and the new state of a node, and the steps of a sync (with renameat2's exchange, or without)."""
    exchange = request.param == 'exchange'
    node = Node(tmp_path_factory.mktemp('reference'))
    old = node.served()
    result, steps = node.run(exchange=exchange)
    assert not result.get('failed') and result['changed'], result
    return dict(old=old, new=node.served(), steps=steps, exchange=exchange)


def test_a_sync_changes_the_plugins_in_a_copy_put_in_place_in_one_rename(reference):
    swaps = [s for s in reference['steps']
             if s.startswith('exchange ') or s.startswith('rename .plugins.') or s == 'rename plugins']
    # without renameat2: its attempt, then dest to .old and the copy to dest
    assert len(swaps) == (1 if reference['exchange'] else 3), swaps
    assert reference['old'] != reference['new']


def test_killed_at_any_step_the_plugins_are_whole_and_the_next_run_completes(reference, tmp_path):
    old, new, exchange = reference['old'], reference['new'], reference['exchange']
    for at in range(len(reference['steps'])):
        node = Node(tmp_path / str(at))
        where = reference['steps'][at]
        result = node.run(at=at, exchange=exchange)[0]
        assert result is None, 'not killed at %d (%s)' % (at, where)

        plugins, conf = node.served()
        if plugins is None and not exchange:
            # Between the two renames: the old set whole beside it, put back by the next run.
            kept = [n for n in os.listdir(os.path.dirname(node.dest)) if n.endswith('.old')]
            assert [tree(os.path.join(os.path.dirname(node.dest), n)) for n in kept] == [old[0]], (at, where)
        else:
            assert plugins in (old[0], new[0]), 'killed at %d (%s): plugins_dest is half old, half new' % (at, where)
        # config.yaml itself is old or new (a temporary file of its write may be beside it)
        assert conf['config.yaml'] in (old[1]['config.yaml'], new[1]['config.yaml']), 'killed at %d (%s)' % (at, where)

        result = node.run(exchange=exchange)[0]
        assert not result.get('failed'), (at, where, result)
        assert node.served() == new, 'killed at %d (%s): the next run did not complete' % (at, where)
        assert node.beside() == [], 'killed at %d (%s): left %s' % (at, where, node.beside())

        # The record: the latest backup puts back the whole old set.
        result = node.run(state='restored', backup='latest')[0]
        assert not result.get('failed'), (at, where, result)
        assert node.served() == old, 'killed at %d (%s): the latest backup does not give the old set back' % (
            at, where)
