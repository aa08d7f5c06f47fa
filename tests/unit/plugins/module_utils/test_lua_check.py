# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_lua_check: finding a checker, and the real luajit / luac5.1 of this host on good and bad files (tests that
need one are skipped when none is installed; tests/lab/bootstrap.sh installs both)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _lua_check as lc


def which(name):
    for d in os.environ.get('PATH', '').split(os.pathsep):
        full = os.path.join(d, name)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    return None


def run(argv, cwd):
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)
    return done.returncode, done.stdout, done.stderr


REAL = [argv for argv in (
    [which('luajit')] + list(lc.LUAJIT_ARGS) if which('luajit') else None,
    [which('luac5.1')] + list(lc.LUAC_ARGS) if which('luac5.1') else None,
) if argv]


@pytest.fixture(params=REAL or [None], ids=lambda a: os.path.basename(a[0]) if a else 'none')
def checker(request):
    if request.param is None:
        pytest.skip('no luajit or luac5.1 installed (apt-get install luajit lua5.1)')
    return request.param


def write(path, data):
    if not os.path.isdir(os.path.dirname(str(path))):
        os.makedirs(os.path.dirname(str(path)))
    with open(str(path), 'w') as f:
        f.write(data)


def test_the_first_checker_found_wins(monkeypatch):
    monkeypatch.setattr(lc, 'LUA_CHECKERS', [('/nonexistent/luajit', lc.LUAJIT_ARGS), ('luajit', lc.LUAJIT_ARGS),
                                             ('luac', lc.LUAC_ARGS)])
    found = {'luac': '/usr/bin/luac'}
    assert lc.checker_argv(None, found.get) == ['/usr/bin/luac', '-p', '{file}']
    found['luajit'] = '/usr/bin/luajit'
    assert lc.checker_argv(None, found.get) == ['/usr/bin/luajit', '-b', '{file}', '/dev/null']
    assert lc.checker_argv('', found.get) == ['/usr/bin/luajit', '-b', '{file}', '/dev/null']  # empty: not set


def test_no_checker_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(lc, 'LUA_CHECKERS', [('/nonexistent/luajit', lc.LUAJIT_ARGS), ('luac', lc.LUAC_ARGS)])
    with pytest.raises(lc.LuaCheckUnavailable) as err:
        lc.checker_argv(None, lambda name: None)
    assert str(err.value) == ('lua_check is true but no Lua syntax checker was found (looked for /nonexistent/luajit, '
                              'luac); install one (apt-get install luajit, or lua5.1 for luac5.1), set '
                              'lua_check_command, or set lua_check: false. Nothing was changed.')


def test_a_command_gets_the_file_appended_when_it_does_not_name_it():
    found = {'luac5.1': '/usr/bin/luac5.1'}.get
    assert lc.checker_argv('luac5.1 -p', found) == ['/usr/bin/luac5.1', '-p', '{file}']
    assert lc.checker_argv("luac5.1 -p '{file}'", found) == ['/usr/bin/luac5.1', '-p', '{file}']
    assert lc.shown(['/opt/my lua/luajit', '-b', '{file}', '/dev/null']) == "'/opt/my lua/luajit' -b {file} /dev/null"


@pytest.mark.parametrize('command,text', [
    ('/nonexistent/luajit -b {file} /dev/null', 'lua_check_command: /nonexistent/luajit was not found'),
    ('not-on-path -p', 'lua_check_command: not-on-path was not found'),
    ("luajit 'unclosed", 'cannot be parsed'),
    ('   ', 'lua_check_command is empty'),
])
def test_a_command_that_cannot_run_is_refused(command, text):
    with pytest.raises(lc.LuaCheckUnavailable) as err:
        lc.checker_argv(command, lambda name: None)
    assert text in str(err.value) and str(err.value).endswith('Nothing was changed.')


def test_good_files_pass(tmp_path, checker):
    write(tmp_path / 'a.lua', 'local _M = {}\nreturn _M\n')
    write(tmp_path / 'deep' / 'er' / 'b.lua', 'return 1\n')
    write(tmp_path / '-dash.lua', 'return 2\n')   # not taken for an option
    lc.check_files(checker, str(tmp_path), ['-dash.lua', 'a.lua', 'deep/er/b.lua'], run)


def test_every_bad_file_is_named_with_the_parser_message(tmp_path, checker):
    write(tmp_path / 'good.lua', 'return 1\n')
    write(tmp_path / 'utils' / 'bad.lua', 'local _M = {}\nfunction _M.f()\n  local x = = 1\nend\nreturn _M\n')
    write(tmp_path / 'z.lua', 'local x = 7 // 2\nreturn x\n')   # Lua 5.3 syntax, refused by LuaJIT and luac 5.1
    with pytest.raises(lc.LuaSyntaxError) as err:
        lc.check_files(checker, str(tmp_path), ['good.lua', 'utils/bad.lua', 'z.lua'], run)
    assert [e['file'] for e in err.value.errors] == ['utils/bad.lua', 'z.lua']
    assert err.value.errors[0]['message'] == "utils/bad.lua:3: unexpected symbol near '='"
    assert not err.value.errors[0]['message'].startswith(checker[0])
    assert err.value.checker == lc.shown(checker)


def test_a_checker_that_cannot_start_is_refused(tmp_path):
    def broken(argv, cwd):
        raise OSError(8, 'Exec format error')
    with pytest.raises(lc.LuaCheckUnavailable) as err:
        lc.check_files(['/opt/luajit', '-b', '{file}', '/dev/null'], str(tmp_path), ['a.lua'], broken)
    assert str(err.value) == 'the Lua checker /opt/luajit could not run: [Errno 8] Exec format error. Nothing was changed.'
