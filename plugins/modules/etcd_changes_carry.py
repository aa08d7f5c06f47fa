#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_changes_carry
short_description: Carry the writes made on one etcd since a revision into another etcd, refusing conflicts
version_added: 0.1.0
description:
  - Made for failback - during an outage of the cluster, clients wrote to the emergency node (a single etcd restored
    from a snapshot of the cluster). This module finds what changed there since O(since_revision) and applies it
    to the cluster in O(endpoints).
  - Reads, through the JSON gateway of O(source_endpoints), every key modified after O(since_revision) and every key
    that existed at O(since_revision) and no longer does (deleted). The source must still hold O(since_revision)
    - a source that compacted past it is refused with a clear message, since deletions and the values the source
    started from cannot be known then.
  - A key is a conflict when its current value on the target differs both from the value the source had at
    O(since_revision) (the target changed it too) and from the source's current value. Unless
    O(conflict=keep_source), any conflict makes the module fail listing every conflicting key, and nothing is
    written.
  - A key whose target value already equals the source's current value is left alone, so running the module
    again after a partial run carries only what is left.
  - Keys attached to a lease (on the source now, or at O(since_revision) for deleted ones) are not carried and are
    returned in RV(skipped), since their owners re-create them and a leased key copied without its lease would never
    expire.
  - Writes go in transactions of at most 64 operations; each one compares the mod_revision of every key it writes
    with the one read during the check, so a key that a concurrent writer changed in between is never overwritten
    silently - that transaction writes nothing and the module fails naming the keys.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
    description:
      - Everything is read and compared; RV(put), RV(deleted), RV(conflicts) and RV(actions) give the plan; nothing
        is written.
  diff_mode:
    support: full
    description:
      - The target's value before and after of every key carried (values shortened to 120 characters).
options:
  source_endpoints:
    description:
      - Client URLs of the etcd the changes are read from (the emergency node). Tried in order.
      - Connected to with the same TLS and credential options as O(endpoints).
    type: list
    elements: str
    required: true
  since_revision:
    description:
      - The source's revision from which on changes are carried (those with a mod_revision above it).
      - For a failback, the emergency node's own revision just before the front was switched to it
        (C(revision_at_switch) of C(/var/lib/etcd-emergency/failover.json)).
    type: int
    required: true
  prefix:
    description:
      - Only keys starting with this prefix. Empty (the default) means every key.
    type: str
    default: ''
  conflict:
    description:
      - V(refuse) fails on any conflicting key and writes nothing.
      - V(keep_source) writes the source's value over the target's for conflicting keys too (the target's change is
        lost); they are still returned in RV(conflicts).
    type: str
    choices: [refuse, keep_source]
    default: refuse
notes:
  - O(endpoints) are the target's (the cluster's) client URLs.
  - Keys and values are carried byte for byte.
seealso:
  - module: gatewayops.apisix_ha.etcd_cluster_info
  - module: gatewayops.apisix_ha.etcd_snapshot
"""

EXAMPLES = r"""
- name: Show what would be carried from the emergency node back to the cluster
  gatewayops.apisix_ha.etcd_changes_carry:
    source_endpoints:
      - http://10.250.77.20:2379
    since_revision: 4711
    endpoints:
      - https://10.250.77.11:2379
      - https://10.250.77.12:2379
      - https://10.250.77.13:2379
    ca_cert: /etc/etcd/pki/ca.crt
    client_cert: /etc/etcd/pki/client.crt
    client_key: /etc/etcd/pki/client.key
  check_mode: true
  diff: true
  register: plan

- name: Carry the APISIX configuration written during the outage, refusing conflicts
  gatewayops.apisix_ha.etcd_changes_carry:
    source_endpoints:
      - http://10.250.77.20:2379
    since_revision: "{{ failover.revision_at_switch }}"
    prefix: /apisix/
    endpoints: "{{ etcd_cluster_endpoints }}"
  register: carried

- name: The source's value wins for keys changed on both sides (the cluster's change is lost)
  gatewayops.apisix_ha.etcd_changes_carry:
    source_endpoints:
      - http://10.250.77.20:2379
    since_revision: 4711
    endpoints:
      - http://10.250.77.11:2379
    conflict: keep_source
"""

RETURN = r"""
put:
  description: Keys written (or, in check mode, that would be written) on the target, sorted.
  returned: always
  type: list
  elements: str
  sample: ["/apisix/routes/1", "/apisix/upstreams/7"]
deleted:
  description: Keys deleted (or that would be) on the target, sorted.
  returned: always
  type: list
  elements: str
  sample: ["/apisix/routes/3"]
conflicts:
  description:
    - Keys changed on both sides since O(since_revision), with the values (shortened to 120 characters; null for
      absent) the source had then (C(since)), the source has now (C(source)) and the target has now (C(target)).
  returned: always
  type: list
  elements: dict
  sample:
    - key: /apisix/routes/1
      since: '{"uri":"/a"}'
      source: '{"uri":"/b"}'
      target: '{"uri":"/c"}'
already:
  description: Keys that changed on the source but already hold the source's value on the target (nothing to do).
  returned: always
  type: list
  elements: str
  sample: []
skipped:
  description: Keys with a lease, not carried.
  returned: always
  type: list
  elements: str
  sample: ["/apisix/data_plane/server_info/9f1c"]
actions:
  description: What was done, or would be done in check mode, one line per key.
  returned: always
  type: list
  elements: str
  sample: ["put /apisix/routes/1", "delete /apisix/routes/3"]
source_revision:
  description:
    - The source's revision the changes were read at. Writes made on the source after it are not carried - run
      again with it as O(since_revision) to carry those.
  returned: success
  type: int
  sample: 4790
since_revision:
  description: O(since_revision), as used.
  returned: always
  type: int
  sample: 4711
target_revision:
  description: The target's revision after the last write, or when it was read; null when there was nothing to read.
  returned: success
  type: int
  sample: 10233
transactions:
  description: Number of write transactions sent to the target.
  returned: success
  type: int
  sample: 1
msg:
  description: Summary.
  returned: always
  type: str
  sample: "carried 2 keys from revision 4711 to 4790 of the source: 1 put, 1 deleted, 0 conflicts"
"""

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdApiError,
    txn_compare,
    txn_delete,
    txn_put,
    txn_range,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure


# At most this many operations per transaction (etcd's --max-txn-ops defaults to 128).
TXN_OPS = 64
# Values are shortened to this many characters in conflicts and diffs.
SHOW_CHARS = 120


def _show(value):
    """A value for display: shortened, undecodable bytes replaced (None stays None)."""
    if value is None:
        return None
    text = value.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + '...(%d characters)' % len(text)


def _chunks(items, size=TXN_OPS):
    return [items[i:i + size] for i in range(0, len(items), size)]


class Carrier(object):

    def __init__(self, module):
        self.module = module
        p = module.params
        self.since = p['since_revision']
        self.prefix = p['prefix']
        self.source = module.make_client(endpoints=p['source_endpoints'])
        self.target = module.client
        self.source_cluster_id = None
        self.result = dict(changed=False, put=[], deleted=[], conflicts=[], already=[], skipped=[], actions=[],
                           since_revision=self.since, target_revision=None)

    def fail(self, msg, **extra):
        """Stop with the result so far (the lists of keys put, deleted, in conflict...)."""
        self.result.update(extra)
        raise ModuleFailure(msg, **self.result)

    def scope(self, **kw):
        """range() arguments selecting the keys under the prefix (every key when it is empty)."""
        if self.prefix:
            return dict(key=self.prefix, prefix=True, **kw)
        return dict(key='\0', range_end='\0', **kw)

    def read_source(self):
        """-> (revision, {key: kv} changed since, {key: kv} at since_revision, set of keys now)."""
        now = self.module.run(self.source.range, **self.scope(keys_only=True))
        revision = now['header']['revision']
        if self.since > revision:
            self.fail('since_revision %d is newer than the source (revision %d at %s): wrong source or wrong '
                      'revision. Nothing was written.' % (self.since, revision, ', '.join(self.source.endpoints)))
        changed = self.module.run(self.source.range, **self.scope(revision=revision, min_mod_revision=self.since + 1))
        try:
            then = self.source.range(**self.scope(revision=self.since))
        except EtcdApiError as e:
            if 'compacted' not in (e.grpc_message or ''):
                raise
            self.fail('The source (%s) has compacted its history past revision %d (%s), so the keys deleted since '
                      'then and the values it started from cannot be read any more. Nothing was written. Carry the '
                      'changes by hand (etcdctl get --prefix on both sides) or accept losing them.'
                      % (e.endpoint, self.since, e.grpc_message), etcd_message=e.grpc_message)
        self.result['source_revision'] = revision
        self.source_cluster_id = now['header']['cluster_id']
        return (revision, dict((kv['key'], kv) for kv in changed['kvs']), dict((kv['key'], kv) for kv in then['kvs']),
                set(kv['key'] for kv in now['kvs']))

    def read_target(self, keys):
        """-> ({key: kv or None} on the target now, cluster_id, revision)."""
        current, header = {}, None
        for chunk in _chunks(keys):
            answer = self.module.run(self.target.txn, success=[txn_range(k) for k in chunk])
            header = answer['header']
            for key, response in zip(chunk, answer['responses']):
                current[key] = response['kvs'][0] if response['kvs'] else None
        return current, header

    def plan(self, changed, then, keys_now):
        """-> list of (key, value or None to delete, target kv or None) to write."""
        skipped = sorted([k for k, kv in changed.items() if kv['lease']]
                         + [k for k, kv in then.items() if k not in keys_now and kv['lease']])
        wanted = dict((k, kv['value']) for k, kv in changed.items() if not kv['lease'])
        wanted.update((k, None) for k, kv in then.items() if k not in keys_now and not kv['lease'])
        self.result['skipped'] = skipped
        keys = sorted(wanted)
        if not keys:
            return []
        current, header = self.read_target(keys)
        self.result['target_revision'] = header['revision']
        if header['cluster_id'] == self.source_cluster_id:
            self.fail('The source and the target are the same etcd cluster (cluster ID %016x). Nothing was written.'
                      % header['cluster_id'])
        writes = []
        for key in keys:
            kv = current[key]
            have = kv['value'] if kv else None
            since = then[key]['value'] if key in then else None
            if have == wanted[key]:
                self.result['already'].append(key)
                continue
            if have != since:
                self.result['conflicts'].append(dict(key=key, since=_show(since), source=_show(wanted[key]),
                                                     target=_show(have)))
                if self.module.params['conflict'] != 'keep_source':
                    continue
            writes.append((key, wanted[key], kv))
        return writes

    def apply(self, writes):
        """Write in transactions guarded by the mod_revisions read in plan()."""
        for chunk in _chunks(writes):
            compare = [txn_compare(key, 'MOD', 'EQUAL', kv['mod_revision'] if kv else 0) for key, _v, kv in chunk]
            ops = [txn_delete(key) if value is None else txn_put(key, value) for key, value, _kv in chunk]
            answer = self.module.recorder.do(
                'write transaction %d (%d keys)' % (self.result['transactions'] + 1, len(chunk)),
                self.target.txn, compare=compare, success=ops, failure=[txn_range(key) for key, _v, _kv in chunk])
            self.result['transactions'] += 1
            self.result['target_revision'] = answer['header']['revision']
            if not answer['succeeded']:
                moved = []
                for (key, _value, kv), response in zip(chunk, answer['responses']):
                    now = response['kvs'][0]['mod_revision'] if response['kvs'] else 0
                    if now != (kv['mod_revision'] if kv else 0):
                        moved.append(key)
                done = self.result['put'] + self.result['deleted']
                self.fail('Keys changed on the target while they were being carried: %s. That transaction wrote '
                          'nothing; %d keys were carried before it (put, deleted). Run again: keys that already '
                          'hold the source value are recognised and the rest is checked anew.'
                          % (', '.join(moved) or '(none found: re-read)', len(done)), moved=moved)
            for key, value, _kv in chunk:
                self.result['deleted' if value is None else 'put'].append(key)

    def run(self):
        revision, changed, then, keys_now = self.read_source()
        writes = self.plan(changed, then, keys_now)
        r = self.result
        conflicts = r['conflicts']
        if conflicts and self.module.params['conflict'] == 'refuse':
            self.fail('Refusing to carry the changes made on the source since revision %d: %d keys changed on both '
                      'sides (the target no longer holds the value the source started from): %s. Nothing was '
                      'written. Decide for each key which value is right, write it on both sides (or run with '
                      'conflict=keep_source to let the source win everywhere), then run again.'
                      % (self.since, len(conflicts), ', '.join(c['key'] for c in conflicts)),
                      put=[k for k, v, _kv in writes if v is not None], deleted=[k for k, v, _kv in writes if v is None])
        # documented: one line per key, also in check mode (where the recorder would say "would ...")
        r['actions'] = ['%s %s' % ('delete' if value is None else 'put', key) for key, value, _kv in writes]
        r['transactions'] = 0
        if self.module.check_mode:
            r['put'] = [k for k, v, _kv in writes if v is not None]
            r['deleted'] = [k for k, v, _kv in writes if v is None]
        else:
            self.apply(writes)
        r['changed'] = bool(writes)
        r['msg'] = ('%s %d keys from revision %d to %d of the source: %d put, %d deleted, %d conflicts, %d already '
                    'there, %d leased keys skipped'
                    % ('would carry' if self.module.check_mode else 'carried', len(writes), self.since, revision,
                       len(r['put']), len(r['deleted']), len(conflicts), len(r['already']), len(r['skipped'])))
        self.module.finish(before=dict((k, _show(kv['value']) if kv else None) for k, _v, kv in writes),
                           after=dict((k, _show(v)) for k, v, _kv in writes), **r)


def check_options(module):
    if module.params['since_revision'] < 1:
        raise ModuleFailure('since_revision must be a revision of the source (1 or more), got %d. Nothing was '
                            'written.' % module.params['since_revision'])
    if not module.params['source_endpoints']:
        raise ModuleFailure('source_endpoints is empty: name the client URL(s) of the etcd to carry from. '
                            'Nothing was written.')


def main():
    module = EtcdModule(
        argument_spec=dict(
            source_endpoints=dict(type='list', elements='str', required=True),
            since_revision=dict(type='int', required=True),
            prefix=dict(type='str', default=''),
            conflict=dict(type='str', choices=['refuse', 'keep_source'], default='refuse'),
        ),
        supports_check_mode=True,
    )
    module.execute(check_options, module)
    module.execute(Carrier(module).run)


if __name__ == '__main__':
    main()
