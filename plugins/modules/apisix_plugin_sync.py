#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apisix_plugin_sync
short_description: Sync APISIX custom plugins and config.yaml onto a node, with a Lua check, a backup and a restore
version_added: 0.1.0
description:
  - Copies a tree of custom plugin files (O(plugins_src), a directory on the managed node such as a git checkout,
    nested directories at any depth) onto O(plugins_dest), and optionally one configuration file (O(config_src))
    onto O(config_dest). It replaces the runbook's C(backup.sh), C(diff.sh), C(sync.sh) and C(update.sh); its
    interactive C([Y/n]) over md5 diffs becomes a run with C(--check --diff) first.
  - Files are compared by sha256 and by mode. Only files that differ are written.
  - Every C(.lua) file of O(plugins_src) (all of them, changed or not) is syntax-checked first, in check mode too
    (see O(lua_check)). A file that does not parse fails the task with its name and the parser's message, and
    nothing is changed.
  - Before anything is replaced or removed, the original files are copied into a dated backup,
    C(<backup_dir>/<YYYYmmddTHHMMSSZ>/), with a C(manifest.json) that lists every file the sync touches (its path,
    whether it existed, and for those that did their sha256, mode, owner and group). O(state=restored) uses it to
    put every file back, and to remove the files the sync added. A run that changes nothing makes no backup.
  - Each file is written to a temporary file in its destination directory and renamed into place, so APISIX
    never reads a half-written plugin or configuration. If writing fails half way, the files already replaced are
    put back from the backup before the task fails.
  - Files present in O(plugins_dest) but not in O(plugins_src) are removed only with O(delete=true).
  - Refusals change nothing and say why. Refused are a source that does not exist or has the wrong type, a Lua syntax error,
    no Lua checker, a file in one tree where the other has a directory, symbolic links to directories, overlapping
    source, destination and backup directories, a backup that does not exist, has a broken manifest or files
    whose sha256 does not match it.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
    description:
      - The Lua syntax check and the comparison run as usual; the files that would be added, updated and removed
        are returned, and RV(actions) lists what would be done. Nothing is written, no backup is made.
  diff_mode:
    support: full
    description:
      - One entry per changed file, with its content before and after (a unified diff when displayed). Binary
        files and files over 100 KiB are shown by size and sha256 only; a change of mode alone is shown as modes.
  platform:
    support: full
    platforms: posix
    description:
      - Runs on the APISIX node; the source tree must be on that node (copy it there first, for example with
        M(ansible.builtin.copy) or M(ansible.builtin.git)).
options:
  state:
    description:
      - V(synced) makes O(plugins_dest) and O(config_dest) match O(plugins_src) and O(config_src).
      - V(restored) puts back the files saved in the backup O(backup).
    type: str
    choices: [synced, restored]
    default: synced
  plugins_src:
    description:
      - Directory on the managed node holding the custom plugins, for example
        C(/opt/middleware/gateway/apisix/plugins). Nested directories are copied at any depth; empty ones are
        created too.
      - Symbolic links to files are followed (their content is copied); symbolic links to directories are
        refused.
      - With O(state=synced), at least one of O(plugins_src) and O(config_src) is required.
    type: path
  plugins_dest:
    description:
      - Directory the plugins are copied into. With C(apisix.extra_lua_path) set to
        C(/usr/local/apisix/custom/?.lua), a plugin named C(NAME) is C(<plugins_dest>/NAME.lua).
      - Created, with its missing parents (mode C(0755)), when it does not exist.
    type: path
    default: /usr/local/apisix/custom/apisix/plugins
  config_src:
    description:
      - A configuration file on the managed node copied onto O(config_dest), for example
        C(/opt/middleware/gateway/apisix/conf/config-prod.yaml).
    type: path
  config_dest:
    description:
      - The APISIX configuration file. When it is a symbolic link, the file it points to is written.
    type: path
    default: /usr/local/apisix/conf/config.yaml
  delete:
    description:
      - Remove the files of O(plugins_dest) that are not in O(plugins_src), and then the directories left empty
        that are not in O(plugins_src) either. They are backed up first.
      - When V(false), such files are left alone and not reported.
    type: bool
    default: false
  exclude:
    description:
      - Shell-style patterns (C(fnmatch)) of names to leave out, matched against each file or directory name and
        against its path relative to the tree root, for example V(.git), V(*.swp) or V(vendor/*). Excluded paths are
        neither copied nor removed nor checked.
    type: list
    elements: str
    default: []
  backup_dir:
    description:
      - Directory holding the dated backups (created with mode C(0700); each backup is a C(0700) directory, as it
        may hold the configuration's secrets). Must not be inside O(plugins_src) or O(plugins_dest).
      - Backups are never removed by this module.
    type: path
    default: /usr/local/apisix/backup
  backup:
    description:
      - For O(state=restored), the backup to restore; required then.
      - A backup directory's path, the name of a backup in O(backup_dir) (V(20260301T101500Z)), or V(latest)
        for the newest backup in O(backup_dir).
    type: str
  lua_check:
    description:
      - Check the syntax of every C(.lua) file of O(plugins_src) before anything is changed.
      - When V(true) and no checker is found, the task fails; install one (C(apt-get install luajit) or
        C(lua5.1)), point O(lua_check_command) at one, or set V(false).
    type: bool
    default: true
  lua_check_command:
    description:
      - Command that checks the syntax of one Lua file without running it, and exits non-zero with the parser's
        message when the file does not parse. It runs in O(plugins_src), and the file's path relative to it
        replaces V({file}), or is appended when V({file}) does not appear. Split like a shell command line, but run
        without a shell.
      - When not set, the first found of C(/usr/local/openresty/luajit/bin/luajit) (the LuaJIT APISIX runs on),
        then C(luajit), C(luac5.1) and C(luac) on E(PATH); LuaJIT is run as C(luajit -b {file} /dev/null)
        (compile to bytecode, thrown away) and C(luac) as C(luac -p {file}) (parse only).
      - A C(luac) of Lua 5.2 or later accepts some syntax LuaJIT refuses, and refuses LuaJIT's C(1LL) and C(1ULL)
        number literals; prefer LuaJIT.
    type: str
notes:
  - Modes. Plugin files get the permission bits of their source file (a change of mode alone is an update). The
    configuration file keeps the mode of the O(config_dest) it replaces, because a checkout cannot carry the
    restrictive mode a file holding the admin key and the etcd password needs; a new O(config_dest) gets the mode
    of O(config_src). Directories created get the mode of their source directory (C(0755) for O(plugins_dest)
    and the missing parents); the modes of existing directories are left alone.
  - Ownership. A replaced file keeps its owner and group. A new file or directory belongs to the user running the
    module, as with C(cp). Without root, replacing a file owned by someone else is refused before anything is
    changed.
  - Files of O(plugins_dest) that are symbolic links, and special files, are refused. Hidden temporary files
    C(.apisix_plugin_sync.*) in the destination directories are the module's own and ignored.
  - Reload APISIX afterwards (C(apisix reload), or the plugin reload API for plugin changes only); the module does
    not.
seealso:
  - name: APISIX custom plugins
    description: Where APISIX looks for custom plugins (C(extra_lua_path)).
    link: https://apisix.apache.org/docs/apisix/plugin-develop/
"""

EXAMPLES = r"""
- name: Show what a sync would change (the runbook's diff before its [Y/n])
  gatewayops.apisix_ha.apisix_plugin_sync:
    plugins_src: /opt/middleware/gateway/apisix/plugins
    config_src: /opt/middleware/gateway/apisix/conf/config-prod.yaml
  check_mode: true
  diff: true
  register: plan

- name: Sync the plugins and the config, removing plugins deleted upstream
  gatewayops.apisix_ha.apisix_plugin_sync:
    plugins_src: /opt/middleware/gateway/apisix/plugins
    config_src: /opt/middleware/gateway/apisix/conf/config-prod.yaml
    delete: true
    exclude:
      - .git
      - "*.swp"
  register: sync

- name: Reload APISIX when something changed
  ansible.builtin.command: apisix reload
  when: sync.changed

- name: Put back what the last sync replaced
  gatewayops.apisix_ha.apisix_plugin_sync:
    state: restored
    backup: latest

- name: Restore one given backup
  gatewayops.apisix_ha.apisix_plugin_sync:
    state: restored
    backup: "{{ sync.backup_path }}"

- name: Use the OpenResty LuaJIT of a custom install for the syntax check
  gatewayops.apisix_ha.apisix_plugin_sync:
    plugins_src: /srv/gateway/plugins
    lua_check_command: /opt/openresty/luajit/bin/luajit -b {file} /dev/null
"""

RETURN = r"""
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: "synced 4 files (1 added, 2 updated, 1 removed, 7 unchanged); backup in /usr/local/apisix/backup/20260301T101500Z"
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: str
  sample:
    - "checked the Lua syntax of 8 files with /usr/bin/luajit -b {file} /dev/null"
    - backed up 3 files into /usr/local/apisix/backup/20260301T101500Z, with a manifest of the 4 changes
    - created directory /usr/local/apisix/custom/apisix/plugins/utils
    - added utils/jwt.lua (mode 0644)
    - updated my-auth.lua
    - removed old-plugin.lua
added:
  description:
    - Files added (in check mode, that would be). Plugin files relative to O(plugins_dest), the configuration
      file as its path.
    - With O(state=restored), files the sync had replaced or removed that were missing and were put back.
  returned: always
  type: list
  elements: str
  sample: [utils/jwt.lua]
updated:
  description:
    - Files whose content or mode was (or would be) replaced. With O(state=restored), files put back as they were.
  returned: always
  type: list
  elements: str
  sample: [my-auth.lua, /usr/local/apisix/conf/config.yaml]
removed:
  description:
    - Files removed (in check mode, that would be). With O(state=restored), files the sync had added.
  returned: always
  type: list
  elements: str
  sample: [old-plugin.lua]
unchanged:
  description: Files that already matched.
  returned: always
  type: list
  elements: str
  sample: [limit-extra.lua]
backup_path:
  description:
    - With O(state=synced), the backup made by this run (none when nothing changed or in check mode).
    - With O(state=restored), the backup restored.
  returned: when a backup was made or restored
  type: str
  sample: /usr/local/apisix/backup/20260301T101500Z
lua_checker:
  description: The command used for the Lua syntax check, V({file}) standing for each file.
  returned: when O(state=synced) and Lua files were checked
  type: str
  sample: /usr/bin/luajit -b {file} /dev/null
lua_checked:
  description: How many C(.lua) files were checked.
  returned: when O(state=synced)
  type: int
  sample: 8
lua_errors:
  description: The files that do not parse (relative to O(plugins_src)) and the parser's message for each.
  returned: failure, on a Lua syntax error
  type: list
  elements: dict
  sample:
    - file: utils/broken.lua
      message: "utils/broken.lua:3: unexpected symbol near '='"
rolled_back:
  description: On a failure while writing, whether the files already changed were put back from the backup.
  returned: failure, after the backup was made
  type: bool
  sample: true
"""

import errno
import fnmatch
import hashlib
import json
import os
import re
import shlex
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

_MANIFEST = 'manifest.json'
_MANIFEST_FORMAT = 1
_BACKUP_NAME = re.compile(r'^\d{8}T\d{6}Z(-\d+)?$')
_TMP_PREFIX = '.apisix_plugin_sync.'
_DIFF_MAX_BYTES = 102400
_CHUNK = 1024 * 1024
_LUAJIT_ARGS = ['-b', '{file}', '/dev/null']
_LUAC_ARGS = ['-p', '{file}']
# (program, arguments): the first one found checks the Lua files.
_LUA_CHECKERS = [
    ('/usr/local/openresty/luajit/bin/luajit', _LUAJIT_ARGS),
    ('luajit', _LUAJIT_ARGS),
    ('luac5.1', _LUAC_ARGS),
    ('luac', _LUAC_ARGS),
]
_INSTALL_HINT = ('install one (apt-get install luajit, or lua5.1 for luac5.1), set lua_check_command, '
                 'or set lua_check: false')


class _Refused(Exception):
    """Refused before anything was changed: fail_json(msg, **extra)."""

    def __init__(self, msg, **extra):
        super(_Refused, self).__init__(msg)
        self.msg = msg
        self.extra = extra


class _LuaSyntaxError(Exception):
    """Lua files that do not parse; errors is a list of dict(file, message)."""

    def __init__(self, errors, checker):
        super(_LuaSyntaxError, self).__init__('Lua syntax error')
        self.errors = errors
        self.checker = checker


class _BackupError(Exception):
    """A backup that cannot be restored (missing, broken manifest, checksum mismatch)."""

    def __init__(self, backup, reason):
        super(_BackupError, self).__init__(reason)
        self.backup = backup
        self.reason = reason


class _ApplyError(Exception):
    """Writing failed after the backup was made."""

    def __init__(self, msg, backup_path, rolled_back, rollback_error=None):
        super(_ApplyError, self).__init__(msg)
        self.msg = msg
        self.backup_path = backup_path
        self.rolled_back = rolled_back
        self.rollback_error = rollback_error


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------

def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _files(count):
    return '%d file%s' % (count, '' if count == 1 else 's')


def _mode_text(mode):
    return '%04o' % mode


def _perm(st):
    return stat.S_IMODE(st.st_mode) & 0o7777


def _fsync_dir(path):
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


def _excluded(rel, patterns):
    name = os.path.basename(rel)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _inside(path, root):
    """True when path is root or below it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _missing_dirs(path):
    """The directories to create, top-down, for the directory ``path`` to exist."""
    missing = []
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return list(reversed(missing))


def _lstat_or_none(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _diff_text(path, size=None):
    """Contents of ``path`` for a diff, or a one-line summary for binary and large files."""
    if size is None:
        size = os.path.getsize(path)
    if size > _DIFF_MAX_BYTES:
        return '(%d bytes, sha256 %s: too large to show)\n' % (size, _sha256(path))
    with open(path, 'rb') as f:
        data = f.read()
    if b'\0' in data:
        return '(binary, %d bytes, sha256 %s)\n' % (size, hashlib.sha256(data).hexdigest())
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return '(binary, %d bytes, sha256 %s)\n' % (size, hashlib.sha256(data).hexdigest())


def _write_atomic(src, dest, mode, uid=None, gid=None, expect_sha256=None):
    """Copy ``src`` to a temporary file beside ``dest``, set mode (and owner), check its sha256, rename it over
    ``dest``. A failed copy leaves ``dest`` as it was."""
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix='.tmp', dir=directory)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as out:
            with open(src, 'rb') as inp:
                for chunk in iter(lambda: inp.read(_CHUNK), b''):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            if uid is not None and gid is not None:
                st = os.fstat(out.fileno())
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        if expect_sha256 and digest.hexdigest() != expect_sha256:
            raise OSError(errno.EIO, '%s changed while it was copied (sha256 %s, expected %s)'
                          % (src, digest.hexdigest(), expect_sha256))
        os.rename(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _new_backup_name(backup_dir):
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    name, n = stamp, 0
    while os.path.lexists(os.path.join(backup_dir, name)) or os.path.lexists(
            os.path.join(backup_dir, '.%s.partial' % name)):
        n += 1
        name = '%s-%d' % (stamp, n)
    return name


# ---------------------------------------------------------------------------------------------------
# the module
# ---------------------------------------------------------------------------------------------------

class _PluginSync(object):

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.actions = []
        self.diffs = []
        self.result = dict(changed=False, actions=self.actions, added=[], updated=[], removed=[], unchanged=[])
        self.backup_path = None

    def _did(self, text):
        self.actions.append(('would ' + text) if self.check_mode else text)

    # -- owner checks ------------------------------------------------------------------------------

    @staticmethod
    def _can_own(uid, gid):
        if os.geteuid() == 0:
            return True
        return uid == os.geteuid() and (gid == os.getegid() or gid in os.getgroups())

    # -- scanning ----------------------------------------------------------------------------------

    def _scan(self, root, is_src):
        """-> (files {rel: abs}, dirs {rel: abs}, excluded [rel]) below ``root``."""
        files, dirs, excluded = {}, {}, []
        patterns = self.params['exclude']
        what = 'plugins_src' if is_src else 'plugins_dest'
        for dirpath, dirnames, filenames in os.walk(root, onerror=self._walk_error):
            base = os.path.relpath(dirpath, root)
            base = '' if base == '.' else base
            for name in sorted(dirnames):
                rel = os.path.join(base, name)
                full = os.path.join(dirpath, name)
                if _excluded(rel, patterns):
                    excluded.append(rel)
                    dirnames.remove(name)
                elif os.path.islink(full):
                    raise _Refused('%s: %s is a symbolic link to a directory, which is not supported (exclude it or '
                                   'replace it by a directory). Nothing was changed.' % (what, full))
                else:
                    dirs[rel] = full
            for name in filenames:
                rel = os.path.join(base, name)
                full = os.path.join(dirpath, name)
                if not is_src and name.startswith(_TMP_PREFIX):
                    continue
                if _excluded(rel, patterns):
                    excluded.append(rel)
                    continue
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    if not is_src:
                        raise _Refused('plugins_dest: %s is a symbolic link, which is not supported (replace it by a '
                                       'regular file or exclude it). Nothing was changed.' % full)
                    try:
                        st = os.stat(full)
                    except OSError:
                        raise _Refused('plugins_src: %s is a broken symbolic link. Nothing was changed.' % full)
                if not stat.S_ISREG(st.st_mode):
                    raise _Refused('%s: %s is not a regular file. Nothing was changed.' % (what, full))
                files[rel] = full
        return files, dirs, excluded

    @staticmethod
    def _walk_error(exc):
        raise _Refused('cannot read %s: %s. Nothing was changed.' % (exc.filename, to_native(exc.strerror or exc)))

    # -- Lua check ---------------------------------------------------------------------------------

    def _lua_checker(self):
        """-> argv template with '{file}', or raise _Refused."""
        command = self.params['lua_check_command']
        if command:
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise _Refused('lua_check_command %r cannot be parsed: %s. Nothing was changed.'
                               % (command, to_native(exc)))
            if not argv:
                raise _Refused('lua_check_command is empty. Nothing was changed.')
            program = argv[0]
            found = program if os.sep in program else self.module.get_bin_path(program)
            if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
                raise _Refused('lua_check_command: %s was not found or is not executable; %s. Nothing was changed.'
                               % (program, _INSTALL_HINT))
            args = argv[1:]
            if not any('{file}' in a for a in args):
                args.append('{file}')
            return [found] + args
        for program, args in _LUA_CHECKERS:
            if os.path.isabs(program):
                found = program if os.access(program, os.X_OK) and not os.path.isdir(program) else None
            else:
                found = self.module.get_bin_path(program)
            if found:
                return [found] + list(args)
        raise _Refused('lua_check is true but no Lua syntax checker was found (looked for %s); %s. Nothing was '
                       'changed.' % (', '.join(p for p, _a in _LUA_CHECKERS), _INSTALL_HINT))

    def _check_lua(self, src_root, src_files):
        """Run the checker on each .lua file, from src_root with its relative path (Lua shortens long chunk
        names in its messages, so relative paths keep them readable)."""
        lua = sorted(rel for rel in src_files if rel.endswith('.lua'))
        self.result['lua_checked'] = 0
        if not self.params['lua_check']:
            if lua:
                self.actions.append('skipped the Lua syntax check of %s (lua_check: false)' % _files(len(lua)))
            return
        if not lua:
            return
        template = self._lua_checker()
        shown = ' '.join(shlex.quote(a) if a != '{file}' else a for a in template)
        self.result['lua_checker'] = shown
        errors = []
        for rel in lua:
            arg = ('.' + os.sep + rel) if rel.startswith('-') else rel
            argv = [a.replace('{file}', arg) for a in template]
            try:
                rc, out, err = self.module.run_command(argv, cwd=src_root)
            except (OSError, IOError) as exc:
                raise _Refused('the Lua checker %s could not run: %s. Nothing was changed.'
                               % (template[0], to_native(exc)))
            if rc != 0:
                lines = [line.strip() for line in (err or out or '').splitlines() if line.strip()]
                message = lines[-1] if lines else 'exit code %d' % rc
                for prog in (template[0], os.path.basename(template[0])):
                    if message.startswith(prog + ': '):
                        message = message[len(prog) + 2:]
                        break
                errors.append(dict(file=rel, message=message))
        self.result['lua_checked'] = len(lua)
        if errors:
            raise _LuaSyntaxError(errors, shown)
        self.actions.append('checked the Lua syntax of %s with %s' % (_files(len(lua)), shown))

    # -- state synced: plan ------------------------------------------------------------------------

    def _check_paths(self):
        p = self.params
        src, dest, config_src = p['plugins_src'], p['plugins_dest'], p['config_src']
        backup_dir = os.path.realpath(p['backup_dir'])
        if src is not None:
            if not os.path.exists(src):
                raise _Refused('plugins_src %s does not exist. Nothing was changed.' % src)
            if not os.path.isdir(src):
                raise _Refused('plugins_src %s is not a directory. Nothing was changed.' % src)
            real_src, real_dest = os.path.realpath(src), os.path.realpath(dest)
            if _inside(real_src, real_dest) or _inside(real_dest, real_src):
                raise _Refused('plugins_src %s and plugins_dest %s overlap (one is inside the other). Nothing was '
                               'changed.' % (src, dest))
            for name, root in (('plugins_src', real_src), ('plugins_dest', real_dest)):
                if _inside(backup_dir, root):
                    raise _Refused('backup_dir %s is inside %s %s. Nothing was changed.'
                                   % (p['backup_dir'], name, p[name]))
            if os.path.lexists(dest) and not os.path.isdir(dest):
                raise _Refused('plugins_dest %s exists and is not a directory. Nothing was changed.' % dest)
        if config_src is not None:
            if not os.path.exists(config_src):
                raise _Refused('config_src %s does not exist. Nothing was changed.' % config_src)
            if not os.path.isfile(config_src):
                raise _Refused('config_src %s is not a regular file. Nothing was changed.' % config_src)
        if os.path.lexists(p['backup_dir']) and not os.path.isdir(p['backup_dir']):
            raise _Refused('backup_dir %s exists and is not a directory. Nothing was changed.' % p['backup_dir'])

    def _plan_file(self, kind, name, src, dest, mode_from_dest=False):
        """One entry of the plan: dict(kind, name, src, dest, action, ...)."""
        src_st = os.stat(src)
        dest_st = _lstat_or_none(dest)
        entry = dict(kind=kind, name=name, src=src, dest=dest, src_sha256=_sha256(src), src_size=src_st.st_size)
        if dest_st is None:
            entry.update(action='added', mode=_perm(src_st))
            return entry
        if not stat.S_ISREG(dest_st.st_mode):
            raise _Refused('%s exists and is not a regular file; it cannot be replaced by %s. Nothing was changed.'
                           % (dest, src))
        mode = _perm(dest_st) if mode_from_dest else _perm(src_st)
        entry.update(dest_sha256=_sha256(dest), dest_mode=_perm(dest_st), dest_uid=dest_st.st_uid,
                     dest_gid=dest_st.st_gid, dest_size=dest_st.st_size, mode=mode)
        same = entry['dest_sha256'] == entry['src_sha256'] and entry['dest_mode'] == mode
        entry['action'] = 'unchanged' if same else 'updated'
        return entry

    def _plan_synced(self):
        p = self.params
        entries, dirs_create, dirs_remove = [], [], []
        src_root, dest_root = p['plugins_src'], p['plugins_dest']
        if src_root is not None:
            src_files, src_dirs, _ex = self._scan(src_root, is_src=True)
            self._check_lua(src_root, src_files)
            if os.path.isdir(dest_root):
                dest_files, dest_dirs, dest_excluded = self._scan(dest_root, is_src=False)
            else:
                dest_files, dest_dirs, dest_excluded = {}, {}, []
            for rel in sorted(src_files):
                if rel in dest_dirs:
                    raise _Refused('%s is a file in plugins_src but a directory in plugins_dest (%s). Nothing was '
                                   'changed.' % (rel, dest_dirs[rel]))
            for rel in sorted(src_dirs):
                if rel in dest_files:
                    raise _Refused('%s is a directory in plugins_src but a file in plugins_dest (%s). Nothing was '
                                   'changed.' % (rel, dest_files[rel]))
            # directories to create, top-down, with their modes
            for path in _missing_dirs(dest_root):
                dirs_create.append(dict(path=path, mode=0o755))
            for rel in sorted(src_dirs):
                if rel not in dest_dirs:
                    dirs_create.append(dict(path=os.path.join(dest_root, rel), mode=_perm(os.stat(src_dirs[rel]))))
            for rel in sorted(src_files):
                entries.append(self._plan_file('plugin', rel, src_files[rel], os.path.join(dest_root, rel)))
            if p['delete']:
                for rel in sorted(set(dest_files) - set(src_files)):
                    st = os.lstat(dest_files[rel])
                    entries.append(dict(kind='plugin', name=rel, dest=dest_files[rel], action='removed',
                                        dest_sha256=_sha256(dest_files[rel]), dest_mode=_perm(st),
                                        dest_uid=st.st_uid, dest_gid=st.st_gid, dest_size=st.st_size))
                # directories not in the source, emptied by the removals (excluded entries keep them), deepest first
                for rel in sorted(set(dest_dirs) - set(src_dirs), key=lambda r: (-r.count(os.sep), r)):
                    prefix = rel + os.sep
                    if any(x == rel or x.startswith(prefix) for x in dest_excluded):
                        continue
                    st = os.lstat(dest_dirs[rel])
                    dirs_remove.append(dict(path=dest_dirs[rel], name=rel, mode=_perm(st), uid=st.st_uid,
                                            gid=st.st_gid))
        if p['config_src'] is not None:
            config_dest = p['config_dest']
            if os.path.islink(config_dest):
                config_dest = os.path.realpath(config_dest)
            if os.path.isdir(config_dest):
                raise _Refused('config_dest %s is a directory. Nothing was changed.' % config_dest)
            for path in _missing_dirs(os.path.dirname(config_dest)):
                dirs_create.append(dict(path=path, mode=0o755))
            entries.append(self._plan_file('config', p['config_dest'], p['config_src'], config_dest,
                                           mode_from_dest=True))
        planned = set(d['path'] for d in dirs_create)
        for d in dirs_create:
            parent = os.path.dirname(d['path'])
            if parent not in planned and not os.path.isdir(parent):
                raise _Refused('%s cannot be created: %s is not a directory. Nothing was changed.' % (d['path'], parent))
        unique = []
        for d in dirs_create:
            if d['path'] not in [u['path'] for u in unique]:
                unique.append(d)
        dirs_create = unique
        for entry in entries:
            if entry['action'] == 'updated' and not self._can_own(entry['dest_uid'], entry['dest_gid']):
                raise _Refused('%s belongs to uid %d, gid %d: without root its owner cannot be kept. Run with become. '
                               'Nothing was changed.' % (entry['dest'], entry['dest_uid'], entry['dest_gid']))
        return entries, dirs_create, dirs_remove

    # -- state synced: diff ------------------------------------------------------------------------

    def _diff_entry(self, entry):
        action, dest = entry['action'], entry['dest']
        if action == 'added':
            self.diffs.append(dict(before_header='%s (absent)' % dest, before='',
                                   after_header='%s (new, mode %s)' % (dest, _mode_text(entry['mode'])),
                                   after=_diff_text(entry['src'], entry['src_size'])))
        elif action == 'removed':
            self.diffs.append(dict(before_header='%s (mode %s)' % (dest, _mode_text(entry['dest_mode'])),
                                   before=_diff_text(dest, entry['dest_size']),
                                   after_header='%s (removed)' % dest, after=''))
        elif entry['dest_sha256'] == entry['src_sha256']:
            self.diffs.append(dict(before_header='%s (mode)' % dest, before='mode %s\n' % _mode_text(entry['dest_mode']),
                                   after_header='%s (mode)' % dest, after='mode %s\n' % _mode_text(entry['mode'])))
        else:
            modes = '' if entry['dest_mode'] == entry['mode'] else ' -> %s' % _mode_text(entry['mode'])
            after_header = '%s (from %s, mode %s%s)' % (dest, entry['src'], _mode_text(entry['dest_mode']), modes)
            self.diffs.append(dict(before_header='%s (mode %s)' % (dest, _mode_text(entry['dest_mode'])),
                                   before=_diff_text(dest, entry['dest_size']),
                                   after_header=after_header,
                                   after=_diff_text(entry['src'], entry['src_size'])))

    # -- state synced: backup and apply --------------------------------------------------------------

    def _make_backup(self, entries, dirs_create, dirs_remove):
        """Copy what will be replaced or removed into a new dated backup; -> its path."""
        p = self.params
        backup_dir = p['backup_dir']
        for path in _missing_dirs(backup_dir):
            os.mkdir(path, 0o700)
        name = _new_backup_name(backup_dir)
        partial = os.path.join(backup_dir, '.%s.partial' % name)
        final = os.path.join(backup_dir, name)
        os.mkdir(partial, 0o700)
        # backup_dir may share missing parents with the destinations: those exist now, the sync does not create them
        dirs_create[:] = [d for d in dirs_create if not os.path.lexists(d['path'])]
        try:
            files = []
            for entry in entries:
                record = dict(path=entry['dest'], kind=entry['kind'], name=entry['name'], action=entry['action'],
                              existed=entry['action'] != 'added')
                if record['existed']:
                    rel = os.path.join('files', 'plugins', entry['name']) if entry['kind'] == 'plugin' else \
                        os.path.join('files', 'config', os.path.basename(entry['dest']))
                    target = os.path.join(partial, rel)
                    if not os.path.isdir(os.path.dirname(target)):
                        os.makedirs(os.path.dirname(target), 0o700)
                    _write_atomic(entry['dest'], target, 0o600, expect_sha256=entry['dest_sha256'])
                    record.update(backup_file=rel, sha256=entry['dest_sha256'], mode=_mode_text(entry['dest_mode']),
                                  uid=entry['dest_uid'], gid=entry['dest_gid'])
                if entry['action'] != 'removed':
                    record['new_sha256'] = entry['src_sha256']
                files.append(record)
            manifest = dict(
                format=_MANIFEST_FORMAT,
                module='gatewayops.apisix_ha.apisix_plugin_sync',
                created=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                plugins_src=p['plugins_src'], plugins_dest=p['plugins_dest'],
                config_src=p['config_src'], config_dest=p['config_dest'], delete=p['delete'],
                files=files,
                dirs_created=[d['path'] for d in dirs_create],
                dirs_removed=[dict(path=d['path'], mode=_mode_text(d['mode']), uid=d['uid'], gid=d['gid'])
                              for d in dirs_remove],
            )
            manifest_path = os.path.join(partial, _MANIFEST)
            with open(manifest_path, 'w') as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
                f.write('\n')
                f.flush()
                os.fsync(f.fileno())
            os.rename(partial, final)
            _fsync_dir(backup_dir)
        except BaseException:
            _remove_tree(partial)
            raise
        return final, manifest

    def _apply(self, entries, dirs_create, dirs_remove):
        for d in dirs_create:
            os.mkdir(d['path'], d['mode'])
            os.chmod(d['path'], d['mode'])
            self.actions.append('created directory %s (mode %s)' % (d['path'], _mode_text(d['mode'])))
        for entry in entries:
            action = entry['action']
            if action == 'added':
                _write_atomic(entry['src'], entry['dest'], entry['mode'], expect_sha256=entry['src_sha256'])
                self.actions.append('added %s (mode %s)' % (entry['name'], _mode_text(entry['mode'])))
            elif action == 'updated':
                _write_atomic(entry['src'], entry['dest'], entry['mode'], entry['dest_uid'], entry['dest_gid'],
                              expect_sha256=entry['src_sha256'])
                self.actions.append('updated %s%s' % (entry['name'], self._what_changed(entry)))
            elif action == 'removed':
                os.unlink(entry['dest'])
                _fsync_dir(os.path.dirname(entry['dest']))
                self.actions.append('removed %s' % entry['name'])
        for d in dirs_remove:
            os.rmdir(d['path'])
            self.actions.append('removed directory %s' % d['path'])

    @staticmethod
    def _what_changed(entry):
        if entry['dest_sha256'] == entry['src_sha256']:
            return ' (mode %s -> %s)' % (_mode_text(entry['dest_mode']), _mode_text(entry['mode']))
        if entry['dest_mode'] != entry['mode']:
            return ' (content, mode %s -> %s)' % (_mode_text(entry['dest_mode']), _mode_text(entry['mode']))
        return ''

    def state_synced(self):
        self.result['lua_checked'] = 0
        self._check_paths()
        entries, dirs_create, dirs_remove = self._plan_synced()
        changes = [e for e in entries if e['action'] != 'unchanged']
        for entry in entries:
            self.result[entry['action']].append(entry['name'])
        counts = '%d added, %d updated, %d removed, %d unchanged' % tuple(
            len(self.result[k]) for k in ('added', 'updated', 'removed', 'unchanged'))
        if not changes and not dirs_create and not dirs_remove:
            self.result['msg'] = 'already in sync (%s)' % counts
            return
        if self.module._diff:
            for d in dirs_create:
                self.diffs.append(dict(before_header='%s (absent)' % d['path'], before='', after_header=d['path'],
                                       after='directory, mode %s\n' % _mode_text(d['mode'])))
            for entry in changes:
                self._diff_entry(entry)
            for d in dirs_remove:
                self.diffs.append(dict(before_header=d['path'], before='directory, mode %s\n' % _mode_text(d['mode']),
                                       after_header='%s (removed)' % d['path'], after=''))
        self.result['changed'] = True
        replaced = [e for e in changes if e['action'] != 'added']
        if self.check_mode:
            self._did('back up %s into a new dated directory of %s, with a manifest of the %d changes'
                      % (_files(len(replaced)), self.params['backup_dir'], len(changes)))
            for d in dirs_create:
                self._did('create directory %s (mode %s)' % (d['path'], _mode_text(d['mode'])))
            for entry in changes:
                if entry['action'] == 'added':
                    self._did('add %s (mode %s)' % (entry['name'], _mode_text(entry['mode'])))
                elif entry['action'] == 'updated':
                    self._did('update %s%s' % (entry['name'], self._what_changed(entry)))
                else:
                    self._did('remove %s' % entry['name'])
            for d in dirs_remove:
                self._did('remove directory %s' % d['path'])
            self.result['msg'] = 'would sync %s (%s)' % (_files(len(changes)), counts)
            return
        backup, manifest = self._make_backup(changes, dirs_create, dirs_remove)
        self.backup_path = backup
        self.result['backup_path'] = backup
        self.actions.append('backed up %s into %s, with a manifest of the %d changes'
                            % (_files(len(replaced)), backup, len(changes)))
        try:
            self._apply(changes, dirs_create, dirs_remove)
        except (OSError, IOError) as exc:
            msg = 'writing failed: %s' % to_native(exc)
            try:
                self._restore_manifest(backup, manifest, quiet=True)
            except (OSError, IOError, _BackupError, _Refused) as rollback_exc:
                raise _ApplyError(msg, backup, False, to_native(rollback_exc))
            raise _ApplyError(msg, backup, True)
        self.result['msg'] = 'synced %s (%s); backup in %s' % (_files(len(changes)), counts, backup)

    # -- state restored ----------------------------------------------------------------------------

    def _find_backup(self):
        wanted = self.params['backup']
        backup_dir = self.params['backup_dir']
        if wanted == 'latest':
            names = []
            if os.path.isdir(backup_dir):
                names = sorted((n for n in os.listdir(backup_dir)
                                if _BACKUP_NAME.match(n) and os.path.isdir(os.path.join(backup_dir, n))),
                               key=lambda n: (n[:16], int(n[17:] or 0)))
            if not names:
                raise _BackupError(wanted, 'there is no backup in %s' % backup_dir)
            return os.path.join(backup_dir, names[-1])
        if os.sep not in wanted:
            wanted = os.path.join(backup_dir, wanted)
        if not os.path.isdir(wanted):
            raise _BackupError(wanted, 'it does not exist or is not a directory')
        return wanted

    @staticmethod
    def _load_manifest(backup):
        path = os.path.join(backup, _MANIFEST)
        try:
            with open(path) as f:
                manifest = json.load(f)
        except (IOError, OSError) as exc:
            raise _BackupError(backup, 'its manifest cannot be read: %s' % to_native(exc))
        except ValueError as exc:
            raise _BackupError(backup, 'its manifest is not valid JSON: %s' % to_native(exc))
        problems = []
        if not isinstance(manifest, dict) or manifest.get('format') != _MANIFEST_FORMAT:
            raise _BackupError(backup, 'its manifest is not a format %d manifest of apisix_plugin_sync'
                               % _MANIFEST_FORMAT)
        files = manifest.get('files')
        if not isinstance(files, list):
            raise _BackupError(backup, 'its manifest has no list of files')
        real_backup = os.path.realpath(backup)
        for i, rec in enumerate(files):
            where = 'file %d' % i
            if not isinstance(rec, dict) or not isinstance(rec.get('path'), str) or not os.path.isabs(rec['path']) \
                    or os.path.normpath(rec['path']) != rec['path'] or not isinstance(rec.get('existed'), bool):
                problems.append('%s: needs an absolute normalised path and existed' % where)
                continue
            where = rec['path']
            if rec['existed']:
                bf = rec.get('backup_file')
                if not isinstance(bf, str) or os.path.isabs(bf) or \
                        not _inside(os.path.realpath(os.path.join(backup, bf)), real_backup):
                    problems.append('%s: backup_file is missing or outside the backup' % where)
                    continue
                if not isinstance(rec.get('sha256'), str) or not re.match(r'^[0-9a-f]{64}$', rec['sha256']):
                    problems.append('%s: sha256 is missing or malformed' % where)
                if not isinstance(rec.get('mode'), str) or not re.match(r'^[0-7]{3,4}$', rec['mode']):
                    problems.append('%s: mode is missing or malformed' % where)
                if not isinstance(rec.get('uid'), int) or not isinstance(rec.get('gid'), int):
                    problems.append('%s: uid or gid is missing' % where)
        for key in ('dirs_created', 'dirs_removed'):
            value = manifest.get(key, [])
            if not isinstance(value, list):
                problems.append('%s is not a list' % key)
                continue
            for d in value:
                path = d if key == 'dirs_created' else (d.get('path') if isinstance(d, dict) else None)
                if not isinstance(path, str) or not os.path.isabs(path):
                    problems.append('%s: %r is not an absolute path' % (key, d))
                elif key == 'dirs_removed' and not (isinstance(d.get('mode'), str) and
                                                    re.match(r'^[0-7]{3,4}$', d['mode'])):
                    problems.append('%s: %s has no valid mode' % (key, path))
        if problems:
            raise _BackupError(backup, 'its manifest is broken: %s' % '; '.join(problems))
        return manifest

    @staticmethod
    def _verify_backup_files(backup, manifest):
        problems = []
        for rec in manifest['files']:
            if not rec['existed']:
                continue
            path = os.path.join(backup, rec['backup_file'])
            if not os.path.isfile(path):
                problems.append('%s is missing' % rec['backup_file'])
                continue
            actual = _sha256(path)
            if actual != rec['sha256']:
                problems.append('%s has sha256 %s, the manifest says %s' % (rec['backup_file'], actual, rec['sha256']))
        if problems:
            raise _BackupError(backup, 'checksum mismatch: %s' % '; '.join(problems))

    @staticmethod
    def _display_name(rec):
        if rec.get('kind') == 'plugin' and isinstance(rec.get('name'), str):
            return rec['name']
        return rec['path']

    def _plan_restore(self, manifest):
        plan = []
        for rec in manifest['files']:
            path = rec['path']
            st = _lstat_or_none(path)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise _Refused('%s is now %s; restoring over it is refused. Nothing was changed.'
                               % (path, 'a directory' if stat.S_ISDIR(st.st_mode) else 'not a regular file'))
            item = dict(rec=rec, name=self._display_name(rec), current=st)
            if not rec['existed']:
                item['action'] = 'removed' if st is not None else 'unchanged'
            else:
                mode = int(rec['mode'], 8)
                if st is None:
                    item['action'] = 'added'
                elif _sha256(path) == rec['sha256'] and _perm(st) == mode and \
                        (st.st_uid, st.st_gid) == (rec['uid'], rec['gid']):
                    item['action'] = 'unchanged'
                else:
                    item['action'] = 'updated'
                if item['action'] != 'unchanged' and not self._can_own(rec['uid'], rec['gid']):
                    raise _Refused('%s must be restored with uid %d, gid %d: that needs root. Run with become. '
                                   'Nothing was changed.' % (path, rec['uid'], rec['gid']))
            plan.append(item)
        dirs_recreate = [d for d in sorted(manifest.get('dirs_removed', []), key=lambda d: d['path'].count(os.sep))
                         if not os.path.isdir(d['path'])]
        dirs_drop = []
        dropped = set(item['rec']['path'] for item in plan if item['action'] == 'removed')
        for path in sorted(manifest.get('dirs_created', []), key=lambda p: -p.count(os.sep)):
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            # empty once the files the sync added (and the directories it created) are gone
            left = [os.path.join(path, n) for n in os.listdir(path)]
            if all(x in dropped for x in left):
                dirs_drop.append(path)
                dropped.add(path)
        return plan, dirs_recreate, dirs_drop

    def _restore_manifest(self, backup, manifest, quiet=False):
        """Put the files of ``manifest`` back. quiet: a rollback after a failed sync (actions say so)."""
        plan, dirs_recreate, dirs_drop = self._plan_restore(manifest)
        prefix = 'rolled back: ' if quiet else ''
        for d in dirs_recreate:
            for path in _missing_dirs(d['path']):
                os.mkdir(path, 0o755)
            os.chmod(d['path'], int(d['mode'], 8))
            if self._can_own(d.get('uid', -1), d.get('gid', -1)):
                os.chown(d['path'], d.get('uid', -1), d.get('gid', -1))
            self.actions.append('%srecreated directory %s' % (prefix, d['path']))
        for item in plan:
            rec = item['rec']
            if item['action'] == 'removed':
                os.unlink(rec['path'])
                self.actions.append('%sremoved %s (added by the sync)' % (prefix, item['name']))
            elif item['action'] in ('added', 'updated'):
                parent = os.path.dirname(rec['path'])
                for path in _missing_dirs(parent):
                    os.mkdir(path, 0o755)
                _write_atomic(os.path.join(backup, rec['backup_file']), rec['path'], int(rec['mode'], 8),
                              rec['uid'], rec['gid'], expect_sha256=rec['sha256'])
                self.actions.append('%sput back %s' % (prefix, item['name']))
        for path in dirs_drop:
            os.rmdir(path)
            self.actions.append('%sremoved directory %s (created by the sync)' % (prefix, path))
        return plan, dirs_recreate, dirs_drop

    def state_restored(self):
        backup = self._find_backup()
        manifest = self._load_manifest(backup)
        self._verify_backup_files(backup, manifest)
        self.result['backup_path'] = backup
        self.actions.append('verified the sha256 of the %s saved in %s'
                            % (_files(len([r for r in manifest['files'] if r['existed']])), backup))
        plan, dirs_recreate, dirs_drop = self._plan_restore(manifest)
        for item in plan:
            self.result[item['action']].append(item['name'])
        counts = '%d put back, %d removed, %d unchanged' % (
            len(self.result['added']) + len(self.result['updated']), len(self.result['removed']),
            len(self.result['unchanged']))
        changes = [item for item in plan if item['action'] != 'unchanged']
        if not changes and not dirs_recreate and not dirs_drop:
            self.result['msg'] = 'already as in backup %s (%s)' % (backup, counts)
            return
        self.result['changed'] = True
        if self.module._diff:
            for item in changes:
                rec, path = item['rec'], item['rec']['path']
                cur = item['current']
                before = _diff_text(path, cur.st_size) if cur is not None else ''
                before_header = '%s (mode %s)' % (path, _mode_text(_perm(cur))) if cur is not None else \
                    '%s (absent)' % path
                if item['action'] == 'removed':
                    after, after_header = '', '%s (removed: added by the sync)' % path
                else:
                    after = _diff_text(os.path.join(backup, rec['backup_file']))
                    after_header = '%s (from %s, mode %s)' % (path, backup, rec['mode'])
                if before == after:
                    before, after = 'mode %s\n' % _mode_text(_perm(cur)), 'mode %s\n' % rec['mode']
                self.diffs.append(dict(before_header=before_header, before=before, after_header=after_header,
                                       after=after))
            for d in dirs_recreate:
                self.diffs.append(dict(before_header=d['path'], before='', after_header=d['path'],
                                       after='directory, mode %s\n' % d['mode']))
            for path in dirs_drop:
                self.diffs.append(dict(before_header=path, before='directory\n', after_header='%s (removed)' % path,
                                       after=''))
        if self.check_mode:
            for d in dirs_recreate:
                self._did('recreate directory %s' % d['path'])
            for item in changes:
                if item['action'] == 'removed':
                    self._did('remove %s (added by the sync)' % item['name'])
                else:
                    self._did('put back %s' % item['name'])
            for path in dirs_drop:
                self._did('remove directory %s (created by the sync)' % path)
            self.result['msg'] = 'would restore backup %s (%s)' % (backup, counts)
            return
        self._restore_manifest(backup, manifest)
        self.result['msg'] = 'restored backup %s (%s)' % (backup, counts)

    def failure(self):
        """The result so far, for fail_json (without msg)."""
        fail = dict(self.result)
        fail.pop('msg', None)
        if self.module._diff:
            fail['diff'] = self.diffs
        return fail

    def run_state(self):
        getattr(self, 'state_%s' % self.params['state'])()
        if self.module._diff:
            self.result['diff'] = self.diffs
        return self.result


def _remove_tree(path):
    if not os.path.lexists(path):
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


def main():
    argument_spec = dict(
        state=dict(type='str', default='synced', choices=['synced', 'restored']),
        plugins_src=dict(type='path'),
        plugins_dest=dict(type='path', default='/usr/local/apisix/custom/apisix/plugins'),
        config_src=dict(type='path'),
        config_dest=dict(type='path', default='/usr/local/apisix/conf/config.yaml'),
        delete=dict(type='bool', default=False),
        exclude=dict(type='list', elements='str', default=[]),
        backup_dir=dict(type='path', default='/usr/local/apisix/backup'),
        backup=dict(type='str'),
        lua_check=dict(type='bool', default=True),
        lua_check_command=dict(type='str'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[
            ('state', 'synced', ('plugins_src', 'config_src'), True),
            ('state', 'restored', ('backup',)),
        ],
        supports_check_mode=True,
    )
    for name in ('plugins_src', 'plugins_dest', 'config_src', 'config_dest', 'backup_dir'):
        value = module.params[name]
        if value is not None:
            if not value.strip():
                module.fail_json(msg='%s is empty. Nothing was changed.' % name)
            module.params[name] = os.path.normpath(os.path.abspath(value))

    sync = _PluginSync(module)
    try:
        result = sync.run_state()
    except _Refused as exc:
        fail = sync.failure()
        fail.update(exc.extra)
        module.fail_json(msg=exc.msg, **fail)
    except _LuaSyntaxError as exc:
        fail = sync.failure()
        fail.update(lua_errors=exc.errors, lua_checker=exc.checker)
        module.fail_json(
            msg='%d Lua file%s in %s do%s not parse, nothing was changed: %s' % (
                len(exc.errors), '' if len(exc.errors) == 1 else 's', module.params['plugins_src'],
                'es' if len(exc.errors) == 1 else '', '; '.join('%s: %s' % (e['file'], e['message'])
                                                                for e in exc.errors)),
            **fail)
    except _BackupError as exc:
        module.fail_json(msg='backup %s cannot be restored: %s. Nothing was changed.' % (exc.backup, exc.reason),
                         **sync.failure())
    except _ApplyError as exc:
        fail = sync.failure()
        fail.update(changed=not exc.rolled_back, backup_path=exc.backup_path, rolled_back=exc.rolled_back)
        if exc.rolled_back:
            msg = '%s; the files already changed were put back from %s' % (exc.msg, exc.backup_path)
        else:
            msg = '%s; putting the files back failed too (%s): restore with state=restored backup=%s' % (
                exc.msg, exc.rollback_error, exc.backup_path)
        module.fail_json(msg=msg, **fail)
    except (OSError, IOError) as exc:
        fail = sync.failure()
        if module.params['state'] == 'restored' and fail['changed']:
            msg = 'restoring failed half way: %s; run it again once the cause is fixed' % to_native(exc)
        else:
            fail['changed'] = False
            msg = '%s failed before anything was written: %s' % (module.params['state'], to_native(exc))
        module.fail_json(msg=msg, **fail)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
