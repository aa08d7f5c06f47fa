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
    instead and RV(hash_method) says so; that hash has no revision, so it only compares members at rest. When those
    hashes differ at one revision, the keys decide (RV(hash_method=kvdigest)) - each member's keyspace at that
    revision, read from its own copy and digested here - since etcd 3.4 hashes users' passwords with a salt of
    each member's own, so with authentication on whole backends never match.
  - With O(wait=true) it reads the cluster again (every O(wait_sleep) seconds) until the cluster meets
    O(wait_condition), and fails after O(wait_timeout) seconds naming the condition, what was still missing and
    the last RV(problems) seen (or every endpoint tried, when none answered). This replaces C(until)/C(retries)
    loops in playbooks.
  - Read-only; never changes anything. In check mode it reads (and waits) all the same.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
  - gatewayops.apisix_ha.attributes.read_only
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
  failed_member:
    description:
      - The name of a member about to be replaced as failed (playbooks/replace_member.yml). RV(failed_member) then
        says whether the other members allow it - each healthy, or unhealthy only because a C(CORRUPT) alarm is
        raised for this member alone (etcd answers C(/health) false on every member while any alarm is raised;
        C(/health?exclude=CORRUPT) tells such a member from a failed one).
    type: str
  wait:
    description:
      - Whether to read the cluster again until it meets O(wait_condition) (or O(wait_timeout) passes).
      - Without O(wait_condition) the module waits for RV(healthy).
    type: bool
    default: false
  wait_condition:
    description:
      - What to wait for, with O(wait=true). Every key given must hold at once; keys left out are not checked.
      - Without it O(wait=true) waits for O(wait_condition.healthy=true).
    type: dict
    suboptions:
      healthy:
        description: RV(healthy) has this value (every member healthy and answering, one leader all agree on, no alarm).
        type: bool
      quorum:
        description: RV(quorum) has this value.
        type: bool
      hashkv_consistent:
        description: RV(hashkv_consistent) has this value; needs O(hashkv=true).
        type: bool
      members:
        description: Exactly this many members (voting members and learners, started or not).
        type: int
      min_members:
        description: At least this many members.
        type: int
      voting_members:
        description: Exactly this many voting members (RV(voting_members)).
        type: int
      started_voting_members:
        description: Exactly this many started voting members (RV(started_voting_members)).
        type: int
      member_names:
        description:
          - Exactly these members, by name (a member that has not started counts by its ID), in any order.
        type: list
        elements: str
      leader_not:
        description:
          - A leader that all answering members agree on, and it is not this member (name or 16-hex ID).
        type: str
      member:
        description: One member, found by O(wait_condition.member.name) and/or O(wait_condition.member.id).
        type: dict
        suboptions:
          name:
            description: The member's name (a member that has not started has no name; use O(wait_condition.member.id)).
            type: str
          id:
            description: The member's ID, 16 hex digits as RV(members[].id).
            type: str
          state:
            description:
              - V(present) - in the member list; V(absent) - not in it; V(started) - in it and started;
                V(voting) - in it as a voting member; V(learner) - in it as a learner.
              - V(absent) takes no other key than O(wait_condition.member.name) and O(wait_condition.member.id).
            type: str
            choices: [present, absent, started, voting, learner]
            default: present
          healthy:
            description: The member's C(/health) answer (RV(members[].healthy)) has this value.
            type: bool
          version:
            description: The member's status reports this etcd version, like V(3.5.16).
            type: str
          client_url:
            description: One of the member's client URLs is this one.
            type: str
  wait_timeout:
    description:
      - Seconds to wait for O(wait_condition), with O(wait=true). The last read starts before it has passed.
    type: float
    default: 120
  wait_sleep:
    description:
      - Seconds between two reads, with O(wait=true).
    type: float
    default: 2
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
    wait: true
    wait_timeout: 60

- name: Wait until etcd04 is a healthy voting member and etcd03 has handed over the leadership
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints: "{{ etcd_endpoints }}"
    hashkv: false
    wait: true
    wait_condition:
      healthy: true
      voting_members: 4
      leader_not: etcd03
      member:
        name: etcd04
        state: voting
        healthy: true

- name: Wait until the cluster holds three started voting members with equal data
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints: "{{ etcd_endpoints }}"
    wait: true
    wait_condition:
      healthy: true
      members: 3
      started_voting_members: 3
      hashkv_consistent: true
    wait_timeout: 300
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
    alarms:
      description: The alarms raised for this member (like C(CORRUPT), C(NOSPACE)), sorted.
      type: list
      elements: str
    healthy_excluding_corrupt:
      description:
        - Whether C(/health?exclude=CORRUPT) answers true - the member would be healthy but for a C(CORRUPT) alarm.
          Asked only while a C(CORRUPT) alarm is raised; otherwise the same as RV(members[].healthy).
      type: bool
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
      alarms: []
      healthy_excluding_corrupt: true
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
failed_member:
  description:
    - With O(failed_member), whether the other members allow replacing it as failed - name, id (empty when no
      member has that name), found, corrupt (a C(CORRUPT) alarm is raised for it) and problems (what keeps the
      replacement from going ahead, one line each; empty when nothing does).
    - Any alarm but a C(CORRUPT) one of this member, or a member not healthy for any other reason, is a problem.
  returned: when O(failed_member) is given
  type: dict
  sample:
    name: etcd03
    id: "6d5f1c7a0e1b3f22"
    found: true
    corrupt: true
    problems: []
alarms_error:
  description: Why the alarms could not be read (then RV(healthy) is false).
  returned: when the alarm request failed
  type: str
hash_method:
  description:
    - C(hashkv) or, where the gateway lacks it, C(hash) (whole backend, no revision); C(kvdigest) when the whole-backend
      hashes differed at one revision and the keys themselves were compared. Null when O(hashkv=false).
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
  description: All members healthy and answering status requests, exactly one leader that every member agrees
    on, and no alarms.
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
waited:
  description: Seconds spent waiting for O(wait_condition) (0 when it held at the first read).
  returned: when O(wait=true)
  type: float
  sample: 4.1
wait_reads:
  description: How many times the cluster was read while waiting.
  returned: when O(wait=true)
  type: int
  sample: 3
wait_unmet:
  description: What of O(wait_condition) was still missing at the last read (empty when it held).
  returned: when O(wait=true)
  type: list
  elements: str
  sample: []
"""

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_cluster_view import (
    WAIT_CONDITION_SPEC,
    WaitCondition,
    failed_member_verdict,
    read_cluster_view,
    wait_for,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure


def run(module):
    p = module.params
    per_member_timeout = min(p['health_timeout'], p['timeout'])
    member_client = module.make_client(timeout=per_member_timeout)

    def read():
        view = read_cluster_view(module.client, member_client, per_member_timeout, hashkv=p['hashkv'])
        if p['failed_member']:
            view['failed_member'] = failed_member_verdict(view, p['failed_member'])
        return view

    if not p['wait']:
        module.finish(**read())
    condition = WaitCondition(p['wait_condition'] if p['wait_condition'] is not None else dict(healthy=True))
    invalid = condition.invalid(p['hashkv'])
    if invalid:
        raise ModuleFailure(invalid)
    outcome = wait_for(read, condition, p['wait_timeout'], p['wait_sleep'])
    view = dict(outcome['view'] or {})
    view.update(waited=outcome['waited'], wait_reads=outcome['reads'], wait_unmet=outcome['unmet'])
    if not outcome['unmet']:
        module.finish(**view)
    if outcome['error'] is not None and outcome['view'] is None:
        failure = module.failure_result(outcome['error'])
        raise ModuleFailure('Timed out after %s s waiting for %s: no endpoint ever answered. %s'
                            % (outcome['waited'], condition.describe(), failure.pop('msg')), **dict(view, **failure))
    last = ('the last read failed: %s; before it, ' % outcome['error']) if outcome['error'] is not None else ''
    raise ModuleFailure('Timed out after %s s waiting for %s: still %s; %sproblems seen: %s'
                        % (outcome['waited'], condition.describe(), ', '.join(outcome['unmet']), last,
                           '; '.join(view.get('problems') or []) or 'none'), **view)


def main():
    module = EtcdModule(
        argument_spec=dict(
            hashkv=dict(type='bool', default=True),
            failed_member=dict(type='str'),
            health_timeout=dict(type='float', default=5),
            wait=dict(type='bool', default=False),
            wait_condition=dict(type='dict', options=WAIT_CONDITION_SPEC),
            wait_timeout=dict(type='float', default=120),
            wait_sleep=dict(type='float', default=2),
        ),
        supports_check_mode=True,
    )
    module.execute(run, module)


if __name__ == '__main__':
    main()
