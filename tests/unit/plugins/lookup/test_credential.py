# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""credential: a secret is generated once, private from birth, and the same for every later caller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.gatewayops.apisix_ha.plugins.lookup.credential import credentials_dir, read_or_create

# The checkout as a collection (tests/unit/conftest.py links it there).
COLLECTIONS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '.build', 'collections')


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_call_writes_a_private_secret_and_later_calls_read_it(tmp_path):
    directory = str(tmp_path / 'credentials')
    first = read_or_create(directory, 'etcd-root')
    assert len(first) == 32 and first.isalnum()
    assert mode(directory) == 0o700 and mode(os.path.join(directory, 'etcd-root')) == 0o600
    assert read_or_create(directory, 'etcd-root') == first
    assert read_or_create(directory, 'etcd-apisix') != first
    assert sorted(os.listdir(directory)) == ['etcd-apisix', 'etcd-root']  # no temporary file left


def test_a_secret_put_there_by_the_operator_is_used_as_it_is(tmp_path):
    (tmp_path / 'etcd-root').write_text('from-the-vault\n')
    assert read_or_create(str(tmp_path), 'etcd-root') == 'from-the-vault'


def test_an_empty_file_is_refused_not_replaced(tmp_path):
    (tmp_path / 'etcd-root').write_text('\n')
    with pytest.raises(AnsibleLookupError, match='is empty'):
        read_or_create(str(tmp_path), 'etcd-root')
    assert (tmp_path / 'etcd-root').read_text() == '\n'


def test_names_that_leave_the_directory_are_refused(tmp_path):
    with pytest.raises(AnsibleLookupError, match='is not a file name'):
        read_or_create(str(tmp_path), '../etcd-root')


def test_callers_that_race_get_one_secret(tmp_path):
    directory = str(tmp_path / 'credentials')
    got = []
    threads = [threading.Thread(target=lambda: got.append(read_or_create(directory, 'etcd-root'))) for _caller in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 1 and len(got) == 16
    assert os.listdir(directory) == ['etcd-root']


def test_the_directory_follows_the_settings_then_the_inventory(tmp_path):
    assert credentials_dir({'inventory_dir': '/inv'}) == '/inv/.credentials'
    assert credentials_dir({'inventory_dir': '/inv', 'etcd_cluster_credentials_dir': '/keep'}) == '/keep'
    assert credentials_dir({'inventory_dir': '/inv'}, explicit='/given') == '/given'
    with pytest.raises(AnsibleLookupError, match='no inventory_dir'):
        credentials_dir({})


def test_the_lookup_gives_every_host_the_same_secret(tmp_path):
    """Through Ansible itself: two hosts of one inventory, each templating the lookup in its own fork, with the
    directory from an inventory variable that is itself a template."""
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text('all:\n  vars:\n    lab: kept\n    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
                         '    etcd_cluster_credentials_dir: "{{ inventory_dir }}/{{ lab }}"\n'
                         '  hosts:\n    one: {ansible_connection: local}\n    two: {ansible_connection: local}\n')
    # Each host writes what it templated to a file of its own: the same on every ansible-core (the json stdout
    # callback is ansible.builtin's from 2.19 only).
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    msg = ("{{ lookup('gatewayops.apisix_ha.credential', 'etcd-root', length=40) }} "
           "{{ lookup('gatewayops.apisix_ha.credential', 'etcd-pki', want='path') }}")
    out = tmp_path / 'out'
    out.mkdir()
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible'), '-i', str(inventory), 'all',
                           '-m', 'ansible.builtin.copy',
                           '-a', json.dumps({'content': msg, 'dest': '%s/{{ inventory_hostname }}' % out})],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    written = {host: (out / host).read_text() for host in ('one', 'two')}
    kept = (tmp_path / 'kept' / 'etcd-root').read_text().strip()
    assert len(kept) == 40
    assert set(written.values()) == {'%s %s' % (kept, tmp_path / 'kept' / 'etcd-pki')}
    assert os.listdir(str(tmp_path / 'kept')) == ['etcd-root']  # a path asked for is not created
