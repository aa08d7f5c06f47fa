# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_client against replayed real etcd 3.4.23 / 3.5.16 gateway answers (tests/unit/fixtures/etcd)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import ssl
import urllib.error

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_client as ec

M1, M2, M3 = 'http://127.0.0.1:22379', 'http://127.0.0.1:22479', 'http://127.0.0.1:22579'
ID1, ID2, ID3 = 4782522711884662369, 8939032857194323073, 1736334208595272154
CLUSTER = 5494836824067190047


def leader_of(gateway):
    return int(gateway.answer('status_m1')['leader'])


URL_OF = {ID1: M1, ID2: M2, ID3: M3}


def client(*endpoints, **kw):
    return ec.EtcdClient(list(endpoints) or [M1, M2, M3], timeout=kw.pop('timeout', 3), **kw)


def test_format_and_parse_id():
    assert ec.format_id(ID1) == '425eef114c1f8661'
    assert ec.format_id(ID3) == '1818b2c362ae21da'
    assert ec.parse_id('425eef114c1f8661') == ID1
    assert ec.parse_id(str(ID1)) == ID1
    assert ec.parse_id('0x425eef114c1f8661') == ID1
    assert ec.parse_id(ID2) == ID2


def test_prefix_range_end():
    assert ec.prefix_range_end('/apisix/') == b'/apisix0'
    assert ec.prefix_range_end(b'a\xff') == b'b'


def test_member_list(gateway):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    answer = client().member_list()
    assert answer['header']['cluster_id'] == CLUSTER
    assert answer['header']['member_id'] == ID1
    by_name = dict((m['name'], m) for m in answer['members'])
    assert sorted(by_name) == ['m1', 'm2', 'm3']
    assert by_name['m2'] == dict(id=ID2, name='m2', peer_urls=['http://127.0.0.1:22480'],
                                 client_urls=[M2], is_learner=False)
    assert gateway.calls[0]['method'] == 'POST'


def test_member_list_unstarted_learner(gateway):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list_unstarted_learner')
    members = client().member_list()['members']
    unstarted = [m for m in members if not m['name']]
    assert len(unstarted) == 1
    assert unstarted[0]['is_learner'] is True
    assert unstarted[0]['client_urls'] == []
    assert unstarted[0]['peer_urls'] == ['http://127.0.0.1:22580']
    assert all(m['is_learner'] is False for m in members if m['name'])


def test_failover_when_first_refuses(gateway):
    gateway.refuse(M1)
    gateway.route(M2, '/v3/cluster/member/list', 'member_list')
    answer = client(M1, M2).member_list()
    assert len(answer['members']) == 3
    assert [c['endpoint'] for c in gateway.calls] == [M1, M2]


def test_failover_on_timeout(gateway):
    gateway.route(M1, '*', socket.timeout('timed out'))
    gateway.route(M2, '/v3/cluster/member/list', 'member_list')
    assert len(client(M1, M2).member_list()['members']) == 3


def test_all_endpoints_down_message_names_each(gateway):
    gateway.refuse(M1)
    gateway.route(M2, '*', urllib.error.URLError(socket.timeout('timed out')))
    with pytest.raises(ec.EtcdConnectionError) as exc:
        client(M1, M2).member_list()
    text = str(exc.value)
    assert 'POST /v3/cluster/member/list failed' in text
    assert '%s: connection refused' % M1 in text
    assert '%s: timed out' % M2 in text
    assert exc.value.attempts == [(M1, 'connection refused'), (M2, 'timed out')]


def test_no_failover_on_definitive_error(gateway):
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove_unknown')
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M1, M2).member_remove(12345)
    assert not isinstance(exc.value, ec.EtcdUnavailableError)
    assert exc.value.status == 404
    assert exc.value.code == 5
    assert exc.value.grpc_message == 'etcdserver: member not found'
    assert exc.value.endpoint == M1
    assert str(exc.value).startswith('POST /v3/cluster/member/remove failed: %s: HTTP 404 NOT_FOUND (5)' % M1)
    assert [c['endpoint'] for c in gateway.calls] == [M1]
    assert gateway.calls[0]['body'] == {'ID': '12345'}


def test_failover_on_unavailable_then_message_names_both(gateway):
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_no_leader')
    gateway.refuse(M2)
    with pytest.raises(ec.EtcdUnavailableError) as exc:
        client(M1, M2).member_add(['http://127.0.0.1:22580'], is_learner=True)
    text = str(exc.value)
    assert '%s: HTTP 503 UNAVAILABLE (14): etcdserver: unhealthy cluster' % M1 in text
    assert '%s: connection refused' % M2 in text


def test_failover_on_unavailable_succeeds_on_next(gateway):
    gateway.route(M1, '/v3/kv/range', 'range_no_leader')
    gateway.route(M2, '/v3/kv/range', 'range_key')
    kv = client(M1, M2).get('/apisix/routes/1')
    assert kv['value'] == '{"uri":"/x"}'
    assert [c['endpoint'] for c in gateway.calls] == [M1, M2]


def test_failover_on_deadline_exceeded(gateway):
    gateway.route(M1, '/v3/kv/put', 'put_no_leader')
    gateway.route(M2, '/v3/kv/put', 'put')
    assert client(M1, M2).put('/a', 'b')['header']['revision'] == 2


def test_tls_error_class(gateway):
    err = urllib.error.URLError(ssl.SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed'))
    gateway.route(M1, '*', err)
    gateway.route(M2, '*', err)
    with pytest.raises(ec.EtcdTLSError) as exc:
        client(M1, M2).member_list()
    assert 'CERTIFICATE_VERIFY_FAILED' in str(exc.value)
    assert M1 in str(exc.value) and M2 in str(exc.value)


def test_tls_options_passed(gateway):
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    client(M1, ca_cert='/ca.pem', client_cert='/c.pem', client_key='/k.pem', validate_certs=False).member_list()
    kw = gateway.calls[0]['kwargs']
    assert kw['ca_path'] == '/ca.pem' and kw['client_cert'] == '/c.pem' and kw['client_key'] == '/k.pem'
    assert kw['validate_certs'] is False
    assert kw['timeout'] == 3


def test_status(gateway):
    gateway.route(M3, '/v3/maintenance/status', 'status_m3')
    st = client().status(M3)
    assert st['member_id'] == ID3
    assert st['leader'] == leader_of(gateway)
    assert st['version'] in ('3.4.23', '3.5.16')
    assert st['is_learner'] is False
    assert st['raft_term'] == 2 and st['raft_index'] > 0 and st['db_size'] > 0 and st['db_size_in_use'] > 0
    assert st['header']['revision'] == 1
    assert st['errors'] == []
    assert st['endpoint'] == M3


def test_status_learner_and_no_leader(gateway):
    gateway.route(M3, '/v3/maintenance/status', 'status_learner')
    gateway.route(M1, '/v3/maintenance/status', 'status_no_leader')
    assert client().status(M3)['is_learner'] is True
    st = client().status(M1)
    assert st['leader'] == 0
    assert st['errors']


def test_health(gateway):
    gateway.route(M1, '/health', 'health_m1')
    gateway.route(M2, '/health', 'health_no_leader')
    gateway.refuse(M3)
    c = client()
    assert c.health(M1) == (True, '')
    healthy, reason = c.health(M2)
    assert healthy is False
    assert reason == ('RAFT NO LEADER' if gateway.version == 'etcd-3.5.16' else 'HTTP 503: health=false')
    assert c.health(M3) == (False, 'connection refused')
    assert gateway.calls[0]['method'] == 'GET'


def test_alarms(gateway):
    gateway.route(M1, '/v3/maintenance/alarm', ['alarm_list_empty', 'alarm_list_nospace'])
    c = client()
    assert c.alarms() == []
    assert c.alarms() == [dict(member_id=ID1, alarm='NOSPACE')]
    assert gateway.calls[0]['body']['action'] == 'GET'


def test_hashkv(gateway):
    if gateway.version == 'etcd-3.4.23':
        gateway.route(M1, '/v3/maintenance/hashkv', 'hashkv_m1')
        with pytest.raises(ec.EtcdNotSupportedError) as exc:
            client().hashkv(M1, 3)
        assert 'HTTP 404' in str(exc.value)
        return
    for ep, name in ((M1, 'hashkv_m1'), (M2, 'hashkv_m2')):
        gateway.route(ep, '/v3/maintenance/hashkv', name)
    c = client()
    a, b = c.hashkv(M1, 3), c.hashkv(M2, 3)
    assert a['hash'] == b['hash'] == 2776133566
    assert a['compact_revision'] == -1
    assert a['hash_revision'] == 3
    assert a['member_id'] == ID1 and b['member_id'] == ID2
    assert gateway.calls[0]['body'] == {'revision': '3'}


def test_hashkv_compacted_is_api_error(gateway):
    if gateway.version == 'etcd-3.4.23':
        pytest.skip('3.4 gateway has no hashkv route')
    gateway.route(M1, '/v3/maintenance/hashkv', 'hashkv_compacted')
    with pytest.raises(ec.EtcdApiError) as exc:
        client().hashkv(M1, 2)
    assert exc.value.code == 11
    assert 'required revision has been compacted' in str(exc.value)


def test_status_of_a_fragmented_member_then_defragmented(gateway):
    # One member holding 4000 keys of 2 KiB, 90% of them deleted and compacted; then its defragmentation.
    gateway.route(M1, '/v3/maintenance/status', ['status_fragmented', 'status_defragmented'])
    gateway.route(M1, '/v3/maintenance/defragment', 'defragment')
    c = client(M1)
    before = c.status(M1)
    assert before['db_size'] > 8 * before['db_size_in_use'] > 0
    assert c.defragment(M1, timeout=300)['member_id'] == 0  # etcd's answer is {} (no header)
    assert gateway.paths('/v3/maintenance/defragment')[0]['kwargs']['timeout'] == 300
    after = c.status(M1)
    assert after['db_size_in_use'] <= after['db_size'] < before['db_size'] / 8


def test_status_names_a_raised_alarm(gateway):
    gateway.route(M1, '/v3/maintenance/status', 'status_nospace')
    assert [e.strip() for e in client(M1).status(M1)['errors']] == [
        'memberID:%s alarm:NOSPACE' % gateway.answer('status_nospace')['header']['member_id']]


def test_compact(gateway):
    gateway.route(M1, '/v3/kv/compaction', 'compact_now')
    header = client(M1).compact(4002)
    assert header['revision'] == 4002
    assert gateway.calls[0]['body'] == {'revision': '4002', 'physical': True}


@pytest.mark.parametrize('fixture, text', [
    ('compact_compacted', 'required revision has been compacted'),
    ('compact_future', 'required revision is a future revision'),
])
def test_compact_refused(gateway, fixture, text):
    gateway.route(M1, '/v3/kv/compaction', fixture)
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M1).compact(4002)
    assert exc.value.code == 11 and text in exc.value.grpc_message


def test_defragment_needs_a_user_with_auth_on(gateway):
    gateway.route(M1, '/v3/maintenance/defragment', 'auth_no_token_defragment')
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M1).defragment(M1)
    assert 'auth: user name is empty' in str(exc.value)


def test_hash(gateway):
    gateway.route(M1, '/v3/maintenance/hash', 'hash_m1')
    gateway.route(M2, '/v3/maintenance/hash', 'hash_m2')
    c = client()
    assert c.hash(M1)['hash'] == c.hash(M2)['hash']


def test_member_add_learner(gateway):
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_learner')
    answer = client().member_add(['http://127.0.0.1:22580'], is_learner=True)
    assert answer['member']['is_learner'] is True
    assert answer['member']['name'] == ''
    assert answer['member']['id'] > 0
    assert any(m['id'] == answer['member']['id'] for m in answer['members'])
    assert gateway.calls[0]['body'] == {'peerURLs': ['http://127.0.0.1:22580'], 'isLearner': True}


def test_member_add_voting_body(gateway):
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_voting')
    answer = client().member_add(['http://127.0.0.1:22580'])
    assert answer['member']['is_learner'] is False
    assert gateway.calls[0]['body'] == {'peerURLs': ['http://127.0.0.1:22580']}


def test_member_add_duplicate_is_final(gateway):
    gateway.route(M1, '/v3/cluster/member/add', 'member_add_duplicate_peer')
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M1, M2).member_add(['http://127.0.0.1:22480'])
    assert exc.value.code == 9
    assert 'Peer URLs already exists' in str(exc.value)
    assert len(gateway.calls) == 1


def test_member_promote_update_remove(gateway):
    gateway.route(M1, '/v3/cluster/member/promote', 'member_promote')
    gateway.route(M1, '/v3/cluster/member/update', 'member_update_localhost')
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove')
    c = client()
    assert all(not m['is_learner'] for m in c.member_promote(7)['members'])
    updated = c.member_update(ID3, ['http://localhost:22580'])
    assert [m for m in updated['members'] if m['id'] == ID3][0]['peer_urls'] == ['http://localhost:22580']
    assert ID3 not in [m['id'] for m in c.member_remove(ID3)['members']]
    assert gateway.calls[0]['body'] == {'ID': '7'}
    assert gateway.calls[1]['body'] == {'ID': str(ID3), 'peerURLs': ['http://localhost:22580']}


def test_promote_unstarted_learner_refused(gateway):
    gateway.route(M1, '/v3/cluster/member/promote', 'member_promote_unstarted')
    with pytest.raises(ec.EtcdApiError) as exc:
        client().member_promote(5)
    assert 'in sync with leader' in str(exc.value)


def test_move_leader_goes_to_leader(gateway):
    # status (asked of the non-leader) names the leader; the transfer must go to the leader's client URL
    leader = leader_of(gateway)
    asked = [i for i in (ID1, ID2, ID3) if i != leader][0]
    target = [i for i in (ID1, ID2, ID3) if i not in (leader, asked)][0]
    names = {ID1: 'status_m1', ID2: 'status_m2', ID3: 'status_m3'}
    gateway.route(URL_OF[asked], '/v3/maintenance/status', names[asked])
    gateway.route(URL_OF[asked], '/v3/cluster/member/list', 'member_list')
    gateway.route(URL_OF[leader], '/v3/maintenance/transfer-leadership', 'move_leader')
    result = client(URL_OF[asked]).move_leader(target)
    assert result == dict(changed=True, previous_leader=leader, leader=target)
    assert gateway.calls[-1]['endpoint'] == URL_OF[leader]
    assert gateway.calls[-1]['body'] == {'targetID': str(target)}


def test_move_leader_noop_when_already_leader(gateway):
    gateway.route(M1, '/v3/maintenance/status', 'status_m1')
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    assert client(M1).move_leader(leader_of(gateway))['changed'] is False
    assert not gateway.paths('/v3/maintenance/transfer-leadership')


def test_move_leader_not_leader_error(gateway):
    gateway.route(M2, '/v3/maintenance/transfer-leadership', 'move_leader_not_leader')
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M2)._request('/v3/maintenance/transfer-leadership', {'targetID': '1'})
    assert 'not leader' in str(exc.value)


def test_put_get_range(gateway):
    gateway.route(M1, '/v3/kv/put', 'put')
    gateway.route(M1, '/v3/kv/range', ['range_prefix', 'range_missing'])
    c = client()
    assert c.put('/apisix/routes/1', '{"uri":"/x"}')['header']['revision'] == 2
    assert gateway.calls[0]['body'] == {'key': 'L2FwaXNpeC9yb3V0ZXMvMQ==', 'value': 'eyJ1cmkiOiIveCJ9'}
    kvs = c.get_prefix('/apisix/routes/')
    assert [kv['key'] for kv in kvs] == ['/apisix/routes/1', '/apisix/routes/2']
    assert kvs[1]['value'] == '{"uri":"/y"}' and kvs[1]['mod_revision'] == 3
    assert gateway.calls[1]['body']['range_end'] == 'L2FwaXNpeC9yb3V0ZXMw'
    assert c.get('/nope') is None


def test_nospace_is_final_api_error(gateway):
    gateway.route(M1, '/v3/kv/put', 'put_nospace')
    with pytest.raises(ec.EtcdApiError) as exc:
        client(M1, M2).put('/x', 'y')
    assert exc.value.code == 8 and exc.value.status == 429
    assert len(gateway.calls) == 1


def test_auth_token_flow(gateway):
    gateway.route(M1, '/v3/auth/authenticate', 'auth_authenticate')
    gateway.route(M1, '/v3/kv/put', 'auth_token_put')
    c = client(M1, user='root', password='rootpw')
    c.put('/a', 'b')
    assert gateway.calls[0]['path'] == '/v3/auth/authenticate'
    assert gateway.calls[0]['body'] == {'name': 'root', 'password': 'rootpw'}
    assert 'Authorization' not in gateway.calls[0]['headers']
    token = ec.json.loads(ec.json.dumps(gateway.calls[1]['headers']))['Authorization']
    assert token and '.' in token


def test_auth_bad_password(gateway):
    gateway.route(M1, '/v3/auth/authenticate', 'auth_bad_password')
    with pytest.raises(ec.EtcdAuthError) as exc:
        client(M1, M2, user='root', password='wrong').put('/a', 'b')
    assert 'authentication failed' in str(exc.value)
    assert M1 in str(exc.value)
    assert len(gateway.calls) == 1  # no fail-over on a definitive auth answer


def test_member_list_and_status_need_no_login(gateway):
    # Recorded with authentication on: etcd answers both without a token. A login goes through raft (no leader: it
    # only times out), so the cluster view of leaderless survivors stays readable.
    gateway.route(M1, '/v3/cluster/member/list', 'auth_no_token_member_list')
    gateway.route(M1, '/v3/maintenance/status', 'auth_no_token_status')
    c = client(M1, user='root', password='rootpw')
    assert [m['name'] for m in c.member_list()['members']] == ['m1', 'm2']
    assert c.status(M1)['db_size'] == 20480
    assert [call['path'] for call in gateway.calls] == ['/v3/cluster/member/list', '/v3/maintenance/status']
    assert all('Authorization' not in call['headers'] for call in gateway.calls)


def test_a_request_sent_without_login_logs_in_when_etcd_asks_for_a_user(gateway):
    gateway.route(M1, '/v3/maintenance/status', ['auth_no_token_put', 'auth_no_token_status'])
    gateway.route(M1, '/v3/auth/authenticate', 'auth_authenticate')
    c = client(M1, user='root', password='rootpw')
    assert c.status(M1)['db_size'] == 20480
    assert [call['path'] for call in gateway.calls] == [
        '/v3/maintenance/status', '/v3/auth/authenticate', '/v3/maintenance/status']
    assert 'Authorization' in gateway.calls[2]['headers']


def test_auth_missing_credentials(gateway):
    gateway.route(M1, '/v3/kv/put', 'auth_no_token_put')
    with pytest.raises(ec.EtcdAuthError) as exc:
        client(M1).put('/a', 'b')
    assert 'user name is empty' in str(exc.value)


def test_reauthenticate_once_on_invalid_token(gateway):
    gateway.route(M1, '/v3/auth/authenticate', 'auth_authenticate')
    gateway.route(M1, '/v3/kv/put', ['auth_bad_token_put', 'auth_token_put'])
    c = client(M1, user='root', password='rootpw')
    c.put('/a', 'b')
    assert [x['path'] for x in gateway.calls] == [
        '/v3/auth/authenticate', '/v3/kv/put', '/v3/auth/authenticate', '/v3/kv/put']


def test_reauthenticate_only_once(gateway):
    gateway.route(M1, '/v3/auth/authenticate', 'auth_authenticate')
    gateway.route(M1, '/v3/kv/put', 'auth_bad_token_put')
    with pytest.raises(ec.EtcdAuthError) as exc:
        client(M1, user='root', password='rootpw').put('/a', 'b')
    assert 'invalid auth token' in str(exc.value)
    assert len(gateway.paths('/v3/auth/authenticate')) == 2


def test_user_given_but_auth_disabled(gateway):
    gateway.route(M1, '/v3/auth/authenticate', 'auth_not_enabled')
    gateway.route(M1, '/v3/cluster/member/list', 'member_list')
    assert len(client(M1, user='root', password='x').member_list()['members']) == 3
    assert 'Authorization' not in gateway.calls[-1]['headers']


def test_unknown_path_not_supported(gateway):
    gateway.route(M1, '/v3/nonexistent', 'unknown_path')
    with pytest.raises(ec.EtcdNotSupportedError):
        client(M1)._request('/v3/nonexistent', {})


def test_invalid_endpoint():
    with pytest.raises(ec.EtcdError):
        ec.EtcdClient(['ftp://x:1'])
    assert ec.EtcdClient(['127.0.0.1:2379/']).endpoints == ['http://127.0.0.1:2379']


# -- range at a revision, txn (fixtures carry_*, recorded from single-node etcds on 26379/26479) ------------------

SRC, DST = 'http://127.0.0.1:26379', 'http://127.0.0.1:26479'


def test_range_at_revision_with_min_mod_revision(gateway):
    gateway.route(SRC, '/v3/kv/range', 'carry_src_changed')
    answer = client(SRC).range('/apisix/', prefix=True, revision=8, min_mod_revision=5)
    assert gateway.calls[0]['body'] == {'key': 'L2FwaXNpeC8=', 'range_end': 'L2FwaXNpeDA=', 'revision': '8',
                                        'min_mod_revision': '5'}
    assert answer['header']['revision'] == 8
    assert [(kv['key'], kv['mod_revision'], kv['lease'] > 0) for kv in answer['kvs']] == [
        ('/apisix/data_plane/server_info/x', 8, True), ('/apisix/routes/1', 5, False), ('/apisix/routes/4', 6, False)]


def test_range_compacted_and_future_revisions_are_final_errors(gateway):
    gateway.route(SRC, '/v3/kv/range', ['carry_src_compacted', 'carry_src_future'])
    for expected in ('required revision has been compacted', 'required revision is a future revision'):
        with pytest.raises(ec.EtcdApiError) as exc:
            client(SRC, M2).range('/apisix/', prefix=True, revision=4)
        assert exc.value.code == 11 and expected in exc.value.grpc_message
    assert [c['endpoint'] for c in gateway.calls] == [SRC, SRC]


def test_txn_of_ranges(gateway):
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_read')
    answer = client(DST).txn(success=[ec.txn_range('/apisix/routes/1'), ec.txn_range('/apisix/routes/4', revision=3)])
    assert gateway.calls[0]['body'] == {'compare': [], 'failure': [], 'success': [
        {'request_range': {'key': 'L2FwaXNpeC9yb3V0ZXMvMQ=='}},
        {'request_range': {'key': 'L2FwaXNpeC9yb3V0ZXMvNA==', 'revision': '3'}}]}
    assert answer['succeeded'] is True and answer['header']['revision'] == 4
    assert [r['op'] for r in answer['responses']] == ['range', 'range', 'range']
    assert answer['responses'][0]['kvs'][0]['value'] == '{"uri":"/a"}'
    assert answer['responses'][2]['kvs'] == [] and answer['responses'][2]['count'] == 0


def test_txn_write_succeeded(gateway):
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_write')
    answer = client(DST).txn(compare=[ec.txn_compare('/apisix/routes/4', 'MOD', 'EQUAL', 0)],
                             success=[ec.txn_put('/apisix/routes/4', '{"uri":"/d"}'), ec.txn_delete('/apisix/routes/3')])
    body = gateway.calls[0]['body']
    assert body['compare'] == [{'key': 'L2FwaXNpeC9yb3V0ZXMvNA==', 'target': 'MOD', 'result': 'EQUAL',
                                'mod_revision': '0'}]
    assert body['success'] == [{'request_put': {'key': 'L2FwaXNpeC9yb3V0ZXMvNA==', 'value': 'eyJ1cmkiOiIvZCJ9'}},
                               {'request_delete_range': {'key': 'L2FwaXNpeC9yb3V0ZXMvMw=='}}]
    assert answer['succeeded'] is True
    assert [r['op'] for r in answer['responses']] == ['put', 'delete', 'put']
    assert answer['responses'][1]['deleted'] == 1 and answer['responses'][0]['header']['revision'] == 7


def test_txn_compare_failed_runs_the_failure_ops(gateway):
    # the gateway leaves "succeeded" out when it is false
    gateway.route(DST, '/v3/kv/txn', 'carry_dst_write_failed')
    answer = client(DST).txn(compare=[ec.txn_compare('/apisix/routes/1', 'MOD', 'EQUAL', 2)],
                             success=[ec.txn_put('/apisix/routes/1', 'x')], failure=[ec.txn_range('/apisix/routes/1')])
    assert answer['succeeded'] is False
    assert answer['responses'][0]['op'] == 'range'
    assert answer['responses'][0]['kvs'][0]['mod_revision'] == 5


def test_txn_value_compare_and_too_many_ops(gateway):
    gateway.route(DST, '/v3/kv/txn', ['carry_txn_value_compare', 'carry_txn_too_many_ops'])
    c = client(DST, M2)
    assert c.txn(compare=[ec.txn_compare('/apisix/routes/2', 'VALUE', 'EQUAL', '{"uri":"/b"}')])['succeeded']
    assert gateway.calls[0]['body']['compare'] == [{'key': 'L2FwaXNpeC9yb3V0ZXMvMg==', 'target': 'VALUE',
                                                    'result': 'EQUAL', 'value': 'eyJ1cmkiOiIvYiJ9'}]
    with pytest.raises(ec.EtcdApiError) as exc:
        c.txn(success=[ec.txn_put('/k%d' % i, 'v') for i in range(129)])
    assert exc.value.code == 3 and 'too many operations in txn request' in exc.value.grpc_message
    assert len(gateway.calls) == 2  # a definitive answer: not retried on M2


# -- while a CORRUPT alarm is raised (recorded on one member with an unstarted learner, the alarm raised for the
# learner, authentication on) ------------------------------------------------------------------------------------

def test_health_while_corrupt_and_with_the_alarm_excluded(gateway):
    gateway.route(M1, '/health', 'health_corrupt')
    gateway.route(M1, '/health?exclude=CORRUPT', 'health_corrupt_excluded')
    gateway.route(M2, '/health?exclude=CORRUPT', 'health_corrupt_nospace_excluded')
    c = client()
    healthy, reason = c.health(M1)
    assert healthy is False
    assert reason == ('ALARM CORRUPT' if gateway.version == 'etcd-3.5.16' else 'HTTP 503: health=false')
    assert c.health(M1, exclude=['CORRUPT']) == (True, '')
    # a NOSPACE alarm beside it is not excluded
    assert c.health(M2, exclude=['CORRUPT'])[0] is False
    assert [call['query'] for call in gateway.calls] == ['', 'exclude=CORRUPT', 'exclude=CORRUPT']


def test_writes_are_refused_reads_and_logins_served_while_corrupt(gateway):
    gateway.route(M1, '/v3/kv/put', 'put_corrupt')
    gateway.route(M1, '/v3/kv/range', 'range_corrupt')
    gateway.route(M1, '/v3/auth/authenticate', 'auth_authenticate_corrupt')
    c = client(M1, user='root', password='recordpw')
    assert c.get('/a')['value'] == 'b'
    with pytest.raises(ec.EtcdApiError) as exc:
        c.put('/x', 'y')
    assert exc.value.code == 15 and 'corrupt cluster' in str(exc.value)
    assert len(gateway.paths('/v3/kv/put')) == 1


def test_the_alarm_of_a_removed_member_stays_until_disarmed(gateway):
    learner = gateway.answer('alarm_list_corrupt')['alarms'][0]['memberID']
    gateway.route(M1, '/v3/cluster/member/remove', 'member_remove_corrupt')
    gateway.route(M1, '/v3/maintenance/alarm',
                  ['alarm_list_corrupt_removed', 'alarm_disarm_corrupt', 'alarm_list_after_disarm_corrupt'])
    c = client(M1)
    assert int(learner) not in [m['id'] for m in c.member_remove(int(learner))['members']]
    assert c.alarms() == [dict(member_id=int(learner), alarm='CORRUPT')]
    gateway.route(M1, '/health', ['health_corrupt_removed', 'health_after_disarm_corrupt'])
    assert c.health(M1)[0] is False
    # etcd answers a deactivation with the alarm deactivated
    assert c.alarm_disarm(int(learner), 'CORRUPT') == [dict(member_id=int(learner), alarm='CORRUPT')]
    assert gateway.calls[-1]['body'] == {'action': 'DEACTIVATE', 'memberID': learner, 'alarm': 'CORRUPT'}
    assert c.alarms() == []
    assert c.health(M1) == (True, '')
    gateway.route(M1, '/v3/kv/put', 'put_after_disarm_corrupt')
    assert c.put('/x', 'y')['header']['revision'] == 3
