# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_kv against replayed real etcd 3.4.23 / 3.5.16 gateway answers (put, range_key: /apisix/routes/1 holding
{"uri":"/x"}; range_missing; range_no_leader). No deleterange answer was recorded: the delete tests answer with
the put's real header and a `deleted` count, the shape etcd gives."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_kv

EP = 'http://127.0.0.1:22379'
KEY, VALUE = '/apisix/routes/1', '{"uri":"/x"}'


def args(**kw):
    kw.setdefault('endpoints', [EP])
    kw.setdefault('key', KEY)
    kw.setdefault('timeout', 2)
    return kw


def deleted_answer(gateway, count=1):
    header = gateway.answer('put')['header']
    return 200, json.dumps(dict(header=header, deleted=str(count)))


def writes(gateway):
    return gateway.paths('/v3/kv/put') + gateway.paths('/v3/kv/deleterange')


def test_read_gives_revisions_and_length_not_the_value(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    result, failed = run_module(etcd_kv, args())
    assert not failed, result
    assert result['changed'] is False and result['exists'] is True
    assert result['value_length'] == len(VALUE) and 'value' not in result
    assert VALUE not in json.dumps(result)
    assert result['mod_revision'] == 2 and result['version'] == 1 and result['revision'] == 3
    assert result['cluster_id'] == '%016x' % int(gateway.answer('range_key')['header']['cluster_id'])


def test_read_with_show_value(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    result, failed = run_module(etcd_kv, args(show_value=True))
    assert not failed, result
    assert result['value'] == VALUE


def test_read_of_a_missing_key(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_missing')
    result, failed = run_module(etcd_kv, args(key='/nope', show_value=True))
    assert not failed, result
    assert result['exists'] is False and result['value_length'] == 0 and 'value' not in result
    assert result['mod_revision'] == 0 and result['revision'] == 3


def test_put_writes_and_reports_the_revision(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_missing')
    gateway.route(EP, '/v3/kv/put', 'put')
    result, failed = run_module(etcd_kv, args(state='present', value=VALUE))
    assert not failed, result
    assert result['changed'] is True and result['exists'] is True
    assert result['actions'] == ['put %s (%d bytes)' % (KEY, len(VALUE))]
    assert result['mod_revision'] == 2 and result['revision'] == 2
    assert [c['body'] for c in gateway.paths('/v3/kv/put')] == [dict(key='L2FwaXNpeC9yb3V0ZXMvMQ==', value='eyJ1cmkiOiIveCJ9')]
    assert VALUE not in json.dumps(result)


def test_put_in_check_mode_writes_nothing(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_missing')
    result, failed = run_module(etcd_kv, args(state='present', value=VALUE, _ansible_check_mode=True,
                                              _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True and result['actions'] == ['would put %s (%d bytes)' % (KEY, len(VALUE))]
    assert writes(gateway) == []
    assert result['diff'] == dict(before={KEY: None}, after={KEY: '(%d bytes)' % len(VALUE)})
    assert VALUE not in json.dumps(result)


def test_put_of_the_same_value_changes_nothing(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    result, failed = run_module(etcd_kv, args(state='present', value=VALUE))
    assert not failed, result
    assert result['changed'] is False and result['actions'] == [] and writes(gateway) == []


def test_diff_shows_values_only_when_asked(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    gateway.route(EP, '/v3/kv/put', 'put2')
    result, failed = run_module(etcd_kv, args(state='present', value='{"uri":"/y"}', show_value=True,
                                              _ansible_diff=True))
    assert not failed, result
    assert result['diff'] == dict(before={KEY: VALUE}, after={KEY: '{"uri":"/y"}'})
    assert result['value'] == '{"uri":"/y"}'


def test_no_diff_without_diff_mode(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    gateway.route(EP, '/v3/kv/put', 'put2')
    result, failed = run_module(etcd_kv, args(state='present', value='{"uri":"/y"}'))
    assert not failed, result
    assert 'diff' not in result


def test_delete(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    gateway.route(EP, '/v3/kv/deleterange', deleted_answer(gateway))
    result, failed = run_module(etcd_kv, args(state='absent', _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True and result['exists'] is False and result['actions'] == ['delete %s' % KEY]
    assert result['diff']['after'] == {KEY: None} and result['diff']['before'][KEY].startswith('(%d bytes' % len(VALUE))
    assert len(gateway.paths('/v3/kv/deleterange')) == 1


def test_delete_in_check_mode_and_of_a_missing_key(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_key')
    result, failed = run_module(etcd_kv, args(state='absent', _ansible_check_mode=True))
    assert not failed and result['actions'] == ['would delete %s' % KEY] and writes(gateway) == []
    gateway.route(EP, '/v3/kv/range', 'range_missing')
    result, failed = run_module(etcd_kv, args(key='/nope', state='absent'))
    assert not failed and result['changed'] is False and writes(gateway) == []


def test_without_wait_no_leader_fails_at_once(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_no_leader')
    result, failed = run_module(etcd_kv, args())
    assert failed
    assert 'cannot serve the request now' in result['msg'] and EP in result['msg'], result['msg']
    assert len(gateway.paths('/v3/kv/range')) == 1


def test_wait_outlasts_a_front_that_does_not_answer_yet(gateway, run_module):
    import urllib.error
    refused = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))
    gateway.route(EP, '/v3/kv/range', [refused, 'range_no_leader', 'range_missing'])
    gateway.route(EP, '/v3/kv/put', 'put')
    result, failed = run_module(etcd_kv, args(state='present', value=VALUE, wait=True, wait_sleep=0.01))
    assert not failed, result
    assert result['changed'] is True and len(gateway.paths('/v3/kv/range')) == 3


def test_wait_gives_up_after_wait_timeout_naming_the_endpoint(gateway, run_module):
    gateway.refuse(EP)
    result, failed = run_module(etcd_kv, args(wait=True, wait_timeout=1, wait_sleep=0.2))
    assert failed and 'Could not reach any etcd endpoint' in result['msg'] and EP in result['msg'], result
    assert len(gateway.paths()) > 1


def test_wait_does_not_retry_a_refusal(gateway, run_module):
    gateway.route(EP, '/v3/kv/range', 'range_missing')
    gateway.route(EP, '/v3/kv/put', 'rbac_anon_put')
    result, failed = run_module(etcd_kv, args(state='present', value=VALUE, wait=True, wait_sleep=0.01))
    assert failed and result['changed'] is False
    assert len(gateway.paths('/v3/kv/put')) == 1
