# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role monitoring run by a real ansible-playbook on this machine, into temporary directories: the textfile
collector directory and the rules file created (check mode first: nothing), a second run changing nothing, and a
rules file that promtool refuses never installed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import stat
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
RULES = os.path.join(REPO, 'roles', 'monitoring', 'files', 'gatewayops-etcd.rules.yml')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def apply(directory, promtool, *options):
    """Both entry points (main, rules) with their directories under ``directory``; returns (rc, output, changed)."""
    (directory / 'play.yml').write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
        'vars': {'ansible_python_interpreter': sys.executable,
                 'monitoring_textfile_dir': str(directory / 'node-exporter'),
                 'monitoring_rules_dir': str(directory / 'rules.d'), 'monitoring_promtool': promtool,
                 # No Prometheus to reload here (the lab's end-to-end test, test_metrics.py, proves the reload).
                 'monitoring_prometheus_service': ''},
        'tasks': [{'ansible.builtin.include_role': {'name': 'gatewayops.apisix_ha.monitoring'}},
                  {'ansible.builtin.include_role': {'name': 'gatewayops.apisix_ha.monitoring',
                                                    'tasks_from': 'rules'}}],
    }]))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(directory / 'tmp'), ANSIBLE_HOME=str(directory / 'home'),
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.build', 'collections'))
    done = subprocess.run([ANSIBLE_PLAYBOOK, 'play.yml'] + list(options), cwd=str(directory), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    recap = re.search(r'localhost\s+: ok=\d+\s+changed=(\d+)', out)
    return done.returncode, out, int(recap.group(1)) if recap else None


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.fixture
def playbook():
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')


def test_check_mode_then_run_then_nothing_to_do(tmp_path, playbook):
    # No promtool on this path: the rules are installed unchecked (the check itself is the next test's).
    absent = str(tmp_path / 'no-promtool')
    rc, out, changed = apply(tmp_path, absent, '--check')
    assert rc == 0, out[-3000:]
    assert changed == 3, out[-3000:]
    assert not (tmp_path / 'node-exporter').exists() and not (tmp_path / 'rules.d').exists()

    rc, out, changed = apply(tmp_path, absent)
    assert rc == 0 and changed == 3, out[-3000:]
    assert mode(tmp_path / 'node-exporter') == 0o755 and mode(tmp_path / 'rules.d') == 0o755
    installed = tmp_path / 'rules.d' / 'gatewayops-etcd.rules.yml'
    assert mode(installed) == 0o644
    with open(RULES, 'rb') as f:
        assert installed.read_bytes() == f.read()

    rc, out, changed = apply(tmp_path, absent)
    assert rc == 0 and changed == 0, out[-3000:]


def test_promtool_checks_the_rules_before_they_replace_the_installed_file(tmp_path, playbook):
    refusing = tmp_path / 'promtool'
    refusing.write_text('#!/bin/sh\necho "$@" >>"%s"\necho "FAILED: refused" >&2\nexit 1\n' % (tmp_path / 'calls'))
    refusing.chmod(0o755)
    (tmp_path / 'rules.d').mkdir()
    installed = tmp_path / 'rules.d' / 'gatewayops-etcd.rules.yml'
    installed.write_text('groups: []\n')

    rc, out, changed = apply(tmp_path, str(refusing))
    assert rc != 0 and 'failed to validate' in out, out[-3000:]
    assert installed.read_text() == 'groups: []\n', 'a file promtool refused replaced the installed one'
    assert (tmp_path / 'calls').read_text().startswith('check rules '), 'promtool was not asked'
