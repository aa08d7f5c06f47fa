# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""by_path and differs_from: the roles' find-then-write decides to write exactly when something differs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gatewayops.apisix_ha.plugins.filter.path_state import by_path, differs_from

CONF = {'path': '/etc/etcd/etcd.conf', 'content': 'ETCD_NAME="etcd01"\n', 'mode': '0640', 'owner': 'root',
        'group': 'etcd'}
DIR = {'path': '/var/lib/etcd', 'state': 'directory', 'mode': '0700', 'owner': 'etcd', 'group': 'etcd'}


def seen_file(**changes):
    entry = dict(path=CONF['path'], isdir=False, mode='0640', pw_name='root', gr_name='etcd',
                 checksum=hashlib.sha1(CONF['content'].encode()).hexdigest())
    entry.update(changes)
    return entry


def seen_dir(**changes):
    entry = dict(path=DIR['path'], isdir=True, mode='0700', pw_name='etcd', gr_name='etcd')
    entry.update(changes)
    return entry


def test_by_path_takes_a_find_result_or_its_files():
    found = {'files': [seen_file(), seen_dir()], 'matched': 2}
    assert by_path(found) == {CONF['path']: seen_file(), DIR['path']: seen_dir()}
    assert by_path(found['files']) == by_path(found)
    assert by_path({}) == {} and by_path(None) == {}


def test_nothing_to_write_when_everything_matches():
    assert differs_from(seen_file(), CONF) is False
    assert differs_from(seen_dir(), DIR) is False


@pytest.mark.parametrize('seen,want', [
    ({}, CONF), (None, DIR), ({'exists': False}, DIR),
    (seen_file(checksum='0' * 40), CONF), (seen_file(mode='0644'), CONF), (seen_file(pw_name='etcd'), CONF),
    (seen_file(gr_name='root'), CONF),
    (seen_dir(isdir=False), DIR), (seen_dir(mode='0755'), DIR), (seen_dir(gr_name='root'), DIR),
], ids=['missing file', 'missing dir', 'host_state_info: absent', 'content', 'mode', 'owner', 'group',
        'not a dir', 'dir mode', 'dir group'])
def test_a_write_when_anything_differs(seen, want):
    assert differs_from(seen, want) is True


def test_a_wanted_state_without_what_to_compare_is_an_error():
    with pytest.raises(AnsibleFilterError, match='needs mode, owner and group'):
        differs_from(seen_dir(), {'state': 'directory', 'mode': '0700'})
    with pytest.raises(AnsibleFilterError, match='needs content or state=directory'):
        differs_from(seen_file(), {'mode': '0640', 'owner': 'root', 'group': 'etcd'})
