# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_file_tx on real files in tmp_path: atomic writes, dated backups with a manifest, and their restore."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import errno
import hashlib
import json
import os
import pathlib
import stat

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _file_tx as tx

HERE = os.path.dirname(__file__)
SOURCE = os.path.join(HERE, '..', '..', '..', '..', 'plugins', 'module_utils', '_file_tx.py')


def write(path, data, mode=0o644):
    """``path``: a pathlib path in tmp_path; -> its str."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def read(path):
    with open(str(path), 'rb') as f:
        return f.read()


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def listing(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, str(root))] = (read(full) if stat.S_ISREG(st.st_mode) else None,
                                                     stat.S_IMODE(st.st_mode))
    return out


def test_standard_library_only():
    """Host programs install the file alone beside them: no import from ansible or from the collection."""
    with open(SOURCE) as f:
        tree = ast.parse(f.read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or '').split('.')[0])
    assert modules <= {'__future__', 'ctypes', 'errno', 'hashlib', 'json', 'os', 're', 'stat', 'tempfile', 'time'}, modules


def test_sha256_file(tmp_path):
    path = write(tmp_path / 'f', b'x' * (tx.CHUNK + 5))
    assert tx.sha256_file(path) == hashlib.sha256(b'x' * (tx.CHUNK + 5)).hexdigest()


def test_write_atomic_replaces_with_mode_and_leaves_no_temporary_file(tmp_path):
    src = write(tmp_path / 'src', b'new\n')
    dest = write(tmp_path / 'd' / 'dest', b'old\n', 0o600)
    tx.write_atomic(src, dest, 0o640, expect_sha256=hashlib.sha256(b'new\n').hexdigest(), tmp_prefix='.t.')
    assert read(dest) == b'new\n' and mode(dest) == 0o640
    assert os.listdir(os.path.dirname(dest)) == ['dest']


def test_write_atomic_keeps_the_owner_given(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('changing owners needs root')
    src = write(tmp_path / 'src', b'new\n')
    dest = write(tmp_path / 'dest', b'old\n')
    tx.write_atomic(src, dest, 0o644, 4321, 4322)
    st = os.stat(dest)
    assert (st.st_uid, st.st_gid) == (4321, 4322) and read(dest) == b'new\n'


def test_write_atomic_with_a_wrong_sha256_leaves_the_destination_alone(tmp_path):
    src = write(tmp_path / 'src', b'changed meanwhile\n')
    dest = write(tmp_path / 'd' / 'dest', b'old\n', 0o600)
    with pytest.raises(OSError) as err:
        tx.write_atomic(src, dest, 0o644, expect_sha256='0' * 64)
    assert err.value.errno == errno.EIO and 'changed while it was copied' in str(err.value)
    assert read(dest) == b'old\n' and mode(dest) == 0o600
    assert os.listdir(os.path.dirname(dest)) == ['dest']


def test_write_bytes_atomic(tmp_path):
    dest = str(tmp_path / 'm.json')
    tx.write_bytes_atomic(b'{}\n', dest, 0o600)
    assert read(dest) == b'{}\n' and mode(dest) == 0o600


def test_missing_dirs_and_is_inside(tmp_path):
    assert tx.missing_dirs(str(tmp_path / 'a' / 'b')) == [str(tmp_path / 'a'), str(tmp_path / 'a' / 'b')]
    assert tx.missing_dirs(str(tmp_path)) == []
    assert tx.is_inside('/srv/a/b', '/srv/a') and tx.is_inside('/srv/a', '/srv/a')
    assert not tx.is_inside('/srv/ab', '/srv/a')


def test_remove_tree_does_not_follow_links(tmp_path):
    keep = write(tmp_path / 'keep' / 'file', b'kept\n')
    write(tmp_path / 'gone' / 'sub' / 'f', b'x')
    os.symlink(os.path.dirname(keep), str(tmp_path / 'gone' / 'link'))
    tx.remove_tree(str(tmp_path / 'gone'))
    assert not os.path.lexists(str(tmp_path / 'gone')) and read(keep) == b'kept\n'


# --- backups --------------------------------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path):
    """Two live files (one to replace, one to remove), a file the change adds, a directory it creates."""
    root = tmp_path / 'live'
    files = dict(replaced=write(root / 'a.conf', b'a v1\n', 0o640), removed=write(root / 'old' / 'b.lua', b'b\n'))
    return root, files


def records(files):
    out = []
    for kind, path in sorted(files.items()):
        st = os.stat(path)
        out.append(dict(path=path, existed=True, backup_file=os.path.join('files', kind), sha256=tx.sha256_file(path),
                        mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, kind=kind))
    return out


def change(root, files):
    """What the change does after the backup: replace, remove, add in a new directory."""
    write(pathlib.Path(files['replaced']), b'a v2\n', 0o644)
    os.unlink(files['removed'])
    os.rmdir(os.path.dirname(files['removed']))
    os.mkdir(str(root / 'new'))
    write(root / 'new' / 'c.lua', b'c\n')


def test_backup_then_restore_puts_everything_back(tmp_path, live):
    root, files = live
    before = listing(root)
    added = str(root / 'new' / 'c.lua')
    backup, manifest = tx.create_backup(
        str(tmp_path / 'backups'), records(files) + [dict(path=added, existed=False, kind='added')],
        dirs_created=[str(root / 'new')],
        dirs_removed=[dict(path=str(root / 'old'), mode=0o755, uid=os.getuid(), gid=os.getgid())],
        meta=dict(module='test'))
    assert tx.BACKUP_NAME.match(os.path.basename(backup))
    assert mode(backup) == 0o700 and mode(str(tmp_path / 'backups')) == 0o700
    assert os.listdir(str(tmp_path / 'backups')) == [os.path.basename(backup)]  # no partial copy left
    on_disk = json.loads(read(os.path.join(backup, tx.MANIFEST)))
    assert on_disk == manifest and on_disk['module'] == 'test' and on_disk['format'] == tx.MANIFEST_FORMAT
    rec = [r for r in on_disk['files'] if r['path'] == files['replaced']][0]
    assert rec['mode'] == '0640' and read(os.path.join(backup, rec['backup_file'])) == b'a v1\n'
    assert mode(os.path.join(backup, rec['backup_file'])) == 0o600
    change(root, files)

    loaded = tx.load_manifest(tx.find_backup(str(tmp_path / 'backups'), 'latest'))
    tx.verify_backup_files(backup, loaded)
    plan = tx.plan_restore(loaded, name_of=lambda r: r['kind'])
    actions = dict((i['name'], i['action']) for i in plan['files'])
    assert actions == dict(replaced='updated', removed='added', added='removed')
    assert [d['path'] for d in plan['dirs_recreate']] == [str(root / 'old')]
    assert plan['dirs_drop'] == [str(root / 'new')]
    done = []
    tx.restore(backup, plan, do=lambda what, func, *args: (done.append(what), func(*args)), prefix='rolled back: ')
    assert listing(root) == before
    # directories first, then the files in the manifest's order, then the directories the change created
    assert done == ['rolled back: recreate directory %s' % (root / 'old'), 'rolled back: put back removed',
                    'rolled back: put back replaced', 'rolled back: remove added (added by the sync)',
                    'rolled back: remove directory %s (created by the sync)' % (root / 'new')]
    # restored: a second plan has nothing to do
    again = tx.plan_restore(loaded)
    assert set(i['action'] for i in again['files']) == {'unchanged'}
    assert again['dirs_recreate'] == [] and again['dirs_drop'] == []


def test_backup_names_do_not_collide(tmp_path, live):
    _root, files = live
    first, _m = tx.create_backup(str(tmp_path / 'b'), records(files))
    second, _m = tx.create_backup(str(tmp_path / 'b'), records(files))
    assert first != second
    assert tx.find_backup(str(tmp_path / 'b'), 'latest') == max(first, second, key=lambda p: (
        os.path.basename(p)[:16], int(os.path.basename(p)[17:] or 0)))
    with pytest.raises(OSError):
        tx.create_backup(str(tmp_path / 'b'), records(files), name=os.path.basename(first))


def test_a_failed_backup_leaves_no_partial_directory(tmp_path, live):
    _root, files = live
    recs = records(files)
    recs[0]['sha256'] = '0' * 64   # the file "changed" since it was planned
    with pytest.raises(OSError):
        tx.create_backup(str(tmp_path / 'b'), recs)
    assert os.listdir(str(tmp_path / 'b')) == []


@pytest.mark.parametrize('damage,reason', [
    (lambda m: m.update(format=2), 'is not a format 1 manifest of the producer'),
    (lambda m: m.update(files={}), 'has no list of files'),
    (lambda m: m['files'][0].update(path='relative/path'), 'needs an absolute normalised path and existed'),
    (lambda m: m['files'][0].update(backup_file='../../etc/passwd'), 'backup_file is missing or outside the backup'),
    (lambda m: m['files'][0].update(sha256='xyz'), 'sha256 is missing or malformed'),
    (lambda m: m['files'][0].update(mode='rwx'), 'mode is missing or malformed'),
    (lambda m: m['files'][0].pop('uid'), 'uid or gid is missing'),
    (lambda m: m.update(dirs_created=['relative']), "dirs_created: 'relative' is not an absolute path"),
])
def test_a_broken_manifest_is_refused(tmp_path, live, damage, reason):
    _root, files = live
    backup, manifest = tx.create_backup(str(tmp_path / 'b'), records(files))
    damage(manifest)
    write(pathlib.Path(backup, tx.MANIFEST), json.dumps(manifest).encode(), 0o600)
    with pytest.raises(tx.BackupError) as err:
        tx.load_manifest(backup, 'the producer')
    assert reason in err.value.reason and err.value.backup == backup


def test_verify_names_a_tampered_or_missing_file(tmp_path, live):
    _root, files = live
    backup, manifest = tx.create_backup(str(tmp_path / 'b'), records(files))
    write(pathlib.Path(backup, 'files', 'replaced'), b'tampered\n', 0o600)
    os.unlink(os.path.join(backup, 'files', 'removed'))
    with pytest.raises(tx.BackupError) as err:
        tx.verify_backup_files(backup, manifest)
    assert 'files/replaced has sha256 %s' % hashlib.sha256(b'tampered\n').hexdigest() in err.value.reason
    assert 'files/removed is missing' in err.value.reason


def test_find_backup(tmp_path):
    with pytest.raises(tx.BackupError) as err:
        tx.find_backup(str(tmp_path / 'none'), 'latest')
    assert err.value.reason == 'there is no backup in %s' % (tmp_path / 'none')
    for name in ('20260301T101500Z', '20260301T101500Z-2', '20260301T101500Z-10', 'not-a-backup'):
        os.makedirs(str(tmp_path / 'b' / name))
    assert tx.find_backup(str(tmp_path / 'b'), 'latest') == str(tmp_path / 'b' / '20260301T101500Z-10')
    assert tx.find_backup(str(tmp_path / 'b'), '20260301T101500Z') == str(tmp_path / 'b' / '20260301T101500Z')
    with pytest.raises(tx.BackupError):
        tx.find_backup(str(tmp_path / 'b'), '20990101T000000Z')


def test_restore_refuses_a_file_that_became_a_directory(tmp_path, live):
    _root, files = live
    _backup, manifest = tx.create_backup(str(tmp_path / 'b'), records(files))
    os.unlink(files['replaced'])
    os.mkdir(files['replaced'])
    with pytest.raises(tx.RestoreRefused) as err:
        tx.plan_restore(manifest)
    assert str(err.value) == '%s is now a directory; restoring over it is refused. Nothing was changed.' \
        % files['replaced']


def test_restore_without_root_refuses_another_owner(tmp_path, live, monkeypatch):
    _root, files = live
    recs = records(files)
    recs[0].update(uid=4321, gid=4321)
    _backup, manifest = tx.create_backup(str(tmp_path / 'b'), recs)
    write(pathlib.Path(files['removed']), b'changed\n')
    monkeypatch.setattr(tx.os, 'geteuid', lambda: 1000)
    monkeypatch.setattr(tx.os, 'getegid', lambda: 1000)
    monkeypatch.setattr(tx.os, 'getgroups', lambda: [1000])
    with pytest.raises(tx.RestoreRefused) as err:
        tx.plan_restore(manifest)
    assert 'must be restored with uid 4321, gid 4321: that needs root' in str(err.value)
