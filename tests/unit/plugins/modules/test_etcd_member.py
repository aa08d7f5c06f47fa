# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_member against replayed real etcd 3.4.23 / 3.5.16 gateway answers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import urllib.error

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_member
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import check_url

M1, M2, M3 = 'http://127.0.0.1:22379', 'http://127.0.0.1:22479', 'http://127.0.0.1:22579'
EP = [M1, M2]
WRITES = ('/v3/cluster/member/add', '/v3/cluster/member/remove', '/v3/cluster/member/update',
          '/v3/cluster/member/promote')


def writes(gateway):
    return [c for c in gateway.calls if c['path'] in WRITES]


def healthy(gateway, *endpoints):
    for ep in endpoints:
        gateway.route(ep, '/health', 'health_m1')
    # no alarm raised (a removal reads them, to disarm those of the member removed)
    gateway.route('*', '/v3/maintenance/alarm', 'alarm_list_empty')


def args(**kw):
    kw.setdefault('endpoints', EP)
    kw.setdefault('timeout', 2)
    return kw


# -- quorum ---------------------------------------------------------------------------------------

def test_remove_healthy_member_refused_when_one_of_three_down(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2)
    gateway.refuse(M3)
    result, failed = run_module(etcd_member, args(name='m1', state='absent'))
    assert failed
    assert 'Refusing to remove member m1' in result['msg']
    assert '2 voting members would remain, 1 of them healthy; quorum needs 2' in result['msg']
    assert result['msg'].endswith('Nothing was changed.') and result['changed'] is False and result['actions'] == []
    assert 'm3 (1818b2c362ae21da): %s: connection refused' % M3 in result['msg']
    assert writes(gateway) == []


def test_remove_unhealthy_member_allowed_when_one_of_three_down(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list', 'member_list_after_remove'])
    healthy(gateway, M1, M2)
    gateway.refuse(M3)
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove')
    result, failed = run_module(etcd_member, args(name='m3', state='absent'))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'] == ['remove member m3 (1818b2c362ae21da)']
    assert [c['body'] for c in writes(gateway)] == [{'ID': '1736334208595272154'}]
    assert result['member']['name'] == 'm3'
    assert sorted(m['name'] for m in result['members']) == ['m1', 'm2']
    assert result['cluster_id'] == '4c4194fa8542ad1f'


def test_voting_add_refused_when_two_of_three_down(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1)
    gateway.refuse(M2)
    gateway.refuse(M3)
    result, failed = run_module(etcd_member, args(name='m4', peer_urls=['http://127.0.0.1:22680']))
    assert failed
    assert 'Refusing to add member m4 as voting member' in result['msg']
    assert 'quorum needs 3 healthy, 1 are healthy now' in result['msg']
    assert writes(gateway) == []


def test_learner_add_refused_without_quorum(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1)
    gateway.refuse(M2)
    gateway.refuse(M3)
    result, failed = run_module(etcd_member, args(name='m4', peer_urls=['http://127.0.0.1:22680'], learner=True))
    assert failed
    assert 'Refusing to add member m4 as learner' in result['msg']
    assert '1 of 3 voting members are healthy; quorum needs 2' in result['msg']
    assert writes(gateway) == []


def test_learner_add_allowed_with_one_of_three_down(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list', 'member_list_unstarted_learner'])
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_learner')
    healthy(gateway, M1, M2)
    gateway.refuse(M3)
    result, failed = run_module(etcd_member, args(name='m4', peer_urls=['http://127.0.0.1:22680'], learner=True))
    assert not failed, result
    assert result['changed']
    assert writes(gateway)[0]['body'] == {'peerURLs': ['http://127.0.0.1:22680'], 'isLearner': True}


def test_unhealthy_answer_counts_as_down(gateway, run_module):
    # /health answering false (no leader) must count like an unreachable member
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1)
    gateway.route(M2, '/health', 'health_no_leader')
    gateway.route(M3, '/health', 'health_no_leader')
    result, failed = run_module(etcd_member, args(name='m2', state='absent'))
    assert failed and 'Refusing' in result['msg']
    assert writes(gateway) == []


# -- refusals -------------------------------------------------------------------------------------

def test_promote_unknown_name(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    result, failed = run_module(etcd_member, args(name='nope', state='promoted'))
    assert failed
    assert 'Cannot promote nope: no member of that name' in result['msg']
    assert writes(gateway) == []


def test_duplicate_peer_url(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m4', peer_urls=['http://127.0.0.1:22480']))
    assert failed
    assert 'm2 (7c0dd305c89cdc81) already uses http://127.0.0.1:22480' in result['msg']
    assert writes(gateway) == []


def test_update_to_url_of_other_member(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', peer_urls=['http://127.0.0.1:22380']))
    assert failed
    assert 'm1 (425eef114c1f8661) already uses' in result['msg']
    assert writes(gateway) == []


@pytest.mark.parametrize('url', ['ftp://10.0.0.1:2380', 'http://10.0.0.1', 'http://:2380', 'http://10.0.0.1:2380/x',
                                 '10.0.0.1:2380', 'http://10.0.0.1:99999'])
def test_malformed_peer_url(gateway, run_module, url):
    result, failed = run_module(etcd_member, args(name='m4', peer_urls=[url]))
    assert failed
    assert result['msg'].startswith('Malformed peer URL')
    assert gateway.calls == []


def test_check_url_accepts_good_ones():
    assert check_url('https://10.0.0.1:2380') is None
    assert check_url('http://[fd00::1]:2380/') is None
    assert check_url('http://etcd01.example:2380') is None


# -- changes, check mode, idempotence -------------------------------------------------------------

def test_check_mode_add_makes_no_write(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_after_remove')
    healthy(gateway, M1, M2)
    result, failed = run_module(etcd_member, args(name='m3', peer_urls=['http://127.0.0.1:22580'], learner=True,
                                                  _ansible_check_mode=True, _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'] == ['would add member m3 as learner with peer URLs http://127.0.0.1:22580']
    assert writes(gateway) == []
    assert all(c['path'] in ('/v3/cluster/member/list', '/health') for c in gateway.calls)
    assert len(result['diff']['after']['members']) == len(result['diff']['before']['members']) + 1
    assert result['member']['is_learner'] is True and result['member_id'] is None


def test_check_mode_remove_makes_no_write(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='absent', _ansible_check_mode=True))
    assert not failed and result['changed']
    assert result['actions'] == ['would remove member m3 (1818b2c362ae21da)']
    assert writes(gateway) == []
    assert 'm3' not in [m['name'] for m in result['members']]


def test_add_learner_then_idempotent(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list_after_remove', 'member_list_unstarted_learner'])
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_learner')
    healthy(gateway, M1, M2)
    a = args(name='m3', peer_urls=['http://127.0.0.1:22580'], learner=True, _ansible_diff=True)
    first, failed = run_module(etcd_member, a)
    assert not failed, first
    assert first['changed'] is True
    assert [c['body'] for c in writes(gateway)] == [{'peerURLs': ['http://127.0.0.1:22580'], 'isLearner': True}]
    assert first['member']['is_learner'] is True and first['member']['started'] is False
    assert first['member_id'] == first['member']['id'] and len(first['member_id']) == 16
    assert 'diff' in first
    # second run: the member has not started, so it has no name: found by its peer URL
    gateway.calls[:] = []
    second, failed = run_module(etcd_member, a)
    assert not failed, second
    assert second['changed'] is False and second['actions'] == []
    assert writes(gateway) == []
    assert second['member_id'] == first['member_id']


def test_present_twice_existing_voting_unchanged(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    for attempt in range(2):
        result, failed = run_module(etcd_member, args(name='m2', peer_urls=['http://127.0.0.1:22480']))
        assert not failed and result['changed'] is False
    assert writes(gateway) == []
    assert not gateway.paths('/health')


def test_update_peer_urls(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list', 'member_list_after_update'])
    gateway.route(M1, '/v3/cluster/member/update', 'member_update_localhost')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', peer_urls=['http://localhost:22580']))
    assert not failed, result
    assert result['changed']
    assert result['actions'] == ['update peer URLs of member m3 (1818b2c362ae21da) from http://127.0.0.1:22580 '
                                 'to http://localhost:22580']
    assert writes(gateway)[0]['body'] == {'ID': '1736334208595272154', 'peerURLs': ['http://localhost:22580']}
    assert result['member']['peer_urls'] == ['http://localhost:22580']


def test_promote_started_learner_then_idempotent(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list_started_learner', 'member_list_after_promote'])
    gateway.route(M1, '/v3/cluster/member/promote', 'member_promote')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted'))
    assert not failed, result
    assert result['changed'] and result['actions'][0].startswith('promote learner m3')
    assert result['member']['is_learner'] is False
    assert len(writes(gateway)) == 1
    gateway.calls[:] = []
    result, failed = run_module(etcd_member, args(name='m3', state='promoted'))
    assert not failed and result['changed'] is False
    assert writes(gateway) == []


def test_absent_unknown_name_unchanged(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    result, failed = run_module(etcd_member, args(name='m9', state='absent'))
    assert not failed and result['changed'] is False and result['member'] == {}
    assert writes(gateway) == []


def test_etcd_refusal_message_names_endpoint(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_unstarted_learner')
    gateway.route(M1, '/v3/cluster/member/promote', 'member_promote_unstarted')
    healthy(gateway, M1, M2)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', peer_urls=['http://127.0.0.1:22580'],
                                                  promote_timeout=0))
    assert failed
    assert result['msg'].startswith('etcd refused the request: POST /v3/cluster/member/promote failed: %s' % M1)
    assert 'in sync with leader' in result['msg']
    assert result['grpc_code'] == 9


def test_unreachable_cluster_message(gateway, run_module):
    gateway.refuse(M1)
    gateway.refuse(M2)
    result, failed = run_module(etcd_member, args(name='m1', state='absent'))
    assert failed
    assert result['msg'] == ('Could not reach any etcd endpoint: POST /v3/cluster/member/list failed: '
                             '%s: connection refused; %s: connection refused' % (M1, M2))


# -- promotion with retries ------------------------------------------------------------------------

@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(etcd_member.time, 'sleep', lambda seconds: None)


def test_promote_retries_until_the_learner_is_in_sync(gateway, run_module, no_sleep):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list_started_learner', 'member_list_after_promote'])
    gateway.route(M1, '/v3/cluster/member/promote',
                  ['member_promote_unstarted', 'member_promote_unstarted', 'member_promote'])
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', promote_timeout=30))
    assert not failed, result
    assert result['changed'] is True
    assert result['promote_attempts'] == 3
    assert len(writes(gateway)) == 3
    assert result['member']['is_learner'] is False


def test_a_promotion_answered_too_late_is_found_applied(gateway, run_module, no_sleep):
    # The first promotion times out on every endpoint; the member list then shows the member voting.
    listings = ['member_list_started_learner', 'member_list_started_learner', 'member_list_after_promote']
    gateway.route(M1, '/v3/cluster/member/list', listings)
    gateway.route('*', '/v3/cluster/member/promote', urllib.error.URLError(socket.timeout('timed out')))
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', promote_timeout=30))
    assert not failed, result
    assert result['changed'] is True and result['promote_attempts'] == 2
    assert result['member']['is_learner'] is False


def test_a_promotion_that_never_answers_fails_after_promote_timeout(gateway, run_module, no_sleep):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_started_learner')
    gateway.route('*', '/v3/cluster/member/promote', urllib.error.URLError(socket.timeout('timed out')))
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', promote_timeout=0.05))
    assert failed
    assert result['msg'].startswith('Could not reach any etcd endpoint') and 'timed out' in result['msg']


def test_promote_gives_up_after_promote_timeout(gateway, run_module, no_sleep):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_started_learner')
    gateway.route(M1, '/v3/cluster/member/promote', 'member_promote_unstarted')
    gateway.route(M1, '/v3/maintenance/status', 'status_m1')
    gateway.route(M2, '/v3/maintenance/status', 'status_m2')
    gateway.route(M3, '/v3/maintenance/status', 'status_learner')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', promote_timeout=0.05))
    assert failed
    assert 'was not promoted within promote_timeout' in result['msg']
    assert 'in sync with leader' in result['msg']
    assert result['promote_attempts'] >= 1
    assert 'Learner raft index' in result['msg']


def test_promote_other_refusal_fails_at_once(gateway, run_module, no_sleep):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_started_learner')
    gateway.route(M1, '/v3/cluster/member/promote', (400, '{"code":9,"message":"etcdserver: some other refusal"}'))
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='promoted', promote_timeout=30))
    assert failed
    assert result['msg'].startswith('etcd refused the request')
    assert len(writes(gateway)) == 1


# -- moving the leadership away --------------------------------------------------------------------

TRANSFER = '/v3/maintenance/transfer-leadership'
URLS = {'m1': M1, 'm2': M2, 'm3': M3}


def status_answer(gateway, name, leader_id):
    """The captured status of member ``name`` with its leader field set to ``leader_id``."""
    import json
    body = gateway.answer('status_%s' % name)
    body['leader'] = str(leader_id)
    return (200, json.dumps(body))


def ids(gateway):
    return dict((m['name'], int(m['ID'])) for m in gateway.answer('member_list')['members'])


def test_not_leader_moves_leadership_to_the_most_advanced_healthy_member(gateway, run_module):
    member_ids = ids(gateway)
    raft = dict((n, int(gateway.answer('status_%s' % n)['raftIndex'])) for n in URLS)
    # the expected target: highest raft index among m2, m3, then name
    target = sorted(['m2', 'm3'], key=lambda n: (-raft[n], n))[0]
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2, M3)
    before = dict((n, status_answer(gateway, n, member_ids['m1'])) for n in URLS)
    after = dict((n, status_answer(gateway, n, member_ids[target])) for n in URLS)
    gateway.route(M1, '/v3/maintenance/status', [before['m1'], before['m1'], after['m1']])
    gateway.route(M2, '/v3/maintenance/status', [before['m2'], after['m2']])
    gateway.route(M3, '/v3/maintenance/status', [before['m3'], after['m3']])
    gateway.route(M1, TRANSFER, 'move_leader')
    result, failed = run_module(etcd_member, args(name='m1', state='not_leader'))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'][0].startswith('move leadership from m1 (')
    assert ' to %s (' % target in result['actions'][0]
    transfers = gateway.paths(TRANSFER)
    assert [c['body'] for c in transfers] == [{'targetID': str(member_ids[target])}]
    assert transfers[0]['endpoint'] == M1
    assert result['previous_leader']['name'] == 'm1'
    assert result['leader']['name'] == target


def test_not_leader_unchanged_when_not_the_leader(gateway, run_module):
    member_ids = ids(gateway)
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    for n, url in URLS.items():
        gateway.route(url, '/v3/maintenance/status', status_answer(gateway, n, member_ids['m2']))
    result, failed = run_module(etcd_member, args(name='m1', state='not_leader'))
    assert not failed, result
    assert result['changed'] is False and result['actions'] == []
    assert result['leader']['name'] == 'm2'
    assert gateway.paths(TRANSFER) == []


def test_not_leader_unknown_member_unchanged(gateway, run_module):
    member_ids = ids(gateway)
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    for n, url in URLS.items():
        gateway.route(url, '/v3/maintenance/status', status_answer(gateway, n, member_ids['m2']))
    result, failed = run_module(etcd_member, args(name='m9', state='not_leader'))
    assert not failed and result['changed'] is False
    assert gateway.paths(TRANSFER) == []


def test_not_leader_check_mode_makes_no_transfer(gateway, run_module):
    member_ids = ids(gateway)
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    healthy(gateway, M1, M2, M3)
    for n, url in URLS.items():
        gateway.route(url, '/v3/maintenance/status', status_answer(gateway, n, member_ids['m3']))
    result, failed = run_module(etcd_member, args(name='m3', state='not_leader', _ansible_check_mode=True))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'][0].startswith('would move leadership from m3 (')
    assert result['leader']['name'] in ('m1', 'm2')
    assert gateway.paths(TRANSFER) == []


def test_not_leader_refused_without_a_healthy_successor(gateway, run_module):
    member_ids = ids(gateway)
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    gateway.route(M1, '/v3/maintenance/status', status_answer(gateway, 'm1', member_ids['m1']))
    healthy(gateway, M1)
    gateway.refuse(M2)
    gateway.refuse(M3)
    result, failed = run_module(etcd_member, args(name='m1', state='not_leader'))
    assert failed
    assert 'Cannot move the leadership away from m1' in result['msg']
    assert gateway.paths(TRANSFER) == []


# -- a CORRUPT alarm raised for the member removed (answers recorded with the alarm raised; the IDs put in) ----

ALARM = '/v3/maintenance/alarm'


def alarms_for(gateway, fixture, *names):
    """The recorded answer ``fixture`` of the alarm API, its alarms raised for the members ``names`` in turn."""
    import json
    body = gateway.answer(fixture)
    for alarm, name in zip(body['alarms'], names):
        alarm['memberID'] = str(ids(gateway)[name])
    return (200, json.dumps(body))


def corrupt(gateway, name):
    """etcd while a CORRUPT alarm is raised for ``name``: /health false on every member, true with
    ?exclude=CORRUPT; the alarm list names it, the deactivation answers with it."""
    for ep in (M1, M2, M3):
        gateway.route(ep, '/health', 'health_corrupt')
        gateway.route(ep, '/health?exclude=CORRUPT', 'health_corrupt_excluded')
    gateway.route('*', ALARM, lambda call: alarms_for(gateway, 'alarm_disarm_corrupt' if call['body']['action'] ==
                                                      'DEACTIVATE' else 'alarm_list_corrupt', name))


def test_remove_the_member_with_the_corrupt_alarm_then_disarm_it(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list', 'member_list_after_remove'])
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove')
    corrupt(gateway, 'm3')
    result, failed = run_module(etcd_member, args(name='m3', state='absent'))
    assert not failed, result
    assert result['actions'] == ['remove member m3 (1818b2c362ae21da)',
                                 'disarm the CORRUPT alarm of the removed member m3 (1818b2c362ae21da)']
    disarms = [c['body'] for c in gateway.paths(ALARM) if c['body']['action'] == 'DEACTIVATE']
    assert disarms == [{'action': 'DEACTIVATE', 'memberID': str(ids(gateway)['m3']), 'alarm': 'CORRUPT'}]
    # the quorum counted the members by /health?exclude=CORRUPT
    assert sorted(c['endpoint'] for c in gateway.paths('/health') if c['query'] == 'exclude=CORRUPT') == [M1, M2, M3]


def test_check_mode_remove_with_the_corrupt_alarm_says_it_would_disarm_it(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    corrupt(gateway, 'm3')
    result, failed = run_module(etcd_member, args(name='m3', state='absent', _ansible_check_mode=True))
    assert not failed, result
    assert result['actions'] == ['would remove member m3 (1818b2c362ae21da)',
                                 'would disarm the CORRUPT alarm of the removed member m3 (1818b2c362ae21da)']
    assert writes(gateway) == [] and all(c['body']['action'] == 'GET' for c in gateway.paths(ALARM))


def test_remove_refused_while_the_corrupt_alarm_is_another_members(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    corrupt(gateway, 'm3')
    result, failed = run_module(etcd_member, args(name='m2', state='absent'))
    assert failed
    assert result['msg'].startswith('Refusing to remove member m2') and result['msg'].endswith('Nothing was changed.')
    assert writes(gateway) == [] and all(c['body']['action'] == 'GET' for c in gateway.paths(ALARM))
    assert not [c for c in gateway.paths('/health') if c['query']]


def test_remove_without_alarm_disarms_nothing(gateway, run_module):
    gateway.route(M1, '/v3/cluster/member/list', ['member_list', 'member_list_after_remove'])
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove')
    healthy(gateway, M1, M2, M3)
    result, failed = run_module(etcd_member, args(name='m3', state='absent'))
    assert not failed, result
    assert result['actions'] == ['remove member m3 (1818b2c362ae21da)']
    assert [c['body']['action'] for c in gateway.paths(ALARM)] == ['GET']


def test_not_leader_with_the_corrupt_alarm_of_the_leader(gateway, run_module):
    member_ids = ids(gateway)
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    corrupt(gateway, 'm3')
    for n, url in URLS.items():
        gateway.route(url, '/v3/maintenance/status', status_answer(gateway, n, member_ids['m3']))
    result, failed = run_module(etcd_member, args(name='m3', state='not_leader', _ansible_check_mode=True))
    assert not failed, result
    assert result['actions'][0].startswith('would move leadership from m3 (')
    assert result['leader']['name'] in ('m1', 'm2')
