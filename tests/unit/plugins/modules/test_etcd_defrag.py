# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_defrag against a three-member cluster made of replayed real etcd 3.4.23 / 3.5.16 gateway answers, whose
leader, sizes, compaction and alarms change as the requests go (FakeCluster)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_defrag
from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_defrag

URLS = dict(m1='http://127.0.0.1:22379', m2='http://127.0.0.1:22479', m3='http://127.0.0.1:22579')
MIB = 1024 * 1024
WRITES = ('/v3/kv/compaction', '/v3/maintenance/defragment', '/v3/maintenance/transfer-leadership')


class FakeCluster(object):
    """The recorded cluster m1, m2, m3. Status answers are the recorded ones with the leader, the sizes and the
    revision of this fake's state; a defragmentation shrinks the member's database to its size in use, a compaction
    moves the compacted revision, a handoff the leader, a disarm clears the alarm."""

    def __init__(self, gateway, sizes, revision=100, compacted=1, alarm=None):
        self.gateway = gateway
        listing = gateway.answer('member_list')['members']
        self.ids = dict((m['name'], int(m['ID'])) for m in listing)
        self.names = dict((v, k) for k, v in self.ids.items())
        self.leader = int(gateway.answer('status_m1')['leader'])
        self.sizes = dict((name, list(pair)) for name, pair in sizes.items())
        self.revision, self.compacted, self.alarm = revision, compacted, alarm
        self.order = []
        gateway.route(URLS['m1'], '/v3/cluster/member/list', 'member_list')
        for path, answer in (('/v3/maintenance/alarm', self.alarms), ('/v3/kv/range', self.range),
                             ('/v3/kv/compaction', self.compaction)):
            gateway.route('*', path, answer)
        for i, (name, url) in enumerate(sorted(URLS.items()), 1):
            gateway.route(url, '/health', self.health('health_m%d' % i))
            gateway.route(url, '/v3/maintenance/status', self.status(name, 'status_m%d' % i))
            gateway.route(url, '/v3/maintenance/defragment', self.defragment(name))
            gateway.route(url, '/v3/maintenance/transfer-leadership', self.transfer(name))

    def status(self, name, fixture):
        def answer(call):
            body = self.gateway.answer(fixture)
            body.update(leader=str(self.leader), dbSize=str(self.sizes[name][0]), dbSizeInUse=str(self.sizes[name][1]))
            body['header']['revision'] = str(self.revision)
            return 200, json.dumps(body)
        return answer

    def health(self, fixture):
        # etcd 3.5's answer to /health while an alarm is raised (etcd 3.4 gives no reason).
        return lambda call: (503, '{"health":"false","reason":"ALARM %s"}' % self.alarm) if self.alarm else fixture

    def alarms(self, call):
        if call['body']['action'] == 'DEACTIVATE':
            self.alarm = None
            return 'alarm_deactivate'
        if not self.alarm:
            return 'alarm_list_empty'
        return 200, json.dumps(self.gateway.answer('alarm_list_nospace')).replace('NOSPACE', self.alarm)

    def range(self, call):
        return 'carry_src_compacted' if int(call['body'].get('revision', 0)) < self.compacted else 'range_missing'

    def compaction(self, call):
        self.compacted = int(call['body']['revision'])
        return 'compact'

    def defragment(self, name):
        def answer(call):
            self.sizes[name][0] = self.sizes[name][1]
            self.order.append(name)
            return 'defragment'
        return answer

    def transfer(self, name):
        def answer(call):
            assert self.ids[name] == self.leader, 'the handoff must be asked of the leader'
            self.leader = int(call['body']['targetID'])
            return 'move_leader'
        return answer

    @property
    def leader_name(self):
        return self.names[self.leader]

    def writes(self):
        return [c for c in self.gateway.calls if c['path'] in WRITES
                or c['path'] == '/v3/maintenance/alarm' and c['body']['action'] != 'GET']


def run(run_module, **args):
    args.setdefault('endpoints', [URLS['m1']])
    return run_module(etcd_defrag, args)


FRAGMENTED = dict(m1=(50 * MIB, 10 * MIB), m2=(50 * MIB, 10 * MIB), m3=(50 * MIB, 10 * MIB))


def test_followers_first_then_the_leader_after_a_handoff_to_a_defragmented_member(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED)
    leader = cluster.leader_name
    followers = sorted(n for n in URLS if n != leader)
    result, failed = run(run_module)
    assert not failed, result
    assert cluster.order == followers + [leader]
    assert result['order'] == followers + [leader]
    assert cluster.compacted == 100 and result['compacted_revision'] == 100
    handoff = gateway.paths('/v3/maintenance/transfer-leadership')
    assert [c['endpoint'] for c in handoff] == [URLS[leader]]
    assert handoff[0]['body'] == {'targetID': str(cluster.ids[followers[0]])}
    # the handoff comes after the followers' turns and before the leader's
    paths = [c['path'] for c in cluster.writes()]
    assert paths == ['/v3/kv/compaction'] + ['/v3/maintenance/defragment'] * 2 + [
        '/v3/maintenance/transfer-leadership', '/v3/maintenance/defragment']
    assert result['changed'] is True
    frag = 'fragmentation 0.80 above 0.5'
    assert result['actions'] == [
        'compact the keyspace to revision 100',
        'defragment %s (%s)' % (followers[0], frag),
        'defragment %s (%s)' % (followers[1], frag),
        'move leadership from %s (%016x) to %s (%016x)' % (
            leader, cluster.ids[leader], followers[0], cluster.ids[followers[0]]),
        'defragment %s (%s)' % (leader, frag)]
    assert result['previous_leader'] == leader and result['leader'] == followers[0]
    by_name = dict((m['name'], m) for m in result['members'])
    assert by_name[leader]['was_leader'] is True
    assert all(m['defragmented'] and m['after'] == dict(db_size=10 * MIB, db_size_in_use=10 * MIB)
               and m['before'] == dict(db_size=50 * MIB, db_size_in_use=10 * MIB) for m in result['members'])
    assert 'diff' not in result


def test_check_mode_says_what_it_would_do_and_writes_nothing(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED)
    leader = cluster.leader_name
    result, failed = run(run_module, _ansible_check_mode=True, _ansible_diff=True)
    assert not failed, result
    assert cluster.writes() == [] and cluster.order == [] and cluster.leader_name == leader
    assert result['changed'] is True and all(a.startswith('would ') for a in result['actions'])
    assert len(result['actions']) == 5 and result['actions'][3].startswith('would move leadership from %s' % leader)
    assert result['order'][-1] == leader
    assert result['diff']['before'] == result['diff']['after'] == dict(
        (n, dict(db_size=50 * MIB, db_size_in_use=10 * MIB)) for n in URLS)


def test_the_rule_picks_only_the_fragmented_member_and_the_leader_keeps_leading(gateway, run_module):
    cluster = FakeCluster(gateway, dict((n, (20 * MIB, 18 * MIB)) for n in URLS), compacted=100)
    follower = sorted(n for n in URLS if n != cluster.leader_name)[1]
    cluster.sizes[follower] = [500 * MIB, 250 * MIB]
    leader = cluster.leader_name
    result, failed = run(run_module)
    assert not failed, result
    assert cluster.order == [follower] and result['order'] == [follower]
    assert result['actions'] == ['defragment %s (250.0 MiB reclaimable)' % follower]
    assert not gateway.paths('/v3/kv/compaction') and not gateway.paths('/v3/maintenance/transfer-leadership')
    assert cluster.leader_name == leader and result['leader'] == leader


def test_a_second_run_changes_nothing(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED)
    first, failed = run(run_module)
    assert not failed and first['changed'], first
    before = len(cluster.writes())
    again, failed = run(run_module)
    assert not failed, again
    assert again['changed'] is False and again['actions'] == [] and again['order'] == []
    assert again['compacted_revision'] == 0 and len(cluster.writes()) == before


def test_a_cluster_within_the_rule_is_left_as_it_is_history_and_all(gateway, run_module):
    cluster = FakeCluster(gateway, dict((n, (20 * MIB, 18 * MIB)) for n in URLS), compacted=1)
    result, failed = run(run_module)
    assert not failed, result
    assert result['changed'] is False and cluster.writes() == [] and result['compacted_revision'] == 0


def test_force_defragments_members_the_rule_leaves(gateway, run_module):
    cluster = FakeCluster(gateway, dict((n, (20 * MIB, 18 * MIB)) for n in URLS), compacted=100)
    result, failed = run(run_module, force=True)
    assert not failed, result
    assert sorted(cluster.order) == sorted(URLS) and cluster.order[-1] == result['previous_leader']
    assert all(m['reason'] == 'force' for m in result['members'])


@pytest.mark.parametrize('size, in_use, reason', [
    (20 * MIB, 18 * MIB, ''),
    (20 * MIB, 9 * MIB, 'fragmentation 0.55 above 0.5'),
    (1700 * MIB, 1650 * MIB, '83% of the quota'),
    (1000 * MIB, 700 * MIB, '300.0 MiB reclaimable'),
    (0, 0, ''),
])
def test_the_rule(size, in_use, reason):
    rule = dict(fragmentation_above=0.5, quota_share_above=0.8, reclaimable_above=200 * MIB, quota_bytes=2048 * MIB)
    assert _etcd_defrag.defrag_reason(dict(db_size=size, db_size_in_use=in_use), rule) == reason


def test_an_unhealthy_cluster_is_refused_and_nothing_changes(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED)
    gateway.refuse(URLS['m3'])
    for path in ('/health', '/v3/maintenance/status', '/v3/maintenance/defragment'):
        del gateway.routes[(URLS['m3'], path)]
    result, failed = run(run_module)
    assert failed
    assert result['msg'].startswith('Refusing to defragment: the cluster is not healthy: member m3 is not healthy: ')
    assert result['msg'].endswith('Nothing was changed.')
    assert result['changed'] is False and cluster.writes() == []


def test_nospace_is_refused_unless_recovery_is_asked_for(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED, alarm='NOSPACE')
    result, failed = run(run_module)
    assert failed and cluster.writes() == []
    assert 'the cluster is out of space (NOSPACE raised for m1); recover_nospace=true' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')


def test_nospace_recovery_compacts_defragments_every_member_and_disarms(gateway, run_module):
    cluster = FakeCluster(gateway, dict((n, (17 * MIB, 6 * MIB)) for n in URLS), alarm='NOSPACE')
    leader = cluster.leader_name
    result, failed = run(run_module, recover_nospace=True, quota_bytes=16 * MIB)
    assert not failed, result
    assert cluster.alarm is None and cluster.compacted == 100
    assert cluster.order[-1] == leader and sorted(cluster.order) == sorted(URLS)
    assert result['disarmed'] == ['NOSPACE@m1']
    disarm = [c for c in cluster.writes() if c['path'] == '/v3/maintenance/alarm']
    assert [c['body'] for c in disarm] == [{'action': 'DEACTIVATE', 'memberID': str(cluster.ids['m1']),
                                            'alarm': 'NOSPACE'}]
    assert cluster.writes()[-1] is disarm[0]
    assert result['actions'][-1] == 'disarm the NOSPACE alarm of m1'


def test_nospace_is_left_raised_when_the_data_itself_fills_the_quota(gateway, run_module):
    cluster = FakeCluster(gateway, dict((n, (17 * MIB, 15 * MIB)) for n in URLS), alarm='NOSPACE')
    result, failed = run(run_module, recover_nospace=True, quota_bytes=16 * MIB)
    assert failed
    assert 'the data itself fills it' in result['msg'] and 'The alarm was left raised.' in result['msg']
    assert cluster.alarm == 'NOSPACE' and result['changed'] is True
    assert not [c for c in cluster.writes() if c['path'] == '/v3/maintenance/alarm']


def test_another_alarm_is_refused_even_with_recovery(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED, alarm='CORRUPT')
    result, failed = run(run_module, recover_nospace=True)
    assert failed and cluster.writes() == []
    assert 'alarm CORRUPT raised for member m1; only a NOSPACE alarm' in result['msg']


def test_a_refused_defragmentation_names_the_member_and_what_was_done(gateway, run_module):
    cluster = FakeCluster(gateway, FRAGMENTED)
    follower = sorted(n for n in URLS if n != cluster.leader_name)[0]
    gateway.route(URLS[follower], '/v3/maintenance/defragment', 'auth_no_token_defragment')
    result, failed = run(run_module)
    assert failed
    assert 'auth: user name is empty' in result['msg'] and URLS[follower] in result['msg']
    assert result['actions'] == ['compact the keyspace to revision 100'] and cluster.order == []
