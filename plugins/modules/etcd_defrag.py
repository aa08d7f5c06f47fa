#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_defrag
short_description: Compact and defragment the members of an etcd cluster by rule, leader last, or recover from NOSPACE
version_added: 0.1.0
description:
  - Reads the whole cluster (member list, each member's health and status on its own client URLs, the alarms) and
    refuses, changing nothing, unless every member is healthy with one leader and no alarm is raised
    (with O(recover_nospace=true), see there).
  - Applies the rule (O(fragmentation_above), O(quota_share_above), O(reclaimable_above); O(force=true) picks every
    member) to each member's sizes. When it picks one and O(compact=true), first compacts the keyspace to the current
    revision (etcd frees the space of the history only once it is compacted) and applies the rule again to the sizes
    after it. When it picks none, nothing is done - a cluster within the rule is left as it is, writes or not.
  - Then defragments, one at a time, each member picked - the followers first, then the leader, after handing
    its leadership to a member this run defragmented (a defragmenting member serves nothing, and the leader's
    stall would stall every write). After each member, waits up to O(wait_timeout) until the cluster is healthy
    again (a gate), then pauses O(pause) seconds; a gate that does not pass stops the run there.
  - Reports each member's database size and size in use before and after.
  - A one-member cluster is defragmented with no handoff.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
    details:
      - Reads the cluster and reports what would be compacted, defragmented and handed over. The rule is applied to
        the sizes before the compaction only (a real run applies it again after the compaction, which may free more).
  diff_mode:
    support: full
    details:
      - Each member's database size and size in use, before and after.
options:
  compact:
    description:
      - When the rule picks a member, compact the keyspace to the current revision first. The history is lost
        (watchers that lag behind start again from the current state, as APISIX does after a compaction).
      - etcd's periodic compaction (C(--auto-compaction-retention)) frees the old revisions too, within its period;
        the rule sees the space it freed.
    type: bool
    default: true
  force:
    description:
      - Defragment every member, whatever the rule says.
    type: bool
    default: false
  fragmentation_above:
    description:
      - Defragment a member whose share of free pages (1 - in use / database size) is above this.
    type: float
    default: 0.5
  quota_share_above:
    description:
      - Defragment a member whose database takes more than this share of O(quota_bytes).
    type: float
    default: 0.8
  reclaimable_above:
    description:
      - Defragment a member with more than this many bytes to reclaim (database size - in use).
    type: int
    default: 209715200
  quota_bytes:
    description:
      - The members' C(--quota-backend-bytes).
    type: int
    default: 2147483648
  recover_nospace:
    description:
      - Bring a cluster under a C(NOSPACE) alarm back to accepting writes. The members need not be healthy (etcd
        says a member under an alarm is not), but each must answer its status, with one leader, and no alarm
        other than C(NOSPACE) may be raised - another alarm (C(CORRUPT)) is refused, changing nothing.
      - Compacts (whatever O(compact) says), defragments every member (leader last), then disarms the C(NOSPACE)
        alarms and waits until every member is healthy.
      - Refuses to disarm, after the defragmentation, when the data still fills more than O(quota_share_above) of
        O(quota_bytes); etcd would raise the alarm again at the next writes.
      - With no alarm raised, the run is the usual one.
    type: bool
    default: false
  pause:
    description:
      - Seconds to wait after a member's gate, before the next member.
    type: float
    default: 0
  wait_timeout:
    description:
      - Seconds a gate waits for the cluster to be healthy after a member's defragmentation.
    type: float
    default: 60
  defrag_timeout:
    description:
      - Seconds one defragmentation, or the compaction, may take (etcd answers when the work is done, seconds per GiB).
    type: float
    default: 300
  health_timeout:
    description:
      - Seconds to wait for one member's C(/health) or status answer (never more than O(timeout)).
    type: float
    default: 5
  leader_timeout:
    description:
      - Seconds to wait until the members report the new leader after a handoff.
    type: float
    default: 30
notes:
  - etcd needs the C(root) user (or a certificate naming it) for compaction, defragmentation and alarms when
    authentication is on.
seealso:
  - module: gatewayops.apisix_ha.etcd_cluster_info
  - module: gatewayops.apisix_ha.etcd_member
"""

EXAMPLES = r"""
- name: Defragment the members that need it, leader last
  gatewayops.apisix_ha.etcd_defrag:
    endpoints: "{{ etcd_endpoints }}"
    ca_cert: /etc/etcd/pki/ca.crt
    client_cert: /etc/etcd/pki/client.crt
    client_key: /etc/etcd/pki/client.key
    user: root
    password: "{{ etcd_root_password }}"
    quota_bytes: 4294967296
    pause: 5
  register: defrag

- name: Bring the cluster back from NOSPACE
  gatewayops.apisix_ha.etcd_defrag:
    endpoints: "{{ etcd_endpoints }}"
    recover_nospace: true
"""

RETURN = r"""
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: str
  sample: ["compact the keyspace to revision 81234", "defragment etcd02 (fragmentation 0.71 above 0.5)",
           "move leadership from etcd01 to etcd02", "defragment etcd01 (fragmentation 0.70 above 0.5)"]
members:
  description: Each member, with its sizes before and after (after = before in check mode) and what the rule said.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name.
      type: str
    id:
      description: Member ID, 16 hex digits.
      type: str
    was_leader:
      description: Whether the member led the cluster when the run began.
      type: bool
    reason:
      description: Why the rule picks the member; empty when it does not.
      type: str
    defragmented:
      description: Whether the member was (in check mode, would be) defragmented.
      type: bool
    seconds:
      description: How long its defragmentation took.
      type: float
    before:
      description: C(db_size) and C(db_size_in_use) in bytes before the run.
      type: dict
    after:
      description: C(db_size) and C(db_size_in_use) in bytes after the run.
      type: dict
  sample:
    - name: etcd02
      id: "8c05a4a1b9a2c3d4"
      was_leader: false
      reason: fragmentation 0.71 above 0.5
      defragmented: true
      seconds: 0.8
      before: {db_size: 52428800, db_size_in_use: 15204352}
      after: {db_size: 15302656, db_size_in_use: 15204352}
order:
  description: The members defragmented (in check mode, to defragment), in order.
  returned: always
  type: list
  elements: str
  sample: [etcd02, etcd03, etcd01]
compacted_revision:
  description: The revision the keyspace was compacted to; 0 when it was not.
  returned: always
  type: int
previous_leader:
  description: The leader when the run began (name).
  returned: always
  type: str
leader:
  description: The leader at the end (name).
  returned: always
  type: str
disarmed:
  description: The alarms disarmed, as C(ALARM@member).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_defrag import MIB, Defragmentation
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule


def run(module):
    result = Defragmentation(module.client, module.make_client, module.recorder, module.params).run()
    module.finish(**result)


def main():
    module = EtcdModule(
        argument_spec=dict(
            compact=dict(type='bool', default=True),
            force=dict(type='bool', default=False),
            fragmentation_above=dict(type='float', default=0.5),
            quota_share_above=dict(type='float', default=0.8),
            reclaimable_above=dict(type='int', default=200 * MIB),
            quota_bytes=dict(type='int', default=2 * 1024 * MIB),
            recover_nospace=dict(type='bool', default=False),
            pause=dict(type='float', default=0),
            wait_timeout=dict(type='float', default=60),
            defrag_timeout=dict(type='float', default=300),
            health_timeout=dict(type='float', default=5),
            leader_timeout=dict(type='float', default=30),
        ),
        supports_check_mode=True,
    )
    module.execute(run, module)


if __name__ == '__main__':
    main()
