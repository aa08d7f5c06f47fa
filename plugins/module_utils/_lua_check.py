# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The Lua syntax check of APISIX plugins: find a checker (LuaJIT first, the compiler APISIX runs on), run it on
each file without running the file, and collect the parser's message of each file that does not parse.

Standard library only. The caller hands in how to find a program on PATH (``which``) and how to run a command
(``run(argv, cwd) -> (rc, stdout, stderr)``), an AnsibleModule's get_bin_path and run_command in a module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex

LUAJIT_ARGS = ('-b', '{file}', '/dev/null')
LUAC_ARGS = ('-p', '{file}')
# (program, arguments): the first one found checks the Lua files.
LUA_CHECKERS = [
    ('/usr/local/openresty/luajit/bin/luajit', LUAJIT_ARGS),
    ('luajit', LUAJIT_ARGS),
    ('luac5.1', LUAC_ARGS),
    ('luac', LUAC_ARGS),
]
INSTALL_HINT = ('install one (apt-get install luajit, or lua5.1 for luac5.1), set lua_check_command, '
                'or set lua_check: false')


class LuaCheckUnavailable(Exception):
    """No checker can run (none found, a command that does not parse or cannot run); nothing was checked."""


class LuaSyntaxError(Exception):
    """Lua files that do not parse; ``errors`` is a list of dict(file, message), ``checker`` the command shown."""

    def __init__(self, errors, checker):
        super(LuaSyntaxError, self).__init__('%d Lua file(s) do not parse' % len(errors))
        self.errors = errors
        self.checker = checker


def _executable(path):
    return os.access(path, os.X_OK) and not os.path.isdir(path)


def checker_argv(command, which):
    """The checker's argv, with ``{file}`` standing for the file: from ``command`` (a lua_check_command, shell-like
    words; ``{file}`` appended when it does not appear) or, when not set, the first of LUA_CHECKERS found."""
    if command:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise LuaCheckUnavailable('lua_check_command %r cannot be parsed: %s. Nothing was changed.'
                                      % (command, exc))
        if not argv:
            raise LuaCheckUnavailable('lua_check_command is empty. Nothing was changed.')
        program = argv[0]
        found = program if os.sep in program else which(program)
        if not found or not _executable(found):
            raise LuaCheckUnavailable('lua_check_command: %s was not found or is not executable; %s. Nothing was '
                                      'changed.' % (program, INSTALL_HINT))
        args = argv[1:]
        if not any('{file}' in a for a in args):
            args.append('{file}')
        return [found] + args
    for program, args in LUA_CHECKERS:
        if os.path.isabs(program):
            found = program if _executable(program) else None
        else:
            found = which(program)
        if found:
            return [found] + list(args)
    raise LuaCheckUnavailable('lua_check is true but no Lua syntax checker was found (looked for %s); %s. Nothing '
                              'was changed.' % (', '.join(p for p, _a in LUA_CHECKERS), INSTALL_HINT))


def shown(argv):
    """A checker's argv as one command line, ``{file}`` left as is."""
    return ' '.join(shlex.quote(a) if a != '{file}' else a for a in argv)


def _message(rc, out, err, program):
    """The parser's message: the last line it printed, without the program's name in front."""
    lines = [line.strip() for line in (err or out or '').splitlines() if line.strip()]
    message = lines[-1] if lines else 'exit code %d' % rc
    for prog in (program, os.path.basename(program)):
        if message.startswith(prog + ': '):
            return message[len(prog) + 2:]
    return message


def check_files(argv, root, files, run):
    """Check each of ``files`` (paths relative to ``root``) with the checker ``argv``, run from ``root``: Lua
    shortens long chunk names in its messages, so relative paths keep them readable. Raises LuaSyntaxError naming
    every file that does not parse, LuaCheckUnavailable when the checker cannot run."""
    errors = []
    for rel in files:
        arg = ('.' + os.sep + rel) if rel.startswith('-') else rel
        try:
            rc, out, err = run([a.replace('{file}', arg) for a in argv], root)
        except (OSError, IOError) as exc:
            raise LuaCheckUnavailable('the Lua checker %s could not run: %s. Nothing was changed.' % (argv[0], exc))
        if rc != 0:
            errors.append(dict(file=rel, message=_message(rc, out, err, argv[0])))
    if errors:
        raise LuaSyntaxError(errors, shown(argv))
