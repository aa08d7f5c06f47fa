# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_auth against replayed real etcd 3.4.23 / 3.5.16 gateway answers (fixtures rbac_*, recorded from a
single-member etcd on 127.0.0.1:27379 in the lab images: roles and users created with authentication off,
then authentication switched on, then the same state read with a root token, then revoked and removed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_auth

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'etcd')

EP = 'http://127.0.0.1:27379'
READS = ('/v3/auth/authenticate', '/v3/auth/role/list', '/v3/auth/role/get', '/v3/auth/user/list',
         '/v3/auth/user/get')
APISIX_ROLE = dict(name='apisix', permissions=[dict(prefix='/apisix', type='readwrite')])
ROOT_USER = dict(name='root', password='rootpw', roles=['root'])
APISIX_USER = dict(name='apisix', password='apisixpw', roles=['apisix'])


def args(**kw):
    kw.setdefault('endpoints', [EP])
    kw.setdefault('timeout', 2)
    kw.setdefault('user', 'root')
    kw.setdefault('password', 'rootpw')
    return kw


def full(**kw):
    kw.setdefault('roles', [APISIX_ROLE])
    kw.setdefault('users', [ROOT_USER, APISIX_USER])
    return args(**kw)


def writes(gateway):
    return [c for c in gateway.calls if c['path'] not in READS]


def recorded(gateway, name):
    """The request body the fixture was recorded with (what real etcd accepted)."""
    with open(os.path.join(FIXTURES, gateway.version, name + '.json')) as f:
        return json.load(f)['request']['body']


def empty_auth_off(gateway):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_not_enabled')
    gateway.route(EP, '/v3/auth/role/list', 'rbac_role_list_empty')
    gateway.route(EP, '/v3/auth/user/list', 'rbac_user_list_empty')


def present_auth_off(gateway, authenticate=('rbac_authenticate_not_enabled',)):
    gateway.route(EP, '/v3/auth/authenticate', list(authenticate))
    gateway.route(EP, '/v3/auth/role/list', 'rbac_role_list')
    gateway.route(EP, '/v3/auth/role/get', ['rbac_role_get_apisix', 'rbac_role_get_root'])
    gateway.route(EP, '/v3/auth/user/list', 'rbac_user_list')
    gateway.route(EP, '/v3/auth/user/get', ['rbac_user_get_apisix', 'rbac_user_get_root'])


def present_auth_on(gateway, authenticate=('rbac_authenticate_root',), apisix_role='rbac_token_role_get_apisix'):
    gateway.route(EP, '/v3/auth/authenticate', list(authenticate))
    gateway.route(EP, '/v3/auth/role/list', 'rbac_token_role_list')
    gateway.route(EP, '/v3/auth/role/get', [apisix_role, 'rbac_token_role_get_root'])
    gateway.route(EP, '/v3/auth/user/list', 'rbac_token_user_list')
    gateway.route(EP, '/v3/auth/user/get', ['rbac_token_user_get_apisix', 'rbac_token_user_get_root'])


CREATE_ACTIONS = ['add role apisix', 'grant role apisix readwrite on prefix /apisix', 'add user root',
                  'grant role root to user root', 'add user apisix', 'grant role apisix to user apisix']


# -- create, grant a prefix, idempotence ------------------------------------------------------------

def test_create_roles_and_users(gateway, run_module):
    empty_auth_off(gateway)
    gateway.route(EP, '/v3/auth/role/add', 'rbac_role_add_apisix')
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_role_grant_apisix_prefix')
    gateway.route(EP, '/v3/auth/user/add', ['rbac_user_add_root', 'rbac_user_add_apisix'])
    gateway.route(EP, '/v3/auth/user/grant', ['rbac_user_grant_root', 'rbac_user_grant_apisix'])
    result, failed = run_module(etcd_auth, full(_ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'] == CREATE_ACTIONS
    sent = [(c['path'], c['body']) for c in writes(gateway)]
    assert sent == [
        ('/v3/auth/role/add', recorded(gateway, 'rbac_role_add_apisix')),
        ('/v3/auth/role/grant', recorded(gateway, 'rbac_role_grant_apisix_prefix')),
        ('/v3/auth/user/add', recorded(gateway, 'rbac_user_add_root')),
        ('/v3/auth/user/grant', recorded(gateway, 'rbac_user_grant_root')),
        ('/v3/auth/user/add', recorded(gateway, 'rbac_user_add_apisix')),
        ('/v3/auth/user/grant', recorded(gateway, 'rbac_user_grant_apisix')),
    ]
    # the prefix permission: range_end is the prefix with its last byte plus one, like etcdctl --prefix
    assert writes(gateway)[1]['body']['perm'] == {'permType': 'READWRITE', 'key': 'L2FwaXNpeA==',
                                                  'range_end': 'L2FwaXNpeQ=='}  # /apisix .. /apisiy
    assert all('Authorization' not in c['headers'] for c in gateway.calls)  # authentication is off
    assert result['auth_enabled'] is False
    assert result['roles'] == {'apisix': {'permissions': [{'prefix': '/apisix', 'type': 'readwrite'}]}}
    assert result['users'] == {'apisix': {'roles': ['apisix']}, 'root': {'roles': ['root']}}
    assert result['diff']['before'] == {'auth_enabled': False, 'roles': {}, 'users': {}}
    assert result['diff']['after']['users'] == result['users']
    text = json.dumps(result)
    assert 'rootpw' not in text and 'apisixpw' not in text


def test_rerun_changes_nothing(gateway, run_module):
    present_auth_off(gateway)
    result, failed = run_module(etcd_auth, full(_ansible_diff=True))
    assert not failed, result
    assert result['changed'] is False and result['actions'] == []
    assert writes(gateway) == []
    assert result['diff']['before'] == result['diff']['after']
    assert result['roles']['apisix'] == {'permissions': [{'prefix': '/apisix', 'type': 'readwrite'}]}
    assert result['roles']['root'] == {'permissions': []}


def test_rerun_with_auth_on_changes_nothing(gateway, run_module):
    present_auth_on(gateway)
    result, failed = run_module(etcd_auth, full(auth_enabled=True))
    assert not failed, result
    assert result['changed'] is False and result['actions'] == [] and result['auth_enabled'] is True
    assert writes(gateway) == []
    token = gateway.answer('rbac_authenticate_root')['token']
    assert all(c['headers'].get('Authorization') == token for c in gateway.calls[1:])


# -- enabling authentication ------------------------------------------------------------------------

def test_enable_auth_then_connects_as_root(gateway, run_module):
    present_auth_off(gateway, authenticate=('rbac_authenticate_not_enabled', 'rbac_authenticate_root'))
    gateway.route(EP, '/v3/auth/enable', 'rbac_auth_enable')
    result, failed = run_module(etcd_auth, full(auth_enabled=True, _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True and result['actions'] == ['enable authentication']
    assert [c['path'] for c in writes(gateway)] == ['/v3/auth/enable']
    # right after enabling, the module authenticates with the connection options
    assert gateway.calls[-1]['path'] == '/v3/auth/authenticate'
    assert gateway.calls[-1]['body'] == {'name': 'root', 'password': 'rootpw'}
    assert result['diff']['before']['auth_enabled'] is False and result['diff']['after']['auth_enabled'] is True


def test_create_everything_and_enable_in_one_run(gateway, run_module):
    empty_auth_off(gateway)
    gateway.route(EP, '/v3/auth/authenticate', ['rbac_authenticate_not_enabled', 'rbac_authenticate_root'])
    gateway.route(EP, '/v3/auth/role/add', 'rbac_role_add_apisix')
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_role_grant_apisix_prefix')
    gateway.route(EP, '/v3/auth/user/add', ['rbac_user_add_root', 'rbac_user_add_apisix'])
    gateway.route(EP, '/v3/auth/user/grant', ['rbac_user_grant_root', 'rbac_user_grant_apisix'])
    gateway.route(EP, '/v3/auth/enable', 'rbac_auth_enable')
    result, failed = run_module(etcd_auth, full(auth_enabled=True))
    assert not failed, result
    assert result['actions'] == CREATE_ACTIONS + ['enable authentication']
    assert writes(gateway)[-1]['path'] == '/v3/auth/enable'


@pytest.mark.parametrize('users, expected', [
    ([APISIX_USER], 'etcd needs a user root with the root role first'),
    ([dict(ROOT_USER, roles=[]), APISIX_USER], 'user root does not have the root role'),
])
def test_enable_refused_without_root(gateway, run_module, users, expected):
    empty_auth_off(gateway)
    result, failed = run_module(etcd_auth, full(users=users, auth_enabled=True))
    assert failed
    assert result['msg'].startswith('Refusing to enable authentication, nothing was changed: ')
    assert expected in result['msg']
    assert result['changed'] is False and result['actions'] == []
    assert writes(gateway) == []


def test_enable_refused_without_connection_credentials(gateway, run_module):
    gateway.route(EP, '/v3/auth/role/list', 'rbac_role_list_empty')
    gateway.route(EP, '/v3/auth/user/list', 'rbac_user_list_empty')
    result, failed = run_module(etcd_auth, full(user=None, password=None, auth_enabled=True))
    assert failed
    assert 'give user and password' in result['msg']
    assert writes(gateway) == []


def test_enable_refused_when_connection_user_lacks_root_role(gateway, run_module):
    empty_auth_off(gateway)
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_apisix_not_enabled')
    result, failed = run_module(etcd_auth, full(user='apisix', password='apisixpw', auth_enabled=True))
    assert failed
    assert 'user apisix (the one the module connects with) would not have the root role' in result['msg']
    assert writes(gateway) == []


def test_enable_refused_when_root_password_differs_from_connection_password(gateway, run_module):
    empty_auth_off(gateway)
    result, failed = run_module(etcd_auth, full(password='other', auth_enabled=True))
    assert failed
    assert 'differs from the password option' in result['msg']
    assert writes(gateway) == []


def test_disable_auth(gateway, run_module):
    present_auth_on(gateway)
    gateway.route(EP, '/v3/auth/disable', 'rbac_auth_disable')
    result, failed = run_module(etcd_auth, args(auth_enabled=False))
    assert not failed, result
    assert result['actions'] == ['disable authentication'] and result['auth_enabled'] is False


# -- with authentication on: anonymous and wrong password -------------------------------------------

def test_anonymous_refused_once_auth_is_on(gateway, run_module):
    gateway.route(EP, '/v3/auth/role/list', 'rbac_anon_role_list')
    result, failed = run_module(etcd_auth, args(user=None, password=None))
    assert failed
    assert result['msg'].startswith('Authentication is on in this etcd: give user and password')
    assert result['etcd_message'] == 'etcdserver: user name is empty'
    assert len(gateway.calls) == 1


def test_wrong_password(gateway, run_module):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_wrong_password')
    result, failed = run_module(etcd_auth, full(password='wrong'))
    assert failed
    assert result['msg'].startswith('etcd refused the credentials or the permission (check user, password)')
    assert 'authentication failed, invalid user ID or password' in result['msg']
    assert result['error_type'] == 'EtcdAuthError'
    assert len(gateway.calls) == 1 and writes(gateway) == []


def test_non_root_user_may_not_manage(gateway, run_module):
    gateway.route(EP, '/v3/auth/authenticate', 'rbac_authenticate_apisix_token')
    gateway.route(EP, '/v3/auth/role/list', 'rbac_apisix_role_list')
    result, failed = run_module(etcd_auth, args(user='apisix', password='apisixpw'))
    assert failed
    assert result['msg'].startswith('User apisix may not manage etcd roles and users: that needs the root role')
    assert 'permission denied' in result['msg']


# -- passwords --------------------------------------------------------------------------------------

def test_update_password_always_changes_a_refused_password(gateway, run_module):
    present_auth_on(gateway, authenticate=('rbac_authenticate_root', 'rbac_authenticate_apisix_wrong'))
    gateway.route(EP, '/v3/auth/user/changepw', 'rbac_user_changepw_apisix')
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix', password='apisixpw2')],
                                                update_password='always'))
    assert not failed, result
    assert result['actions'] == ['change password of user apisix']
    checks = gateway.paths('/v3/auth/authenticate')
    assert checks[1]['body'] == {'name': 'apisix', 'password': 'apisixpw2'}
    assert [c['body'] for c in writes(gateway)] == [recorded(gateway, 'rbac_user_changepw_apisix')]
    assert 'apisixpw2' not in json.dumps(result)


def test_update_password_always_keeps_an_accepted_password(gateway, run_module):
    present_auth_on(gateway, authenticate=('rbac_authenticate_root', 'rbac_authenticate_apisix'))
    result, failed = run_module(etcd_auth, args(users=[APISIX_USER], update_password='always'))
    assert not failed, result
    assert result['changed'] is False and writes(gateway) == []


def test_update_password_on_create_never_checks(gateway, run_module):
    present_auth_on(gateway)
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix', password='apisixpw2')]))
    assert not failed, result
    assert result['changed'] is False
    assert len(gateway.paths('/v3/auth/authenticate')) == 1  # the connection only


def test_update_password_always_with_auth_off_sets_it_and_warns(gateway, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warnings.append(text))
    present_auth_off(gateway, authenticate=('rbac_authenticate_not_enabled', 'rbac_authenticate_apisix_not_enabled'))
    gateway.route(EP, '/v3/auth/user/changepw', 'rbac_user_changepw_apisix')
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix', password='apisixpw2')],
                                                update_password='always'))
    assert not failed, result
    assert result['actions'] == ['change password of user apisix']
    assert any('cannot tell whether the password of user apisix' in w for w in warnings)


def test_new_user_needs_a_password(gateway, run_module):
    empty_auth_off(gateway)
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix')]))
    assert failed and 'a password is needed to create it' in result['msg']
    assert writes(gateway) == []


# -- revoke and remove ------------------------------------------------------------------------------

def test_revoke_a_permission_not_listed(gateway, run_module):
    present_auth_on(gateway, apisix_role='rbac_token_role_get_apisix_two')
    gateway.route(EP, '/v3/auth/role/revoke', 'rbac_role_revoke_apisix_key')
    result, failed = run_module(etcd_auth, args(roles=[APISIX_ROLE], _ansible_diff=True))
    assert not failed, result
    assert result['actions'] == ['revoke from role apisix the read permission on key /extra']
    assert [c['body'] for c in writes(gateway)] == [recorded(gateway, 'rbac_role_revoke_apisix_key')]
    assert result['diff']['before']['roles']['apisix']['permissions'] == [
        {'prefix': '/apisix', 'type': 'readwrite'}, {'key': '/extra', 'type': 'read'}]
    assert result['roles']['apisix']['permissions'] == [{'prefix': '/apisix', 'type': 'readwrite'}]


def test_change_permission_type(gateway, run_module):
    present_auth_on(gateway, apisix_role='rbac_token_role_get_apisix_two')
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_role_grant_apisix_key_write')
    role = dict(name='apisix', permissions=[dict(prefix='/apisix', type='readwrite'), dict(key='/extra', type='write')])
    result, failed = run_module(etcd_auth, args(roles=[role]))
    assert not failed, result
    assert result['actions'] == ['change role apisix permission on key /extra from read to write']
    assert [c['body'] for c in writes(gateway)] == [recorded(gateway, 'rbac_role_grant_apisix_key_write')]


def test_grant_a_single_key_read(gateway, run_module):
    present_auth_on(gateway)
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_role_grant_apisix_key_read')
    role = dict(name='apisix', permissions=[dict(prefix='/apisix', type='readwrite'), dict(key='/extra', type='read')])
    result, failed = run_module(etcd_auth, args(roles=[role]))
    assert not failed, result
    assert result['actions'] == ['grant role apisix read on key /extra']
    assert [c['body'] for c in writes(gateway)] == [recorded(gateway, 'rbac_role_grant_apisix_key_read')]


def test_revoke_role_from_user(gateway, run_module):
    present_auth_on(gateway)
    gateway.route(EP, '/v3/auth/user/revoke', 'rbac_user_revoke_apisix')
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix', roles=[])]))
    assert not failed, result
    assert result['actions'] == ['revoke role apisix from user apisix']
    assert [c['body'] for c in writes(gateway)] == [recorded(gateway, 'rbac_user_revoke_apisix')]
    assert result['users']['apisix'] == {'roles': []}


def test_remove_user_and_role(gateway, run_module):
    present_auth_on(gateway)
    gateway.route(EP, '/v3/auth/role/delete', 'rbac_role_delete_apisix')
    gateway.route(EP, '/v3/auth/user/delete', 'rbac_user_delete_apisix')
    result, failed = run_module(etcd_auth, args(roles=[dict(name='apisix', state='absent')],
                                                users=[dict(name='apisix', state='absent')]))
    assert not failed, result
    assert result['actions'] == ['delete role apisix', 'delete user apisix']
    assert [(c['path'], c['body']) for c in writes(gateway)] == [
        ('/v3/auth/role/delete', recorded(gateway, 'rbac_role_delete_apisix')),
        ('/v3/auth/user/delete', recorded(gateway, 'rbac_user_delete_apisix'))]
    assert sorted(result['roles']) == ['root'] and sorted(result['users']) == ['root']


def test_remove_absent_is_unchanged(gateway, run_module):
    empty_auth_off(gateway)
    result, failed = run_module(etcd_auth, args(roles=[dict(name='apisix', state='absent')],
                                                users=[dict(name='apisix', state='absent')]))
    assert not failed and result['changed'] is False


@pytest.mark.parametrize('kw, expected', [
    (dict(users=[dict(name='root', state='absent')]), 'Refusing to delete user root while authentication is on'),
    (dict(users=[dict(name='root', roles=[])]), 'Refusing to revoke the root role from user root'),
    (dict(roles=[dict(name='root', state='absent')]), 'Refusing to delete the root role'),
])
def test_root_protected_while_auth_on(gateway, run_module, kw, expected):
    present_auth_on(gateway)
    result, failed = run_module(etcd_auth, args(**kw))
    assert failed and expected in result['msg']
    assert writes(gateway) == []


def test_unknown_role_refused(gateway, run_module):
    present_auth_on(gateway)
    result, failed = run_module(etcd_auth, args(users=[dict(name='apisix', roles=['apisix', 'nope'])]))
    assert failed and 'Cannot grant role nope to user apisix: there is no such role' in result['msg']
    assert writes(gateway) == []


# -- check mode -------------------------------------------------------------------------------------

def test_check_mode_makes_no_write_call(gateway, run_module):
    empty_auth_off(gateway)
    result, failed = run_module(etcd_auth, full(auth_enabled=True, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'] == CREATE_ACTIONS + ['enable authentication']
    assert writes(gateway) == []
    assert set(c['path'] for c in gateway.calls) <= set(READS)
    assert result['diff']['after']['auth_enabled'] is True and result['auth_enabled'] is True


def test_check_mode_revoke_makes_no_write_call(gateway, run_module):
    present_auth_on(gateway, apisix_role='rbac_token_role_get_apisix_two')
    result, failed = run_module(etcd_auth, args(roles=[APISIX_ROLE], users=[dict(name='apisix', state='absent')],
                                                _ansible_check_mode=True))
    assert not failed and result['changed']
    assert len(result['actions']) == 2 and writes(gateway) == []


# -- input checks -----------------------------------------------------------------------------------

@pytest.mark.parametrize('roles, expected', [
    ([dict(name='a', permissions=[dict(key='/x', prefix='/x', type='read')])], 'exactly one of key and prefix'),
    ([dict(name='a', permissions=[dict(type='read')])], 'exactly one of key and prefix'),
    ([dict(name='a', permissions=[dict(prefix='', type='read')])], 'an empty key or prefix is not allowed'),
    ([dict(name='a', permissions=[dict(prefix='/x', type='read'), dict(prefix='/x', type='write')])],
     'lists the permission on prefix /x twice'),
    ([dict(name='a'), dict(name='a')], 'roles lists a more than once'),
])
def test_bad_input(gateway, run_module, roles, expected):
    result, failed = run_module(etcd_auth, args(roles=roles))
    assert failed and expected in result['msg']
    assert gateway.calls == []


# -- the module base: failure half way, diff only in diff mode ----------------------------------------

def test_failure_half_way_names_what_was_done_before(gateway, run_module):
    empty_auth_off(gateway)
    gateway.route(EP, '/v3/auth/role/add', 'rbac_role_add_apisix')
    # the grant is refused (a recorded refusal of etcd): the role was added, nothing after it was done
    gateway.route(EP, '/v3/auth/role/grant', 'rbac_anon_put')
    result, failed = run_module(etcd_auth, full())
    assert failed
    assert result['msg'].startswith('Could not grant role apisix readwrite on prefix /apisix: ')
    assert result['msg'].endswith('Done before: add role apisix.'), result['msg']
    assert result['changed'] is True and result['actions'] == ['add role apisix']
    assert result['failed_action'] == 'grant role apisix readwrite on prefix /apisix'
    assert [c['path'] for c in writes(gateway)] == ['/v3/auth/role/add', '/v3/auth/role/grant']


def test_no_diff_without_diff_mode(gateway, run_module):
    present_auth_off(gateway)
    result, failed = run_module(etcd_auth, full(users=[ROOT_USER]))
    assert not failed, result
    assert 'diff' not in result
