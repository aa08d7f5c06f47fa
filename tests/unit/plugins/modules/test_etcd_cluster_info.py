# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_cluster_info against replayed real etcd 3.4.23 / 3.5.16 gateway answers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_cluster_info
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_cluster_view as view

M1, M2, M3 = 'http://127.0.0.1:22379', 'http://127.0.0.1:22479', 'http://127.0.0.1:22579'


def healthy_cluster(gateway, alarms='alarm_list_empty'):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    gateway.route(M1, '/v3/maintenance/alarm', alarms)
    for i, ep in enumerate((M1, M2, M3), 1):
        gateway.route(ep, '/health', 'health_m%d' % i)
        gateway.route(ep, '/v3/maintenance/status', 'status_m%d' % i)
        gateway.route(ep, '/v3/maintenance/hashkv', 'hashkv_m%d' % i)
        gateway.route(ep, '/v3/maintenance/hash', 'hash_m%d' % i)


def test_healthy_cluster(gateway, run_module):
    healthy_cluster(gateway)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], _ansible_check_mode=True))
    assert not failed, result
    assert result['changed'] is False
    assert result['healthy'] is True and result['quorum'] is True and result['hashkv_consistent'] is True
    assert result['problems'] == []
    assert result['voting_members'] == 3 and result['quorum_size'] == 2
    assert result['cluster_id'] == '4c4194fa8542ad1f'
    assert result['leader']['name'] in ('m1', 'm2', 'm3')
    assert len(result['leaders_seen']) == 1
    assert sum(1 for m in result['members'] if m['status']['leader']) == 1
    if gateway.version == 'etcd-3.4.23':
        assert result['hash_method'] == 'hash' and result['hash_revision'] == 0
    else:
        assert result['hash_method'] == 'hashkv' and result['hash_revision'] == 1
        bodies = [c['body'] for c in gateway.paths('/v3/maintenance/hashkv')]
        assert bodies == [{'revision': '1'}] * 3  # all hashed at the same revision
    writes = [c for c in gateway.calls if c['path'] not in (
        '/v3/cluster/member/list', '/v3/maintenance/alarm', '/health', '/v3/maintenance/status',
        '/v3/maintenance/hashkv', '/v3/maintenance/hash')]
    assert writes == []
    assert all(c['body'] in (None, {}) or c['path'] != '/v3/maintenance/alarm' or c['body']['action'] == 'GET'
               for c in gateway.calls)


def test_member_down(gateway, run_module):
    healthy_cluster(gateway)
    gateway.refuse(M3)
    del gateway.routes[(M3, '/health')], gateway.routes[(M3, '/v3/maintenance/status')]
    del gateway.routes[(M3, '/v3/maintenance/hashkv')], gateway.routes[(M3, '/v3/maintenance/hash')]
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    assert result['healthy'] is False and result['quorum'] is True and result['hashkv_consistent'] is False
    m3 = [m for m in result['members'] if m['name'] == 'm3'][0]
    assert m3['healthy'] is False and m3['status'] is None
    assert m3['health_reason'] == '%s: connection refused' % M3
    assert '%s: connection refused' % M3 in m3['status_errors'][0]
    assert any('member m3 is not healthy' in p for p in result['problems'])


def test_alarm_makes_unhealthy(gateway, run_module):
    healthy_cluster(gateway, alarms='alarm_list_nospace')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False))
    assert not failed, result
    assert result['healthy'] is False and result['quorum'] is True
    assert result['alarms'] == [dict(member_id='425eef114c1f8661', member_name='m1', alarm='NOSPACE')]
    assert result['hashkv_consistent'] is None and result['hash_method'] is None
    assert not gateway.paths('/v3/maintenance/hashkv') and not gateway.paths('/v3/maintenance/hash')


def lone_member_without_leader(gateway):
    """M1 answers, without a leader; M2 and M3 refuse connections."""
    healthy_cluster(gateway)
    gateway.route(M1, '/health', 'health_no_leader')
    gateway.route(M1, '/v3/maintenance/status', 'status_no_leader')
    for ep in (M2, M3):
        for path in ('/health', '/v3/maintenance/status', '/v3/maintenance/hashkv', '/v3/maintenance/hash'):
            del gateway.routes[(ep, path)]
        gateway.refuse(ep)


def test_no_quorum(gateway, run_module):
    lone_member_without_leader(gateway)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False))
    assert not failed, result
    assert result['quorum'] is False and result['healthy'] is False
    assert result['healthy_voting_members'] == 0
    assert result['leader'] == {}
    assert 'no member reports a leader' in result['problems']
    # An alarm request goes through raft: without a leader etcd would only time out, so none is sent.
    assert gateway.paths('/v3/maintenance/alarm') == []
    assert 'no member reports a leader' in result['alarms_error']


def test_no_leader_with_authentication_is_read_without_logging_in(gateway, run_module):
    # etcd logs a user in through raft: a lone member has no leader to do it. The member list, status and health
    # need no login, so the view is read anonymously; hashes (which need one) are not asked for.
    lone_member_without_leader(gateway)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], user='root', password='rootpw'))
    assert not failed, result
    assert result['quorum'] is False and [m['name'] for m in result['members'] if m['status']] == ['m1']
    assert gateway.paths('/v3/auth/authenticate') == []
    assert gateway.paths('/v3/maintenance/hashkv') == gateway.paths('/v3/maintenance/hash') == []
    assert result['hashkv_consistent'] is None
    assert any(p.startswith('hashes not read: no member reports a leader') for p in result['problems']), result


def _hash_at(gateway, name, revision):
    import json
    body = gateway.answer(name)
    body['header']['revision'] = str(revision)
    return (200, json.dumps(body))


def _no_hashkv(gateway):
    """Route the members as on 3.4, whose gateway has no HashKV path (both versions, for these tests)."""
    for ep in (M1, M2, M3):
        gateway.route(ep, '/v3/maintenance/hashkv', (404, 'Not Found'))


def test_hash_fallback_asks_again_until_one_revision(gateway, run_module, monkeypatch):
    monkeypatch.setattr(view.time, 'sleep', lambda s: None)
    healthy_cluster(gateway)
    _no_hashkv(gateway)
    # m3 lags one revision behind on the first ask, then all answer at revision 7
    gateway.route(M1, '/v3/maintenance/hash', [_hash_at(gateway, 'hash_m1', 7)])
    gateway.route(M2, '/v3/maintenance/hash', [_hash_at(gateway, 'hash_m2', 7)])
    gateway.route(M3, '/v3/maintenance/hash', [_hash_at(gateway, 'hash_m3', 6), _hash_at(gateway, 'hash_m3', 7)])
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    assert result['hash_method'] == 'hash'
    assert result['hash_attempts'] == 2
    assert len(gateway.paths('/v3/maintenance/hash')) == 6
    assert set(m['hashkv']['hash_revision'] for m in result['members']) == {7}


def test_hash_fallback_never_compares_different_revisions(gateway, run_module, monkeypatch):
    monkeypatch.setattr(view.time, 'sleep', lambda s: None)
    healthy_cluster(gateway)
    _no_hashkv(gateway)
    gateway.route(M1, '/v3/maintenance/hash', _hash_at(gateway, 'hash_m1', 7))
    gateway.route(M2, '/v3/maintenance/hash', _hash_at(gateway, 'hash_m1', 7))
    gateway.route(M3, '/v3/maintenance/hash', _hash_at(gateway, 'hash_m1', 8))
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    assert result['hash_attempts'] == view.HASH_ATTEMPTS
    assert result['hashkv_consistent'] is False
    assert any('different revisions' in p for p in result['problems'])


def _range_of(gateway, value=None):
    """The recorded range answer of two keys under /apisix/routes; with ``value``, the second one changed."""
    import base64
    import json
    body = gateway.answer('range_prefix')
    if value is not None:
        body['kvs'][1]['value'] = base64.b64encode(value.encode()).decode()
    return (200, json.dumps(body))


def _whole_hashes_differ(gateway, m3_value=None):
    """3.4 routes where every member's whole-backend hash differs at revision 7; with ``m3_value``, m3's keys too."""
    healthy_cluster(gateway)
    _no_hashkv(gateway)
    for ep, name in ((M1, 'hash_m1'), (M2, 'hash_m2'), (M3, 'hash_m3')):
        body = _hash_at(gateway, name, 7)
        gateway.route(ep, '/v3/maintenance/hash', (200, body[1].replace(str(gateway.answer(name)['hash']),
                                                                        str(ep[-4:]))))
        gateway.route(ep, '/v3/kv/range', _range_of(gateway, m3_value if ep == M3 else None))


def test_different_whole_backend_hashes_at_one_revision_are_decided_by_the_keys(gateway, run_module, monkeypatch):
    # etcd 3.4 with authentication on: each member salted the users' passwords itself, so the backends differ.
    monkeypatch.setattr(view.time, 'sleep', lambda s: None)
    _whole_hashes_differ(gateway)
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    assert result['hash_method'] == 'kvdigest' and result['hash_revision'] == 7
    assert result['hashkv_consistent'] is True, result['problems']
    ranges = gateway.paths('/v3/kv/range')
    assert sorted(c['endpoint'] for c in ranges) == sorted([M1, M2, M3])
    assert all(c['body'].get('serializable') is True and c['body'].get('revision') == '7' for c in ranges)


def test_different_keys_at_one_revision_stay_inconsistent(gateway, run_module, monkeypatch):
    monkeypatch.setattr(view.time, 'sleep', lambda s: None)
    _whole_hashes_differ(gateway, m3_value='{"uri":"/z"}')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    assert result['hash_method'] == 'kvdigest' and result['hashkv_consistent'] is False
    assert any(p.startswith('members have different hashes') for p in result['problems'])


# -- a CORRUPT alarm (answers recorded on 3.4.23 / 3.5.16 with the alarm raised; the member IDs put in) --------

M_IDS = dict(m1='4782522711884662369', m2='8939032857194323073', m3='1736334208595272154')


def _alarms_for(gateway, fixture, *names):
    """The recorded alarm list ``fixture``, its alarms raised for the members ``names`` in turn."""
    import json
    body = gateway.answer(fixture)
    for alarm, name in zip(body['alarms'], names):
        alarm['memberID'] = M_IDS[name]
    return (200, json.dumps(body))


def corrupt_cluster(gateway, *names, fixture='alarm_list_corrupt', excluded='health_corrupt_excluded'):
    """Every member answering /health false as etcd does while the alarms of ``fixture`` are raised (for
    ``names``), and ``excluded`` to /health?exclude=CORRUPT."""
    healthy_cluster(gateway, alarms=_alarms_for(gateway, fixture, *names))
    for ep in (M1, M2, M3):
        gateway.route(ep, '/health', 'health_corrupt')
        gateway.route(ep, '/health?exclude=CORRUPT', excluded)


def test_corrupt_alarm_of_the_member_replaced_leaves_the_others_healthy_but_for_it(gateway, run_module):
    from ansible_collections.gatewayops.apisix_ha.plugins.filter.etcd_status_table import etcd_status_table
    corrupt_cluster(gateway, 'm3')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, failed_member='m3'))
    assert not failed, result
    assert result['healthy'] is False and result['quorum'] is False
    assert result['alarms'] == [dict(member_id='%016x' % int(M_IDS['m3']),
                                     member_name='m3', alarm='CORRUPT')]
    by_name = dict((m['name'], m) for m in result['members'])
    assert by_name['m3']['alarms'] == ['CORRUPT'] and by_name['m1']['alarms'] == []
    assert all(m['healthy'] is False and m['healthy_excluding_corrupt'] is True for m in result['members'])
    verdict = result['failed_member']
    assert verdict['found'] and verdict['corrupt'] and verdict['problems'] == []
    # the status table names the alarm and the member plainly
    text = etcd_status_table(result)
    assert 'alarms: CORRUPT on m3' in text
    assert 'problem: alarm CORRUPT raised for member m3' in text


def test_corrupt_alarm_of_a_member_that_stays_is_no_reason_to_replace_another(gateway, run_module):
    corrupt_cluster(gateway, 'm3')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, failed_member='m2'))
    assert not failed, result
    verdict = result['failed_member']
    assert verdict['corrupt'] is False
    assert verdict['problems'][0] == ('alarm CORRUPT raised for member m3 (only a CORRUPT alarm of the member '
                                      'replaced is accepted)')
    assert sorted(p.split(':')[0] for p in verdict['problems'][1:]) == ['m1', 'm3']


def test_another_alarm_beside_the_corrupt_one_is_refused(gateway, run_module):
    corrupt_cluster(gateway, 'm3', 'm1', fixture='alarm_list_corrupt_nospace', excluded='health_corrupt_nospace_excluded')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, failed_member='m3'))
    assert not failed, result
    by_name = dict((m['name'], m) for m in result['members'])
    assert by_name['m1']['alarms'] == ['NOSPACE'] and by_name['m1']['healthy_excluding_corrupt'] is False
    verdict = result['failed_member']
    assert verdict['corrupt'] is True
    assert any(p.startswith('alarm NOSPACE raised for member m1') for p in verdict['problems'])
    assert sorted(p.split(':')[0] for p in verdict['problems'][1:]) == ['m1', 'm2']


def test_a_member_down_beside_the_corrupt_alarm_stays_a_problem(gateway, run_module):
    corrupt_cluster(gateway, 'm3')
    gateway.refuse(M2)
    for path in ('/health', '/health?exclude=CORRUPT', '/v3/maintenance/status'):
        del gateway.routes[(M2, path)]
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, failed_member='m3'))
    assert not failed, result
    assert result['failed_member']['problems'] == ['m2: not healthy: %s: connection refused' % M2]


def test_health_is_asked_again_only_while_a_corrupt_alarm_is_raised(gateway, run_module):
    healthy_cluster(gateway, alarms='alarm_list_nospace')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1], hashkv=False, failed_member='m1'))
    assert not failed, result
    assert not [c for c in gateway.calls if c['query']]
    # NOSPACE of the member replaced is no CORRUPT alarm: refused
    assert result['failed_member']['problems'] == [
        'alarm NOSPACE raised for member m1 (only a CORRUPT alarm of the member replaced is accepted)']


def test_unequal_hashes_are_shown_in_the_status_table(gateway, run_module, monkeypatch):
    from ansible_collections.gatewayops.apisix_ha.plugins.filter.etcd_status_table import etcd_status_table
    monkeypatch.setattr(view.time, 'sleep', lambda s: None)
    _whole_hashes_differ(gateway, m3_value='{"uri":"/z"}')
    result, failed = run_module(etcd_cluster_info, dict(endpoints=[M1]))
    assert not failed, result
    text = etcd_status_table(result)
    assert 'hashes (kvdigest) consistent: false' in text
    assert 'problem: members have different hashes: ' in text
