# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contributors' map (docs/development.md, Layout) names every module, plugin and role the collection has, and
the README's list every module, role and playbook: a new one missing from them is a map that misleads."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def names(pattern, documented_by=None):
    found = set()
    for path in glob.glob(os.path.join(REPO, pattern)):
        if documented_by and documented_by not in open(path).read():
            continue
        found.add(os.path.splitext(os.path.basename(path.rstrip('/')))[0])
    return found


def section(path, title):
    with open(os.path.join(REPO, path)) as handle:
        text = handle.read()
    start = text.index(title)
    end = text.find('\n## ', start + 1)
    return text[start:end if end > 0 else len(text)]


def missing(wanted, text):
    return sorted(name for name in wanted if not re.search(r'(?<![\w.])%s(?![\w])' % re.escape(name), text))


def test_the_development_layout_names_every_module_plugin_and_role():
    layout = section('docs/development.md', '## Layout')
    wanted = (names('plugins/modules/*.py') | names('plugins/lookup/*.py') | names('plugins/action/*.py')
              | names('plugins/filter/*.yml') | names('plugins/filter/*.py', documented_by='DOCUMENTATION')
              | names('roles/*/'))
    assert 'etcd_changes_carry' in wanted and 'quorum_view' in wanted
    assert missing(wanted, layout) == []


def test_the_readme_lists_every_module_role_and_playbook():
    listed = section('README.md', '## What is in it')
    wanted = names('plugins/modules/*.py') | names('roles/*/') | set(n + '.yml' for n in names('playbooks/*.yml'))
    assert missing(wanted, listed) == []
