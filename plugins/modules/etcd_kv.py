#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_kv
short_description: Read, put or delete one etcd key
version_added: 0.1.0
description:
  - Reads (O(state=read)), puts (O(state=present)) or deletes (O(state=absent)) one key through the etcd v3 JSON
    gateway of the first of O(endpoints) that answers (a member, the emergency node or the etcd front).
  - A put of the value the key already holds and a delete of a missing key change nothing.
  - Values can be secrets - they are never returned nor shown in a diff unless O(show_value=true); the module
    returns their length, the key's revisions and the cluster that answered instead.
  - With O(wait=true) a request that finds no etcd able to answer (connection refused, no leader, timeout) is
    retried until O(wait_timeout); a refusal (permission, bad request) ends the module at once.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
    details: The key is read; a put or delete is reported as C(would put ...) or C(would delete ...), not made.
  diff_mode:
    support: full
    details: Without O(show_value=true) the diff names the value's length, not the value.
options:
  key:
    description: The key.
    type: str
    required: true
  state:
    description:
      - V(read) reads the key and changes nothing; V(present) puts O(value); V(absent) deletes the key.
    type: str
    choices: [read, present, absent]
    default: read
  value:
    description: The value to put (O(state=present)).
    type: str
  show_value:
    description:
      - Return the value read (RV(value)) and show the values in the diff. Leave it off for keys that may hold
        secrets.
    type: bool
    default: false
  wait:
    description:
      - Retry while no endpoint can answer (unreachable, no leader, timeout), until O(wait_timeout). For a gate
        that waits for an etcd (or a front) to serve again.
    type: bool
    default: false
  wait_timeout:
    description: Seconds O(wait=true) retries for.
    type: int
    default: 120
  wait_sleep:
    description: Seconds between two tries of O(wait=true).
    type: float
    default: 1
seealso:
  - module: gatewayops.apisix_ha.etcd_changes_carry
"""

EXAMPLES = r"""
- name: Write a key through the etcd front, waiting until the front serves
  gatewayops.apisix_ha.etcd_kv:
    endpoints: [http://127.0.0.1:2379]
    key: /gatewayops/front-check/gw01
    value: "gw01 {{ now(utc=true).isoformat() }}"
    state: present
    wait: true
    wait_timeout: 60

- name: Read a key and its value
  gatewayops.apisix_ha.etcd_kv:
    key: /apisix/routes/1
    show_value: true
  register: route

- name: Delete a key
  gatewayops.apisix_ha.etcd_kv:
    key: /gatewayops/front-check/gw01
    state: absent
"""

RETURN = r"""
key:
  description: The key.
  returned: always
  type: str
exists:
  description: Whether the key exists after the module (in check mode, would exist).
  returned: always
  type: bool
value:
  description: The value read (O(state=read)) or held after the module; only with O(show_value=true).
  returned: when O(show_value=true) and the key exists
  type: str
value_length:
  description: Length in bytes of that value (0 when the key does not exist).
  returned: always
  type: int
mod_revision:
  description: Revision of the key's last change (0 when it does not exist; in check mode, its revision before).
  returned: always
  type: int
version:
  description: Number of changes since the key was created (0 when it does not exist).
  returned: always
  type: int
revision:
  description: The store revision of the last answer.
  returned: always
  type: int
cluster_id:
  description: ID (16 hex digits) of the cluster that gave the last answer - tells the cluster from the emergency node.
  returned: always
  type: str
  sample: 4c41f5a32e4e6a1f
member_id:
  description: ID (16 hex digits) of the member that gave the last answer.
  returned: always
  type: str
answered_at:
  description:
    - When the last answer came (the put's acknowledgement for O(state=present) when it wrote), in seconds since
      the epoch on the host the module ran on.
  returned: always
  type: float
waited:
  description: Seconds spent retrying before the first answer (O(wait=true)).
  returned: always
  type: float
actions:
  description: What was done (C(put KEY), C(delete KEY)), or in check mode what would be done.
  returned: always
  type: list
  elements: str
"""

import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdConnectionError,
    EtcdTLSError,
    EtcdUnavailableError,
    format_id,
)


def retryable(exc):
    """No etcd could answer now (the kind of failure a wait outlasts); a TLS error is a configuration problem."""
    return isinstance(exc, (EtcdConnectionError, EtcdUnavailableError)) and not isinstance(exc, EtcdTLSError)


class KeyValue(object):
    def __init__(self, module):
        self.module = module
        self.key = module.params['key']
        self.header = {}
        self.answered_at = None
        self.waited = 0.0

    def call(self, func, *args, **kwargs):
        """One request; with wait=true, retried while no etcd can answer. Keeps the answer's header."""
        p = self.module.params
        started = time.time()
        deadline = started + p['wait_timeout']
        while True:
            try:
                answer = func(*args, **kwargs)
                break
            except Exception as e:  # pylint: disable=broad-except
                if not (p['wait'] and retryable(e) and time.time() + p['wait_sleep'] < deadline):
                    raise
                time.sleep(p['wait_sleep'])
        if self.answered_at is None:
            self.waited = time.time() - started
        self.answered_at = time.time()
        self.header = answer.get('header') or self.header
        return answer

    def read(self):
        answer = self.call(self.module.client.range, self.key)
        return answer['kvs'][0] if answer['kvs'] else None

    def shown(self, kv, value=None):
        """What a diff says of a key's value: the value only with show_value."""
        if kv is None and value is None:
            return None
        text = kv['value'] if kv is not None else value
        if self.module.params['show_value']:
            return text
        revision = kv['mod_revision'] if kv else 0
        return '(%d bytes%s)' % (len(text.encode('utf-8')), ', mod_revision %d' % revision if revision else '')

    def run(self):
        p = self.module.params
        state = p['state']
        if state == 'present' and p['value'] is None:
            raise ModuleFailure('state=present needs a value. Nothing was written.', changed=False)
        before = self.read()
        after = before
        if state == 'present' and (before is None or before['value'] != p['value']):
            answer = self.module.recorder.do('put %s (%d bytes)' % (self.key, len(p['value'].encode('utf-8'))),
                                             self.call, self.module.client.put, self.key, p['value'])
            after = dict(value=p['value'], mod_revision=answer['header']['revision'] if answer else 0,
                         version=(before['version'] if before else 0) + 1)
            if answer is None:  # check mode: nothing was written
                after['mod_revision'] = before['mod_revision'] if before else 0
        elif state == 'absent' and before is not None:
            self.module.recorder.do('delete %s' % self.key, self.call, self.module.client.delete, self.key)
            after = None
        result = dict(
            key=self.key,
            exists=after is not None,
            value_length=len(after['value'].encode('utf-8')) if after else 0,
            mod_revision=after['mod_revision'] if after else 0,
            version=after['version'] if after else 0,
            revision=self.header.get('revision', 0),
            cluster_id=format_id(self.header.get('cluster_id', 0)),
            member_id=format_id(self.header.get('member_id', 0)),
            answered_at=self.answered_at,
            waited=round(self.waited, 3),
        )
        if p['show_value'] and after is not None:
            result['value'] = after['value']
        if self.module.recorder.actions:
            result['msg'] = '; '.join(self.module.recorder.actions)
        else:
            result['msg'] = 'read %s' % self.key if state == 'read' else '%s is already %s' % (
                self.key, 'absent' if state == 'absent' else 'that value')
        self.module.finish(before={self.key: self.shown(before)},
                           after={self.key: self.shown(after)}, **result)


def main():
    module = EtcdModule(
        argument_spec=dict(
            key=dict(type='str', required=True, no_log=False),
            state=dict(type='str', choices=['read', 'present', 'absent'], default='read'),
            value=dict(type='str', no_log=True),
            show_value=dict(type='bool', default=False),
            wait=dict(type='bool', default=False),
            wait_timeout=dict(type='int', default=120),
            wait_sleep=dict(type='float', default=1),
        ),
        required_if=[('state', 'present', ['value'])],
        supports_check_mode=True,
    )
    module.execute(KeyValue(module).run)


if __name__ == '__main__':
    main()
