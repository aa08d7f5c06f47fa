# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EtcdClient's RBAC calls and what etcd does with a role limited to /apisix, against replayed real etcd 3.4.23 /
3.5.16 answers (fixtures rbac_*, recorded from a single-member etcd on 127.0.0.1:27379 in the lab images)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_client as ec

EP = 'http://127.0.0.1:27379'


def client(**kw):
    return ec.EtcdClient([EP], timeout=2, **kw)


def test_prefix_range_end_like_etcdctl():
    assert ec.prefix_range_end('/apisix') == b'/apisiy'
    assert ec.prefix_range_end(b'a\xff') == b'b'


def test_role_get_reads_prefix_and_default_read_type(gateway):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_root_again')
    gateway.route(EP, '/v3/auth/role/get', 'rbac_token_role_get_apisix_two')
    perms = client(user='root', password='rootpw').role_get('apisix')
    # the gateway leaves out permType READ (the enum's zero value) and the empty range_end of a single key
    assert perms == [dict(key=b'/apisix', range_end=b'/apisiy', type='READWRITE'),
                     dict(key=b'/extra', range_end=b'', type='READ')]
    assert gateway.calls[-1]['body'] == {'role': 'apisix'}


def test_role_get_without_permissions(gateway):
    gateway.route(EP, '/v3/auth/role/get', 'rbac_role_get_root')
    assert client().role_get('root') == []


def test_lists_and_user_roles(gateway):
    gateway.route(EP, '/v3/auth/role/list', ['rbac_role_list_empty', 'rbac_role_list'])
    gateway.route(EP, '/v3/auth/user/list', ['rbac_user_list_empty', 'rbac_user_list'])
    gateway.route(EP, '/v3/auth/user/get', 'rbac_user_get_apisix')
    c = client()
    assert c.role_list() == [] and c.role_list() == ['apisix', 'root']
    assert c.user_list() == [] and c.user_list() == ['apisix', 'root']
    assert c.user_get('apisix') == ['apisix']


def test_grant_and_revoke_bodies_match_what_etcd_accepted(gateway):
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_role_grant_apisix_prefix')
    gateway.route(EP, '/v3/auth/role/revoke', 'rbac_role_revoke_apisix_key')
    c = client()
    c.role_grant('apisix', '/apisix', ec.prefix_range_end('/apisix'), 'READWRITE')
    c.role_revoke('apisix', '/extra')
    sent = [x['body'] for x in gateway.calls]
    assert sent == [gateway_request(gateway, 'rbac_role_grant_apisix_prefix'),
                    gateway_request(gateway, 'rbac_role_revoke_apisix_key')]


def gateway_request(gateway, name):
    """The request body the fixture was recorded with (what real etcd accepted)."""
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'etcd', gateway.version, name + '.json')
    with open(path) as f:
        return json.load(f)['request']['body']


@pytest.mark.parametrize('answer, expected', [
    ('rbac_authenticate_apisix', True),
    ('rbac_authenticate_apisix_wrong', False),
    ('rbac_authenticate_apisix_not_enabled', None),
])
def test_check_password(gateway, answer, expected):
    gateway.route(EP, '/v3/auth/authenticate', answer)
    assert client().check_password('apisix', 'apisixpw') is expected
    assert 'Authorization' not in gateway.calls[0]['headers']


def test_forget_token_authenticates_again(gateway):
    gateway.route(EP, '/v3/auth/authenticate', ['rbac_authenticate_not_enabled', 'rbac_authenticate_root'])
    gateway.route(EP, '/v3/auth/role/list', 'rbac_token_role_list')
    c = client(user='root', password='rootpw')
    assert c.authenticate() == ''
    c.forget_token()
    c.role_list()
    assert gateway.calls[-1]['headers']['Authorization'] == gateway.answer('rbac_authenticate_root')['token']


# -- what the apisix role allows, and anonymous access once authentication is on -----------------------

def test_apisix_user_reads_and_writes_under_apisix(gateway):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_apisix_token')
    gateway.route(EP, '/v3/kv/put', 'rbac_apisix_put_inside')
    gateway.route(EP, '/v3/kv/range', 'rbac_apisix_range_inside')
    c = client(user='apisix', password='apisixpw')
    c.put('/apisix/routes/1', '{"id":"1"}')
    assert c.get('/apisix/routes/1')['value'] == '{"id":"1"}'


@pytest.mark.parametrize('path, answer', [('/v3/kv/put', 'rbac_apisix_put_outside'),
                                          ('/v3/kv/range', 'rbac_apisix_range_outside')])
def test_apisix_user_denied_outside_apisix(gateway, path, answer):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_apisix_token')
    gateway.route(EP, path, answer)
    c = client(user='apisix', password='apisixpw')
    with pytest.raises(ec.EtcdAuthError) as exc:
        if path.endswith('put'):
            c.put('/other/x', 'x')
        else:
            c.get('/other/x')
    assert exc.value.code == ec.GRPC_PERMISSION_DENIED and exc.value.status == 403
    assert exc.value.grpc_message == 'etcdserver: permission denied'


def test_apisix_user_cannot_manage_rbac(gateway):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_apisix_token')
    gateway.route(EP, '/v3/auth/role/list', 'rbac_apisix_role_list')
    with pytest.raises(ec.EtcdAuthError) as exc:
        client(user='apisix', password='apisixpw').role_list()
    assert exc.value.grpc_message == 'etcdserver: permission denied'


@pytest.mark.parametrize('path, answer', [('/v3/kv/put', 'rbac_anon_put'), ('/v3/kv/range', 'rbac_anon_range')])
def test_anonymous_refused_when_auth_is_on(gateway, path, answer):
    gateway.route(EP, path, answer)
    with pytest.raises(ec.EtcdAuthError) as exc:
        if path.endswith('put'):
            client().put('/apisix/routes/1', '{}')
        else:
            client().get('/apisix/routes/1')
    assert exc.value.grpc_message == 'etcdserver: user name is empty'
    assert len(gateway.calls) == 1


def test_root_protected_by_etcd_while_auth_is_on(gateway):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_root_again')
    gateway.route(EP, '/v3/auth/user/delete', 'rbac_user_delete_root')
    gateway.route(EP, '/v3/auth/user/revoke', 'rbac_user_revoke_root_root')
    c = client(user='root', password='rootpw')
    for call in (lambda: c.user_delete('root'), lambda: c.user_revoke('root', 'root')):
        with pytest.raises(ec.EtcdAuthError) as exc:
            call()
        assert exc.value.grpc_message == 'etcdserver: invalid auth management'


def test_enable_disable_and_password_change(gateway):
    gateway.route(EP, '/v3/auth/enable', 'rbac_auth_enable')
    gateway.route(EP, '/v3/auth/disable', 'rbac_auth_disable')
    gateway.route(EP, '/v3/auth/user/changepw', 'rbac_user_changepw_apisix')
    c = client()
    assert c.auth_enable()['cluster_id'] and c.auth_disable()['cluster_id']
    c.user_change_password('apisix', 'apisixpw2')
    assert gateway.calls[-1]['body'] == gateway_request(gateway, 'rbac_user_changepw_apisix')
