# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a role's files the way the role does: a play on localhost with the etcd_cluster role's defaults and vars,
run by a real ansible-playbook (the tests of tests/unit/roles)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
ROLE = os.path.join(REPO, 'roles', 'etcd_cluster')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def run_role_play(tmp_path, tasks, play_vars):
    """Run ``tasks`` on localhost with ``play_vars`` and the role's defaults and vars files (which rank above play
    vars: settings that must win go in each task's vars). Fails the test with the output when the play fails."""
    play = [dict(hosts='localhost', gather_facts=False, tasks=tasks, vars=play_vars,
                 vars_files=[os.path.join(ROLE, 'defaults', 'main.yml'), os.path.join(ROLE, 'vars', 'main.yml')])]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e',
                           'ansible_python_interpreter=%s' % sys.executable, str(playbook)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
