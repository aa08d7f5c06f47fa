#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_member
short_description: Add, update, promote, remove one etcd cluster member or move leadership away from it
version_added: 0.1.0
description:
  - Makes sure one member of an etcd v3 cluster, identified by O(name), is present (as voting member or
    learner, with the given peer URLs), absent, or promoted from learner to voting member.
  - Speaks the v3 JSON gateway on the client port of the members in O(endpoints); works with etcd 3.4 and 3.5.
  - A member that was added but has not started yet has no name in the member list; it is then found by
    its peer URL (one of O(peer_urls)).
  - Before a change that needs quorum the module asks every member for C(GET /health) on its client URLs
    (from the host the module runs on) and refuses, changing nothing, when the change would leave the
    cluster without a healthy majority of voting members. Removing a voting member needs the remaining
    voting members to still have a healthy majority. Adding a voting member needs the currently healthy
    voting members to reach the majority of the new voting count (the new member is not started yet).
    Adding a learner, updating peer URLs or removing a learner needs the current cluster to have quorum.
  - O(state=not_leader) moves the leadership away from the member when it is the leader, to the healthy
    started voting member with the highest raft index, and waits (up to O(leader_timeout)) until that member
    leads. A member that is not the leader (or not in the cluster) is left as it is.
  - etcd's own C(/health) answers false on every member while an alarm (for example C(NOSPACE)) is raised, so
    such a member counts as unhealthy here too. One exception - removing a member, or moving the leadership away
    from it, while the only alarms raised are C(CORRUPT) alarms of that very member (the member to replace) - the
    other members then count by C(/health?exclude=CORRUPT).
  - O(state=absent) disarms the alarms raised for the member it removes (etcd keeps an alarm by member ID after
    the member's removal, and answers C(/health) false on every member as long as it stays raised).
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - Member name (the C(--name) the member is started with).
    type: str
    required: true
  state:
    description:
      - V(present) adds the member when it is missing (needs O(peer_urls)), updates its peer URLs when they
        differ from O(peer_urls), and promotes an existing learner when O(learner=false).
        etcd cannot turn a voting member into a learner; then a warning is given and nothing changes.
      - V(absent) removes the member; a name that is not in the cluster is fine (unchanged).
      - V(promoted) promotes a learner to voting member; an already voting member is unchanged; an unknown name fails.
        etcd promotes only a learner that has started and caught up with the leader; until O(promote_timeout)
        the promotion is retried while etcd answers that the learner is not ready (not started, not in sync), or
        gives no answer in time (then the member list is read first; a promotion etcd applied counts as done).
      - V(not_leader) makes sure the member is not the leader - see the description.
    type: str
    choices: [present, absent, promoted, not_leader]
    default: present
  peer_urls:
    description:
      - Peer URLs of the member, like V(https://10.0.0.4:2380). Scheme C(http) or C(https), host and port, no path.
      - Required to add a member. When given for an existing member, its peer URLs are updated to these.
      - A peer URL already used by another member is refused.
    type: list
    elements: str
  learner:
    description:
      - With O(state=present), add the member as a learner (non-voting) instead of a voting member.
    type: bool
    default: false
  health_timeout:
    description:
      - Seconds to wait for one member's C(/health) answer in the quorum check (never more than O(timeout)).
    type: float
    default: 5
  promote_timeout:
    description:
      - Seconds during which a promotion (O(state=promoted), or O(state=present) of a learner with
        O(learner=false)) is retried while etcd refuses it because the learner has not started or has not
        caught up with the leader yet. V(0) tries once.
      - Other refusals (quorum, unknown member) fail at once.
    type: float
    default: 60
  leader_timeout:
    description:
      - With O(state=not_leader), seconds to wait until the chosen member is the leader after the transfer.
    type: float
    default: 30
notes:
  - The member list is read from the first endpoint that answers; run against endpoints of healthy members.
  - Adding a member only registers it; start etcd on the new host with C(--initial-cluster-state existing)
    afterwards, then promote it when it was added as a learner.
seealso:
  - module: gatewayops.apisix_ha.etcd_cluster_info
"""

EXAMPLES = r"""
- name: Add etcd04 as a learner
  gatewayops.apisix_ha.etcd_member:
    endpoints:
      - https://10.0.0.1:2379
      - https://10.0.0.2:2379
    ca_cert: /etc/etcd/pki/ca.crt
    client_cert: /etc/etcd/pki/client.crt
    client_key: /etc/etcd/pki/client.key
    name: etcd04
    peer_urls:
      - https://10.0.0.4:2380
    learner: true
  register: added

- name: Promote etcd04 once it has started and caught up
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd04
    state: promoted
  register: promoted
  retries: 10
  delay: 3
  until: promoted is succeeded

- name: Promote etcd04, retrying for up to 2 minutes while it catches up with the leader
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd04
    state: promoted
    promote_timeout: 120

- name: Make sure etcd03 is not the leader before taking it down
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd03
    state: not_leader
  register: moved

- name: Move etcd02 to a new peer address
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd02
    peer_urls:
      - https://10.0.0.12:2380

- name: Remove etcd03 (refused if that would cost the quorum)
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd03
    state: absent

- name: What would happen
  gatewayops.apisix_ha.etcd_member:
    endpoints: "{{ etcd_endpoints }}"
    name: etcd03
    state: absent
  check_mode: true
  diff: true
"""

RETURN = r"""
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: str
  sample: ["add member etcd04 as learner with peer URLs https://10.0.0.4:2380"]
member:
  description: The member after the change; for O(state=absent) the member as it was before removal.
    Empty when the member is not (and was not) in the cluster. In check mode an added member has no id.
  returned: always
  type: dict
  sample:
    id: "e2a4b1f3c0d9a6b7"
    name: ""
    peer_urls: ["https://10.0.0.4:2380"]
    client_urls: []
    is_learner: true
    started: false
member_id:
  description: ID of the member as 16 hex digits (like etcdctl prints it), or null when unknown.
  returned: always
  type: str
  sample: "e2a4b1f3c0d9a6b7"
cluster_id:
  description: Cluster ID as 16 hex digits.
  returned: always
  type: str
  sample: "4c4191ac5e8a1a1f"
members:
  description: The member list after the change (in check mode, as it would be).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Member ID, 16 hex digits (null for a member check mode would add).
      type: str
    name:
      description: Member name; empty until the member has started.
      type: str
    peer_urls:
      description: Peer URLs.
      type: list
      elements: str
    client_urls:
      description: Client URLs; empty until the member has started.
      type: list
      elements: str
    is_learner:
      description: Whether the member is a learner (non-voting).
      type: bool
    started:
      description: Whether the member has started (has published its name).
      type: bool
  sample:
    - id: "1818b2c362ae21da"
      name: etcd01
      peer_urls: ["https://10.0.0.1:2380"]
      client_urls: ["https://10.0.0.1:2379"]
      is_learner: false
      started: true
leader:
  description:
    - With O(state=not_leader), the leader after the run (id, name); in check mode the member that would lead.
      Empty when no leader was found.
  returned: when O(state=not_leader)
  type: dict
  sample:
    id: "8c05a4a1b9a2c3d4"
    name: etcd02
previous_leader:
  description: With O(state=not_leader), the leader before the run (id, name); empty when none was found.
  returned: when O(state=not_leader)
  type: dict
  sample:
    id: "1818b2c362ae21da"
    name: etcd03
promote_attempts:
  description: Number of promote requests sent (more than one when etcd said the learner was not ready yet).
  returned: when a promotion was made
  type: int
  sample: 3
health:
  description: Result of the quorum health check, by member ID, when one was made.
  returned: when a change needing quorum was planned
  type: dict
  sample:
    1818b2c362ae21da:
      healthy: true
      reason: ""
      endpoint: https://10.0.0.1:2379
diff:
  description: Member lists before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
  sample:
    before:
      members: []
    after:
      members: []
"""

import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdApiError,
    EtcdConnectionError,
    EtcdError,
    EtcdUnavailableError,
    format_id,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_cluster_view import (
    agreed_leader,
    format_member,
    label as _label,
    leader_candidates,
    members_health,
    members_status,
    quorum_verdict,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_leadership import transfer_leadership
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import (
    EtcdModule,
    check_url,
    normalize_url,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure

# etcd's answers to a promotion that may succeed later: the learner has not started or not caught up yet.
PROMOTE_NOT_READY = (
    'can only promote a learner member which is in sync with leader',
    'not enough started members',
    'learner member is not started',
)


def _urls(urls):
    return set(normalize_url(u) for u in urls)


def _show_urls(urls):
    return ', '.join(urls) if urls else '(none)'


def find_member(members, name, peer_urls):
    """The member called ``name``; failing that an unstarted (nameless) member using one of ``peer_urls``.
    -> (member or None, error or None)."""
    named = [m for m in members if m['name'] == name]
    if len(named) > 1:
        return None, 'more than one member is called %s: %s' % (name, ', '.join(_label(m) for m in named))
    if named:
        return named[0], None
    if peer_urls:
        wanted = _urls(peer_urls)
        unstarted = [m for m in members if not m['name'] and _urls(m['peer_urls']) & wanted]
        if len(unstarted) > 1:
            return None, 'several unstarted members use the peer URLs %s' % _show_urls(peer_urls)
        if unstarted:
            return unstarted[0], None
    return None, None


def url_conflicts(members, peer_urls, me=None):
    """Text naming each other member that already uses one of ``peer_urls``, or None."""
    wanted = _urls(peer_urls)
    clashes = []
    for m in members:
        if me is not None and m['id'] == me['id']:
            continue
        shared = sorted(wanted & _urls(m['peer_urls']))
        if shared:
            clashes.append('%s already uses %s' % (_label(m), ', '.join(shared)))
    return '; '.join(clashes) if clashes else None


class EtcdMemberModule(object):

    def __init__(self, module):
        self.module = module
        self.client = module.client
        self.recorder = module.recorder
        self.health = None
        self.alarms = None
        self.alarms_error = None
        self.warnings = []
        self.extra = {}

    def read_alarms(self):
        """The raised alarms (read once), or None when they could not be read (a warning says so)."""
        if self.alarms is None and self.alarms_error is None:
            try:
                self.alarms = self.client.alarms()
            except EtcdError as e:
                self.alarms_error = str(e)
                self.warnings.append('The alarms could not be read: %s.' % self.alarms_error)
        return self.alarms

    def only_corrupt_of(self, member):
        """Whether the alarms raised are CORRUPT alarms of ``member`` and nothing else (at least one)."""
        alarms = self.read_alarms() or []
        return bool(alarms) and all(a['member_id'] == member['id'] and a['alarm'] == 'CORRUPT' for a in alarms)

    def check_quorum(self, operation, members, member, describe):
        timeout = min(self.module.params['health_timeout'], self.module.params['timeout'])
        if self.health is None:
            self.health = members_health(self.client, members, timeout)
        ok, text = quorum_verdict(operation, members, self.health, member)
        if not ok and operation == 'remove' and self.only_corrupt_of(member):
            # etcd answers /health false on every member while the CORRUPT alarm of the member removed is raised
            self.health = members_health(self.client, members, timeout, exclude=['CORRUPT'])
            ok, text = quorum_verdict(operation, members, self.health, member)
            text += ' (health asked with ?exclude=CORRUPT: the only alarm raised is the CORRUPT alarm of the member removed)'
        if not ok:
            raise ModuleFailure('Refusing to %s: %s. Nothing was changed.' % (describe, text),
                                health=self._health_out())

    def _health_out(self):
        if self.health is None:
            return None
        return dict((format_id(k), v) for k, v in self.health.items())

    def main(self):
        p = self.module.params
        name, state, learner = p['name'], p['state'], p['learner']
        peer_urls = p['peer_urls']
        if peer_urls is not None:
            peer_urls = [u.strip() for u in peer_urls]
            problems = [e for e in (check_url(u) for u in peer_urls) if e]
            if problems:
                raise ModuleFailure('Malformed peer URL: %s.' % '; '.join(problems))
            if not peer_urls:
                raise ModuleFailure('peer_urls must not be empty when given.')
            if len(_urls(peer_urls)) != len(peer_urls):
                raise ModuleFailure('peer_urls lists the same URL twice: %s.' % _show_urls(peer_urls))

        listing = self.client.member_list()
        cluster_id = listing['header']['cluster_id']
        before = listing['members']
        member, error = find_member(before, name, peer_urls)
        if error:
            raise ModuleFailure('Cannot tell which member is meant: %s.' % error)

        after = [dict(m) for m in before]
        result_member = member
        check = self.module.check_mode

        if state == 'absent':
            if member is not None:
                describe = 'remove member %s' % _label(member)
                self.check_quorum('remove', before, member, describe)
                self.recorder.do(describe, self.client.member_remove, member['id'])
                after = [m for m in after if m['id'] != member['id']]
                self._disarm_alarms_of(member)

        elif state == 'not_leader':
            self._not_leader(member, before)

        elif state == 'promoted':
            if member is None:
                hint = ''
                if any(not m['name'] for m in before) and not peer_urls:
                    hint = ' An unstarted member has no name yet; give its peer_urls to match it.'
                raise ModuleFailure('Cannot promote %s: no member of that name is in the cluster (members: %s).%s'
                                    % (name, ', '.join(_label(m) for m in before) or 'none', hint))
            result_member = self._promote(member, before, after)

        else:  # present
            if member is None:
                if not peer_urls:
                    raise ModuleFailure('Member %s is not in the cluster; peer_urls are needed to add it.' % name)
                clash = url_conflicts(before, peer_urls)
                if clash:
                    raise ModuleFailure('Cannot add member %s with peer URLs %s: %s.'
                                        % (name, _show_urls(peer_urls), clash))
                kind = 'learner' if learner else 'voting member'
                describe = 'add member %s as %s with peer URLs %s' % (name, kind, _show_urls(peer_urls))
                self.check_quorum('add_learner' if learner else 'add_voting', before, None, describe)
                answer = self.recorder.do(describe, self.client.member_add, peer_urls, is_learner=learner)
                if check:
                    result_member = dict(id=None, name='', peer_urls=list(peer_urls), client_urls=[],
                                         is_learner=bool(learner))
                else:
                    result_member = answer['member']
                after.append(dict(result_member))
            else:
                if peer_urls and _urls(peer_urls) != _urls(member['peer_urls']):
                    clash = url_conflicts(before, peer_urls, me=member)
                    if clash:
                        raise ModuleFailure('Cannot give member %s the peer URLs %s: %s.'
                                            % (_label(member), _show_urls(peer_urls), clash))
                    describe = ('update peer URLs of member %s from %s to %s'
                                % (_label(member), _show_urls(member['peer_urls']), _show_urls(peer_urls)))
                    self.check_quorum('update', before, member, describe)
                    self.recorder.do(describe, self.client.member_update, member['id'], peer_urls)
                    for m in after:
                        if m['id'] == member['id']:
                            m['peer_urls'] = list(peer_urls)
                if member['is_learner'] and not learner:
                    self._promote(member, before, after)
                elif not member['is_learner'] and learner:
                    self.warnings.append('Member %s is a voting member; etcd cannot turn it back into a learner, '
                                         'left as it is.' % _label(member))

        if self.recorder.changed and not check:
            listing = self.client.member_list()
            after = listing['members']
            cluster_id = listing['header']['cluster_id'] or cluster_id
        if state != 'absent' and result_member is not None and result_member.get('id'):
            now = [m for m in after if m['id'] == result_member['id']]
            result_member = now[0] if now else result_member
        elif state != 'absent' and result_member is not None:
            now = [m for m in after if m['id'] is None]
            result_member = now[0] if now else result_member

        result = dict(
            members=[format_member(m) for m in after],
            member=format_member(result_member) if result_member is not None else {},
            member_id=format_id(result_member['id']) if result_member is not None and result_member['id'] else None,
            cluster_id=format_id(cluster_id),
        )
        result.update(self.extra)
        if self.health is not None:
            result['health'] = self._health_out()
        for w in self.warnings:
            self.module.warn(w)
        self.module.finish(before=dict(members=[format_member(m) for m in before]),
                           after=dict(members=[format_member(m) for m in after]), **result)

    def _promote(self, member, before, after):
        if not member['is_learner']:
            return member
        describe = 'promote learner %s to voting member' % _label(member)
        self.check_quorum('promote', before, member, describe)
        self.recorder.do(describe, self._promote_with_retries, member)
        for m in after:
            if m['id'] == member['id']:
                m['is_learner'] = False
        return member

    def _promote_with_retries(self, member):
        """Send the promotion until etcd accepts it; retry while the learner is not ready, up to promote_timeout."""
        deadline = time.monotonic() + max(0.0, self.module.params['promote_timeout'])
        attempts = 0
        while True:
            attempts += 1
            try:
                self.client.member_promote(member['id'])
                self.extra['promote_attempts'] = attempts
                return
            except (EtcdConnectionError, EtcdUnavailableError):
                # etcd promotes through raft: on a loaded machine its answer may come after the client's timeout,
                # the promotion applied or not. Look, and ask again until promote_timeout.
                if self.module.params['promote_timeout'] <= 0 or time.monotonic() >= deadline:
                    raise
                if self._is_voting(member):
                    self.extra['promote_attempts'] = attempts
                    return
            except EtcdApiError as e:
                text = (e.grpc_message or str(e)).lower()
                if self.module.params['promote_timeout'] <= 0 or not any(m in text for m in PROMOTE_NOT_READY):
                    raise
                if time.monotonic() >= deadline:
                    raise ModuleFailure(
                        'Learner %s was not promoted within promote_timeout (%s s, %d attempts): etcd keeps '
                        'answering "%s". The learner has not started or not caught up with the leader: check '
                        'that etcd runs on it (journalctl -u etcd) and that it reaches the other members\' '
                        'peer URLs, then promote it again (state=promoted).%s'
                        % (_label(member), self.module.params['promote_timeout'], attempts,
                           e, self._progress(member)),
                        promote_attempts=attempts)
            # A learner usually catches up within a second or two of starting: ask often (a refused promotion
            # costs etcd one request).
            time.sleep(min(0.5, max(0.1, deadline - time.monotonic())))

    def _is_voting(self, member):
        """Whether the member list (when one endpoint gives it) shows ``member`` as a voting member."""
        try:
            members = self.client.member_list()['members']
        except EtcdError:
            return False
        return any(m['id'] == member['id'] and not m['is_learner'] for m in members)

    def _progress(self, member):
        """' Learner raft index X, leader raft index Y.' when both can be read, else ''."""
        try:
            members = self.client.member_list()['members']
        except EtcdError:
            return ''
        short = min(self.module.params['health_timeout'], self.module.params['timeout'])
        statuses = members_status(self.module.make_client(timeout=short), members)
        mine = statuses.get(member['id'])
        leader = statuses.get(agreed_leader(statuses))
        if mine and leader:
            return ' Learner raft index %d, leader raft index %d.' % (mine['raft_index'], leader['raft_index'])
        return ' The learner does not answer status requests.' if leader else ''

    def _disarm_alarms_of(self, member):
        """Disarm the alarms raised for ``member``, removed just now (etcd keeps them by member ID)."""
        for alarm in sorted(set(a['alarm'] for a in self.read_alarms() or [] if a['member_id'] == member['id'])):
            self.recorder.do('disarm the %s alarm of the removed member %s' % (alarm, _label(member)),
                             self.client.alarm_disarm, member['id'], alarm)

    def _not_leader(self, member, before):
        short = min(self.module.params['health_timeout'], self.module.params['timeout'])
        probe = self.module.make_client(timeout=short)
        statuses = members_status(probe, before)
        leader_id = agreed_leader(statuses)
        by_id = dict((m['id'], m) for m in before)

        def who(mid):
            if not mid:
                return {}
            return dict(id=format_id(mid), name=by_id[mid]['name'] if mid in by_id else '')

        self.extra.update(previous_leader=who(leader_id), leader=who(leader_id))
        if member is None or leader_id != member['id']:
            return
        self.health = members_health(probe, before, short)
        candidates = leader_candidates(before, self.health, statuses, exclude_id=member['id'])
        if not candidates and self.only_corrupt_of(member):
            # every member's /health is false while the CORRUPT alarm of the leader to replace is raised
            self.health = members_health(probe, before, short, exclude=['CORRUPT'])
            candidates = leader_candidates(before, self.health, statuses, exclude_id=member['id'])
        if not candidates:
            raise ModuleFailure('Cannot move the leadership away from %s: no other voting member is started, '
                                'healthy and answering status requests. Bring another member back first. Nothing '
                                'was changed.' % _label(member),
                                health=self._health_out(), previous_leader=who(leader_id))
        target, target_status = candidates[0]
        describe = 'move leadership from %s to %s (raft index %d)' % (
            _label(member), _label(target), target_status['raft_index'])
        self.extra['leader'] = who(target['id'])

        def transfer():
            now_leader = transfer_leadership(self.client, probe, before, member, target,
                                             self.module.params['leader_timeout'], previous_leader=who(leader_id))
            self.extra['leader'] = who(now_leader)

        self.recorder.do(describe, transfer)


def main():
    module = EtcdModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent', 'promoted', 'not_leader']),
            peer_urls=dict(type='list', elements='str'),
            learner=dict(type='bool', default=False),
            health_timeout=dict(type='float', default=5),
            promote_timeout=dict(type='float', default=60),
            leader_timeout=dict(type='float', default=30),
        ),
        supports_check_mode=True,
    )
    module.execute(EtcdMemberModule(module).main)


if __name__ == '__main__':
    main()
