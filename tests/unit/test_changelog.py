# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The changelog the next release renders (`antsibull-changelog release` on a copy of the checkout) is written for
users: a release summary, every role under New Roles and every module under New Modules (from their
version_added), and none of the checkout's lab or tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('antsibull_changelog')

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def test_the_release_changelog_speaks_to_users(tmp_path):
    copy = tmp_path / 'ansible_collections' / 'gatewayops' / 'apisix_ha'
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                            stdout=subprocess.PIPE, check=True).stdout.decode().split('\0')
    for path in filter(None, listed):
        if os.path.isfile(os.path.join(REPO, path)):
            os.makedirs(str(copy / os.path.dirname(path)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, path), str(copy / path))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'antsibull-changelog'), 'release',
                           '--date', '2026-01-01'], cwd=str(copy), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    assert done.returncode == 0, done.stdout
    text = (copy / 'CHANGELOG.rst').read_text()
    sections = text.split('\nNew Roles\n---------\n')
    assert 'Release Summary' in text and len(sections) == 2
    roles = sorted(os.path.basename(r.rstrip('/')) for r in glob.glob(os.path.join(REPO, 'roles', '*/')))
    for role in roles:
        assert '- gatewayops.apisix_ha.%s - ' % role in sections[1], role
    modules = sorted(os.path.basename(m)[:-3] for m in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py')))
    new_modules = text.split('\nNew Modules\n-----------\n')[1]
    for module in modules:
        assert '- gatewayops.apisix_ha.%s - ' % module in new_modules, module
    for internal in ('tests/', 'molecule', 'lab ', 'stand-in', 'module_utils', 'Tests -'):
        assert internal not in text, internal
