#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_auth
short_description: Declarative etcd v3 RBAC - roles with key and prefix permissions, users, authentication on or off
version_added: 0.1.0
description:
  - Makes the roles and users listed in O(roles) and O(users) look as described, and switches etcd authentication
    on or off (O(auth_enabled)). Roles and users that are not listed are left as they are.
  - Speaks the v3 JSON gateway on the client port of the members in O(endpoints); works with etcd 3.4 and 3.5.
  - Once authentication is on, every RBAC request needs a user with the C(root) role, given in O(user) and
    O(password). While authentication is off the module works without them (a given O(user) is then not
    checked, as with C(etcdctl --user)).
  - "Enabling authentication: etcd needs a user C(root) holding the C(root) role. The module refuses, changing
    nothing, unless that user exists or is created in the same task, and unless O(user) and O(password) are
    given and O(user) will hold the C(root) role (otherwise the module could not connect any more). Right after
    enabling, the module authenticates with O(user) and O(password) to prove that they work."
  - "The C(root) user and its C(root) role cannot be removed while authentication is on: such a task is refused
    before anything is changed (etcd itself answers C(invalid auth management))."
  - "Passwords: etcd never tells whether a password matches except by authenticating. With
    O(update_password=on_create) the password is set only when the user is created. With
    O(update_password=always) the module authenticates as the user and changes the password only when that
    fails. While authentication is off etcd checks no password at all; then V(always) sets it on every run
    (reported as changed, with a warning)."
  - Passwords are never returned, logged or shown in the diff.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
    details: Only reads (lists, gets and, with O(update_password=always), authentication attempts) are sent.
  diff_mode:
    support: full
    details: Roles with their permissions, users with their roles and whether authentication is on, before and
      after. Never passwords.
options:
  roles:
    description:
      - Roles to manage. Roles not listed are left alone.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Role name. C(root) is etcd's administrator role; it needs no permissions.
        type: str
        required: true
      state:
        description:
          - V(present) creates the role when missing; V(absent) deletes it (etcd also takes it away from every
            user that had it).
        type: str
        choices: [present, absent]
        default: present
      permissions:
        description:
          - The complete list of the role's permissions. Permissions the role has that are not listed are
            revoked; a different O(roles[].permissions[].type) on the same key or prefix is changed.
          - Left out, the role's permissions are not managed (a new role gets none). V([]) revokes them all.
        type: list
        elements: dict
        suboptions:
          key:
            description:
              - One key. Exactly one of O(roles[].permissions[].key) and O(roles[].permissions[].prefix).
            type: str
          prefix:
            description:
              - Every key starting with this text (the range end is the prefix with its last byte plus one, as
                C(etcdctl role grant-permission --prefix) does).
            type: str
          type:
            description:
              - What the permission allows.
            type: str
            choices: [read, write, readwrite]
            required: true
  users:
    description:
      - Users to manage. Users not listed are left alone.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - User name. etcd's administrator is C(root) with the role C(root).
        type: str
        required: true
      password:
        description:
          - Password. Required to create the user; see O(update_password) for existing users.
        type: str
      roles:
        description:
          - The complete list of the user's roles; missing ones are granted, others revoked.
            Left out, the roles are not managed (a new user gets none).
          - A role must exist or be created in O(roles) in the same task; C(root) always exists for etcd.
        type: list
        elements: str
      state:
        description:
          - V(present) creates the user when missing; V(absent) deletes it.
        type: str
        choices: [present, absent]
        default: present
  update_password:
    description:
      - V(on_create) sets the password only when the user is created.
      - V(always) authenticates as each listed user that has a password and changes the password when etcd
        refuses it. While authentication is off etcd cannot check passwords, so it is then set on every run.
    type: str
    choices: [always, on_create]
    default: on_create
  auth_enabled:
    description:
      - V(true) switches authentication on (after the role and user changes), V(false) switches it off (before
        them). Left out, it stays as it is.
    type: bool
notes:
  - "Order of the changes: authentication off, then the roles in the order listed, then the users in the order
    listed, then authentication on."
  - A change that fails half way leaves what was done before it done; the error says what that was. Run the
    task again to finish.
  - etcd 3.4 and 3.5 cache simple auth tokens per member; the module authenticates again when a member answers
    that a token is invalid or stale.
seealso:
  - module: gatewayops.apisix_ha.etcd_member
  - name: etcd role-based access control
    description: etcd's documentation of users, roles and permissions.
    link: https://etcd.io/docs/v3.5/op-guide/authentication/rbac/
"""

EXAMPLES = r"""
# APISIX reads and writes its configuration under /apisix; give it a user that can do nothing else, keep root
# for the operators, then switch authentication on. The secrets come from vaulted variables.
- name: etcd RBAC for APISIX
  gatewayops.apisix_ha.etcd_auth:
    endpoints: "{{ etcd_endpoints }}"
    user: root
    password: "{{ vault_etcd_root_password }}"
    roles:
      - name: apisix
        permissions:
          - prefix: /apisix
            type: readwrite
    users:
      - name: root
        password: "{{ vault_etcd_root_password }}"
        roles: [root]
      - name: apisix
        password: "{{ vault_etcd_apisix_password }}"
        roles: [apisix]
    auth_enabled: true

- name: What would change (reads only)
  gatewayops.apisix_ha.etcd_auth:
    endpoints: "{{ etcd_endpoints }}"
    user: root
    password: "{{ vault_etcd_root_password }}"
    roles:
      - name: apisix
        permissions:
          - prefix: /apisix
            type: readwrite
  check_mode: true
  diff: true

- name: Rotate the apisix password (authenticates as apisix first, changes it only if that fails)
  gatewayops.apisix_ha.etcd_auth:
    endpoints: "{{ etcd_endpoints }}"
    user: root
    password: "{{ vault_etcd_root_password }}"
    users:
      - name: apisix
        password: "{{ vault_etcd_apisix_password_new }}"
    update_password: always

- name: Read-only access to one key for a monitoring user
  gatewayops.apisix_ha.etcd_auth:
    endpoints: "{{ etcd_endpoints }}"
    user: root
    password: "{{ vault_etcd_root_password }}"
    roles:
      - name: monitor
        permissions:
          - key: /apisix/upstreams/1
            type: read
    users:
      - name: monitor
        password: "{{ vault_etcd_monitor_password }}"
        roles: [monitor]

- name: Remove a user and a role
  gatewayops.apisix_ha.etcd_auth:
    endpoints: "{{ etcd_endpoints }}"
    user: root
    password: "{{ vault_etcd_root_password }}"
    users:
      - name: monitor
        state: absent
    roles:
      - name: monitor
        state: absent

# Put every etcd module's connection options in one place.
- name: Connection options for all etcd modules of the play
  module_defaults:
    group/gatewayops.apisix_ha.etcd:
      endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
      ca_cert: /etc/etcd/pki/ca.crt
      user: root
      password: "{{ vault_etcd_root_password }}"
  block:
    - name: Make sure authentication is on
      gatewayops.apisix_ha.etcd_auth:
        auth_enabled: true
"""

RETURN = r"""
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: str
  sample:
    - add role apisix
    - grant role apisix readwrite on prefix /apisix
    - add user root
    - grant role root to user root
    - add user apisix
    - grant role apisix to user apisix
    - enable authentication
auth_enabled:
  description: Whether authentication is on after the run (in check mode, would be).
  returned: always
  type: bool
  sample: true
roles:
  description: Every role after the run (in check mode, as it would be), by name, with its permissions.
  returned: always
  type: dict
  sample:
    apisix:
      permissions:
        - prefix: /apisix
          type: readwrite
    root:
      permissions: []
users:
  description: Every user after the run (in check mode, as it would be), by name, with its roles. No passwords.
  returned: always
  type: dict
  sample:
    apisix:
      roles: [apisix]
    root:
      roles: [root]
diff:
  description: C(auth_enabled), C(roles) and C(users) as above, before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
  sample:
    before:
      auth_enabled: false
      roles: {}
      users: {}
    after:
      auth_enabled: true
      roles:
        apisix:
          permissions:
            - prefix: /apisix
              type: readwrite
      users:
        apisix:
          roles: [apisix]
        root:
          roles: [root]
"""

import copy

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdAuthError,
    EtcdError,
    prefix_range_end,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure

ROOT = 'root'
PERM_TYPES = dict(read='READ', write='WRITE', readwrite='READWRITE')


def _text(value):
    return to_text(value, errors='surrogate_or_replace')


def perm_range(perm):
    """Option dict -> (key bytes, range_end bytes) as etcd stores it (b'' range_end = one key)."""
    if perm.get('prefix') is not None:
        key = to_bytes(perm['prefix'], errors='surrogate_or_strict')
        return key, prefix_range_end(key)
    return to_bytes(perm['key'], errors='surrogate_or_strict'), b''


def describe_range(key, range_end):
    if not range_end:
        return 'key %s' % _text(key)
    if range_end == prefix_range_end(key):
        return 'prefix %s' % _text(key)
    return 'keys %s to %s' % (_text(key), _text(range_end))


def perm_out(key, range_end, perm_type):
    if not range_end:
        out = dict(key=_text(key))
    elif range_end == prefix_range_end(key):
        out = dict(prefix=_text(key))
    else:
        out = dict(key=_text(key), range_end=_text(range_end))
    out['type'] = perm_type.lower()
    return out


def roles_out(roles):
    """{name: {(key, range_end): TYPE}} -> {name: {permissions: [...]}} (permissions sorted as etcd keeps them)."""
    return dict((name, dict(permissions=[perm_out(k, r, t) for (k, r), t in sorted(perms.items())]))
                for name, perms in roles.items())


def users_out(users):
    return dict((name, dict(roles=sorted(roles))) for name, roles in users.items())


class EtcdAuthModule(object):

    def __init__(self, module):
        self.module = module
        self.client = module.client
        self.ops = []
        self.warnings = []

    def fail(self, msg, **extra):
        """A refusal before anything is done."""
        raise ModuleFailure(msg, changed=False, actions=[], **extra)

    # -- input ------------------------------------------------------------------------------------

    def validate(self):
        p = self.module.params
        for kind in ('roles', 'users'):
            names = [item['name'] for item in p[kind]]
            if any(not (n or '').strip() for n in names):
                self.fail('%s: a name must not be empty.' % kind)
            twice = sorted(set(n for n in names if names.count(n) > 1))
            if twice:
                self.fail('%s lists %s more than once.' % (kind, ', '.join(twice)))
        for role in p['roles']:
            seen = {}
            for perm in role['permissions'] or []:
                if (perm.get('key') is None) == (perm.get('prefix') is None):
                    self.fail('Role %s: each permission needs exactly one of key and prefix.' % role['name'])
                if (perm.get('key') if perm.get('key') is not None else perm.get('prefix')) == '':
                    self.fail('Role %s: an empty key or prefix is not allowed.' % role['name'])
                rng = perm_range(perm)
                if rng in seen:
                    self.fail('Role %s lists the permission on %s twice.' % (role['name'], describe_range(*rng)))
                seen[rng] = True
            if role['state'] == 'absent' and role['permissions']:
                self.fail('Role %s: permissions make no sense with state=absent.' % role['name'])

    # -- reading ----------------------------------------------------------------------------------

    def read(self):
        """-> (auth_enabled, roles {name: {(key, range_end): TYPE}}, users {name: [role, ...]})."""
        p = self.module.params
        enabled = False
        if p['user']:
            # '' = etcd said authentication is not enabled (the client then works without a token)
            enabled = bool(self.module.run(self.client.authenticate))
        try:
            role_names = self.client.role_list()
        except EtcdAuthError as e:
            text = e.grpc_message or ''
            if 'user name is empty' in text:
                self.fail('Authentication is on in this etcd: give user and password (a user with the root role) '
                          'to manage its roles and users. etcd answered: %s' % to_native(e),
                          etcd_message=e.grpc_message)
            if 'permission denied' in text:
                self.fail('User %s may not manage etcd roles and users: that needs the root role. etcd answered: %s'
                          % (p['user'], to_native(e)), etcd_message=e.grpc_message)
            self.module.run(_raise, e)
        except EtcdError as e:
            self.module.run(_raise, e)
        roles = {}
        for name in sorted(role_names):
            perms = self.module.run(self.client.role_get, name)
            roles[name] = dict(((x['key'], x['range_end']), x['type']) for x in perms)
        users = {}
        for name in sorted(self.module.run(self.client.user_list)):
            users[name] = sorted(self.module.run(self.client.user_get, name))
        return enabled, roles, users

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, enabled_before, roles, users):
        """Fill self.ops with (description, function, args) and return the state after them
        (auth_enabled, roles, users). Refuses (fail) before anything is done."""
        p = self.module.params
        c = self.client
        roles = copy.deepcopy(roles)
        users = copy.deepcopy(users)
        enabled = enabled_before if p['auth_enabled'] is None else p['auth_enabled']

        if enabled_before and not enabled:
            self.ops.append(('disable authentication', c.auth_disable, ()))

        for role in p['roles']:
            name = role['name']
            if role['state'] == 'absent':
                if name not in roles:
                    continue
                if name == ROOT and enabled:
                    self.fail('Refusing to delete the root role while authentication is on (etcd refuses it too). '
                              'Switch authentication off in the same task (auth_enabled: false) first.')
                self.ops.append(('delete role %s' % name, c.role_delete, (name,)))
                del roles[name]
                for user_roles in users.values():
                    if name in user_roles:
                        user_roles.remove(name)
                continue
            if name not in roles:
                self.ops.append(('add role %s' % name, c.role_add, (name,)))
                roles[name] = {}
            if role['permissions'] is None:
                continue
            current = roles[name]
            wanted = {}
            for perm in role['permissions']:
                rng = perm_range(perm)
                ptype = PERM_TYPES[perm['type']]
                wanted[rng] = ptype
                if rng not in current:
                    self.ops.append(('grant role %s %s on %s' % (name, perm['type'], describe_range(*rng)),
                                     c.role_grant, (name, rng[0], rng[1], ptype)))
                elif current[rng] != ptype:
                    self.ops.append(('change role %s permission on %s from %s to %s'
                                     % (name, describe_range(*rng), current[rng].lower(), perm['type']),
                                     c.role_grant, (name, rng[0], rng[1], ptype)))
            for rng in sorted(current):
                if rng not in wanted:
                    self.ops.append(('revoke from role %s the %s permission on %s'
                                     % (name, current[rng].lower(), describe_range(*rng)),
                                     c.role_revoke, (name, rng[0], rng[1])))
            roles[name] = wanted

        conn_password_set = None  # the password the connection user gets in this run, if any
        for user in p['users']:
            name = user['name']
            if user['state'] == 'absent':
                if name not in users:
                    continue
                if name == ROOT and enabled:
                    self.fail('Refusing to delete user root while authentication is on (etcd refuses it too). '
                              'Switch authentication off in the same task (auth_enabled: false) first.')
                self.ops.append(('delete user %s' % name, c.user_delete, (name,)))
                del users[name]
                continue
            password = user['password']
            if name not in users:
                if not password:
                    self.fail('User %s does not exist; a password is needed to create it.' % name)
                self.ops.append(('add user %s' % name, c.user_add, (name, password)))
                users[name] = []
                if name == p['user']:
                    conn_password_set = password
            elif password is not None and p['update_password'] == 'always':
                ok = self.module.run(c.check_password, name, password)
                if ok is None:
                    self.warnings.append('Authentication is off, so etcd cannot tell whether the password of user %s '
                                         'matches: it is set again (update_password=always).' % name)
                if not ok:
                    self.ops.append(('change password of user %s' % name, c.user_change_password, (name, password)))
                    if name == p['user']:
                        conn_password_set = password
            if user['roles'] is None:
                continue
            current = users[name]
            wanted = []
            for role_name in user['roles']:
                if role_name in wanted:
                    continue
                wanted.append(role_name)
                if role_name in current:
                    continue
                if role_name not in roles and role_name != ROOT:
                    self.fail('Cannot grant role %s to user %s: there is no such role (add it in roles).'
                              % (role_name, name))
                self.ops.append(('grant role %s to user %s' % (role_name, name), c.user_grant, (name, role_name)))
            for role_name in sorted(current):
                if role_name not in wanted:
                    if name == ROOT and role_name == ROOT and enabled:
                        self.fail('Refusing to revoke the root role from user root while authentication is on '
                                  '(etcd refuses it too).')
                    self.ops.append(('revoke role %s from user %s' % (role_name, name), c.user_revoke,
                                     (name, role_name)))
            users[name] = sorted(wanted)

        if enabled and not enabled_before:
            self.check_enable(users, conn_password_set)
            self.ops.append(('enable authentication', c.auth_enable, ()))
        return enabled, roles, users

    def check_enable(self, users, conn_password_set):
        p = self.module.params
        what = 'Refusing to enable authentication, nothing was changed: '
        if ROOT not in users:
            self.fail(what + 'etcd needs a user root with the root role first. Add it in users '
                      '(name: root, password: ..., roles: [root]).')
        if ROOT not in users[ROOT]:
            self.fail(what + 'user root does not have the root role; give it roles: [root].')
        if not p['user'] or p['password'] is None:
            self.fail(what + 'give user and password (root, or another user with the root role): once '
                      'authentication is on, the module can only connect with them.')
        if p['user'] not in users or ROOT not in users[p['user']]:
            self.fail(what + 'user %s (the one the module connects with) would not have the root role, so it '
                      'could not manage etcd any more once authentication is on.' % p['user'])
        if conn_password_set is not None and conn_password_set != p['password']:
            self.fail(what + 'user %s gets a password in users that differs from the password option the module '
                      'connects with.' % p['user'])

    # -- doing ------------------------------------------------------------------------------------

    def execute(self):
        """Run the planned operations through the recorder (in check mode it runs none)."""
        p = self.module.params
        recorder = self.module.recorder
        for description, func, args in self.ops:
            try:
                recorder.do(description, func, *args)
            except EtcdError as e:
                self.fail_half_way(description, e)
            if recorder.check_mode:
                continue
            if func == self.client.user_change_password and args[0] == p['user']:
                # our own password changed: authenticate with the new one from now on
                self.client.password = args[1]
                self.client.forget_token()
            if func == self.client.auth_enable:
                self.client.forget_token()
                try:
                    self.client.authenticate()
                except EtcdError as e:
                    raise ModuleFailure(
                        'Authentication is now on, but user %s could not authenticate with the given password: '
                        '%s. Log in as root with etcdctl and check the password (etcdctl user passwd).'
                        % (p['user'], to_native(e)), changed=True, actions=list(recorder.actions))

    def fail_half_way(self, description, exc):
        recorder = self.module.recorder
        raise ModuleFailure(
            'Could not %s: %s. Done before: %s.' % (description, to_native(exc), recorder.done_text()),
            changed=recorder.changed, actions=list(recorder.actions), failed_action=description,
            error_type=exc.__class__.__name__, etcd_message=getattr(exc, 'grpc_message', None))

    def main(self):
        self.validate()
        enabled_before, roles_before, users_before = self.read()
        enabled_after, roles_after, users_after = self.plan(enabled_before, roles_before, users_before)
        self.execute()
        for w in self.warnings:
            self.module.warn(w)
        # documented: the operations in order, also in check mode (where the recorder says "would ...")
        actions = [description for description, _func, _args in self.ops]
        self.module.finish(
            before=dict(auth_enabled=enabled_before, roles=roles_out(roles_before), users=users_out(users_before)),
            after=dict(auth_enabled=enabled_after, roles=roles_out(roles_after), users=users_out(users_after)),
            changed=bool(actions), actions=actions, auth_enabled=enabled_after,
            roles=roles_out(roles_after), users=users_out(users_after))


def _raise(exc):
    raise exc


def main():
    module = EtcdModule(
        argument_spec=dict(
            roles=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                state=dict(type='str', default='present', choices=['present', 'absent']),
                permissions=dict(type='list', elements='dict', options=dict(
                    key=dict(type='str', no_log=False),
                    prefix=dict(type='str'),
                    type=dict(type='str', required=True, choices=['read', 'write', 'readwrite']),
                )),
            )),
            users=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                password=dict(type='str', no_log=True),
                roles=dict(type='list', elements='str'),
                state=dict(type='str', default='present', choices=['present', 'absent']),
            )),
            update_password=dict(type='str', default='on_create', choices=['always', 'on_create'], no_log=False),
            auth_enabled=dict(type='bool'),
        ),
        supports_check_mode=True,
    )
    module.execute(EtcdAuthModule(module).main)


if __name__ == '__main__':
    main()
