# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""File transactions: atomic writes that keep modes and owners, and dated backups with a manifest that can be
restored.

Standard library only, and no import from the collection: host programs may install this file beside them and
import it (as the etcd roles do with _etcd_snapshot_file.py).

- write_atomic() / write_bytes_atomic(): a temporary file in the destination's directory, mode and owner set,
  fsync, rename over the destination, fsync of the directory. A failure leaves the destination as it was.
- create_backup(): copies the files about to be replaced into ``<backup_dir>/<YYYYmmddTHHMMSSZ>/`` with a
  ``manifest.json`` (path, whether it existed, sha256, mode, owner and group of each). The backup is built in a
  hidden ``.<name>.partial`` directory and renamed when complete, so a backup that exists is whole.
- find_backup(), load_manifest(), verify_backup_files(), plan_restore() and restore(): put a backup back, after
  checking its manifest and the sha256 of every file it holds. Problems with the backup raise BackupError,
  refusals caused by the live files raise RestoreRefused; both before anything is changed.
- TreeSwap: change a whole directory tree in one step: a copy of it beside it (hard links of its files), changed
  there, exchanged with it in one rename. Killed at any step, the tree is the whole old one or the whole new one;
  what a killed run left beside it is removed by the next (TreeSwap.recover()).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import time

CHUNK = 1024 * 1024
TMP_PREFIX = '.gatewayops_tx.'
MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 1
BACKUP_NAME = re.compile(r'^\d{8}T\d{6}Z(-\d+)?$')
_SHA256 = re.compile(r'^[0-9a-f]{64}$')
_MODE = re.compile(r'^[0-7]{3,4}$')


class BackupError(Exception):
    """A backup that cannot be restored (missing, broken manifest, checksum mismatch)."""

    def __init__(self, backup, reason):
        super(BackupError, self).__init__(reason)
        self.backup = backup
        self.reason = reason


class RestoreRefused(Exception):
    """The live files do not allow a restore (a file became a directory, an owner needing root)."""


# ---------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------

def sha256_file(path):
    """Hex sha256 of the file ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def perm(st):
    """The permission bits (with setuid, setgid, sticky) of a stat result."""
    return stat.S_IMODE(st.st_mode) & 0o7777


def mode_text(mode):
    return '%04o' % mode


def lstat_or_none(path):
    """os.lstat(path), or None when it does not exist."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def is_inside(path, root):
    """True when ``path`` is ``root`` or below it (pass real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def missing_dirs(path):
    """The directories to create, top-down, for the directory ``path`` to exist."""
    missing = []
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return list(reversed(missing))


def can_own(uid, gid):
    """Whether this process may give a file this owner and group (root, or its own user and one of its groups)."""
    if os.geteuid() == 0:
        return True
    return uid == os.geteuid() and (gid == os.getegid() or gid in os.getgroups())


def fsync_dir(path):
    """Make a rename or unlink in ``path`` durable; a file system that cannot fsync a directory is ignored."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_with_temp(dest, fill, mode, uid, gid, tmp_prefix):
    """Create a temporary file beside ``dest``, let ``fill(file)`` write it, set owner and mode, fsync, rename it
    over ``dest``, fsync the directory. On any failure the temporary file goes and ``dest`` is as it was."""
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as out:
            fill(out)
            out.flush()
            if uid is not None and gid is not None:
                st = os.fstat(out.fileno())
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.fchown(out.fileno(), uid, gid)
            # after fchown, which clears setuid and setgid bits
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.rename(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_atomic(src, dest, mode, uid=None, gid=None, expect_sha256=None, tmp_prefix=TMP_PREFIX):
    """Copy the file ``src`` over ``dest`` atomically with ``mode`` (and ``uid``/``gid`` when both are given).
    With ``expect_sha256``, a copy whose sha256 differs (the source changed meanwhile) fails with EIO and
    ``dest`` is left alone."""
    digest = hashlib.sha256()

    def fill(out):
        with open(src, 'rb') as inp:
            for chunk in iter(lambda: inp.read(CHUNK), b''):
                digest.update(chunk)
                out.write(chunk)
        if expect_sha256 and digest.hexdigest() != expect_sha256:
            raise OSError(errno.EIO, '%s changed while it was copied (sha256 %s, expected %s)'
                          % (src, digest.hexdigest(), expect_sha256))

    _replace_with_temp(dest, fill, mode, uid, gid, tmp_prefix)


def write_bytes_atomic(data, dest, mode, uid=None, gid=None, tmp_prefix=TMP_PREFIX):
    """Write ``data`` (bytes) over ``dest`` atomically, as write_atomic() does."""
    _replace_with_temp(dest, lambda out: out.write(data), mode, uid, gid, tmp_prefix)


def remove_tree(path):
    """Remove ``path`` and everything below it, without following symbolic links."""
    if not os.path.lexists(path):
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            full = os.path.join(root, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)


def _run(description, func, *args):
    """The default ``do`` of restore(): run without recording."""
    return func(*args)


# ---------------------------------------------------------------------------------------------------
# backups
# ---------------------------------------------------------------------------------------------------

def new_backup_name(backup_dir):
    """``YYYYmmddTHHMMSSZ`` (UTC), with ``-N`` appended when that backup (or its partial copy) exists."""
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    name, n = stamp, 0
    while os.path.lexists(os.path.join(backup_dir, name)) or os.path.lexists(
            os.path.join(backup_dir, '.%s.partial' % name)):
        n += 1
        name = '%s-%d' % (stamp, n)
    return name


def remove_partial_backups(backup_dir):
    """Remove the ``.<name>.partial`` directories of backups whose run was killed before they were complete."""
    for name in sorted(os.listdir(backup_dir)):
        if name.startswith('.') and name.endswith('.partial') and BACKUP_NAME.match(name[1:-len('.partial')]):
            remove_tree(os.path.join(backup_dir, name))


def create_backup(backup_dir, files, dirs_created=(), dirs_removed=(), meta=None, name=None, tmp_prefix=TMP_PREFIX):
    """Save the files a change is about to replace or remove into a new dated backup below ``backup_dir``
    (created with mode 0700, as are the backup and its copies: they may hold secrets).

    ``files``: dicts with ``path`` (absolute) and ``existed``; when ``existed``, also ``backup_file`` (its path
    inside the backup), ``sha256``, ``mode`` (int), ``uid`` and ``gid`` of the file now. Other keys are kept in
    the manifest as they are. ``dirs_created``: directories the change will create (absolute paths);
    ``dirs_removed``: dicts (path, mode as int, uid, gid) of directories it will remove. ``meta``: more keys
    for the manifest. ``name``: the backup's name (default: new_backup_name()). -> (backup path, manifest)."""
    for path in missing_dirs(backup_dir):
        os.mkdir(path, 0o700)
    remove_partial_backups(backup_dir)
    name = name or new_backup_name(backup_dir)
    partial = os.path.join(backup_dir, '.%s.partial' % name)
    final = os.path.join(backup_dir, name)
    if os.path.lexists(final):
        raise OSError(errno.EEXIST, 'backup %s exists already' % final)
    os.mkdir(partial, 0o700)
    try:
        records = []
        for rec in files:
            rec = dict(rec)
            if rec['existed']:
                target = os.path.join(partial, rec['backup_file'])
                if not os.path.isdir(os.path.dirname(target)):
                    os.makedirs(os.path.dirname(target), 0o700)
                write_atomic(rec['path'], target, 0o600, expect_sha256=rec['sha256'], tmp_prefix=tmp_prefix)
                rec['mode'] = mode_text(rec['mode'])
            records.append(rec)
        manifest = dict(meta or {})
        manifest.update(
            format=MANIFEST_FORMAT,
            created=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            files=records,
            dirs_created=list(dirs_created),
            dirs_removed=[dict(path=d['path'], mode=mode_text(d['mode']), uid=d['uid'], gid=d['gid'])
                          for d in dirs_removed],
        )
        text = json.dumps(manifest, indent=2, sort_keys=True) + '\n'
        write_bytes_atomic(text.encode('utf-8'), os.path.join(partial, MANIFEST), 0o600, tmp_prefix=tmp_prefix)
        os.rename(partial, final)
        fsync_dir(backup_dir)
    except BaseException:
        remove_tree(partial)
        raise
    return final, manifest


def update_manifest(backup, manifest, tmp_prefix=TMP_PREFIX, **changes):
    """Rewrite the manifest of ``backup`` (atomically) with ``changes``; -> the new manifest."""
    manifest = dict(manifest, **changes)
    text = json.dumps(manifest, indent=2, sort_keys=True) + '\n'
    write_bytes_atomic(text.encode('utf-8'), os.path.join(backup, MANIFEST), 0o600, tmp_prefix=tmp_prefix)
    return manifest


def find_backup(backup_dir, wanted):
    """The backup directory named by ``wanted``: a path, a name in ``backup_dir``, or ``latest``."""
    if wanted == 'latest':
        names = []
        if os.path.isdir(backup_dir):
            names = sorted((n for n in os.listdir(backup_dir)
                            if BACKUP_NAME.match(n) and os.path.isdir(os.path.join(backup_dir, n))),
                           key=lambda n: (n[:16], int(n[17:] or 0)))
        if not names:
            raise BackupError(wanted, 'there is no backup in %s' % backup_dir)
        return os.path.join(backup_dir, names[-1])
    if os.sep not in wanted:
        wanted = os.path.join(backup_dir, wanted)
    if not os.path.isdir(wanted):
        raise BackupError(wanted, 'it does not exist or is not a directory')
    return wanted


def _file_problems(rec, real_backup, backup):
    """What is wrong with one record of a manifest's files (an empty list when nothing)."""
    if not isinstance(rec, dict) or not isinstance(rec.get('path'), str) or not os.path.isabs(rec['path']) \
            or os.path.normpath(rec['path']) != rec['path'] or not isinstance(rec.get('existed'), bool):
        return ['needs an absolute normalised path and existed']
    if not rec['existed']:
        return []
    bf = rec.get('backup_file')
    if not isinstance(bf, str) or os.path.isabs(bf) or \
            not is_inside(os.path.realpath(os.path.join(backup, bf)), real_backup):
        return ['backup_file is missing or outside the backup']
    problems = []
    if not isinstance(rec.get('sha256'), str) or not _SHA256.match(rec['sha256']):
        problems.append('sha256 is missing or malformed')
    if not isinstance(rec.get('mode'), str) or not _MODE.match(rec['mode']):
        problems.append('mode is missing or malformed')
    if not isinstance(rec.get('uid'), int) or not isinstance(rec.get('gid'), int):
        problems.append('uid or gid is missing')
    return problems


def load_manifest(backup, producer='this module'):
    """The manifest of ``backup``, checked field by field; BackupError says what is wrong."""
    path = os.path.join(backup, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (IOError, OSError) as exc:
        raise BackupError(backup, 'its manifest cannot be read: %s' % exc)
    except ValueError as exc:
        raise BackupError(backup, 'its manifest is not valid JSON: %s' % exc)
    if not isinstance(manifest, dict) or manifest.get('format') != MANIFEST_FORMAT:
        raise BackupError(backup, 'its manifest is not a format %d manifest of %s' % (MANIFEST_FORMAT, producer))
    files = manifest.get('files')
    if not isinstance(files, list):
        raise BackupError(backup, 'its manifest has no list of files')
    real_backup = os.path.realpath(backup)
    problems = []
    for i, rec in enumerate(files):
        where = rec['path'] if isinstance(rec, dict) and isinstance(rec.get('path'), str) else 'file %d' % i
        problems.extend('%s: %s' % (where, p) for p in _file_problems(rec, real_backup, backup))
    for key in ('dirs_created', 'dirs_removed'):
        value = manifest.get(key, [])
        if not isinstance(value, list):
            problems.append('%s is not a list' % key)
            continue
        for d in value:
            path = d if key == 'dirs_created' else (d.get('path') if isinstance(d, dict) else None)
            if not isinstance(path, str) or not os.path.isabs(path):
                problems.append('%s: %r is not an absolute path' % (key, d))
            elif key == 'dirs_removed' and not (isinstance(d.get('mode'), str) and _MODE.match(d['mode'])):
                problems.append('%s: %s has no valid mode' % (key, path))
    if problems:
        raise BackupError(backup, 'its manifest is broken: %s' % '; '.join(problems))
    return manifest


def verify_backup_files(backup, manifest):
    """Every file the manifest says was saved is there with its sha256; BackupError otherwise."""
    problems = []
    for rec in manifest['files']:
        if not rec['existed']:
            continue
        path = os.path.join(backup, rec['backup_file'])
        if not os.path.isfile(path):
            problems.append('%s is missing' % rec['backup_file'])
            continue
        actual = sha256_file(path)
        if actual != rec['sha256']:
            problems.append('%s has sha256 %s, the manifest says %s' % (rec['backup_file'], actual, rec['sha256']))
    if problems:
        raise BackupError(backup, 'checksum mismatch: %s' % '; '.join(problems))


def plan_restore(manifest, name_of=None):
    """What restoring ``manifest`` would do, read from the live files; nothing is changed.

    -> dict(files=[dict(rec, name, current (lstat or None), action in added/updated/removed/unchanged)],
    dirs_recreate=[the manifest's dirs_removed entries that are missing, top-down],
    dirs_drop=[directories the change created that would be left empty, deepest first]).
    ``name_of(rec)`` names a file in the plan (default: its path)."""
    files = []
    for rec in manifest['files']:
        path = rec['path']
        st = lstat_or_none(path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise RestoreRefused('%s is now %s; restoring over it is refused. Nothing was changed.'
                                 % (path, 'a directory' if stat.S_ISDIR(st.st_mode) else 'not a regular file'))
        item = dict(rec=rec, name=name_of(rec) if name_of else path, current=st)
        if not rec['existed']:
            item['action'] = 'removed' if st is not None else 'unchanged'
        else:
            if st is None:
                item['action'] = 'added'
            elif sha256_file(path) == rec['sha256'] and perm(st) == int(rec['mode'], 8) and \
                    (st.st_uid, st.st_gid) == (rec['uid'], rec['gid']):
                item['action'] = 'unchanged'
            else:
                item['action'] = 'updated'
            if item['action'] != 'unchanged' and not can_own(rec['uid'], rec['gid']):
                raise RestoreRefused('%s must be restored with uid %d, gid %d: that needs root. Run with become. '
                                     'Nothing was changed.' % (path, rec['uid'], rec['gid']))
        files.append(item)
    dirs_recreate = [d for d in sorted(manifest.get('dirs_removed', []), key=lambda d: d['path'].count(os.sep))
                     if not os.path.isdir(d['path'])]
    dirs_drop = []
    dropped = set(item['rec']['path'] for item in files if item['action'] == 'removed')
    for path in sorted(manifest.get('dirs_created', []), key=lambda p: -p.count(os.sep)):
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        # empty once the files the change added (and the directories it created) are gone
        if all(os.path.join(path, n) in dropped for n in os.listdir(path)):
            dirs_drop.append(path)
            dropped.add(path)
    return dict(files=files, dirs_recreate=dirs_recreate, dirs_drop=dirs_drop)


def _recreate_dir(d):
    for path in missing_dirs(d['path']):
        os.mkdir(path, 0o755)
    os.chmod(d['path'], int(d['mode'], 8))
    uid, gid = d.get('uid', -1), d.get('gid', -1)
    if can_own(uid, gid):
        os.chown(d['path'], uid, gid)


def _put_back(backup, rec, tmp_prefix):
    for path in missing_dirs(os.path.dirname(rec['path'])):
        os.mkdir(path, 0o755)
    write_atomic(os.path.join(backup, rec['backup_file']), rec['path'], int(rec['mode'], 8), rec['uid'], rec['gid'],
                 expect_sha256=rec['sha256'], tmp_prefix=tmp_prefix)


def restore(backup, plan, do=_run, prefix='', tmp_prefix=TMP_PREFIX):
    """Carry out a plan_restore() plan of ``backup``. Each step goes through ``do(description, func, *args)``
    (an ActionRecorder's do(), or by default just run); ``prefix`` starts every description."""
    for d in plan['dirs_recreate']:
        do('%srecreate directory %s' % (prefix, d['path']), _recreate_dir, d)
    for item in plan['files']:
        rec = item['rec']
        if item['action'] == 'removed':
            do('%sremove %s (added by the sync)' % (prefix, item['name']), os.unlink, rec['path'])
        elif item['action'] in ('added', 'updated'):
            do('%sput back %s' % (prefix, item['name']), _put_back, backup, rec, tmp_prefix)
    for path in plan['dirs_drop']:
        do('%sremove directory %s (created by the sync)' % (prefix, path), os.rmdir, path)


# ---------------------------------------------------------------------------------------------------
# a directory tree changed in one step
# ---------------------------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a, b):
    """Swap the names ``a`` and ``b`` (two directories) in one step: renameat2(RENAME_EXCHANGE), Linux 3.15+.
    OSError when the system cannot (errno ENOSYS or EINVAL when it is not supported)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        raise OSError(errno.ENOSYS, 'renameat2 is not available')
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: exchanging %s and %s' % (os.strerror(err), a, b))


def _mirror_dir(src, dst):
    st = os.lstat(src)
    os.chmod(dst, perm(st))
    if can_own(st.st_uid, st.st_gid):
        os.lchown(dst, st.st_uid, st.st_gid)


def _mirror_file(src, dst, tmp_prefix):
    """``dst`` as a hard link of ``src`` (the same file: content, mode, owner), or a copy where no link can be made."""
    try:
        os.link(src, dst)
    except OSError:
        st = os.lstat(src)
        owner = (st.st_uid, st.st_gid) if can_own(st.st_uid, st.st_gid) else (None, None)
        write_atomic(src, dst, perm(st), owner[0], owner[1], tmp_prefix=tmp_prefix)


class TreeSwap(object):
    """Change the directory ``dest`` as one step.

    stage() makes ``.<name of dest>.<purpose>-XXXX`` beside it, holding what ``dest`` holds (its directories
    with their modes and owners, its files as hard links, its symbolic links); path() names the staged copy of a
    path of ``dest``, where the changes are made (a file is changed by writing a new one over its link, never in
    place). commit() exchanges the two in one rename (when ``dest`` does not exist: renames the staged tree to it)
    and removes the old tree. Where the exchange is not supported, two renames: ``dest`` to ``<staged>.old``,
    the staged tree to ``dest``; killed between them ``dest`` is missing, and recover() puts ``.old`` back.
    Names starting with ``skip_prefix`` (temporary files of killed writes) are not copied."""

    def __init__(self, dest, purpose, skip_prefix=TMP_PREFIX):
        self.dest = dest.rstrip(os.sep) or dest
        self.parent = os.path.dirname(self.dest) or '.'
        self.prefix = '.%s.%s-' % (os.path.basename(self.dest), purpose)
        self.skip_prefix = skip_prefix
        self.staged = None

    def leftovers(self):
        try:
            names = os.listdir(self.parent)
        except OSError:
            return []
        return [os.path.join(self.parent, n) for n in sorted(names) if n.startswith(self.prefix)]

    def recover(self):
        """Remove what a killed run left beside ``dest``, after putting its old tree back if it was between the two
        renames of the fallback. -> the paths removed."""
        found = self.leftovers()
        if not os.path.lexists(self.dest):
            for path in found:
                if path.endswith('.old') and os.path.isdir(path):
                    os.rename(path, self.dest)
                    fsync_dir(self.parent)
                    break
        for path in found:
            if os.path.lexists(path):
                remove_tree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        if found:
            fsync_dir(self.parent)
        return found

    def stage(self, mode=0o755):
        """The staged copy of ``dest`` (an empty directory of ``mode`` when ``dest`` does not exist)."""
        self.staged = tempfile.mkdtemp(prefix=self.prefix, dir=self.parent)
        if not os.path.isdir(self.dest):
            os.chmod(self.staged, mode)
            return self.staged
        _mirror_dir(self.dest, self.staged)
        for root, dirs, files in os.walk(self.dest):
            target = self.path(root)
            for name in sorted(dirs):
                full = os.path.join(root, name)
                if os.path.islink(full):
                    files.append(name)
                    continue
                os.mkdir(os.path.join(target, name), 0o700)
                _mirror_dir(full, os.path.join(target, name))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            for name in files:
                if name.startswith(self.skip_prefix):
                    continue
                full = os.path.join(root, name)
                if os.path.islink(full):
                    os.symlink(os.readlink(full), os.path.join(target, name))
                else:
                    _mirror_file(full, os.path.join(target, name), self.skip_prefix)
        return self.staged

    def path(self, path):
        """The staged copy of ``path`` (``dest`` or below it)."""
        if path == self.dest:
            return self.staged
        return os.path.join(self.staged, os.path.relpath(path, self.dest))

    def commit(self):
        """Put the staged tree in place of ``dest`` in one step, then remove the old tree."""
        if not os.path.lexists(self.dest):
            os.rename(self.staged, self.dest)
            fsync_dir(self.parent)
            self.staged = None
            return
        try:
            exchange(self.staged, self.dest)
            old = self.staged
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                raise
            old = self.staged + '.old'
            os.rename(self.dest, old)
            os.rename(self.staged, self.dest)
        fsync_dir(self.parent)
        self.staged = None
        remove_tree(old)

    def abort(self):
        """Remove the staged tree (``dest`` was not touched)."""
        if self.staged:
            remove_tree(self.staged)
        self.staged = None
