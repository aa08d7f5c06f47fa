# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_upgrade_step: the version step upgrade_prepare allows or refuses, one test per rule of etcd's upgrade guides;
every refusal names what was refused, why (etcd's guide), what to do instead and that nothing was changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.filter.etcd_upgrade_step import (
    MIN_35_FOR_36, etcd_upgrade_step, v2_flags)

SHA = 'a' * 64
CLEAN = dict(enable_v2=False, where=[], rc=0, stdout='No custom content found in v2store', stderr='')


def cluster(*versions):
    return dict(('etcd%02d' % (i + 1), v) for i, v in enumerate(versions))


def refused(step, rule, *words):
    assert step['refused'] and step['rule'] == rule, step
    assert step['msg'].startswith('Refused, nothing was changed: ') and step['msg'].endswith('Nothing was changed.')
    for word in words:
        assert word in step['msg'], (word, step['msg'])


def test_no_version_is_a_rolling_restart():
    step = etcd_upgrade_step(cluster('3.4.23', '3.4.23', '3.4.23'))
    assert not step['refused'] and step['mode'] == 'restart' and step['target'] == '3.4.23'
    assert step['method'] == 'rolling' and step['needs'] == []


def test_the_running_version_is_a_rolling_restart_without_a_sha256():
    step = etcd_upgrade_step(cluster('3.5.16', '3.5.16', '3.5.16'), '3.5.16')
    assert not step['refused'] and step['mode'] == 'restart'


def test_a_patch_release_is_an_upgrade():
    step = etcd_upgrade_step(cluster('3.5.16', '3.5.16', '3.5.16'), '3.5.21', SHA, auth_enabled=True)
    assert not step['refused'] and step['mode'] == 'upgrade' and step['method'] == 'rolling'


def test_a_half_done_upgrade_is_finished():
    step = etcd_upgrade_step(cluster('3.5.16', '3.5.21', '3.5.16'), '3.5.21', SHA)
    assert not step['refused'] and step['mode'] == 'upgrade'


def test_34_to_35_without_auth_is_a_rolling_upgrade():
    step = etcd_upgrade_step(cluster('3.4.23', '3.4.23', '3.4.23'), '3.5.16', SHA, auth_enabled=False)
    assert not step['refused'] and step['mode'] == 'upgrade' and step['method'] == 'rolling'


@pytest.mark.parametrize('target', ['3.5', 'v3.5.16', '3.5.16-rc.1', 'latest'])
def test_a_version_that_is_not_xyz_is_refused(target):
    refused(etcd_upgrade_step(cluster('3.4.23', '3.4.23'), target, SHA), 'format', 'X.Y.Z', target)


def test_no_version_for_a_mixed_cluster_is_refused():
    refused(etcd_upgrade_step(cluster('3.4.23', '3.5.16')), 'format', 'different versions')


def test_a_member_whose_version_is_unreadable_is_refused():
    refused(etcd_upgrade_step(cluster('3.4.23', None), '3.4.23'), 'unknown_running', 'etcd02')


@pytest.mark.parametrize('target', ['3.5.0', '3.5.1', '3.5.2'])
def test_the_releases_that_can_corrupt_data_are_refused(target):
    refused(etcd_upgrade_step(cluster('3.4.23', '3.4.23'), target, SHA), 'refused_version',
            'inconsistent data', 'data_corruption', '3.5.3 or newer')


def test_a_downgrade_is_refused():
    refused(etcd_upgrade_step(cluster('3.5.16', '3.4.23'), '3.4.23', SHA), 'downgrade',
            'downgrade (3.5.16 is newer)', 'restore_cluster.yml')


def test_a_patch_downgrade_is_refused():
    refused(etcd_upgrade_step(cluster('3.5.21', '3.5.21'), '3.5.16', SHA), 'downgrade', '3.5.21 is newer')


def test_a_skipped_minor_version_is_refused():
    refused(etcd_upgrade_step(cluster('3.4.23', '3.4.23'), '3.6.0', SHA), 'skipped_minor',
            'skips a minor version', '3.4 -> 3.5 -> 3.6', 'latest 3.5.x release first', 'upgrading-etcd')


def test_a_skipped_minor_version_by_one_member_is_refused():
    refused(etcd_upgrade_step(cluster('3.5.16', '3.4.23'), '3.6.0', SHA), 'skipped_minor', '3.4 -> 3.5 -> 3.6')


@pytest.mark.parametrize('sha', ['', 'abc', 'g' * 64, None])
def test_an_upgrade_without_a_sha256_is_refused(sha):
    refused(etcd_upgrade_step(cluster('3.5.16', '3.5.16'), '3.5.21', sha, archive_url='https://mirror/x.tar.gz'),
            'sha256', 'https://mirror/x.tar.gz', 'etcd_cluster_archive_sha256')


def test_rolling_34_to_35_with_auth_is_refused_with_the_all_at_once_way():
    step = etcd_upgrade_step(cluster('3.4.23', '3.4.23', '3.4.23'), '3.5.16', SHA, auth_enabled=True)
    refused(step, 'rolling_35_with_auth', 'rolling upgrade from 3.4 to 3.5 with authentication on',
            'etcd01, etcd02, etcd03: 3.4', 'WAL entries', 'upgrade_3_5', 'upgrade_etcd_all_at_once=true',
            'restore_cluster.yml', 'cached configuration')


def test_rolling_34_to_35_with_auth_is_refused_also_half_way():
    step = etcd_upgrade_step(cluster('3.5.16', '3.4.23', '3.5.16'), '3.5.16', SHA, auth_enabled=True)
    refused(step, 'rolling_35_with_auth', 'etcd02: 3.4')


def test_all_at_once_34_to_35_with_auth_is_allowed():
    step = etcd_upgrade_step(cluster('3.4.23', '3.4.23', '3.4.23'), '3.5.16', SHA, auth_enabled=True,
                             all_at_once=True)
    assert not step['refused'] and step['mode'] == 'upgrade' and step['method'] == 'all_at_once'


def test_all_at_once_keeps_the_other_rules():
    refused(etcd_upgrade_step(cluster('3.4.23', '3.4.23'), '3.6.0', SHA, all_at_once=True), 'skipped_minor')
    refused(etcd_upgrade_step(cluster('3.4.23', '3.4.23'), '3.5.16', '', all_at_once=True), 'sha256')


def test_all_at_once_without_anything_to_upgrade_is_refused():
    refused(etcd_upgrade_step(cluster('3.5.16', '3.5.16'), '3.5.16', SHA, all_at_once=True),
            'all_at_once_without_upgrade', 'nothing to upgrade', 'rolling restart')


def test_35_patches_with_auth_are_rolling():
    step = etcd_upgrade_step(cluster('3.5.16', '3.5.16'), '3.5.26', SHA, auth_enabled=True)
    assert not step['refused'] and step['method'] == 'rolling'


def test_36_from_a_35_below_the_guides_minimum_is_refused():
    step = etcd_upgrade_step(cluster('3.5.26', '3.5.16', '3.5.25'), '3.6.4', SHA)
    refused(step, 'min_35_for_36', 'etcd02 3.5.16, etcd03 3.5.25', MIN_35_FOR_36 + ' or later', 'upgrade_3_6',
            'latest 3.5 release')


def test_36_asks_for_the_v2store_check_first():
    step = etcd_upgrade_step(cluster('3.5.26', '3.5.26', '3.5.26'), '3.6.4', SHA)
    assert not step['refused'] and step['needs'] == ['v2store']


def test_36_with_every_v2store_clean_is_a_rolling_upgrade():
    members = cluster('3.5.26', '3.5.30', '3.5.26')
    step = etcd_upgrade_step(members, '3.6.4', SHA, v2store=dict((n, CLEAN) for n in members))
    assert not step['refused'] and step['needs'] == [] and step['mode'] == 'upgrade'


def test_36_half_way_checks_only_the_35_members():
    members = cluster('3.6.4', '3.5.26', '3.6.4')
    assert etcd_upgrade_step(members, '3.6.4', SHA)['needs'] == ['v2store']
    step = etcd_upgrade_step(members, '3.6.4', SHA, v2store={'etcd02': CLEAN})
    assert not step['refused']
    assert etcd_upgrade_step(cluster('3.6.4', '3.6.2'), '3.6.4', SHA)['needs'] == []


@pytest.mark.parametrize('seen, words', [
    (dict(CLEAN, enable_v2=True, where=['ETCD_ENABLE_V2=true in etcd.conf']), ['enables the v2 store', 'ETCD_ENABLE_V2']),
    (dict(CLEAN, rc=1, stdout='', stderr='Error: detected custom content in v2store'), ['rc 1', 'custom content']),
    (dict(CLEAN, rc=1, stdout='', stderr='Error: unknown command "v2store" for "etcdutl check"'), ['unknown command']),
    (dict(CLEAN, stdout='something else'), ['did not report a clean v2 store']),
])
def test_36_with_a_v2store_in_the_way_is_refused(seen, words):
    members = cluster('3.5.26', '3.5.26', '3.5.26')
    v2store = dict((n, CLEAN) for n in members)
    v2store['etcd03'] = seen
    step = etcd_upgrade_step(members, '3.6.4', SHA, v2store=v2store)
    refused(step, 'v2store', 'etcd03', 'upgrade_3_6', 'etcdutl check v2store', '--snapshot-count=1', *words)
    assert 'etcd01' not in step['msg'].split('in the way:')[1].split('.')[0]


def test_36_with_a_member_whose_v2store_was_not_read_is_refused():
    members = cluster('3.5.26', '3.5.26')
    refused(etcd_upgrade_step(members, '3.6.4', SHA, v2store={'etcd01': CLEAN}), 'v2store', 'etcd02')


def test_v2_flags_from_the_environment_file_and_the_unit():
    assert v2_flags('ETCD_NAME="etcd01"\nETCD_ENABLE_V2="true"\n', '')['enable_v2']
    assert v2_flags('', 'ExecStart=/usr/local/bin/etcd --enable-v2\n')['where'] == ['--enable-v2 on ExecStart']
    assert v2_flags('', 'ExecStart=/usr/local/bin/etcd --enable-v2=true --name x\n')['enable_v2']
    assert not v2_flags('ETCD_ENABLE_V2="false"\n# ETCD_ENABLE_V2="true"\n',
                        'ExecStart=/usr/local/bin/etcd --enable-v2=false\n')['enable_v2']
    assert not v2_flags('ETCD_NAME="etcd01"\n', 'ExecStart=/usr/local/bin/etcd\n')['enable_v2']


def test_v2_flags_name_the_running_binary():
    assert v2_flags('', 'ExecStart=/usr/local/bin/etcd\n')['etcd'] == '/usr/local/bin/etcd'
    assert v2_flags('', 'ExecStart=\nExecStart=-/usr/bin/etcd --name x\n')['etcd'] == '/usr/bin/etcd'
    assert v2_flags('', '')['etcd'] == ''


def test_the_v2store_reads_may_come_as_a_list_of_members():
    members = cluster('3.5.26', '3.5.26')
    seen = [dict(CLEAN, name='etcd01'), dict(CLEAN, name='etcd02', rc=1, stderr='detected custom content')]
    refused(etcd_upgrade_step(members, '3.6.4', SHA, v2store=seen), 'v2store', 'etcd02')
    assert not etcd_upgrade_step(members, '3.6.4', SHA, v2store=seen[:1] + [dict(CLEAN, name='etcd02')])['refused']
