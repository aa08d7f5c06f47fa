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

import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import EtcdApiError
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_cluster_view import (
    WaitCondition,
    label,
    read_cluster_view,
    wait_for,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_leadership import transfer_leadership
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure

MIB = 1024 * 1024
# etcd's answer to a request for a revision older than the last compaction.
COMPACTED = 'required revision has been compacted'


def sizes(status):
    return dict(db_size=status['db_size'], db_size_in_use=status['db_size_in_use'])


def defrag_reason(status, rule):
    """Why the rule picks a member of this status, or '' when it does not."""
    size, in_use = status['db_size'], status['db_size_in_use']
    reclaimable = max(0, size - in_use)
    reasons = []
    if size and float(reclaimable) / size > rule['fragmentation_above']:
        reasons.append('fragmentation %.2f above %s' % (float(reclaimable) / size, rule['fragmentation_above']))
    if rule['quota_bytes'] and size > rule['quota_share_above'] * rule['quota_bytes']:
        reasons.append('%.0f%% of the quota' % (100.0 * size / rule['quota_bytes']))
    if reclaimable > rule['reclaimable_above']:
        reasons.append('%.1f MiB reclaimable' % (float(reclaimable) / MIB))
    return ', '.join(reasons)


class AnswersWithOneLeader(object):
    """The gate under a NOSPACE alarm: etcd calls every member unhealthy until the alarm is disarmed, so the gate asks
    that each member answers its status, that they agree on one leader and that no other alarm is raised."""

    def describe(self):
        return 'every member answering, one leader, no alarm but NOSPACE'

    def unmet(self, view):
        missing = ['%s does not answer' % m['name'] for m in view['members'] if not m['status']]
        if not view['leader']:
            missing.append('no leader all members agree on')
        missing.extend('alarm %s raised for %s' % (a['alarm'], a['member_name'] or a['member_id'])
                       for a in view['alarms'] if a['alarm'] != 'NOSPACE')
        return missing


class EtcdDefrag(object):

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.recorder = module.recorder
        short = min(self.p['health_timeout'], self.p['timeout'])
        self.probe = module.make_client(timeout=short)
        # For the requests etcd answers once the work is done: compaction and defragmentation.
        self.slow_client = module.make_client(timeout=self.p['defrag_timeout'])

    def view(self):
        return read_cluster_view(self.module.client, self.probe, self.probe.timeout, hashkv=False)

    def refuse(self, why, view):
        raise ModuleFailure('Refusing to defragment: %s. Nothing was changed.' % why, problems=view['problems'])

    def preflight(self, view):
        """-> True when a NOSPACE recovery is to be run. Refuses whatever else is not a healthy cluster."""
        nospace = [a for a in view['alarms'] if a['alarm'] == 'NOSPACE']
        others = [a for a in view['alarms'] if a['alarm'] != 'NOSPACE']
        if others:
            self.refuse('%s; only a NOSPACE alarm is this module\'s to clear' % '; '.join(
                'alarm %s raised for member %s' % (a['alarm'], a['member_name'] or a['member_id']) for a in others),
                view)
        if nospace and not self.p['recover_nospace']:
            self.refuse('the cluster is out of space (NOSPACE raised for %s); recover_nospace=true compacts, '
                        'defragments and disarms it' % ', '.join(a['member_name'] or a['member_id'] for a in nospace),
                        view)
        if nospace:
            unmet = AnswersWithOneLeader().unmet(view)
            if unmet:
                self.refuse('under the NOSPACE alarm, %s' % '; '.join(unmet), view)
            return True
        if not view['healthy']:
            self.refuse('the cluster is not healthy: %s' % '; '.join(view['problems']), view)
        return False

    def gate(self, after_what, condition):
        waited = wait_for(self.view, condition, self.p['wait_timeout'], 1)
        if waited['unmet']:
            raise ModuleFailure(
                'After %s, the cluster did not reach %s within wait_timeout (%s s): %s. The run stopped there; '
                'look at the members\' journals (journalctl -u etcd) and at playbooks/status.yml before running '
                'again.' % (after_what, condition.describe(), self.p['wait_timeout'],
                            '; '.join(waited['unmet'] + ([str(waited['error'])] if waited['error'] else []))))
        if self.p['pause']:
            time.sleep(self.p['pause'])

    def compact(self, view):
        """Compact to the current revision unless the history before it is gone already. -> the revision, or 0."""
        client = self.slow_client
        revision = max(m['status']['revision'] for m in view['members'] if m['status'])
        if revision < 2:
            return 0
        try:
            # A read at the revision before: etcd answers "compacted" when there is nothing left to compact.
            client.range('/', revision=revision - 1, limit=1, keys_only=True)
        except EtcdApiError as e:
            if COMPACTED in (e.grpc_message or '').lower():
                return 0
            raise

        def run():
            try:
                client.compact(revision)
            except EtcdApiError as e:
                # A periodic compaction got there first: the history is gone all the same.
                if COMPACTED not in (e.grpc_message or '').lower():
                    raise
        self.recorder.do('compact the keyspace to revision %d' % revision, run)
        return revision

    def defragment(self, member, entry, condition):
        start = time.monotonic()
        self.recorder.do('defragment %s (%s)' % (member['name'], entry['reason']),
                         self.slow_client.defragment, member['client_urls'][0])
        entry.update(defragmented=True, seconds=round(time.monotonic() - start, 1))
        if not self.module.check_mode:
            self.gate('the defragmentation of %s' % member['name'], condition)

    def main(self):
        view = self.view()
        nospace = self.preflight(view)
        condition = AnswersWithOneLeader() if nospace else WaitCondition(dict(healthy=True))
        rule = dict((k, self.p[k]) for k in ('fragmentation_above', 'quota_share_above', 'reclaimable_above',
                                             'quota_bytes'))
        leader_name = view['leader']['name']
        entries = [dict(name=m['name'], id=m['id'], was_leader=m['name'] == leader_name, reason='',
                        defragmented=False, seconds=0.0, before=sizes(m['status']), after=sizes(m['status']))
                   for m in sorted(view['members'], key=lambda m: m['name'])]

        self.pick(entries, view, rule, nospace)
        compacted = 0
        if any(e['reason'] for e in entries) and (self.p['compact'] or nospace):
            compacted = self.compact(view)
            if compacted and not self.module.check_mode:
                # What the compaction freed may bring more members under the rule.
                self.pick(entries, self.view(), rule, nospace)

        # The members in the client's shape (integer id), as the leadership handoff reads them.
        members = dict((m['name'], dict(m, id=int(m['id'], 16))) for m in view['members'])
        order = self._order(entries)
        for entry in order:
            if entry['was_leader']:
                self._leader_turn(members, entries, entry, condition)
            else:
                self.defragment(members[entry['name']], entry, condition)

        disarmed = self._disarm(view) if nospace else []
        final = view if self.module.check_mode else self.view()
        for entry in entries:
            after = [m for m in final['members'] if m['name'] == entry['name']]
            if after and after[0]['status'] and not self.module.check_mode:
                entry['after'] = sizes(after[0]['status'])
        self.module.finish(
            before=dict((e['name'], e['before']) for e in entries),
            after=dict((e['name'], e['after']) for e in entries),
            members=entries, order=[e['name'] for e in order], compacted_revision=compacted,
            previous_leader=leader_name, leader=final['leader'].get('name', ''), disarmed=disarmed)

    def pick(self, entries, view, rule, nospace):
        """Set each entry's reason (kept once set): why the rule, force or the NOSPACE recovery picks it."""
        for entry in entries:
            status = [m['status'] for m in view['members'] if m['name'] == entry['name']][0]
            if status is None:
                raise ModuleFailure('%s stopped answering its status; nothing was defragmented. Look at its journal '
                                    '(journalctl -u etcd) and run again.' % entry['name'])
            entry['reason'] = entry['reason'] or ('NOSPACE recovery' if nospace else 'force' if self.p['force']
                                                  else defrag_reason(status, rule))

    @staticmethod
    def _order(entries):
        """The entries picked, followers first, the leader last."""
        picked = [e for e in entries if e['reason']]
        return [e for e in picked if not e['was_leader']] + [e for e in picked if e['was_leader']]

    def _leader_turn(self, members, entries, entry, condition):
        leader = members[entry['name']]
        voters = [e for e in entries if e['name'] != entry['name'] and not members[e['name']]['is_learner']]
        if voters:
            # To a member this run defragmented, else to any other voting one: its stall is behind it.
            voters.sort(key=lambda e: (not e['defragmented'], e['name']))
            target = members[voters[0]['name']]
            self.recorder.do('move leadership from %s to %s' % (label(leader), label(target)), transfer_leadership,
                             self.module.client, self.probe, list(members.values()), leader, target,
                             self.p['leader_timeout'])
        self.defragment(leader, entry, condition)

    def _disarm(self, view):
        """Disarm the NOSPACE alarms, unless the data itself still fills the quota (in check mode the sizes after the
        defragmentation are not known)."""
        final = view if self.module.check_mode else self.view()
        largest = max(m['status']['db_size'] for m in final['members'] if m['status'])
        if not self.module.check_mode and largest > self.p['quota_share_above'] * self.p['quota_bytes']:
            raise ModuleFailure(
                'The members were compacted and defragmented, but the largest database is still %.1f MiB, more than '
                '%s of the quota (%.1f MiB): the data itself fills it, and etcd would raise NOSPACE again at the next '
                'writes. The alarm was left raised. Delete keys, or raise the quota (--quota-backend-bytes) and '
                'restart the members one at a time, then run again.'
                % (float(largest) / MIB, self.p['quota_share_above'], float(self.p['quota_bytes']) / MIB))
        disarmed = []
        for alarm in view['alarms']:
            member_id = int(alarm['member_id'], 16)
            self.recorder.do('disarm the NOSPACE alarm of %s' % (alarm['member_name'] or alarm['member_id']),
                             self.module.client.alarm_disarm, member_id, 'NOSPACE')
            disarmed.append('NOSPACE@%s' % (alarm['member_name'] or alarm['member_id']))
        if not self.module.check_mode:
            self.gate('the NOSPACE alarms were disarmed', WaitCondition(dict(healthy=True)))
        return disarmed


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
    module.execute(EtcdDefrag(module).main)


if __name__ == '__main__':
    main()
