# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The one snapshot workflow of the collection: save, verify, restore beside a data dir, swap it in.

Used by the etcd_snapshot module and by the two host programs of the roles (etcd_cluster's scheduled backup,
etcd_emergency's refresh). Runs on the managed hosts, which have no Ansible: standard library only, and only a
relative import of its sibling, so it loads both as ansible_collections...module_utils._etcd_snapshot_workflow and
from the package the roles install beside their programs.

- SnapshotWorkflow.save(): one probe per endpoint (the caller's: the module asks the JSON gateway, the host
  programs `etcdctl endpoint status`), the free-space check, `etcdctl snapshot save`; the first endpoint that
  answers gives the snapshot. A dead endpoint fails within --dial-timeout, so there is no second probe.
- SnapshotWorkflow.verify(): the sha256 trailer (one read of the file) and, meanwhile, one `snapshot status`;
  the origin (the members the file holds), checked against the expected members when given.
- SnapshotWorkflow.restore_beside(): `snapshot restore` into a private staging dir beside the data dir (same
  filesystem), then the layout and the revision of the result are checked.
- DataDirSwap: the renames that put the staged dir in place and keep the replaced one; its rollback() works
  from what is on disk, so it can finish the job of a run that was killed half-way (the emergency refresh
  journals the swap and calls it on its next run).

Every filesystem step goes through FileOps, one method a step, so tests can kill the workflow at each.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import tempfile
import threading

from ._etcd_snapshot_file import (
    SnapshotError,
    SnapshotForeignOriginError,
    SnapshotIntegrityError,
    check_origin,
    check_snapshot,
    parse_status,
    read_members,
    restored_layout_ok,
    tool_environ_drop,
)
from ._file_tx import fsync_dir, write_bytes_atomic


class SnapshotStepError(SnapshotError):
    """A step of the workflow failed (a tool's exit code, a check of the result). ``extra``: result keys."""

    reason = 'step'

    def __init__(self, message, path=None, **extra):
        super(SnapshotStepError, self).__init__(message, path=path)
        self.extra = extra


class ProbeFailed(Exception):
    """An endpoint did not answer the probe before a save. ``note``: what failed, for the action log."""

    def __init__(self, message, note):
        super(ProbeFailed, self).__init__(message)
        self.note = note


def last_line(text, rc):
    lines = [line for line in (text or '').strip().splitlines() if line.strip()]
    return lines[-1] if lines else 'rc=%d' % rc


def run_subprocess(argv, environ_update=None, timeout=None):
    """The host programs' command runner -> (rc, stdout, stderr); ETCDCTL_*/ETCDUTL_* of the caller dropped."""
    env = dict(os.environ)
    for name in tool_environ_drop(env):
        env.pop(name, None)
    env.update(environ_update or {})
    try:
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, '', '%s timed out after %s s' % (argv[0], timeout)
    except OSError as exc:
        return 127, '', '%s: %s' % (argv[0], exc)
    return done.returncode, done.stdout, done.stderr


def parse_endpoint_status(output):
    """``etcdctl endpoint status -w json`` of one endpoint -> dict(db_size, cluster_id, revision, leader)."""
    try:
        status = json.loads((output or '').strip().splitlines()[-1])[0]['Status']
        return dict(db_size=int(status['dbSize']), cluster_id=status['header'].get('cluster_id'),
                    revision=int(status['header']['revision']), leader=status.get('leader'))
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        raise ProbeFailed('no status in the output of "endpoint status": %r' % (output or '')[:300],
                          'endpoint status unreadable')


class FileOps(object):
    """The filesystem steps. Tests override one to kill the workflow there."""

    def rename(self, src, dst):
        os.rename(src, dst)

    def fsync_dir(self, path):
        fsync_dir(path)

    def rmtree(self, path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)

    def mkdtemp(self, prefix, parent):
        """A new private (0700) directory in ``parent``."""
        return tempfile.mkdtemp(prefix=prefix, dir=parent)

    def write_json(self, path, doc, mode=0o600):
        """Atomically and durably replace ``path`` with ``doc``; private from birth (mkstemp is 0600)."""
        text = json.dumps(doc, indent=2, sort_keys=True) + '\n'
        write_bytes_atomic(text.encode('utf-8'), path, mode, tmp_prefix='.%s.' % os.path.basename(path))


def read_json(path):
    """The document in ``path``, or None when there is none (or it is unreadable)."""
    try:
        with open(path) as handle:
            doc = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def staging_prefix(data_dir, purpose):
    """Name prefix of the private staging dirs beside ``data_dir`` (``.<base>.<purpose>-``)."""
    return '.%s.%s-' % (os.path.basename(data_dir.rstrip(os.sep)), purpose)


def leftovers(directory, prefix, keep=()):
    """Entries of ``directory`` whose name starts with ``prefix`` (the staging dirs of killed runs)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    keep = set(os.path.abspath(k) for k in keep if k)
    found = [os.path.join(directory, n) for n in sorted(names) if n.startswith(prefix)]
    return [f for f in found if os.path.abspath(f) not in keep]


class _Background(object):
    """``call(*args)`` in a thread of its own; result() returns its value or raises what it raised."""

    def __init__(self, call, *args):
        self._outcome = {}
        self._thread = threading.Thread(target=self._run, args=(call,) + args)
        self._thread.daemon = True
        self._thread.start()

    def _run(self, call, *args):
        try:
            self._outcome['value'] = call(*args)
        except Exception as exc:  # handed to the caller by result()
            self._outcome['error'] = exc

    def join(self):
        self._thread.join()

    def result(self):
        self.join()
        if 'error' in self._outcome:
            raise self._outcome['error']
        return self._outcome['value']


class SnapshotWorkflow(object):
    """Save, verify and restore with the tools of ``tools`` (a SnapshotTools), through ``run(argv,
    environ_update, timeout) -> (rc, out, err)``; ``log(text)`` hears each step done."""

    def __init__(self, tools, run, log=None, bin_dir=None, timeout=None):
        self.tools = tools
        self.run = run
        self.log = log or (lambda text: None)
        self.bin_dir = bin_dir
        self.timeout = timeout

    # -- reading ---------------------------------------------------------------------------------

    def status(self, path):
        rc, out, err = self.run(self.tools.status_argv(path), self.tools.offline_environ(), self.timeout)
        if rc != 0:
            raise SnapshotStepError('"snapshot status" of %s failed (rc=%d): %s' % (path, rc, (err or out).strip()),
                                    path, rc=rc, stdout=out, stderr=err)
        return parse_status(out)

    def origin(self, path, expected=None, allow_foreign=False):
        """Where the snapshot at ``path`` comes from: dict(members) read from the file and, with ``expected``
        ((name, peer URL) pairs, expected_member_pairs()), matched: the expected names among its members. None
        matching raises SnapshotForeignOriginError, unless ``allow_foreign`` (then matched is empty). Members that
        cannot be read are reported as error, and refused when they were to be checked."""
        try:
            members = read_members(path)
        except SnapshotIntegrityError as exc:
            if expected and not allow_foreign:
                raise SnapshotForeignOriginError('%s, so its origin cannot be checked' % exc, path)
            return dict(members=None, error=str(exc))
        origin = dict(members=members)
        if expected:
            try:
                origin['matched'] = check_origin(path, members, expected)
            except SnapshotForeignOriginError as exc:
                if not allow_foreign:
                    raise
                origin['matched'] = []
                self.log('%s: used all the same, as allowed' % exc)
            else:
                self.log('checked the origin of %s: its members include %s' % (path, ', '.join(origin['matched'])))
        return origin

    def verify(self, path, read_status=True, expected=None, allow_foreign=False):
        """The checks `snapshot restore` makes (integrity trailer), the origin (see origin()) and, unless
        ``read_status`` is false, one `snapshot status`. -> integrity_ok, sha256, size, origin (+ revision,
        total_keys, total_size, hash, tool). Raises the SnapshotIntegrityError subclasses of _etcd_snapshot_file,
        SnapshotForeignOriginError or SnapshotStepError."""
        # `snapshot status` (a bbolt consistency check and a walk of every key, the longest step) runs while the
        # file is hashed here: the two read the same file on two cores. Its answer counts only once the trailer
        # matched, so a broken file is still reported as such first.
        reader = _Background(self.status, path) if read_status and self.tools.offline_tool else None
        try:
            info = check_snapshot(path)
        finally:
            if reader is not None:
                reader.join()
        self.log('verified the sha256 integrity trailer of %s' % path)
        origin = self.origin(path, expected, allow_foreign)
        result = dict(integrity_ok=True, sha256=info['sha256'], size=info['size'], origin=origin)
        if read_status:
            self.tools.require_offline(self.bin_dir)
            status = reader.result()
            result.update(revision=status['revision'], total_keys=status['total_keys'],
                          total_size=status['total_size'], hash=status['hash'], tool=self.tools.offline_tool)
        return result

    # -- saving ----------------------------------------------------------------------------------

    def etcdctl_probe(self, connection, password=None):
        """A probe for save(): ``etcdctl endpoint status`` (for hosts without the JSON gateway client)."""
        timeout = connection.get('timeout') or 5
        env = self.tools.save_environ(password)

        def probe(endpoint):
            argv = self.tools.probe_argv(endpoint, **connection)
            rc, out, err = self.run(argv, env, timeout * 3)
            if rc != 0:
                raise ProbeFailed(last_line(err or out, rc), 'endpoint status failed (rc=%d)' % rc)
            return parse_endpoint_status(out)
        return probe

    def save(self, tmp, endpoints, connection, password=None, probe=None, space_check=None, timeout=None):
        """Save into ``tmp`` from the first endpoint that answers ``probe(endpoint) -> dict`` (ProbeFailed when
        not), after ``space_check(directory, probed)``. -> (endpoint, probed). The next endpoint is tried when a
        save fails; when none gives a snapshot, SnapshotStepError lists what each said (endpoint_errors)."""
        env = self.tools.save_environ(password)
        errors = []
        for endpoint in endpoints:
            probed = {}
            if probe is not None:
                try:
                    probed = probe(endpoint)
                except ProbeFailed as exc:
                    errors.append('%s: %s' % (endpoint, exc))
                    self.log('%s: %s, not used' % (endpoint, exc.note))
                    continue
            if space_check is not None:
                space_check(os.path.dirname(tmp) or '.', probed, endpoint)
            rc, out, err = self.run(self.tools.save_argv(tmp, endpoint, **connection), env, timeout)
            if rc == 0:
                return endpoint, probed
            errors.append('%s: %s' % (endpoint, last_line(err or out, rc)))
            self.log('%s did not give a snapshot (rc=%d)' % (endpoint, rc))
            if os.path.lexists(tmp + '.part'):
                os.unlink(tmp + '.part')
        raise SnapshotStepError('no endpoint gave a snapshot: %s' % '; '.join(errors), endpoint_errors=errors)

    # -- restoring -------------------------------------------------------------------------------

    def restore_beside(self, snapshot, revision, data_dir, staging_root, member, uid=-1, gid=-1):
        """`snapshot restore` into ``staging_root``/<base of data_dir> and prove the result (member/snap/db,
        a WAL, the snapshot's ``revision``); owner applied, mode 0700. ``member``: name, initial_cluster,
        initial_cluster_token, initial_advertise_peer_urls. -> the staged directory."""
        staged = os.path.join(staging_root, os.path.basename(data_dir.rstrip(os.sep)))
        argv = self.tools.restore_argv(snapshot, staged, member['name'], member['initial_cluster'],
                                       member['initial_cluster_token'], member['initial_advertise_peer_urls'])
        rc, out, err = self.run(argv, self.tools.offline_environ(), self.timeout)
        if rc != 0:
            raise SnapshotStepError('"snapshot restore" of %s failed (rc=%d): %s'
                                    % (snapshot, rc, (err or out).strip()), snapshot, rc=rc, stdout=out, stderr=err)
        problems = restored_layout_ok(staged)
        if problems:
            raise SnapshotStepError('the restore of %s left an incomplete data dir (%s)'
                                    % (snapshot, '; '.join(problems)), snapshot)
        restored = self.status(os.path.join(staged, 'member', 'snap', 'db'))
        if restored['revision'] != revision:
            raise SnapshotStepError('the restored database is at revision %d, the snapshot at %d'
                                    % (restored['revision'], revision), snapshot)
        self.log('checked the restored data (member/snap/db, WAL, revision %d)' % revision)
        if uid != -1 or gid != -1:
            os.lchown(staged, uid, gid)
            for root, dirs, files in os.walk(staged):
                for entry in dirs + files:
                    os.lchown(os.path.join(root, entry), uid, gid)
        os.chmod(staged, 0o700)
        return staged


def has_content(path):
    return os.path.isdir(path) and bool(os.listdir(path))


class DataDirSwap(object):
    """Put ``staging_root``/<base> in place of ``data_dir``; what was there is kept as ``keep_as`` (an older
    ``keep_as`` is moved into the staging root, removed by commit()). ``keep_as`` None: nothing is kept (what is
    in place holds nothing: ``replaces`` is false), and nothing beside ``data_dir`` is touched.

    forward(): 1. keep_as -> staging_root/discarded; 2. data_dir -> keep_as (when it holds anything);
    3. staging_root/<base> -> data_dir; 4. fsync the parent. Every state in between holds one whole generation
    under a known name, so rollback() can always tell from the disk what to move back: the staged dir absent
    means the new data is in place.
    """

    def __init__(self, data_dir, keep_as, staging_root, ops=None, replaces=None):
        self.data_dir = data_dir.rstrip(os.sep) or data_dir
        self.keep_as = keep_as
        self.staging_root = staging_root
        self.ops = ops or FileOps()
        self.parent = os.path.dirname(self.data_dir) or '.'
        self.staged = os.path.join(staging_root, os.path.basename(self.data_dir))
        self.discarded = os.path.join(staging_root, 'discarded')
        # Whether data_dir holds data that step 2 moves to keep_as (a later run reads it from the journal).
        self.replaces = has_content(self.data_dir) if replaces is None else replaces
        if keep_as is None and self.replaces:
            raise ValueError('%s holds data: it needs a name to be kept as' % self.data_dir)

    def new_in_place(self):
        return not os.path.lexists(self.staged) and os.path.lexists(self.data_dir)

    def forward(self):
        if self.keep_as is not None and os.path.lexists(self.keep_as):
            self.ops.rename(self.keep_as, self.discarded)
        if self.replaces:
            self.ops.rename(self.data_dir, self.keep_as)
        # rename(2) replaces an empty directory in one step.
        self.ops.rename(self.staged, self.data_dir)
        self.ops.fsync_dir(self.parent)

    def rollback(self):
        """Undo forward() from wherever it stopped (also in a later run): the replaced data back in place."""
        if self.new_in_place() and os.path.isdir(self.staging_root):
            self.ops.rename(self.data_dir, self.staged)
        if self.keep_as is None:
            self.ops.fsync_dir(self.parent)
            return
        if self.replaces and not os.path.lexists(self.data_dir) and os.path.lexists(self.keep_as):
            self.ops.rename(self.keep_as, self.data_dir)
        if os.path.lexists(self.discarded) and not os.path.lexists(self.keep_as):
            self.ops.rename(self.discarded, self.keep_as)
        self.ops.fsync_dir(self.parent)

    def commit(self):
        """The new data stays: remove the staging root (and the older generation moved into it)."""
        self.ops.rmtree(self.staging_root)
