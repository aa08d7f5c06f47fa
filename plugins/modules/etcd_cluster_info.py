#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_cluster_info
short_description: Read the state of an etcd cluster (members, status, health, alarms, hashes)
version_added: 0.1.0
description:
  - Reads the member list from the first of O(endpoints) that answers, then asks every member on its own
    client URLs for its status, its C(/health) and (unless O(hashkv=false)) its KV hash, and reads the alarms.
  - Returns summary booleans meant as health gates in playbooks - RV(healthy), RV(quorum), RV(hashkv_consistent).
  - The hashes of all members are computed at the same revision (the current revision read from one member),
    so equal data gives equal hashes. Where the JSON gateway does not route C(/v3/maintenance/hashkv)
    (etcd 3.4 and 3.5 before 3.5.10, where Hash and HashKV shared one URL) the whole-backend C(Hash) is used
    instead and RV(hash_method) says so; that hash has no revision, so it only compares members at rest.
  - Read-only; never changes anything.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  hashkv:
    description:
      - Whether to compute each member's KV hash (RV(members[].hashkv), RV(hashkv_consistent)).
      - Hashing reads the whole key space on every member; switch it off on big clusters when not needed.
    type: bool
    default: true
  health_timeout:
    description:
      - Seconds to wait for one member's C(/health) or status answer (never more than O(timeout)).
    type: float
    default: 5
seealso:
  - module: gatewayops.apisix_ha.etcd_member
"""

EXAMPLES = r"""
- name: Read the cluster state
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints:
      - https://10.0.0.1:2379
      - https://10.0.0.2:2379
    ca_cert: /etc/etcd/pki/ca.crt
    client_cert: /etc/etcd/pki/client.crt
    client_key: /etc/etcd/pki/client.key
  register: etcd

- name: Stop unless the cluster is healthy and consistent
  ansible.builtin.assert:
    that:
      - etcd.healthy
      - etcd.quorum
      - etcd.hashkv_consistent
    fail_msg: "etcd is not healthy: {{ etcd.problems }}"

- name: Wait for a healthy cluster after a restart
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints: "{{ etcd_endpoints }}"
    hashkv: false
  register: etcd
  until: etcd.healthy
  retries: 20
  delay: 3
"""

RETURN = r"""
cluster_id:
  description: Cluster ID, 16 hex digits.
  returned: always
  type: str
  sample: "4c4191ac5e8a1a1f"
members:
  description: Every member with its status, health and hash.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Member ID, 16 hex digits.
      type: str
    name:
      description: Member name; empty until the member has started.
      type: str
    peer_urls:
      description: Peer URLs.
      type: list
      elements: str
    client_urls:
      description: Client URLs.
      type: list
      elements: str
    is_learner:
      description: Whether it is a learner, from the member list.
      type: bool
    started:
      description: Whether the member has started.
      type: bool
    status:
      description: >-
        The member's own status, or null when no client URL answered. Keys - endpoint, leader (bool, this member
        is the leader), leader_id, raft_term, raft_index, raft_applied_index, db_size, db_size_in_use, version,
        is_learner, revision, errors (list of errors the member reports, like alarms).
      type: dict
    status_errors:
      description: What each client URL answered when status could not be read.
      type: list
      elements: str
    healthy:
      description: Whether C(/health) answered true on one of its client URLs.
      type: bool
    health_reason:
      description: Why the member is not healthy (empty when healthy).
      type: str
    hashkv:
      description: >-
        The member's hash - hash, hash_revision, compact_revision, method (hashkv or hash); or error.
        Null when O(hashkv=false).
      type: dict
  sample:
    - id: "425eef114c1f8661"
      name: etcd01
      peer_urls: ["https://10.0.0.1:2380"]
      client_urls: ["https://10.0.0.1:2379"]
      is_learner: false
      started: true
      healthy: true
      health_reason: ""
      status:
        endpoint: https://10.0.0.1:2379
        leader: true
        leader_id: "425eef114c1f8661"
        raft_term: 2
        raft_index: 14
        raft_applied_index: 14
        db_size: 20480
        db_size_in_use: 16384
        version: 3.5.16
        is_learner: false
        revision: 3
        errors: []
      status_errors: []
      hashkv:
        hash: 2776133566
        hash_revision: 3
        compact_revision: -1
        method: hashkv
leader:
  description: The leader all answering members agree on (id, name); empty when none or when they disagree.
  returned: always
  type: dict
  sample:
    id: "425eef114c1f8661"
    name: etcd01
leaders_seen:
  description: Every distinct leader ID the members reported (more than one means a split view).
  returned: always
  type: list
  elements: str
  sample: ["425eef114c1f8661"]
alarms:
  description: Raised alarms.
  returned: always
  type: list
  elements: dict
  sample:
    - member_id: "425eef114c1f8661"
      member_name: etcd01
      alarm: NOSPACE
alarms_error:
  description: Why the alarms could not be read (then RV(healthy) is false).
  returned: when the alarm request failed
  type: str
hash_method:
  description: C(hashkv) or, where the gateway lacks it, C(hash) (whole backend, no revision). Null when O(hashkv=false).
  returned: always
  type: str
  sample: hashkv
hash_attempts:
  description:
    - How many times the hashes were asked for. With RV(hash_method=hash) all members are asked at once, again
      (up to 20 times) until they answer at one revision; hashes taken at different revisions are not compared
      and RV(hashkv_consistent) is then false. 0 when O(hashkv=false).
  returned: always
  type: int
  sample: 1
hash_revision:
  description: Revision at which all members were hashed (0 when not pinned).
  returned: always
  type: int
  sample: 3
voting_members:
  description: Number of voting members.
  returned: always
  type: int
  sample: 3
started_voting_members:
  description: Number of voting members that have started (published their name); with RV(voting_members) and
    the number of members, the health gate of a replacement - every member started and voting.
  returned: always
  type: int
  sample: 3
learners:
  description: Names (or IDs, when not started) of the members that are learners.
  returned: always
  type: list
  elements: str
  sample: []
healthy_voting_members:
  description: Number of voting members whose C(/health) answered true.
  returned: always
  type: int
  sample: 3
quorum_size:
  description: Voting members needed for quorum.
  returned: always
  type: int
  sample: 2
healthy:
  description: All members healthy, exactly one leader that every member agrees on, and no alarms.
  returned: always
  type: bool
  sample: true
quorum:
  description: Healthy voting members reach the quorum size.
  returned: always
  type: bool
  sample: true
hashkv_consistent:
  description: Every member answered a hash and all hashes are equal. Null when O(hashkv=false).
  returned: always
  type: bool
  sample: true
problems:
  description: Human-readable reasons why RV(healthy), RV(quorum) or RV(hashkv_consistent) is false.
  returned: always
  type: list
  elements: str
  sample: []
"""

import threading
import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdError,
    EtcdNotSupportedError,
    format_id,
    majority,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import (
    EtcdModule,
    format_member,
    members_health,
)


# Hash (no revision) answers of all members are compared only when taken at one revision: tries and pause.
HASH_ATTEMPTS = 20
HASH_RETRY_DELAY = 0.05


def _member_status(client, member):
    """-> (status dict or None, [errors])."""
    errors = []
    for url in member['client_urls']:
        try:
            st = client.status(url)
        except EtcdError as e:
            errors.append(str(e))
            continue
        return dict(
            endpoint=url,
            member_id=format_id(st['member_id']),
            leader=bool(st['leader']) and st['leader'] == member['id'],
            leader_id=format_id(st['leader']) if st['leader'] else None,
            raft_term=st['raft_term'],
            raft_index=st['raft_index'],
            raft_applied_index=st['raft_applied_index'],
            db_size=st['db_size'],
            db_size_in_use=st['db_size_in_use'],
            version=st['version'],
            is_learner=st['is_learner'],
            revision=st['header']['revision'],
            errors=st['errors'],
        ), errors
    if not member['client_urls']:
        errors.append('not started (no client URLs)')
    return None, errors


def _member_hash(client, member, revision, method):
    """-> hash dict (hash, hash_revision, compact_revision, method, endpoint) or dict(error, method).
    Raises EtcdNotSupportedError when method is 'hashkv' and the member's gateway lacks it."""
    errors = []
    for url in member['client_urls']:
        try:
            if method == 'hashkv':
                h = client.hashkv(url, revision)
                return dict(hash=h['hash'], hash_revision=h['hash_revision'],
                            compact_revision=h['compact_revision'], method='hashkv', endpoint=url)
            h = client.hash(url)
            return dict(hash=h['hash'], hash_revision=h['header']['revision'], compact_revision=None,
                        method='hash', endpoint=url)
        except EtcdNotSupportedError:
            raise
        except EtcdError as e:
            errors.append(str(e))
    return dict(error='; '.join(errors) or 'not started (no client URLs)', method=method)


def _hashes_at_one_revision(client, members, attempts=HASH_ATTEMPTS):
    """Whole-backend Hash of every member, asked of all members at once; repeated (up to ``attempts`` times)
    until every member answered at the same revision, since under writes sequential answers would compare
    different revisions. -> (hashes as _member_hash gives them, attempts made)."""
    hashes = []
    for attempt in range(1, attempts + 1):
        results = {}

        def probe(member):
            results[member['id']] = _member_hash(client, member, 0, 'hash')

        threads = [threading.Thread(target=probe, args=(m,)) for m in members]
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            t.join(client.timeout * 3 + 5)
        hashes = [results.get(m['id'], dict(error='hash request did not finish', method='hash')) for m in members]
        revisions = set(h.get('hash_revision') for h in hashes)
        if any('error' in h for h in hashes) or len(revisions) == 1:
            return hashes, attempt
        time.sleep(HASH_RETRY_DELAY)
    return hashes, attempts


def main():
    module = EtcdModule(
        argument_spec=dict(
            hashkv=dict(type='bool', default=True),
            health_timeout=dict(type='float', default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    per_member_timeout = min(p['health_timeout'], p['timeout'])
    client = module.client
    member_client = module.make_client(timeout=per_member_timeout)

    listing = module.run(client.member_list)
    members = listing['members']
    by_id = dict((m['id'], m) for m in members)
    problems = []

    health = members_health(member_client, members, per_member_timeout)

    out = []
    statuses = {}
    for m in members:
        entry = format_member(m)
        st, errors = _member_status(member_client, m)
        statuses[m['id']] = st
        entry.update(status=st, status_errors=errors, healthy=health[m['id']]['healthy'],
                     health_reason=health[m['id']]['reason'], hashkv=None)
        out.append(entry)
        if not health[m['id']]['healthy']:
            problems.append('member %s is not healthy: %s' % (m['name'] or format_id(m['id']),
                                                              health[m['id']]['reason']))

    # leader
    leaders = sorted(set(st['leader_id'] for st in statuses.values() if st and st['leader_id']))
    answering = [st for st in statuses.values() if st]
    leader = {}
    if len(leaders) == 1 and all(st['leader_id'] == leaders[0] for st in answering):
        lid = int(leaders[0], 16)
        leader = dict(id=leaders[0], name=by_id[lid]['name'] if lid in by_id else '')
        if lid not in by_id:
            problems.append('the leader %s is not in the member list' % leaders[0])
    elif not leaders:
        problems.append('no member reports a leader')
    else:
        problems.append('members disagree on the leader: %s' % ', '.join(leaders))
    one_leader = bool(leader) and int(leader['id'], 16) in by_id

    # alarms
    alarms_error = None
    try:
        alarms = client.alarms()
    except EtcdError as e:
        alarms, alarms_error = [], str(e)
        problems.append('alarms could not be read: %s' % alarms_error)
    alarms_out = [dict(member_id=format_id(a['member_id']), alarm=a['alarm'],
                       member_name=by_id[a['member_id']]['name'] if a['member_id'] in by_id else '')
                  for a in alarms]
    for a in alarms_out:
        problems.append('alarm %s raised for member %s' % (a['alarm'], a['member_name'] or a['member_id']))

    # hashes, all at one revision
    hash_method = None
    hash_revision = 0
    hash_attempts = 0
    hashkv_consistent = None
    if p['hashkv']:
        revisions = [st['revision'] for st in answering if st['revision']]
        # the lowest revision every answering member has reached, so all of them can hash at it
        hash_revision = min(revisions) if revisions else 0
        hash_method = 'hashkv'
        try:
            hashes = [_member_hash(member_client, m, hash_revision, 'hashkv') for m in members]
            hash_attempts = 1
        except EtcdNotSupportedError:
            # one gateway lacks HashKV: compare the whole-backend Hash of every member instead
            hash_method, hash_revision = 'hash', 0
            hashes, hash_attempts = _hashes_at_one_revision(member_client, members)
        for entry, h in zip(out, hashes):
            entry['hashkv'] = h
        values = set(h['hash'] for h in hashes if 'hash' in h)
        failed = [e for e in out if 'hash' not in e['hashkv']]
        hashkv_consistent = bool(hashes) and not failed and len(values) == 1
        for e in failed:
            problems.append('member %s gave no hash: %s' % (e['name'] or e['id'], e['hashkv']['error']))
        if hash_method == 'hash' and len(set(h.get('hash_revision') for h in hashes)) > 1:
            hashkv_consistent = False
            problems.append('the members answered the Hash request at different revisions (writes going on); '
                            'their hashes cannot be compared: %s' % ', '.join(
                                '%s@%s' % (e['name'] or e['id'], e['hashkv'].get('hash_revision')) for e in out))
        elif len(values) > 1:
            problems.append('members have different hashes: %s' % ', '.join(
                '%s=%s' % (e['name'] or e['id'], e['hashkv']['hash']) for e in out if 'hash' in e['hashkv']))

    voting = [m for m in members if not m['is_learner']]
    healthy_voting = [m for m in voting if health[m['id']]['healthy']]
    quorum = len(voting) > 0 and len(healthy_voting) >= majority(len(voting))
    if not quorum:
        problems.append('only %d of %d voting members are healthy; quorum needs %d'
                        % (len(healthy_voting), len(voting), majority(len(voting))))
    all_healthy = all(health[m['id']]['healthy'] for m in members)

    result = dict(
        changed=False,
        cluster_id=format_id(listing['header']['cluster_id']),
        members=out,
        leader=leader,
        leaders_seen=leaders,
        alarms=alarms_out,
        hash_method=hash_method,
        hash_revision=hash_revision,
        hash_attempts=hash_attempts,
        voting_members=len(voting),
        started_voting_members=len([m for m in voting if m['name']]),
        learners=[m['name'] or format_id(m['id']) for m in members if m['is_learner']],
        healthy_voting_members=len(healthy_voting),
        quorum_size=majority(len(voting)),
        healthy=all_healthy and one_leader and not alarms and alarms_error is None,
        quorum=quorum,
        hashkv_consistent=hashkv_consistent,
        problems=problems,
    )
    if alarms_error is not None:
        result['alarms_error'] = alarms_error
    module.exit_json(**result)


if __name__ == '__main__':
    main()
