# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_cluster_info's wait (wait, wait_condition, wait_timeout, wait_sleep) against replayed real etcd
3.4.23 / 3.5.16 gateway answers, on a fake clock: every condition kind, met after a change and timed out."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import urllib.error

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_cluster_info
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_cluster_view as view
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import format_id

M1, M2, M3 = 'http://127.0.0.1:22379', 'http://127.0.0.1:22479', 'http://127.0.0.1:22579'
REFUSED = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))


class FakeClock(object):
    """time.monotonic/time.sleep of the view: sleeping moves the clock, nothing really waits."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(view, 'time', fake)
    return fake


def cluster(gateway, member_lists=('member_list',)):
    """Three healthy members; the member list answers are ``member_lists`` in turn (the last repeats)."""
    gateway.route(M1, '/v3/cluster/member/list', list(member_lists))
    gateway.route(M1, '/v3/maintenance/alarm', 'alarm_list_empty')
    for i, ep in enumerate((M1, M2, M3), 1):
        gateway.route(ep, '/health', 'health_m%d' % i)
        gateway.route(ep, '/v3/maintenance/status', 'status_m%d' % i)
        gateway.route(ep, '/v3/maintenance/hashkv', 'hashkv_m%d' % i)
        gateway.route(ep, '/v3/maintenance/hash', 'hash_m%d' % i)


def changed_answer(gateway, name, **fields):
    body = gateway.answer(name)
    body.update(fields)
    return (200, json.dumps(body))


def leader_name(gateway):
    leader = int(gateway.answer('status_m1')['leader'])
    return [m['name'] for m in gateway.answer('member_list')['members'] if int(m['ID']) == leader][0]


def learner_id(gateway):
    return format_id(int([m for m in gateway.answer('member_list_started_learner')['members']
                          if m.get('isLearner')][0]['ID']))


def wait(run_module, condition, **kw):
    args = dict(endpoints=[M1], hashkv=False, wait=True, wait_condition=condition, wait_timeout=10, wait_sleep=2)
    args.update(kw)
    return run_module(etcd_cluster_info, args)


# Each case: the condition, a setup whose first read misses it and whose second read meets it (met=True), or
# which never meets it (met=False), and a text the timeout message must contain.
def _healthy(gateway, met):
    cluster(gateway)
    gateway.route(M3, '/health', [REFUSED, 'health_m3'] if met else REFUSED)


def _quorum(gateway, met):
    cluster(gateway)
    for ep, n in ((M2, 2), (M3, 3)):
        gateway.route(ep, '/health', [REFUSED, 'health_m%d' % n] if met else REFUSED)


def _hashkv(gateway, met):
    cluster(gateway)
    path, name = (('/v3/maintenance/hash', 'hash_m3') if gateway.version == 'etcd-3.4.23'
                  else ('/v3/maintenance/hashkv', 'hashkv_m3'))
    other = changed_answer(gateway, name, hash='12345')
    gateway.route(M3, path, [other, name] if met else other)
    # 3.4's whole-backend hashes differing at one revision send each member's keys to decide: m3's differ too.
    keys = gateway.answer('range_prefix')
    for ep in (M1, M2):
        gateway.route(ep, '/v3/kv/range', (200, json.dumps(keys)))
    keys['kvs'][0]['mod_revision'] = '99'
    gateway.route(M3, '/v3/kv/range', (200, json.dumps(keys)))


def _lists(first, then):
    def setup(gateway, met):
        cluster(gateway, [first, then] if met else [first])
    return setup


def _leader_not(gateway, met):
    cluster(gateway)
    old = leader_name(gateway)
    other = [m for m in gateway.answer('member_list')['members'] if m['name'] != old][0]['ID']
    for n, ep in ((1, M1), (2, M2), (3, M3)):
        moved = changed_answer(gateway, 'status_m%d' % n, leader=other)
        gateway.route(ep, '/v3/maintenance/status', ['status_m%d' % n, moved] if met else 'status_m%d' % n)


def _member_version(gateway, met):
    cluster(gateway)
    older = changed_answer(gateway, 'status_m3', version='3.3.27')
    gateway.route(M3, '/v3/maintenance/status', [older, 'status_m3'] if met else older)


CASES = [
    ('healthy', lambda g: dict(healthy=True), _healthy, 'member m3 is not healthy'),
    ('quorum', lambda g: dict(quorum=True), _quorum, 'only 1 of 3 voting members are healthy; quorum needs 2'),
    ('hashkv_consistent', lambda g: dict(hashkv_consistent=True), _hashkv, 'members have different hashes'),
    ('members', lambda g: dict(members=3), _lists('member_list_after_remove', 'member_list'), '2 members, 3 wanted'),
    ('min_members', lambda g: dict(min_members=3), _lists('member_list_after_remove', 'member_list'),
     '2 members, at least 3 wanted'),
    ('voting_members', lambda g: dict(voting_members=3),
     _lists('member_list_started_learner', 'member_list_after_promote'), '2 voting members, 3 wanted'),
    ('started_voting_members', lambda g: dict(started_voting_members=3),
     _lists('member_list_unstarted_voting', 'member_list'), '2 started voting members, 3 wanted'),
    ('member_names', lambda g: dict(member_names=['m2', 'm1', 'm3']),
     _lists('member_list_after_remove', 'member_list'), 'the members are m1, m2'),
    ('leader_not', lambda g: dict(leader_not=leader_name(g)), _leader_not, 'is still the leader'),
    ('member present', lambda g: dict(member=dict(name='m3')), _lists('member_list_after_remove', 'member_list'),
     'member m3 is not in the member list'),
    ('member absent', lambda g: dict(member=dict(name='m3', state='absent')),
     _lists('member_list', 'member_list_after_remove'), 'member m3 is still a member'),
    ('member started', lambda g: dict(member=dict(id=learner_id(g), state='started')),
     _lists('member_list_unstarted_learner', 'member_list_started_learner'), 'has not started'),
    ('member voting', lambda g: dict(member=dict(name='m3', state='voting')),
     _lists('member_list_started_learner', 'member_list_after_promote'), 'member m3 is a learner'),
    ('member learner', lambda g: dict(member=dict(name='m3', state='learner')),
     _lists('member_list_after_remove', 'member_list_started_learner'), 'member m3 is not in the member list'),
    ('member healthy', lambda g: dict(member=dict(name='m3', healthy=True)), _healthy,
     'member m3 is unhealthy: %s: connection refused' % M3),
    ('member version', lambda g: dict(member=dict(name='m3', version=g.version.split('-')[1])), _member_version,
     'member m3 runs 3.3.27'),
    ('member client_url', lambda g: dict(member=dict(id=learner_id(g), client_url=M3)),
     _lists('member_list_unstarted_learner', 'member_list_started_learner'), 'has client URLs (none), not %s' % M3),
]


@pytest.mark.parametrize('kind,condition,setup,missing', CASES, ids=[c[0] for c in CASES])
def test_condition_met_after_a_change(gateway, run_module, clock, kind, condition, setup, missing):
    setup(gateway, True)
    result, failed = wait(run_module, condition(gateway), hashkv=kind == 'hashkv_consistent')
    assert not failed, result
    assert result['changed'] is False
    assert result['wait_reads'] == 2 and result['waited'] == 2.0 and clock.sleeps == [2]
    assert result['wait_unmet'] == []


@pytest.mark.parametrize('kind,condition,setup,missing', CASES, ids=[c[0] for c in CASES])
def test_condition_timed_out(gateway, run_module, clock, kind, condition, setup, missing):
    setup(gateway, False)
    result, failed = wait(run_module, condition(gateway), hashkv=kind == 'hashkv_consistent')
    assert failed
    assert result['msg'].startswith('Timed out after 10.0 s waiting for ')
    assert missing in result['msg']
    assert result['wait_reads'] == 6 and result['changed'] is False
    assert result['wait_unmet'] and 'members' in result  # the last view is returned with the failure


def test_met_at_once_does_not_sleep(gateway, run_module, clock):
    cluster(gateway)
    result, failed = wait(run_module, dict(healthy=True, members=3, started_voting_members=3))
    assert not failed, result
    assert result['wait_reads'] == 1 and result['waited'] == 0 and clock.sleeps == []
    assert result['healthy'] is True and result['voting_members'] == 3


def test_wait_without_condition_waits_for_healthy_in_check_mode(gateway, run_module, clock):
    _healthy(gateway, True)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, wait=True,
                                                        _ansible_check_mode=True))
    assert not failed, result
    assert result['healthy'] is True and result['wait_reads'] == 2
    assert result['changed'] is False


def test_timeout_names_the_condition_and_the_problems(gateway, run_module, clock):
    _healthy(gateway, False)
    result, failed = wait(run_module, dict(healthy=True, members=3, leader_not='m9'))
    assert failed
    assert ('waiting for every member healthy with one leader and no alarm, 3 members, a leader other than m9: '
            'still healthy is false; problems seen: member m3 is not healthy: %s: connection refused' % M3
            in result['msg'])


def test_timeout_when_no_endpoint_ever_answered_names_every_endpoint(gateway, run_module, clock):
    gateway.refuse(M1)
    gateway.refuse(M2)
    result, failed = wait(run_module, dict(healthy=True), endpoints=[M1, M2])
    assert failed
    assert 'no endpoint ever answered' in result['msg']
    assert '%s: connection refused' % M1 in result['msg'] and '%s: connection refused' % M2 in result['msg']
    assert [a['endpoint'] for a in result['attempts']] == [M1, M2]


def test_an_endpoint_that_comes_back_is_waited_for(gateway, run_module, clock):
    cluster(gateway)
    gateway.route(M1, '/v3/cluster/member/list', [REFUSED, 'member_list'])
    result, failed = wait(run_module, dict(healthy=True))
    assert not failed, result
    assert result['wait_reads'] == 2


@pytest.mark.parametrize('condition,hashkv,text', [
    (dict(hashkv_consistent=True), False, 'needs hashkv=true'),
    (dict(member=dict(state='voting')), False, 'needs a name or an id'),
    (dict(member=dict(name='m3', state='absent', version='3.5.16')), False, 'takes only name or id'),
])
def test_invalid_condition_refused_before_reading(gateway, run_module, clock, condition, hashkv, text):
    result, failed = wait(run_module, condition, hashkv=hashkv)
    assert failed and text in result['msg']
    assert gateway.calls == []


def test_without_wait_reads_once(gateway, run_module, clock):
    _healthy(gateway, True)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False))
    assert not failed, result
    assert result['healthy'] is False and 'wait_reads' not in result


def test_quorum_size_counts_voting_members_only():
    assert [view.quorum_size(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_quorum_counts_learners_and_unreachable_members_right(gateway, run_module, clock):
    # a started learner and one voting member down: 2 voting, 1 healthy -> no quorum
    cluster(gateway, ['member_list_started_learner'])
    gateway.route(M2, '/health', REFUSED)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False))
    assert not failed, result
    assert result['voting_members'] == 2 and result['quorum_size'] == 2 and result['healthy_voting_members'] == 1
    assert result['quorum'] is False and result['learners'] == ['m3']
