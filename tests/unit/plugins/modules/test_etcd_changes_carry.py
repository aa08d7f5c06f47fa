# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_changes_carry against replayed real etcd 3.4.23 / 3.5.16 gateway answers.

The fixtures carry_* were recorded from two single-node etcds holding the same three keys at the same revisions
(a restored copy, as the emergency node is): since_revision 4; then on the source routes/1 changed, routes/4
created, routes/3 deleted and a leased key created (source revision 8); the target unchanged, or with routes/1
changed too (carry_dst_read_conflict), or written back to its old value (carry_dst_read_again)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_changes_carry

SRC, DST = 'http://127.0.0.1:26379', 'http://127.0.0.1:26479'
R1, R3, R4, LEASED = '/apisix/routes/1', '/apisix/routes/3', '/apisix/routes/4', '/apisix/data_plane/server_info/x'
B64 = {R1: 'L2FwaXNpeC9yb3V0ZXMvMQ==', R3: 'L2FwaXNpeC9yb3V0ZXMvMw==', R4: 'L2FwaXNpeC9yb3V0ZXMvNA=='}


def args(**kw):
    kw.setdefault('source_endpoints', [SRC])
    kw.setdefault('endpoints', [DST])
    kw.setdefault('since_revision', 4)
    kw.setdefault('prefix', '/apisix/')
    kw.setdefault('timeout', 2)
    return kw


def source(gateway, since='carry_src_since'):
    gateway.route(SRC, '/v3/kv/range', ['carry_src_keys_now', 'carry_src_changed', since])


def txns(gateway):
    return [c['body'] for c in gateway.paths('/v3/kv/txn')]


def writes(gateway):
    """Transactions that write (any put or delete op)."""
    return [b for b in txns(gateway)
            if any('request_put' in op or 'request_delete_range' in op for op in b['success'] + b['failure'])]


def test_check_mode_gives_the_plan_and_writes_nothing(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read')
    result, failed = run_module(etcd_changes_carry, args(_ansible_check_mode=True, _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True
    assert result['put'] == [R1, R4] and result['deleted'] == [R3]
    assert result['actions'] == ['put %s' % R1, 'delete %s' % R3, 'put %s' % R4]
    assert result['skipped'] == [LEASED] and result['conflicts'] == [] and result['already'] == []
    assert result['source_revision'] == 8 and result['transactions'] == 0
    assert result['diff']['before'] == {R1: '{"uri":"/a"}', R3: '{"uri":"/c"}', R4: None}
    assert result['diff']['after'] == {R1: '{"uri":"/a2"}', R3: None, R4: '{"uri":"/d"}'}
    assert writes(gateway) == []
    assert result['msg'].startswith('would carry 3 keys from revision 4 to 8')


def test_source_read_at_the_revisions_asked(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read')
    run_module(etcd_changes_carry, args(_ansible_check_mode=True))
    now, changed, then = [c['body'] for c in gateway.paths('/v3/kv/range')]
    assert now == {'key': 'L2FwaXNpeC8=', 'range_end': 'L2FwaXNpeDA=', 'keys_only': True}
    assert changed == {'key': 'L2FwaXNpeC8=', 'range_end': 'L2FwaXNpeDA=', 'revision': '8', 'min_mod_revision': '5'}
    assert then == {'key': 'L2FwaXNpeC8=', 'range_end': 'L2FwaXNpeDA=', 'revision': '4'}
    # the target is read in one transaction of range ops, the leased key not among them
    assert txns(gateway) == [{'compare': [], 'failure': [], 'success': [
        {'request_range': {'key': B64[k]}} for k in (R1, R3, R4)]}]


def test_no_prefix_means_every_key(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read')
    run_module(etcd_changes_carry, args(prefix='', _ansible_check_mode=True))
    for call in gateway.paths('/v3/kv/range'):
        assert call['body']['key'] == 'AA==' and call['body']['range_end'] == 'AA=='


def test_carry_writes_guarded_by_mod_revisions(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', ['carry_dst_read_again', 'carry_dst_write'])
    result, failed = run_module(etcd_changes_carry, args())
    assert not failed, result
    assert result['changed'] and result['put'] == [R1, R4] and result['deleted'] == [R3]
    assert result['transactions'] == 1 and result['target_revision'] == 7
    write = writes(gateway)
    assert len(write) == 1
    # routes/1 was read at mod_revision 6 on the target, routes/3 at 4, routes/4 absent (0)
    assert write[0]['compare'] == [
        {'key': B64[R1], 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': '6'},
        {'key': B64[R3], 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': '4'},
        {'key': B64[R4], 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': '0'}]
    assert write[0]['success'] == [
        {'request_put': {'key': B64[R1], 'value': 'eyJ1cmkiOiIvYTIifQ=='}},
        {'request_delete_range': {'key': B64[R3]}},
        {'request_put': {'key': B64[R4], 'value': 'eyJ1cmkiOiIvZCJ9'}}]
    assert write[0]['failure'] == [{'request_range': {'key': B64[k]}} for k in (R1, R3, R4)]


def test_second_run_finds_everything_carried(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read_after')
    result, failed = run_module(etcd_changes_carry, args())
    assert not failed, result
    assert result['changed'] is False
    assert result['already'] == [R1, R3, R4] and result['put'] == [] and result['deleted'] == []
    assert writes(gateway) == []


def test_conflict_refused_listing_the_key_and_writing_nothing(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read_conflict')
    result, failed = run_module(etcd_changes_carry, args())
    assert failed
    assert 'Refusing to carry' in result['msg'] and '1 keys changed on both sides' in result['msg']
    assert R1 in result['msg'] and 'Nothing was written.' in result['msg']
    assert result['conflicts'] == [dict(key=R1, since='{"uri":"/a"}', source='{"uri":"/a2"}',
                                        target='{"uri":"/a-cluster"}')]
    # the rest of the plan is still shown, not written
    assert result['put'] == [R4] and result['deleted'] == [R3]
    assert writes(gateway) == []


def test_conflict_keep_source_overwrites(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', ['carry_dst_read_conflict', 'carry_dst_write'])
    result, failed = run_module(etcd_changes_carry, args(conflict='keep_source'))
    assert not failed, result
    assert [c['key'] for c in result['conflicts']] == [R1]
    assert result['put'] == [R1, R4]
    assert writes(gateway)[0]['compare'][0]['mod_revision'] == '5'


def test_concurrent_write_fails_the_transaction_and_names_the_key(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', ['carry_dst_read_again', 'carry_dst_write_failed'])
    result, failed = run_module(etcd_changes_carry, args())
    assert failed
    assert 'Keys changed on the target while they were being carried: %s.' % R1 in result['msg']
    assert result['moved'] == [R1] and result['put'] == [] and result['deleted'] == []


def test_compacted_source_refused(gateway, run_module):
    source(gateway, since='carry_src_compacted')
    result, failed = run_module(etcd_changes_carry, args())
    assert failed
    assert 'has compacted its history past revision 4' in result['msg']
    assert 'required revision has been compacted' in result['msg'] and 'Nothing was written.' in result['msg']
    assert txns(gateway) == []


def test_since_revision_newer_than_source_refused(gateway, run_module):
    gateway.route(SRC, '/v3/kv/range', 'carry_src_keys_now')
    result, failed = run_module(etcd_changes_carry, args(since_revision=100))
    assert failed
    assert 'since_revision 100 is newer than the source (revision 8' in result['msg']
    assert len(gateway.calls) == 1


def test_same_cluster_refused(gateway, run_module):
    source(gateway)
    read = gateway.answer('carry_dst_read')
    read['header']['cluster_id'] = gateway.answer('carry_src_keys_now')['header']['cluster_id']
    gateway.route(DST, '/v3/kv/txn', (200, json.dumps(read)))
    result, failed = run_module(etcd_changes_carry, args())
    assert failed and 'the same etcd cluster' in result['msg']
    assert writes(gateway) == []


def test_bad_since_revision(gateway, run_module):
    result, failed = run_module(etcd_changes_carry, args(since_revision=0))
    assert failed and 'since_revision must be' in result['msg']
    assert gateway.calls == []


def test_unreachable_source(gateway, run_module):
    gateway.refuse(SRC)
    result, failed = run_module(etcd_changes_carry, args())
    assert failed and 'Could not reach any etcd endpoint' in result['msg'] and SRC in result['msg']


def test_chunks_of_at_most_64_ops():
    assert [len(c) for c in etcd_changes_carry._chunks(list(range(130)))] == [64, 64, 2]


def test_show_shortens_long_values():
    assert etcd_changes_carry._show(None) is None
    assert etcd_changes_carry._show('x' * 200) == 'x' * 120 + '...(200 characters)'


def test_no_diff_without_diff_mode(gateway, run_module):
    source(gateway)
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read')
    result, failed = run_module(etcd_changes_carry, args(_ansible_check_mode=True))
    assert not failed, result
    assert 'diff' not in result and result['actions'] == ['put %s' % R1, 'delete %s' % R3, 'put %s' % R4]


def test_bad_since_revision_is_refused_before_any_request(gateway, run_module):
    result, failed = run_module(etcd_changes_carry, args(since_revision=0))
    assert failed and result['changed'] is False
    assert 'since_revision must be a revision of the source' in result['msg'] and 'Nothing was written' in result['msg']
    assert gateway.calls == []
