# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The one compaction and defragmentation of an etcd cluster by rule: shared by the etcd_defrag module and the
scheduled maintenance (roles/etcd_cluster/files/etcd_maintenance.py, which imports it from the package installed
beside it, on hosts without Ansible: standard library and relative imports only).

- defrag_reason(): the rule (fragmentation, share of the quota, bytes to reclaim).
- Defragmentation.run(): the whole-cluster preflight (refuses, changing nothing, an unhealthy cluster or an alarm,
  but a NOSPACE alarm with recover_nospace), the compaction when the rule picks a member, the followers first, the
  leader last after a handoff, a health gate and a pause after each member, and the NOSPACE recovery's disarm.
  What etcd_defrag documents, that module's options as ``params``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ._actions import ModuleFailure
from ._etcd_client import EtcdApiError
from ._etcd_cluster_view import (
    WaitCondition,
    label,
    read_cluster_view,
    wait_for,
)
from ._etcd_leadership import transfer_leadership

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


class Defragmentation(object):
    """One run: ``client`` the cluster's client, ``make_client(timeout)`` a new one with the same connection,
    ``recorder`` the ActionRecorder (its check_mode is the run's), ``params`` the options of etcd_defrag
    (PARAMETERS: the rule, force, recover_nospace and the waits) with the client's ``timeout``."""

    def __init__(self, client, make_client, recorder, params):
        self.client = client
        self.p = params
        self.recorder = recorder
        self.check_mode = recorder.check_mode
        short = min(self.p['health_timeout'], self.p['timeout'])
        self.probe = make_client(timeout=short)
        # For the requests etcd answers once the work is done: compaction and defragmentation.
        self.slow_client = make_client(timeout=self.p['defrag_timeout'])

    def view(self):
        return read_cluster_view(self.client, self.probe, self.probe.timeout, hashkv=False)

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
        if not self.check_mode:
            self.gate('the defragmentation of %s' % member['name'], condition)

    def run(self, view=None):
        """-> the result etcd_defrag returns (members, order, compacted_revision, previous_leader, leader, disarmed),
        with ``before`` and ``after`` (each member's sizes) for the diff. ``view``: the cluster read already."""
        view = view or self.view()
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
            if compacted and not self.check_mode:
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
        final = view if self.check_mode else self.view()
        for entry in entries:
            after = [m for m in final['members'] if m['name'] == entry['name']]
            if after and after[0]['status'] and not self.check_mode:
                entry['after'] = sizes(after[0]['status'])
        return dict(
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
                             self.client, self.probe, list(members.values()), leader, target,
                             self.p['leader_timeout'])
        self.defragment(leader, entry, condition)

    def _disarm(self, view):
        """Disarm the NOSPACE alarms, unless the data itself still fills the quota (in check mode the sizes after the
        defragmentation are not known)."""
        final = view if self.check_mode else self.view()
        largest = max(m['status']['db_size'] for m in final['members'] if m['status'])
        if not self.check_mode and largest > self.p['quota_share_above'] * self.p['quota_bytes']:
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
                             self.client.alarm_disarm, member_id, 'NOSPACE')
            disarmed.append('NOSPACE@%s' % (alarm['member_name'] or alarm['member_id']))
        if not self.check_mode:
            self.gate('the NOSPACE alarms were disarmed', WaitCondition(dict(healthy=True)))
        return disarmed
