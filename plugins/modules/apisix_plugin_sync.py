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
  - The plugins are changed in a copy of O(plugins_dest) made beside it (its files as hard links, so the copy is
    cheap and keeps their owners), which then takes the place of O(plugins_dest) in one rename (C(renameat2)
    C(RENAME_EXCHANGE); where the system lacks it, two renames). So O(plugins_dest) holds the whole old set of
    plugins or the whole new one, whenever the run stops, even killed. O(config_dest) is then written to a
    temporary file beside it and renamed into place. If writing fails half way, what was already replaced is put
    back from the backup before the task fails. An O(plugins_dest) that is a mount point is changed file by file.
  - A run killed half way is finished by the next one, which removes what the killed run left beside O(plugins_dest),
    O(config_dest) and in O(backup_dir), and, given the same arguments, goes on under the killed run's backup, so
    that the latest backup still puts back what was there before either run.
  - Files present in O(plugins_dest) but not in O(plugins_src) are removed only with O(delete=true).
  - Refusals change nothing and say why. Refused are a source that does not exist or has the wrong type, a Lua syntax error,
    no Lua checker, a file in one tree where the other has a directory, symbolic links to directories, symbolic
    links of O(plugins_src) that lead outside it, overlapping source, destination and backup directories, a backup
    that does not exist, has a broken manifest or files whose sha256 does not match it.
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
      - In the configuration file, the values of secret fields (C(key) and C(admin_key), as in
        C(deployment.admin.admin_key), C(password), as in C(deployment.etcd.password), C(secret), C(token),
        C(keyring), and names ending in C(_key), C(_password), C(_secret), C(_token)) are shown as C(<hidden>), or
        C(<hidden, changed>) on the after side when the value changes.
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
      - Symbolic links to files of the same tree are followed (their content is copied). Symbolic links to
        directories, and links that lead outside O(plugins_src) (a link to an SSH key would have it copied onto the
        node and printed by C(--diff)), are refused.
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
  description:
    - What was checked (the Lua syntax, the sha256 of a backup), then each change in the imperative, in order; in
      check mode each change starts with C(would).
  returned: always
  type: list
  elements: str
  sample:
    - "checked the Lua syntax of 8 files with /usr/bin/luajit -b {file} /dev/null"
    - back up 3 files into /usr/local/apisix/backup/20260301T101500Z, with a manifest of the 4 changes
    - create directory /usr/local/apisix/custom/apisix/plugins/utils (mode 0755)
    - add utils/jwt.lua (mode 0644)
    - update my-auth.lua
    - remove old-plugin.lua
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
    - With O(state=synced), the backup made by this run, or the one of the killed run it finished (none when
      nothing changed or in check mode).
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

import fnmatch
import hashlib
import os
import re
import stat

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule,
    ModuleFailure,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._file_tx import (
    BackupError,
    RestoreRefused,
    TreeSwap,
    can_own,
    create_backup,
    find_backup,
    fsync_dir,
    is_inside,
    load_manifest,
    lstat_or_none,
    missing_dirs,
    mode_text,
    new_backup_name,
    perm,
    plan_restore,
    restore,
    sha256_file,
    update_manifest,
    verify_backup_files,
    write_atomic,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._lua_check import (
    LuaCheckUnavailable,
    LuaSyntaxError,
    check_files,
    checker_argv,
    shown,
)

# The module's own temporary files in the destination directories: written by write_atomic, ignored by the scan.
TMP_PREFIX = '.apisix_plugin_sync.'
DIFF_MAX_BYTES = 102400
# Fields of config.yaml whose values a diff never shows: the admin keys (deployment.admin.admin_key[].key),
# the etcd password, data encryption keyrings, any *_key, *_secret, *_token, *_password.
SECRET_FIELD = re.compile(r'^(?:[\w-]*_)?(?:key|keyring|password|passwd|secret|token)$', re.IGNORECASE)
_BLOCK_LINE = re.compile(r'^(?P<lead>\s*(?:-\s+)?)(?P<name>[\w.-]+|"[^"]*"|\'[^\']*\')(?P<sep>\s*:)(?P<value>(?:\s.*)?)$')
_FLOW_FIELD = re.compile(r'(?P<lead>[{,]\s*)(?P<name>[\w.-]+)(?P<sep>\s*:\s*)(?P<value>[^,}\]\s][^,}\]]*)')
_LIST_ITEM = re.compile(r'^(?P<lead>\s*-\s+)(?P<value>[^\s#].*)$')
HIDDEN = '<hidden>'
HIDDEN_CHANGED = '<hidden, changed>'


def _files(count):
    return '%d file%s' % (count, '' if count == 1 else 's')


def _excluded(rel, patterns):
    name = os.path.basename(rel)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _diff_text(path, size=None):
    """Contents of ``path`` for a diff, or a one-line summary for binary and large files."""
    if size is None:
        size = os.path.getsize(path)
    if size > DIFF_MAX_BYTES:
        return '(%d bytes, sha256 %s: too large to show)\n' % (size, sha256_file(path))
    with open(path, 'rb') as f:
        data = f.read()
    summary = '(binary, %d bytes, sha256 %s)\n' % (size, hashlib.sha256(data).hexdigest())
    if b'\0' in data:
        return summary
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return summary


def _secret_name(name):
    return bool(SECRET_FIELD.match(name.strip('"\'')))


def _hide(text, shown_before):
    """``text`` (YAML) with every secret field's value replaced; -> (text, {(line as shown, value)}).
    A value not in ``shown_before`` (the pairs of the text it is compared with) is marked as changed."""
    pairs = set()
    out = []
    block = None  # indentation of a secret field whose value is the lines below it (list, block scalar)

    def marker(context, value):
        pairs.add((context, value))
        return HIDDEN if shown_before is None or (context, value) in shown_before else HIDDEN_CHANGED

    for line in text.splitlines(True):
        body = line.rstrip('\r\n')
        indent = len(body) - len(body.lstrip())
        field = _BLOCK_LINE.match(body)
        below = indent > block or (indent == block and body.lstrip().startswith('- ')) if block is not None else False
        if body.strip() and below:
            if field is None:  # a value of the secret field above: a list item, a line of a block scalar
                item = _LIST_ITEM.match(body)
                lead = item.group('lead') if item is not None else body[:indent]
                out.append(lead + marker(lead + HIDDEN, body[len(lead):]) + line[len(body):])
                continue
        elif body.strip() and not body.lstrip().startswith('#'):
            block = None
        if field is not None and _secret_name(field.group('name')):
            value = field.group('value').strip()
            if not value or value.startswith('#') or value[0] in '|>':
                block = indent
            if value and not value.startswith('#'):
                context = '%s%s%s %s' % (field.group('lead'), field.group('name'), field.group('sep'), HIDDEN)
                body = '%s%s%s %s' % (field.group('lead'), field.group('name'), field.group('sep'),
                                      marker(context, value))
                out.append(body + line[len(line.rstrip('\r\n')):])
                continue

        def flow(m):
            if not _secret_name(m.group('name')):
                return m.group(0)
            head = m.group('lead') + m.group('name') + m.group('sep')
            return head + marker(body[:m.start()] + head + HIDDEN, m.group('value').strip())

        out.append(_FLOW_FIELD.sub(flow, body) + line[len(body):])
    return ''.join(out), pairs


def hide_secrets(before, after):
    """The two sides of a config.yaml diff with the values of secret fields hidden (SECRET_FIELD); a secret that
    differs between them shows as HIDDEN_CHANGED on the after side, so the diff still says that it changed."""
    before_text, pairs = _hide(before, None) if before else (before, None)
    after_text = _hide(after, pairs)[0] if after else after
    return before_text, after_text


def _display_name(rec):
    """How the plan and the actions name a file of a backup's manifest: plugins by their relative path."""
    if rec.get('kind') == 'plugin' and isinstance(rec.get('name'), str):
        return rec['name']
    return rec['path']


def _make_dir(path, mode):
    os.mkdir(path, mode)
    os.chmod(path, mode)  # whatever the umask


def _unlink(path):
    os.unlink(path)
    fsync_dir(os.path.dirname(path))


class PluginSync(GatewayopsModule):
    """The module: a plan of the files to add, update and remove, a backup of what it replaces, the changes."""

    def __init__(self):
        super(PluginSync, self).__init__(
            argument_spec=dict(
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
            ),
            required_if=[
                ('state', 'synced', ('plugins_src', 'config_src'), True),
                ('state', 'restored', ('backup',)),
            ],
            supports_check_mode=True,
        )
        # What was checked (the Lua syntax, a backup's sha256): reported first in `actions`, not a change.
        self.notes = []
        self.diffs = []
        self.result = dict(added=[], updated=[], removed=[], unchanged=[])
        for name in ('plugins_src', 'plugins_dest', 'config_src', 'config_dest', 'backup_dir'):
            value = self.params[name]
            if value is not None:
                if not value.strip():
                    self.fail('%s is empty. Nothing was changed.' % name)
                self.params[name] = os.path.normpath(os.path.abspath(value))

    def fail(self, msg, **result):
        result.setdefault('actions', self.notes + self.recorder.actions)
        for key, value in self.result.items():
            result.setdefault(key, value)
        if self._diff:
            result.setdefault('diff', self.diffs)
        super(PluginSync, self).fail(msg, **result)

    def done(self, msg):
        result = dict(self.result, msg=msg, actions=self.notes + self.recorder.actions)
        if self._diff:
            result['diff'] = self.diffs
        self.finish(**result)

    def run(self):
        try:
            self.dispatch(dict(synced=self.state_synced, restored=self.state_restored))
        except LuaCheckUnavailable as exc:
            self.fail(to_native(exc))
        except LuaSyntaxError as exc:
            count = len(exc.errors)
            self.fail('%d Lua file%s in %s do%s not parse, nothing was changed: %s' % (
                count, '' if count == 1 else 's', self.params['plugins_src'], 'es' if count == 1 else '',
                '; '.join('%s: %s' % (e['file'], e['message']) for e in exc.errors)),
                lua_errors=exc.errors, lua_checker=exc.checker)
        except RestoreRefused as exc:
            self.fail(to_native(exc))
        except BackupError as exc:
            self.fail('backup %s cannot be restored: %s. Nothing was changed.' % (exc.backup, exc.reason))
        except (OSError, IOError) as exc:
            if self.recorder.changed:  # a restore; a sync puts back what it changed (_roll_back)
                self.fail('restoring failed half way: %s; run it again once the cause is fixed' % to_native(exc))
            self.fail('%s failed before anything was written: %s' % (self.params['state'], to_native(exc)),
                      changed=False)

    # -- state synced: what is there -----------------------------------------------------------------

    def _scan(self, root, is_src):
        """-> (files {rel: abs}, dirs {rel: abs}, excluded [rel]) below ``root``."""
        files, dirs, excluded = {}, {}, []
        patterns = self.params['exclude']
        what = 'plugins_src' if is_src else 'plugins_dest'
        real_root = os.path.realpath(root)
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
                    raise ModuleFailure('%s: %s is a symbolic link to a directory, which is not supported (exclude '
                                        'it or replace it by a directory). Nothing was changed.' % (what, full))
                else:
                    dirs[rel] = full
            for name in filenames:
                rel = os.path.join(base, name)
                full = os.path.join(dirpath, name)
                if not is_src and name.startswith(TMP_PREFIX):
                    continue
                if _excluded(rel, patterns):
                    excluded.append(rel)
                    continue
                files[rel] = full
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    st = self._source_link(full, real_root) if is_src else self._dest_link(full)
                if not stat.S_ISREG(st.st_mode):
                    raise ModuleFailure('%s: %s is not a regular file. Nothing was changed.' % (what, full))
        return files, dirs, excluded

    @staticmethod
    def _source_link(full, real_root):
        """A link of plugins_src is followed only to a file of the same tree: one pointing elsewhere (an SSH key,
        /etc/shadow) would be copied onto the node and printed by --diff."""
        target = os.path.realpath(full)
        if not is_inside(target, real_root):
            raise ModuleFailure('plugins_src: %s is a symbolic link to %s, outside plugins_src; a link may only point '
                                'to a file of the same tree (copy the file in, or exclude the link). Nothing was '
                                'changed.' % (full, target))
        try:
            return os.stat(full)
        except OSError:
            raise ModuleFailure('plugins_src: %s is a broken symbolic link. Nothing was changed.' % full)

    @staticmethod
    def _dest_link(full):
        raise ModuleFailure('plugins_dest: %s is a symbolic link, which is not supported (replace it by a regular '
                            'file or exclude it). Nothing was changed.' % full)

    @staticmethod
    def _walk_error(exc):
        raise ModuleFailure('cannot read %s: %s. Nothing was changed.' % (exc.filename, to_native(exc.strerror or exc)))

    def _check_lua(self, src_root, src_files):
        lua = sorted(rel for rel in src_files if rel.endswith('.lua'))
        if not self.params['lua_check']:
            if lua:
                self.notes.append('skipped the Lua syntax check of %s (lua_check: false)' % _files(len(lua)))
            return
        if not lua:
            return
        argv = checker_argv(self.params['lua_check_command'], self.get_bin_path)
        self.result['lua_checker'] = shown(argv)
        check_files(argv, src_root, lua, lambda cmd, cwd: self.run_command(cmd, cwd=cwd))
        self.result['lua_checked'] = len(lua)
        self.notes.append('checked the Lua syntax of %s with %s' % (_files(len(lua)), self.result['lua_checker']))

    def _check_paths(self):
        p = self.params
        src, dest, config_src = p['plugins_src'], p['plugins_dest'], p['config_src']
        backup_dir = os.path.realpath(p['backup_dir'])
        if src is not None:
            if not os.path.exists(src):
                raise ModuleFailure('plugins_src %s does not exist. Nothing was changed.' % src)
            if not os.path.isdir(src):
                raise ModuleFailure('plugins_src %s is not a directory. Nothing was changed.' % src)
            real_src, real_dest = os.path.realpath(src), os.path.realpath(dest)
            if is_inside(real_src, real_dest) or is_inside(real_dest, real_src):
                raise ModuleFailure('plugins_src %s and plugins_dest %s overlap (one is inside the other). Nothing '
                                    'was changed.' % (src, dest))
            for name, root in (('plugins_src', real_src), ('plugins_dest', real_dest)):
                if is_inside(backup_dir, root):
                    raise ModuleFailure('backup_dir %s is inside %s %s. Nothing was changed.'
                                        % (p['backup_dir'], name, p[name]))
            if os.path.lexists(dest) and not os.path.isdir(dest):
                raise ModuleFailure('plugins_dest %s exists and is not a directory. Nothing was changed.' % dest)
        if config_src is not None:
            if not os.path.exists(config_src):
                raise ModuleFailure('config_src %s does not exist. Nothing was changed.' % config_src)
            if not os.path.isfile(config_src):
                raise ModuleFailure('config_src %s is not a regular file. Nothing was changed.' % config_src)
        if os.path.lexists(p['backup_dir']) and not os.path.isdir(p['backup_dir']):
            raise ModuleFailure('backup_dir %s exists and is not a directory. Nothing was changed.' % p['backup_dir'])

    # -- state synced: the plan ----------------------------------------------------------------------

    @staticmethod
    def _plan_file(kind, name, src, dest, mode_from_dest=False):
        """One entry of the plan: dict(kind, name, src, dest, action, ...)."""
        src_st = os.stat(src)
        dest_st = lstat_or_none(dest)
        entry = dict(kind=kind, name=name, src=src, dest=dest, src_sha256=sha256_file(src), src_size=src_st.st_size)
        if dest_st is None:
            entry.update(action='added', mode=perm(src_st))
            return entry
        if not stat.S_ISREG(dest_st.st_mode):
            raise ModuleFailure('%s exists and is not a regular file; it cannot be replaced by %s. Nothing was '
                                'changed.' % (dest, src))
        mode = perm(dest_st) if mode_from_dest else perm(src_st)
        entry.update(dest_sha256=sha256_file(dest), dest_mode=perm(dest_st), dest_uid=dest_st.st_uid,
                     dest_gid=dest_st.st_gid, dest_size=dest_st.st_size, mode=mode)
        same = entry['dest_sha256'] == entry['src_sha256'] and entry['dest_mode'] == mode
        entry['action'] = 'unchanged' if same else 'updated'
        return entry

    def _plan_plugins(self, entries, dirs_create, dirs_remove):
        src_root, dest_root = self.params['plugins_src'], self.params['plugins_dest']
        src_files, src_dirs, _excluded_src = self._scan(src_root, is_src=True)
        self._check_lua(src_root, src_files)
        dest_files, dest_dirs, dest_excluded = {}, {}, []
        if os.path.isdir(dest_root):
            dest_files, dest_dirs, dest_excluded = self._scan(dest_root, is_src=False)
        for rel in sorted(set(src_files) & set(dest_dirs)):
            raise ModuleFailure('%s is a file in plugins_src but a directory in plugins_dest (%s). Nothing was '
                                'changed.' % (rel, dest_dirs[rel]))
        for rel in sorted(set(src_dirs) & set(dest_files)):
            raise ModuleFailure('%s is a directory in plugins_src but a file in plugins_dest (%s). Nothing was '
                                'changed.' % (rel, dest_files[rel]))
        # directories to create, top-down, with their modes
        dirs_create.extend(dict(path=path, mode=0o755) for path in missing_dirs(dest_root))
        dirs_create.extend(dict(path=os.path.join(dest_root, rel), mode=perm(os.stat(src_dirs[rel])))
                           for rel in sorted(src_dirs) if rel not in dest_dirs)
        for rel in sorted(src_files):
            entries.append(self._plan_file('plugin', rel, src_files[rel], os.path.join(dest_root, rel)))
        if not self.params['delete']:
            return
        for rel in sorted(set(dest_files) - set(src_files)):
            st = os.lstat(dest_files[rel])
            entries.append(dict(kind='plugin', name=rel, dest=dest_files[rel], action='removed',
                                dest_sha256=sha256_file(dest_files[rel]), dest_mode=perm(st),
                                dest_uid=st.st_uid, dest_gid=st.st_gid, dest_size=st.st_size))
        # directories not in the source, emptied by the removals (excluded entries keep them), deepest first
        for rel in sorted(set(dest_dirs) - set(src_dirs), key=lambda r: (-r.count(os.sep), r)):
            if any(x == rel or x.startswith(rel + os.sep) for x in dest_excluded):
                continue
            st = os.lstat(dest_dirs[rel])
            dirs_remove.append(dict(path=dest_dirs[rel], name=rel, mode=perm(st), uid=st.st_uid, gid=st.st_gid))

    def _plan_config(self, entries, dirs_create):
        config_dest = self.params['config_dest']
        if os.path.islink(config_dest):
            config_dest = os.path.realpath(config_dest)
        if os.path.isdir(config_dest):
            raise ModuleFailure('config_dest %s is a directory. Nothing was changed.' % config_dest)
        dirs_create.extend(dict(path=path, mode=0o755) for path in missing_dirs(os.path.dirname(config_dest)))
        entries.append(self._plan_file('config', self.params['config_dest'], self.params['config_src'], config_dest,
                                       mode_from_dest=True))

    def _plan_synced(self):
        entries, dirs_create, dirs_remove = [], [], []
        if self.params['plugins_src'] is not None:
            self._plan_plugins(entries, dirs_create, dirs_remove)
        if self.params['config_src'] is not None:
            self._plan_config(entries, dirs_create)
        unique = []
        for d in dirs_create:
            if d['path'] not in [u['path'] for u in unique]:
                unique.append(d)
        planned = set(d['path'] for d in unique)
        for d in unique:
            parent = os.path.dirname(d['path'])
            if parent not in planned and not os.path.isdir(parent):
                raise ModuleFailure('%s cannot be created: %s is not a directory. Nothing was changed.'
                                    % (d['path'], parent))
        for entry in entries:
            if entry['action'] == 'updated' and not can_own(entry['dest_uid'], entry['dest_gid']):
                raise ModuleFailure('%s belongs to uid %d, gid %d: without root its owner cannot be kept. Run with '
                                    'become. Nothing was changed.' % (entry['dest'], entry['dest_uid'],
                                                                      entry['dest_gid']))
        return entries, unique, dirs_remove

    # -- state synced: diff, backup, changes --------------------------------------------------------------

    def _diff_entry(self, entry):
        action, dest = entry['action'], entry['dest']
        if action == 'updated' and entry['dest_sha256'] == entry['src_sha256']:
            return dict(before_header='%s (mode)' % dest, before='mode %s\n' % mode_text(entry['dest_mode']),
                        after_header='%s (mode)' % dest, after='mode %s\n' % mode_text(entry['mode']))
        before = after = ''
        if action == 'added':
            before_header = '%s (absent)' % dest
            after_header = '%s (new, mode %s)' % (dest, mode_text(entry['mode']))
        else:
            before_header = '%s (mode %s)' % (dest, mode_text(entry['dest_mode']))
            before = _diff_text(dest, entry['dest_size'])
            after_header = '%s (removed)' % dest
        if action == 'updated':
            modes = '' if entry['dest_mode'] == entry['mode'] else ' -> %s' % mode_text(entry['mode'])
            after_header = '%s (from %s, mode %s%s)' % (dest, entry['src'], mode_text(entry['dest_mode']), modes)
        if action != 'removed':
            after = _diff_text(entry['src'], entry['src_size'])
        if entry['kind'] == 'config':
            before, after = hide_secrets(before, after)
        return dict(before_header=before_header, before=before, after_header=after_header, after=after)

    @staticmethod
    def _what_changed(entry):
        if entry['dest_sha256'] == entry['src_sha256']:
            return ' (mode %s -> %s)' % (mode_text(entry['dest_mode']), mode_text(entry['mode']))
        if entry['dest_mode'] != entry['mode']:
            return ' (content, mode %s -> %s)' % (mode_text(entry['dest_mode']), mode_text(entry['mode']))
        return ''

    def _sync_meta(self):
        p = self.params
        return dict(module='gatewayops.apisix_ha.apisix_plugin_sync', plugins_src=p['plugins_src'],
                    plugins_dest=p['plugins_dest'], config_src=p['config_src'], config_dest=p['config_dest'],
                    delete=p['delete'])

    def _resumable(self, changes, dirs_create, dirs_remove):
        """The backup of a sync with these arguments that was killed before it completed, when it records every
        change left to make as it still is and as it was to become -> (backup, manifest), else None. The sync
        goes on under it, so that this backup alone puts back what was there before either run."""
        try:
            backup = find_backup(self.params['backup_dir'], 'latest')
            manifest = load_manifest(backup, 'apisix_plugin_sync')
        except BackupError:
            return None
        if manifest.get('completed') is not False or \
                any(manifest.get(k) != v for k, v in self._sync_meta().items()):
            return None
        recs = dict((r['path'], r) for r in manifest['files'])
        for e in changes:
            rec = recs.get(e['dest'])
            if rec is None or rec.get('new_sha256') != e.get('src_sha256') or \
                    rec['existed'] != (e['action'] != 'added') or \
                    rec['existed'] and rec['sha256'] != e['dest_sha256']:
                return None
        if not set(d['path'] for d in dirs_create) <= set(manifest['dirs_created']) or \
                not set(d['path'] for d in dirs_remove) <= set(d['path'] for d in manifest['dirs_removed']):
            return None
        try:
            verify_backup_files(backup, manifest)
        except BackupError:
            return None
        self.notes.append('resumed the sync that was killed before it completed, under its backup %s' % backup)
        return backup, manifest

    def _backup(self, changes, dirs_create, dirs_remove):
        """Save what the changes replace or remove; -> (backup path, manifest), or (None, None) in check mode."""
        p = self.params
        files = []
        for entry in changes:
            rec = dict(path=entry['dest'], kind=entry['kind'], name=entry['name'], action=entry['action'],
                       existed=entry['action'] != 'added')
            if rec['existed']:
                rec.update(backup_file=os.path.join('files', 'plugins', entry['name']) if entry['kind'] == 'plugin'
                           else os.path.join('files', 'config', os.path.basename(entry['dest'])),
                           sha256=entry['dest_sha256'], mode=entry['dest_mode'], uid=entry['dest_uid'],
                           gid=entry['dest_gid'])
            if entry['action'] != 'removed':
                rec['new_sha256'] = entry['src_sha256']
            files.append(rec)
        meta = dict(self._sync_meta(), completed=False)
        name = new_backup_name(p['backup_dir'])
        replaced = len([rec for rec in files if rec['existed']])
        created = self.recorder.do(
            'back up %s into %s, with a manifest of the %d changes'
            % (_files(replaced), os.path.join(p['backup_dir'], name), len(files)),
            create_backup, p['backup_dir'], files, [d['path'] for d in dirs_create], dirs_remove, meta, name=name,
            tmp_prefix=TMP_PREFIX)
        return created or (None, None)

    def _recover(self):
        """Remove what a sync killed half-way left beside plugins_dest (its tree is whole: the old or the new one)."""
        dest = os.path.realpath(self.params['plugins_dest'])
        tree = TreeSwap(dest, 'apisix_plugin_sync', TMP_PREFIX)
        conf_dir = os.path.dirname(os.path.realpath(self.params['config_dest']))
        temp = [os.path.join(conf_dir, n) for n in (os.listdir(conf_dir) if os.path.isdir(conf_dir) else [])
                if n.startswith(TMP_PREFIX) and n.endswith('.tmp')]
        for path in tree.leftovers() + temp:
            self.notes.append('%s %s, left by a sync that was killed'
                              % ('would remove' if self.check_mode else 'removed', path))
        if not self.check_mode:
            tree.recover()
            for path in temp:
                os.unlink(path)
        return tree

    def _apply(self, entry, where):
        do = self.recorder.do
        if entry['action'] == 'added':
            do('add %s (mode %s)' % (entry['name'], mode_text(entry['mode'])), write_atomic, entry['src'],
               where(entry['dest']), entry['mode'], expect_sha256=entry['src_sha256'], tmp_prefix=TMP_PREFIX)
        elif entry['action'] == 'updated':
            do('update %s%s' % (entry['name'], self._what_changed(entry)), write_atomic, entry['src'],
               where(entry['dest']), entry['mode'], entry['dest_uid'], entry['dest_gid'],
               expect_sha256=entry['src_sha256'], tmp_prefix=TMP_PREFIX)
        else:
            do('remove %s' % entry['name'], _unlink, where(entry['dest']))

    def _change(self, changes, dirs_create, dirs_remove, tree=None):
        """With ``tree`` (a TreeSwap of plugins_dest), the plugins are changed in a staged copy of plugins_dest,
        put in place in one rename; then config_dest. Without (check mode, a mount point), file by file."""
        do = self.recorder.do
        dest = self.params['plugins_dest']
        plugins = [e for e in changes if e['kind'] == 'plugin']
        if tree is not None and not (plugins or dirs_remove or [d for d in dirs_create if is_inside(d['path'], dest)]):
            tree = None

        def where(path):
            if tree is None or not is_inside(path, dest):
                return path
            return tree.path(os.path.join(tree.dest, os.path.relpath(path, dest)))
        inner = [d for d in dirs_create if tree is not None and is_inside(d['path'], dest)]
        for d in [d for d in dirs_create if d not in inner] + [None] + inner:
            if d is None:
                if tree is not None:
                    do('copy %s beside it (files as hard links) to change the copy' % dest, tree.stage,
                       *[i['mode'] for i in inner if i['path'] == dest])
            elif tree is None or d['path'] != dest:
                do('create directory %s (mode %s)' % (d['path'], mode_text(d['mode'])), _make_dir, where(d['path']),
                   d['mode'])
        for entry in plugins:
            self._apply(entry, where)
        for d in dirs_remove:
            do('remove directory %s' % d['path'], os.rmdir, where(d['path']))
        if tree is not None:
            do('put the changed copy in place of %s in one rename' % dest, tree.commit)
        for entry in changes:
            if entry['kind'] != 'plugin':
                self._apply(entry, where)

    def _roll_back(self, backup, manifest, exc):
        """After a failed write: put back what was changed, and fail saying so."""
        msg = 'writing failed: %s' % to_native(exc)
        try:
            restore(backup, plan_restore(manifest, _display_name), do=self.recorder.do, prefix='rolled back: ',
                    tmp_prefix=TMP_PREFIX)
        except (OSError, IOError, BackupError, RestoreRefused) as rollback_exc:
            raise ModuleFailure('%s; putting the files back failed too (%s): restore with state=restored backup=%s'
                                % (msg, to_native(rollback_exc), backup), changed=True, backup_path=backup,
                                rolled_back=False)
        raise ModuleFailure('%s; the files already changed were put back from %s' % (msg, backup), changed=False,
                            backup_path=backup, rolled_back=True)

    def state_synced(self):
        self.result['lua_checked'] = 0
        self._check_paths()
        tree = self._recover()
        entries, dirs_create, dirs_remove = self._plan_synced()
        changes = [e for e in entries if e['action'] != 'unchanged']
        for entry in entries:
            self.result[entry['action']].append(entry['name'])
        counts = '%d added, %d updated, %d removed, %d unchanged' % tuple(
            len(self.result[k]) for k in ('added', 'updated', 'removed', 'unchanged'))
        if not changes and not dirs_create and not dirs_remove:
            return self.done('already in sync (%s)' % counts)
        if self._diff:
            self.diffs.extend(dict(before_header='%s (absent)' % d['path'], before='', after_header=d['path'],
                                   after='directory, mode %s\n' % mode_text(d['mode'])) for d in dirs_create)
            self.diffs.extend(self._diff_entry(entry) for entry in changes)
            self.diffs.extend(dict(before_header=d['path'], before='directory, mode %s\n' % mode_text(d['mode']),
                                   after_header='%s (removed)' % d['path'], after='') for d in dirs_remove)
        if not self.check_mode:
            # parents the backup directory shares with the destinations exist once it is made
            backup_parents = set(missing_dirs(self.params['backup_dir']))
            dirs_create = [d for d in dirs_create if d['path'] not in backup_parents]
        backup, manifest = (not self.check_mode and self._resumable(changes, dirs_create, dirs_remove)) or \
            self._backup(changes, dirs_create, dirs_remove)
        if self.check_mode:
            self._change(changes, dirs_create, dirs_remove)
            return self.done('would sync %s (%s)' % (_files(len(changes)), counts))
        self.result['backup_path'] = backup
        if os.path.ismount(tree.dest):
            tree = None
        try:
            self._change(changes, dirs_create, dirs_remove, tree)
        except (OSError, IOError) as exc:
            if tree:
                tree.abort()
            self._roll_back(backup, manifest, exc)
        self.recorder.do('mark backup %s complete' % backup, update_manifest, backup, manifest, TMP_PREFIX,
                         completed=True)
        return self.done('synced %s (%s); backup in %s' % (_files(len(changes)), counts, backup))

    # -- state restored ----------------------------------------------------------------------------

    def _restore_diffs(self, backup, plan):
        for item in plan['files']:
            if item['action'] == 'unchanged':
                continue
            rec, path, cur = item['rec'], item['rec']['path'], item['current']
            before = _diff_text(path, cur.st_size) if cur is not None else ''
            before_header = '%s (mode %s)' % (path, mode_text(perm(cur))) if cur is not None else '%s (absent)' % path
            if item['action'] == 'removed':
                after, after_header = '', '%s (removed: added by the sync)' % path
            else:
                after = _diff_text(os.path.join(backup, rec['backup_file']))
                after_header = '%s (from %s, mode %s)' % (path, backup, rec['mode'])
            if before == after:
                before, after = 'mode %s\n' % mode_text(perm(cur)), 'mode %s\n' % rec['mode']
            elif rec.get('kind') == 'config':
                before, after = hide_secrets(before, after)
            self.diffs.append(dict(before_header=before_header, before=before, after_header=after_header,
                                   after=after))
        for d in plan['dirs_recreate']:
            self.diffs.append(dict(before_header=d['path'], before='', after_header=d['path'],
                                   after='directory, mode %s\n' % d['mode']))
        for path in plan['dirs_drop']:
            self.diffs.append(dict(before_header=path, before='directory\n', after_header='%s (removed)' % path,
                                   after=''))

    def state_restored(self):
        self._recover()
        backup = find_backup(self.params['backup_dir'], self.params['backup'])
        manifest = load_manifest(backup, 'apisix_plugin_sync')
        verify_backup_files(backup, manifest)
        self.result['backup_path'] = backup
        self.notes.append('verified the sha256 of the %s saved in %s'
                          % (_files(len([r for r in manifest['files'] if r['existed']])), backup))
        plan = plan_restore(manifest, _display_name)
        for item in plan['files']:
            self.result[item['action']].append(item['name'])
        counts = '%d put back, %d removed, %d unchanged' % (
            len(self.result['added']) + len(self.result['updated']), len(self.result['removed']),
            len(self.result['unchanged']))
        if len(self.result['unchanged']) == len(plan['files']) and not plan['dirs_recreate'] and \
                not plan['dirs_drop']:
            return self.done('already as in backup %s (%s)' % (backup, counts))
        if self._diff:
            self._restore_diffs(backup, plan)
        restore(backup, plan, do=self.recorder.do, tmp_prefix=TMP_PREFIX)
        return self.done('%s backup %s (%s)' % ('would restore' if self.check_mode else 'restored', backup, counts))


def main():
    PluginSync().run()


if __name__ == '__main__':
    main()
