# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apisix_plugin_sync on real files in tmp_path, with the real luajit / luac5.1 of this host for the Lua syntax
check (tests that need one are skipped when none is installed; tests/lab/bootstrap.sh installs both)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import stat

import pytest

from ansible.plugins.callback import CallbackBase

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _lua_check
from ansible_collections.gatewayops.apisix_ha.plugins.modules import apisix_plugin_sync

OK_LUA = b'local _M = {version = 0.1, priority = 1000, name = "%s"}\nfunction _M.access(conf, ctx)\n  return\nend\nreturn _M\n'
BAD_LUA = b'local _M = {}\nfunction _M.access(conf, ctx)\n  local x = = 1\nend\nreturn _M\n'
LUA53_ONLY = b'local x = 7 // 2\nreturn x\n'


def _which(name):
    for d in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/bin', '/usr/local/bin']:
        full = os.path.join(d, name)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    return None


# The real checkers present on this host, each as a lua_check_command.
REAL_CHECKERS = [cmd for cmd in (
    ('%s -b {file} /dev/null' % _which('luajit')) if _which('luajit') else None,
    ('%s -p' % _which('luac5.1')) if _which('luac5.1') else None,
) if cmd]
HAVE_CHECKER = bool(REAL_CHECKERS) or os.path.exists('/usr/local/openresty/luajit/bin/luajit') or bool(_which('luac'))
needs_checker = pytest.mark.skipif(not HAVE_CHECKER, reason='no luajit or luac installed (apt-get install luajit lua5.1)')


@pytest.fixture(params=REAL_CHECKERS or [None], ids=lambda c: os.path.basename(c.split()[0]) if c else 'none')
def checker(request):
    if request.param is None:
        pytest.skip('no luajit or luac5.1 installed (apt-get install luajit lua5.1)')
    return request.param


# --- trees ------------------------------------------------------------------------------------------------

def write(path, data, mode=0o644):
    path = str(path)
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def snapshot(root):
    """Everything below root: {rel: ('file', bytes, mode, uid, gid) or ('dir', mode) or ('link', target)}."""
    out = {}
    root = str(root)
    if not os.path.lexists(root):
        return None
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ('link', os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ('dir', stat.S_IMODE(st.st_mode))
            else:
                with open(full, 'rb') as f:
                    out[rel] = ('file', f.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def read(path):
    with open(str(path), 'rb') as f:
        return f.read()


class Lab(object):
    """A source tree (plugins 3 levels deep, an empty directory, a config file), paths for the destination,
    the config and the backups, all in tmp_path."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.src = tmp_path / 'checkout' / 'apisix' / 'plugins'
        self.conf_src = tmp_path / 'checkout' / 'apisix' / 'conf' / 'config-prod.yaml'
        self.dest = tmp_path / 'node' / 'custom' / 'apisix' / 'plugins'
        self.conf = tmp_path / 'node' / 'conf' / 'config.yaml'
        self.backups = tmp_path / 'node' / 'backup'
        write(self.src / 'my-auth.lua', OK_LUA % b'my-auth')
        write(self.src / 'my-log.lua', OK_LUA % b'my-log', 0o755)
        write(self.src / 'utils' / 'jwt.lua', OK_LUA % b'jwt', 0o600)
        write(self.src / 'utils' / 'deep' / 'deeper' / 'leaf.lua', OK_LUA % b'leaf', 0o640)
        write(self.src / 'utils' / 'deep' / 'README.md', b'notes\n')
        os.makedirs(str(self.src / 'empty' / 'dir'))
        write(self.conf_src, b'apisix:\n  node_listen: 9080\n', 0o644)

    def args(self, **kw):
        args = dict(plugins_src=str(self.src), plugins_dest=str(self.dest), backup_dir=str(self.backups))
        args.update(kw)
        return args

    def node(self):
        return snapshot(self.tmp / 'node')

    def backup_dirs(self):
        if not self.backups.exists():
            return []
        return sorted(n for n in os.listdir(str(self.backups)))


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)


@pytest.fixture
def sync(run_module):
    def call(args, check_mode=False, diff=False):
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        return run_module(apisix_plugin_sync, args)
    return call


SRC_FILES = ['my-auth.lua', 'my-log.lua', 'utils/deep/README.md', 'utils/deep/deeper/leaf.lua', 'utils/jwt.lua']


# --- synced -------------------------------------------------------------------------------------------------

@needs_checker
def test_first_sync_copies_the_nested_tree_with_modes(lab, sync):
    res, failed = sync(lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf)))
    assert not failed, res
    assert res['changed'] is True
    assert res['added'] == SRC_FILES + [str(lab.conf)]
    assert res['updated'] == [] and res['removed'] == [] and res['unchanged'] == []
    assert res['lua_checked'] == 4
    assert res['lua_checker']
    for rel in SRC_FILES:
        assert read(lab.dest / rel) == read(lab.src / rel), rel
        assert mode(lab.dest / rel) == mode(lab.src / rel), rel
    assert mode(lab.dest / 'my-log.lua') == 0o755
    assert mode(lab.dest / 'utils' / 'jwt.lua') == 0o600
    assert mode(lab.dest / 'utils' / 'deep' / 'deeper' / 'leaf.lua') == 0o640
    assert (lab.dest / 'empty' / 'dir').is_dir()
    assert read(lab.conf) == read(lab.conf_src)
    # no temporary files left behind
    assert not [rel for rel in snapshot(lab.tmp / 'node') if '.apisix_plugin_sync.' in rel]
    # a backup that records that nothing existed
    assert res['backup_path'] == str(lab.backups / lab.backup_dirs()[0])
    manifest = json.loads(read(os.path.join(res['backup_path'], 'manifest.json')))
    assert sorted(f['path'] for f in manifest['files']) == sorted(
        [str(lab.dest / rel) for rel in SRC_FILES] + [str(lab.conf)])
    assert all(f['existed'] is False for f in manifest['files'])
    assert str(lab.dest) in manifest['dirs_created'] and str(lab.dest / 'empty' / 'dir') in manifest['dirs_created']
    assert mode(res['backup_path']) == 0o700
    assert res['actions'][0].startswith('checked the Lua syntax of 4 files with ')
    assert 'add utils/deep/deeper/leaf.lua (mode 0640)' in res['actions']


@needs_checker
def test_second_run_changes_nothing_and_makes_no_backup(lab, sync):
    args = lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf), delete=True)
    first, failed = sync(args)
    assert not failed and first['changed']
    before = lab.node()
    again, failed = sync(args)
    assert not failed, again
    assert again['changed'] is False
    assert again['unchanged'] == SRC_FILES + [str(lab.conf)]
    assert again['added'] == again['updated'] == again['removed'] == []
    assert 'backup_path' not in again
    assert lab.node() == before
    assert len(lab.backup_dirs()) == 1
    assert again['msg'].startswith('already in sync')


@needs_checker
def test_update_keeps_owner_and_takes_source_mode(lab, sync):
    sync(lab.args())
    os.chown(str(lab.dest / 'my-auth.lua'), 4321, 4322)
    write(lab.src / 'my-auth.lua', OK_LUA % b'my-auth-v2')
    os.chmod(str(lab.src / 'my-log.lua'), 0o750)   # a change of mode alone is an update
    res, failed = sync(lab.args(), diff=True)
    assert not failed, res
    assert res['updated'] == ['my-auth.lua', 'my-log.lua']
    st = os.stat(str(lab.dest / 'my-auth.lua'))
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4321, 4322)
    assert read(lab.dest / 'my-auth.lua') == OK_LUA % b'my-auth-v2'
    assert mode(lab.dest / 'my-log.lua') == 0o750
    assert 'update my-log.lua (mode 0755 -> 0750)' in res['actions']
    mode_diff = [d for d in res['diff'] if d['before_header'].startswith(str(lab.dest / 'my-log.lua'))]
    assert mode_diff == [dict(before_header='%s (mode)' % (lab.dest / 'my-log.lua'), before='mode 0755\n',
                              after_header='%s (mode)' % (lab.dest / 'my-log.lua'), after='mode 0750\n')]


@needs_checker
@pytest.mark.parametrize('delete', [False, True])
def test_files_only_in_dest_removed_only_with_delete(lab, sync, delete):
    write(lab.dest / 'local-only.lua', OK_LUA % b'local')
    write(lab.dest / 'old' / 'sub' / 'gone.lua', OK_LUA % b'gone')
    write(lab.dest / 'keep' / 'kept.swp', b'x')
    write(lab.dest / 'keep' / 'dropped.lua', b'return 1\n')
    res, failed = sync(lab.args(delete=delete, exclude=['*.swp']))
    assert not failed, res
    if delete:
        assert res['removed'] == ['keep/dropped.lua', 'local-only.lua', 'old/sub/gone.lua']
        assert not (lab.dest / 'local-only.lua').exists()
        assert not (lab.dest / 'old').exists()          # emptied directories not in the source go too
        assert (lab.dest / 'keep' / 'kept.swp').exists()  # excluded: never touched, keeps its directory
        assert not (lab.dest / 'keep' / 'dropped.lua').exists()
        assert 'remove directory %s' % (lab.dest / 'old' / 'sub') in res['actions']
    else:
        assert res['removed'] == []
        assert read(lab.dest / 'local-only.lua') == OK_LUA % b'local'
        assert (lab.dest / 'old' / 'sub' / 'gone.lua').exists()
        assert 'local-only.lua' not in res['unchanged']
    assert res['added'] == SRC_FILES


@needs_checker
def test_check_mode_changes_nothing_and_gives_the_plan_and_diff(lab, sync):
    sync(lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf)))
    write(lab.src / 'my-auth.lua', (OK_LUA % b'my-auth').replace(b'priority = 1000', b'priority = 1001'))
    write(lab.src / 'utils' / 'deep' / 'deeper' / 'new.lua', OK_LUA % b'new', 0o600)
    os.unlink(str(lab.src / 'my-log.lua'))
    write(lab.conf_src, b'apisix:\n  node_listen: 9081\n')
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf), delete=True),
                       check_mode=True, diff=True)
    assert not failed, res
    assert snapshot(lab.tmp) == before
    assert res['changed'] is True
    assert res['added'] == ['utils/deep/deeper/new.lua']
    assert res['updated'] == ['my-auth.lua', str(lab.conf)]
    assert res['removed'] == ['my-log.lua']
    assert 'backup_path' not in res
    assert len(lab.backup_dirs()) == 1
    assert all(a.startswith('would ') for a in res['actions'][1:]), res['actions']
    assert 'would update my-auth.lua' in res['actions']
    assert 'would remove my-log.lua' in res['actions']
    assert res['msg'].startswith('would sync 4 files')
    by_file = dict((d['before_header'].split(' ')[0], d) for d in res['diff'])
    auth = by_file[str(lab.dest / 'my-auth.lua')]
    assert auth['before'] == (OK_LUA % b'my-auth').decode() and 'priority = 1001' in auth['after']
    assert by_file[str(lab.dest / 'my-log.lua')]['after'] == ''
    assert by_file[str(lab.dest / 'utils/deep/deeper/new.lua')]['before'] == ''
    assert by_file[str(lab.conf)]['after'] == 'apisix:\n  node_listen: 9081\n'
    # what ansible-playbook --diff prints: a unified diff per file
    shown = CallbackBase()._get_diff(res['diff'])
    assert '-local _M = {version = 0.1, priority = 1000, name = "my-auth"}' in shown
    assert '+local _M = {version = 0.1, priority = 1001, name = "my-auth"}' in shown
    assert '-  node_listen: 9080' in shown and '+  node_listen: 9081' in shown


@needs_checker
def test_diff_of_binary_and_large_files_is_a_summary(lab, sync):
    write(lab.src / 'blob.bin', b'\x00\x01\x02' * 10)
    write(lab.src / 'big.txt', b'x' * 200000)
    res, failed = sync(lab.args(), check_mode=True, diff=True)
    assert not failed
    by_file = dict((d['after_header'].split(' ')[0], d) for d in res['diff'])
    assert by_file[str(lab.dest / 'blob.bin')]['after'].startswith('(binary, 30 bytes, sha256 ')
    assert 'too large to show' in by_file[str(lab.dest / 'big.txt')]['after']


@needs_checker
def test_config_keeps_the_mode_of_the_file_it_replaces(lab, sync):
    write(lab.conf, b'old: true\n', 0o640)
    os.chmod(str(lab.conf_src), 0o664)
    res, failed = sync(dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups)))
    assert not failed, res
    assert res['updated'] == [str(lab.conf)]
    assert mode(lab.conf) == 0o640 and read(lab.conf) == read(lab.conf_src)
    # only a mode difference on the config is not a change
    again, _f = sync(dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups)))
    assert again['changed'] is False and again['unchanged'] == [str(lab.conf)]


def test_config_through_a_symbolic_link_writes_its_target(lab, sync):
    real = write(lab.tmp / 'node' / 'conf' / 'config-prod.yaml', b'old\n', 0o600)
    os.symlink('config-prod.yaml', str(lab.conf))
    res, failed = sync(dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups)))
    assert not failed, res
    assert os.path.islink(str(lab.conf))
    assert read(real) == read(lab.conf_src) and mode(real) == 0o600


def test_new_config_takes_the_source_mode_and_creates_parents(lab, sync):
    os.chmod(str(lab.conf_src), 0o600)
    res, failed = sync(dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups)))
    assert not failed, res
    assert res['added'] == [str(lab.conf)] and mode(lab.conf) == 0o600
    assert res['lua_checked'] == 0 and 'lua_checker' not in res


@needs_checker
def test_source_symlink_to_file_is_copied_as_a_file(lab, sync):
    os.symlink('my-auth.lua', str(lab.src / 'alias.lua'))
    res, failed = sync(lab.args())
    assert not failed, res
    assert 'alias.lua' in res['added']
    assert not os.path.islink(str(lab.dest / 'alias.lua'))
    assert read(lab.dest / 'alias.lua') == read(lab.src / 'my-auth.lua')


def test_lua_check_command_with_and_without_placeholder(lab, sync, checker):
    # luajit needs {file} before its output argument; luac gets the file appended when {file} is left out
    commands = [checker] + ([checker + ' {file}'] if '{file}' not in checker else [])
    for command in commands:
        res, failed = sync(lab.args(lua_check_command=command), check_mode=True)
        assert not failed, res
        assert res['lua_checked'] == 4
        assert res['lua_checker'].endswith('{file}') or ' {file} ' in res['lua_checker']
        assert res['lua_checker'].count('{file}') == 1


# --- refusals: the node is left byte-identical ------------------------------------------------------------

def _prepared(lab, sync):
    """A node already synced once, plus local state; -> snapshot of the whole tmp tree."""
    res, failed = sync(lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf), lua_check=False))
    assert not failed, res
    write(lab.dest / 'local-only.lua', b'return 1\n')
    return snapshot(lab.tmp)


def test_refused_when_plugins_src_is_missing(lab, sync):
    before = _prepared(lab, sync)
    res, failed = sync(lab.args(plugins_src=str(lab.tmp / 'nope'), delete=True))
    assert failed
    assert res['msg'] == 'plugins_src %s does not exist. Nothing was changed.' % (lab.tmp / 'nope')
    assert res['changed'] is False
    assert snapshot(lab.tmp) == before


def test_refused_when_plugins_src_is_a_file(lab, sync):
    before = _prepared(lab, sync)
    res, failed = sync(lab.args(plugins_src=str(lab.src / 'my-auth.lua')))
    assert failed and 'is not a directory' in res['msg']
    assert snapshot(lab.tmp) == before


def test_refused_when_config_src_is_missing(lab, sync):
    before = _prepared(lab, sync)
    write(lab.src / 'my-auth.lua', OK_LUA % b'changed')
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(config_src=str(lab.tmp / 'missing.yaml'), config_dest=str(lab.conf)))
    assert failed and res['msg'] == 'config_src %s does not exist. Nothing was changed.' % (lab.tmp / 'missing.yaml')
    assert snapshot(lab.tmp) == before


def test_refused_when_nothing_to_sync(lab, sync):
    res, failed = sync(dict(backup_dir=str(lab.backups)))
    assert failed and 'plugins_src, config_src' in res['msg']


def test_refused_on_lua_syntax_error(lab, sync, checker):
    before = _prepared(lab, sync)
    write(lab.src / 'utils' / 'deep' / 'deeper' / 'broken.lua', BAD_LUA)
    write(lab.src / 'my-auth.lua', OK_LUA % b'my-auth-v2')  # a good change that must not be applied either
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(lua_check_command=checker, delete=True, config_src=str(lab.conf_src),
                                config_dest=str(lab.conf)))
    assert failed, res
    assert snapshot(lab.tmp) == before
    assert res['lua_errors'] == [dict(file='utils/deep/deeper/broken.lua',
                                      message="utils/deep/deeper/broken.lua:3: unexpected symbol near '='")]
    assert res['msg'].startswith('1 Lua file in %s does not parse, nothing was changed: '
                                 'utils/deep/deeper/broken.lua: ' % lab.src)
    assert "unexpected symbol near '='" in res['msg']


def test_every_bad_file_is_reported_in_check_mode_too(lab, sync, checker):
    write(lab.src / 'a-bad.lua', BAD_LUA)
    write(lab.src / 'utils' / 'b-bad.lua', LUA53_ONLY)
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(lua_check_command=checker), check_mode=True)
    assert failed
    assert [e['file'] for e in res['lua_errors']] == ['a-bad.lua', 'utils/b-bad.lua']
    assert res['msg'].startswith('2 Lua files in %s do not parse' % lab.src)
    assert snapshot(lab.tmp) == before


@needs_checker
def test_default_checker_refuses_a_syntax_error(lab, sync):
    write(lab.src / 'broken.lua', BAD_LUA)
    res, failed = sync(lab.args())
    assert failed and [e['file'] for e in res['lua_errors']] == ['broken.lua']
    assert not lab.dest.exists() and not lab.backups.exists()


def test_refused_when_no_lua_checker(lab, sync, monkeypatch):
    monkeypatch.setattr(_lua_check, 'LUA_CHECKERS',
                        [('/nonexistent/luajit', ['-b', '{file}', '/dev/null']), ('no-such-luac', ['-p', '{file}'])])
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args())
    assert failed
    assert 'no Lua syntax checker was found' in res['msg']
    assert 'apt-get install luajit' in res['msg'] and 'lua_check: false' in res['msg']
    assert snapshot(lab.tmp) == before
    # lua_check: false syncs without one, even a file that does not parse
    write(lab.src / 'broken.lua', BAD_LUA)
    res, failed = sync(lab.args(lua_check=False))
    assert not failed, res
    assert 'broken.lua' in res['added']
    assert 'skipped the Lua syntax check of 5 files (lua_check: false)' in res['actions']


def test_refused_when_lua_check_command_is_not_found(lab, sync):
    res, failed = sync(lab.args(lua_check_command='/nonexistent/luajit -b {file} /dev/null'))
    assert failed and 'lua_check_command: /nonexistent/luajit was not found' in res['msg']
    assert not lab.dest.exists()


def test_refused_on_file_directory_conflict(lab, sync):
    os.makedirs(str(lab.dest / 'my-auth.lua'))
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(lua_check=False))
    assert failed and 'my-auth.lua is a file in plugins_src but a directory in plugins_dest' in res['msg']
    assert snapshot(lab.tmp) == before


def test_refused_on_directory_symlink_in_source(lab, sync):
    os.symlink(str(lab.src / 'utils'), str(lab.src / 'utils-link'))
    res, failed = sync(lab.args(lua_check=False))
    assert failed and 'symbolic link to a directory' in res['msg']
    assert not lab.dest.exists()


def test_refused_when_trees_overlap(lab, sync):
    res, failed = sync(lab.args(plugins_dest=str(lab.src / 'sub'), lua_check=False))
    assert failed and 'overlap' in res['msg']
    res, failed = sync(lab.args(backup_dir=str(lab.dest / 'backup'), lua_check=False))
    assert failed and 'backup_dir' in res['msg'] and 'inside plugins_dest' in res['msg']
    assert not lab.dest.exists()


@needs_checker
@pytest.mark.parametrize('failing_file', ['jwt.lua', 'config.yaml'])
def test_failure_while_writing_puts_everything_back(lab, sync, monkeypatch, failing_file):
    write(lab.dest / 'my-auth.lua', b'return "old auth"\n', 0o600)
    write(lab.dest / 'local-only.lua', b'return 1\n')
    write(lab.conf, b'apisix:\n  node_listen: 9000\n', 0o640)
    before = lab.node()
    real = apisix_plugin_sync.write_atomic

    def failing(src, dest, *args, **kwargs):
        if os.path.basename(dest) == failing_file:
            raise OSError(28, 'No space left on device')
        return real(src, dest, *args, **kwargs)

    monkeypatch.setattr(apisix_plugin_sync, 'write_atomic', failing)
    res, failed = sync(lab.args(delete=True, config_src=str(lab.conf_src), config_dest=str(lab.conf)))
    assert failed, res
    assert res['rolled_back'] is True and res['changed'] is False
    assert 'No space left on device' in res['msg'] and 'put back from' in res['msg']
    after = lab.node()
    assert dict((k, v) for k, v in after.items() if not k.startswith('backup')) == \
        dict((k, v) for k, v in before.items() if not k.startswith('backup'))
    if failing_file == 'config.yaml':
        # The plugins were in place already: put back file by file from the backup.
        assert any(a.startswith('rolled back: ') for a in res['actions'])
    else:
        # Failed in the staged copy: plugins_dest was never touched, the copy is gone.
        assert not any(a.startswith('rolled back: ') for a in res['actions'])
        assert sorted(os.listdir(str(lab.dest.parent))) == ['plugins']


# --- restored -----------------------------------------------------------------------------------------------

def _node_before_sync(lab):
    """A node with its own versions: older plugins with other modes, a file and a directory the source lacks."""
    write(lab.dest / 'my-auth.lua', b'return "auth v1"\n', 0o600)
    write(lab.dest / 'my-log.lua', b'return "log v1"\n', 0o644)
    write(lab.dest / 'retired' / 'old.lua', b'return "old"\n', 0o755)
    write(lab.conf, b'apisix:\n  node_listen: 9000\n', 0o640)
    os.chmod(str(lab.dest / 'retired'), 0o750)
    return lab.node()


@needs_checker
def test_backup_and_restore_round_trip(lab, sync):
    before = _node_before_sync(lab)
    args = lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf), delete=True)
    res, failed = sync(args)
    assert not failed, res
    assert res['updated'] == ['my-auth.lua', 'my-log.lua', str(lab.conf)]
    assert res['removed'] == ['retired/old.lua']
    backup = res['backup_path']
    assert os.path.basename(backup) == lab.backup_dirs()[0]
    manifest = json.loads(read(os.path.join(backup, 'manifest.json')))
    rec = [f for f in manifest['files'] if f['path'] == str(lab.dest / 'my-auth.lua')][0]
    assert rec['existed'] is True and rec['mode'] == '0600'
    assert rec['sha256'] == hashlib.sha256(b'return "auth v1"\n').hexdigest()
    assert read(os.path.join(backup, rec['backup_file'])) == b'return "auth v1"\n'
    assert manifest['dirs_removed'] == [dict(path=str(lab.dest / 'retired'), mode='0750', uid=os.getuid(),
                                             gid=os.getgid())]
    after_sync = lab.node()

    # check mode: the plan, nothing written
    plan, failed = sync(dict(state='restored', backup='latest', backup_dir=str(lab.backups)), check_mode=True,
                        diff=True)
    assert not failed, plan
    assert lab.node() == after_sync
    assert plan['changed'] is True and plan['backup_path'] == backup
    assert plan['updated'] == ['my-auth.lua', 'my-log.lua', str(lab.conf)]
    assert plan['added'] == ['retired/old.lua']
    assert sorted(plan['removed']) == sorted(['utils/jwt.lua', 'utils/deep/README.md', 'utils/deep/deeper/leaf.lua'])
    assert 'would remove utils/jwt.lua (added by the sync)' in plan['actions']
    shown = CallbackBase()._get_diff(plan['diff'])
    assert '+  node_listen: 9000' in shown and '-  node_listen: 9080' in shown

    res, failed = sync(dict(state='restored', backup='latest', backup_dir=str(lab.backups)))
    assert not failed, res
    assert res['changed'] is True
    backup_files = snapshot(lab.backups)
    restored = lab.node()
    # the node is byte for byte, mode for mode, as before the sync (the backup directory aside)
    strip = dict((k, v) for k, v in restored.items() if not k.startswith('backup'))
    assert strip == before
    assert not (lab.dest / 'utils').exists() and not (lab.dest / 'empty').exists()

    again, failed = sync(dict(state='restored', backup=backup, backup_dir=str(lab.backups)))
    assert not failed and again['changed'] is False
    assert snapshot(lab.backups) == backup_files


@needs_checker
def test_restore_of_a_first_sync_removes_everything_it_created(lab, sync):
    res, failed = sync(lab.args(config_src=str(lab.conf_src), config_dest=str(lab.conf)))
    assert not failed
    res, failed = sync(dict(state='restored', backup=os.path.basename(res['backup_path']),
                            backup_dir=str(lab.backups)))
    assert not failed, res
    assert sorted(res['removed']) == sorted(SRC_FILES + [str(lab.conf)])
    assert not (lab.tmp / 'node' / 'custom').exists() and not (lab.tmp / 'node' / 'conf').exists()
    assert os.listdir(str(lab.tmp / 'node')) == ['backup']


@needs_checker
def test_latest_is_the_newest_backup(lab, sync):
    _node_before_sync(lab)
    first, _f = sync(lab.args())
    write(lab.src / 'my-auth.lua', OK_LUA % b'v3')
    second, _f = sync(lab.args())
    assert first['backup_path'] != second['backup_path']
    res, failed = sync(dict(state='restored', backup='latest', backup_dir=str(lab.backups)))
    assert not failed and res['backup_path'] == second['backup_path']
    assert read(lab.dest / 'my-auth.lua') == OK_LUA % b'my-auth'


@pytest.mark.parametrize('damage,text', [
    ('missing', 'does not exist'),
    ('none', 'there is no backup in'),
    ('bad_json', 'its manifest is not valid JSON'),
    ('no_manifest', 'its manifest cannot be read'),
    ('outside', 'backup_file is missing or outside the backup'),
    ('checksum', 'checksum mismatch: files/plugins/my-auth.lua has sha256'),
    ('file_gone', 'checksum mismatch: files/plugins/my-auth.lua is missing'),
])
def test_restore_refuses_a_bad_backup(lab, sync, damage, text):
    _node_before_sync(lab)
    res, failed = sync(lab.args(lua_check=False, delete=True))
    assert not failed
    backup = res['backup_path']
    manifest_path = os.path.join(backup, 'manifest.json')
    wanted = backup
    if damage == 'missing':
        wanted = str(lab.backups / '20990101T000000Z')
    elif damage == 'none':
        shutil.rmtree(str(lab.backups))
        wanted = 'latest'
    elif damage == 'bad_json':
        write(manifest_path, b'{"format": 1, "files": [', 0o600)
    elif damage == 'no_manifest':
        os.unlink(manifest_path)
    elif damage == 'outside':
        manifest = json.loads(read(manifest_path))
        for rec in manifest['files']:
            if rec['existed']:
                rec['backup_file'] = '../../../etc/passwd'
        write(manifest_path, json.dumps(manifest).encode(), 0o600)
    elif damage == 'checksum':
        write(os.path.join(backup, 'files', 'plugins', 'my-auth.lua'), b'tampered\n', 0o600)
    elif damage == 'file_gone':
        os.unlink(os.path.join(backup, 'files', 'plugins', 'my-auth.lua'))
    before = snapshot(lab.tmp)
    res, failed = sync(dict(state='restored', backup=wanted, backup_dir=str(lab.backups)))
    assert failed, res
    assert text in res['msg'], res['msg']
    assert res['msg'].endswith('Nothing was changed.')
    assert snapshot(lab.tmp) == before


def test_restore_requires_backup(lab, sync):
    res, failed = sync(dict(state='restored', backup_dir=str(lab.backups)))
    assert failed and 'backup' in res['msg']


def test_refused_when_a_destination_parent_is_a_file(lab, sync):
    write(lab.tmp / 'node' / 'custom', b'not a directory\n')
    before = snapshot(lab.tmp)
    res, failed = sync(lab.args(lua_check=False))
    assert failed and 'is not a directory. Nothing was changed.' in res['msg'], res['msg']
    assert snapshot(lab.tmp) == before


def test_excluded_source_files_are_neither_copied_nor_checked(lab, sync):
    write(lab.src / '.git' / 'HEAD', b'ref: refs/heads/main\n')
    write(lab.src / 'wip' / 'broken.lua', BAD_LUA)
    res, failed = sync(lab.args(exclude=['.git', 'wip'], lua_check=False))
    assert not failed, res
    assert res['added'] == SRC_FILES
    assert not (lab.dest / '.git').exists() and not (lab.dest / 'wip').exists()


def test_restore_refused_when_a_file_became_a_directory(lab, sync):
    _node_before_sync(lab)
    res, failed = sync(lab.args(lua_check=False))
    assert not failed
    os.unlink(str(lab.dest / 'my-auth.lua'))
    os.mkdir(str(lab.dest / 'my-auth.lua'))
    before = snapshot(lab.tmp)
    res, failed = sync(dict(state='restored', backup='latest', backup_dir=str(lab.backups)))
    assert failed and 'is now a directory' in res['msg'] and res['msg'].endswith('Nothing was changed.')
    assert snapshot(lab.tmp) == before


def test_without_root_a_file_owned_by_another_user_is_refused(lab, sync, monkeypatch):
    write(lab.dest / 'my-auth.lua', b'return "someone else\'s"\n')
    os.chown(str(lab.dest / 'my-auth.lua'), 4321, 4321)
    before = snapshot(lab.tmp)
    monkeypatch.setattr(apisix_plugin_sync.os, 'geteuid', lambda: 1000)
    monkeypatch.setattr(apisix_plugin_sync.os, 'getegid', lambda: 1000)
    monkeypatch.setattr(apisix_plugin_sync.os, 'getgroups', lambda: [1000])
    res, failed = sync(lab.args(lua_check=False))
    assert failed and 'belongs to uid 4321, gid 4321: without root its owner cannot be kept' in res['msg']
    assert snapshot(lab.tmp) == before


# --- secure by default ---------------------------------------------------------------------------------------

def test_refused_on_a_source_symlink_leading_outside_the_tree(lab, sync):
    secret = write(lab.tmp / 'home' / '.ssh' / 'id_ed25519', b'-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n', 0o600)
    os.symlink(secret, str(lab.src / 'utils' / 'key.lua'))
    before = snapshot(lab.tmp)
    for check_mode in (True, False):
        res, failed = sync(lab.args(lua_check=False), check_mode=check_mode, diff=True)
        assert failed, res
        assert res['msg'] == ('plugins_src: %s is a symbolic link to %s, outside plugins_src; a link may only point '
                              'to a file of the same tree (copy the file in, or exclude the link). Nothing was '
                              'changed.' % (lab.src / 'utils' / 'key.lua', secret))
        assert res['changed'] is False
        assert 'PRIVATE KEY' not in json.dumps(res)
        assert snapshot(lab.tmp) == before
    # excluded, the link is neither read nor refused
    res, failed = sync(lab.args(lua_check=False, exclude=['key.lua']))
    assert not failed, res
    assert not (lab.dest / 'utils' / 'key.lua').exists()


def test_refused_on_a_source_symlink_through_a_path_outside_the_tree(lab, sync):
    outside = write(lab.tmp / 'elsewhere' / 'plugin.lua', OK_LUA % b'elsewhere')
    os.symlink(os.path.relpath(outside, str(lab.src)), str(lab.src / 'escape.lua'))
    res, failed = sync(lab.args(lua_check=False))
    assert failed and 'escape.lua is a symbolic link to %s, outside plugins_src' % outside in res['msg']
    assert not lab.dest.exists() and not lab.backups.exists()


CONFIG_WITH_SECRETS = b"""apisix:
  node_listen: 9080
deployment:
  admin:
    admin_key:
    - key: %s
      name: admin
      role: admin
    allow_admin:
    - 127.0.0.0/24
  etcd:
    host:
    - http://10.0.0.1:2379
    password: %s
    user: apisix
"""


def test_config_diff_hides_the_admin_key_and_the_etcd_password(lab, sync):
    write(lab.conf, CONFIG_WITH_SECRETS % (b'0ldadminkey0000000000000000000000', b'old-etcd-password'), 0o640)
    write(lab.conf_src, (CONFIG_WITH_SECRETS % (b'newadminkey1111111111111111111111', b'old-etcd-password'))
          .replace(b'9080', b'9081'))
    args = dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups))
    plan, failed = sync(args, check_mode=True, diff=True)
    assert not failed, plan
    shown = CallbackBase()._get_diff(plan['diff'])
    for secret in ('0ldadminkey', 'newadminkey', 'old-etcd-password'):
        assert secret not in shown and secret not in json.dumps(plan['diff'])
    assert '-  node_listen: 9080' in shown and '+  node_listen: 9081' in shown
    assert '-    - key: <hidden>' in shown and '+    - key: <hidden, changed>' in shown
    config_diff, = plan['diff']
    # the same password on both sides: hidden alike, so the diff shows no change there
    assert '    password: <hidden>\n' in config_diff['before'] and '    password: <hidden>\n' in config_diff['after']
    assert '    user: apisix\n' in config_diff['after'] and '      name: admin' in shown

    # the rollback of the rolling update restores config.yaml in diff mode: its secrets stay hidden too
    res, failed = sync(args)
    assert not failed and read(lab.conf) == read(lab.conf_src)
    res, failed = sync(dict(state='restored', backup=res['backup_path'], backup_dir=str(lab.backups)), diff=True)
    assert not failed, res
    assert b'0ldadminkey' in read(lab.conf)
    shown = CallbackBase()._get_diff(res['diff'])
    for secret in ('0ldadminkey', 'newadminkey', 'old-etcd-password'):
        assert secret not in shown
    assert '+    - key: <hidden, changed>' in shown and '+  node_listen: 9080' in shown


def test_a_new_config_shows_its_secrets_hidden(lab, sync):
    write(lab.conf_src, CONFIG_WITH_SECRETS % (b'adminkey', b'etcd-password'))
    res, failed = sync(dict(config_src=str(lab.conf_src), config_dest=str(lab.conf), backup_dir=str(lab.backups)),
                       check_mode=True, diff=True)
    assert not failed, res
    after = res['diff'][-1]['after']
    assert 'adminkey' not in after and 'etcd-password' not in after
    assert '    - key: <hidden>\n' in after and '    password: <hidden>\n' in after


@pytest.mark.parametrize('text,hidden', [
    ('admin_key: abc\n', 'admin_key: <hidden>\n'),
    ('  password: "p a s s"  \n', '  password: <hidden>\n'),
    ('- {name: admin, key: abc, role: admin}\n', '- {name: admin, key: <hidden>, role: admin}\n'),
    ('data_encryption:\n  keyring:\n    - k1\n    - k2\n  enable: true\n',
     'data_encryption:\n  keyring:\n    - <hidden>\n    - <hidden>\n  enable: true\n'),
    ('keyring:\n- k1\nother: 1\n', 'keyring:\n- <hidden>\nother: 1\n'),
    ('jwt_secret: |\n  line1\n  line2\nnext: 2\n', 'jwt_secret: <hidden>\n  <hidden>\n  <hidden>\nnext: 2\n'),
    ('keepalive: 60\nhost: key\n', 'keepalive: 60\nhost: key\n'),
])
def test_hide_secrets(text, hidden):
    assert apisix_plugin_sync.hide_secrets(text, text) == (hidden, hidden)
