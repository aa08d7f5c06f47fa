# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""One view of an etcd cluster, read once and shared by the etcd modules.

- The quorum arithmetic (quorum_size, quorum_verdict), the health and status probes of every member, the
  leader the members report (reported_leaders, agreed_leader, leader_candidates) live here and nowhere else.
- read_cluster_view() reads members, per-member status and health, the leader agreement, the alarms and
  (optionally) the KV hashes, and returns the result etcd_cluster_info documents (healthy, quorum, leader,
  members[], voting_members, started_voting_members, hashkv_consistent, problems, alarms ...).
- WaitCondition is the declared condition of etcd_cluster_info's wait: unmet(view) says what is still missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import threading
import time

from ._etcd_client import (
    EtcdError,
    EtcdNotSupportedError,
    format_id,
)


# Hash (no revision) answers of all members are compared only when taken at one revision: tries and pause.
HASH_ATTEMPTS = 20
HASH_RETRY_DELAY = 0.05


# ---------------------------------------------------------------------------------------------------
# quorum
# ---------------------------------------------------------------------------------------------------

def quorum_size(voting_count):
    """Votes needed for quorum among ``voting_count`` voting members (learners do not vote)."""
    return voting_count // 2 + 1


def label(member):
    """'name (id)' of a client member dict; 'unstarted' for a member without a name, 'new' without an id."""
    return '%s (%s)' % (member['name'] or 'unstarted', format_id(member['id']) if member['id'] else 'new')


def quorum_verdict(operation, members, health, member=None):
    """Whether ``operation`` keeps quorum. operation: add_voting, add_learner, remove, promote, update.
    Only voting members that answered the health check count; learners and unreachable members do not.
    -> (ok: bool, explanation: str)."""
    voting = [m for m in members if not m['is_learner']]
    healthy = [m for m in voting if health.get(m['id'], {}).get('healthy')]
    n, h = len(voting), len(healthy)
    member_healthy = bool(member is not None and health.get(member['id'], {}).get('healthy'))
    if operation == 'add_voting':
        new_n, new_h = n + 1, h
        ok = new_h >= quorum_size(new_n)
        text = ('with the new (not yet started) voting member there would be %d voting members; quorum needs %d '
                'healthy, %d are healthy now' % (new_n, quorum_size(new_n), new_h))
    elif operation == 'remove' and member is not None and not member['is_learner']:
        new_n, new_h = n - 1, h - (1 if member_healthy else 0)
        if new_n < 1:
            return False, 'it is the last voting member'
        ok = new_h >= quorum_size(new_n)
        text = ('after the removal %d voting members would remain, %d of them healthy; quorum needs %d'
                % (new_n, new_h, quorum_size(new_n)))
    elif operation == 'promote':
        new_n, new_h = n + 1, h + (1 if member_healthy else 0)
        ok = new_h >= quorum_size(new_n)
        text = ('after the promotion there would be %d voting members, %d of them healthy; quorum needs %d'
                % (new_n, new_h, quorum_size(new_n)))
    else:  # add_learner, update, remove of a learner: the cluster must have quorum now
        ok = n > 0 and h >= quorum_size(n)
        text = '%d of %d voting members are healthy; quorum needs %d' % (h, n, quorum_size(n))
    unhealthy = [m for m in members if not health.get(m['id'], {}).get('healthy')]
    if unhealthy:
        text += '. Unhealthy: ' + '; '.join('%s: %s' % (label(m), health.get(m['id'], {}).get('reason', 'unknown'))
                                            for m in unhealthy)
    return ok, text


# ---------------------------------------------------------------------------------------------------
# probes of every member, on its own client URLs
# ---------------------------------------------------------------------------------------------------

def _in_parallel(func, members, join_timeout):
    threads = []
    for member in members:
        t = threading.Thread(target=func, args=(member,))
        t.daemon = True
        t.start()
        threads.append(t)
    for t in threads:
        t.join(join_timeout)


def members_health(client, members, timeout, exclude=None):
    """GET /health on every member's client URLs (first URL that says healthy wins), in parallel.
    -> {member_id(int): dict(healthy=bool, reason=str, endpoint=str or None)}.
    A member without client URLs (not started) is unhealthy. ``exclude``: alarm names that do not count
    (etcd's /health?exclude=; etcd answers false on every member while any alarm is raised)."""
    results = {}

    def probe(member):
        reasons = []
        for url in member['client_urls']:
            healthy, reason = client.health(url, timeout=timeout, exclude=exclude)
            if healthy:
                results[member['id']] = dict(healthy=True, reason='', endpoint=url)
                return
            reasons.append('%s: %s' % (url, reason))
        results[member['id']] = dict(healthy=False, endpoint=None,
                                     reason='; '.join(reasons) if reasons else 'not started (no client URLs)')

    longest = max([len(m['client_urls']) for m in members] or [1])
    _in_parallel(probe, members, timeout * max(1, longest) + 5)
    for member in members:
        results.setdefault(member['id'], dict(healthy=False, endpoint=None, reason='health check did not finish'))
    return results


def member_status(client, member):
    """Status of one member, asked on its own client URLs (first URL that answers wins).
    -> (status dict of EtcdClient.status() or None, [what each URL answered])."""
    errors = []
    for url in member['client_urls']:
        try:
            return client.status(url), errors
        except EtcdError as e:
            errors.append(str(e))
    if not member['client_urls']:
        errors.append('not started (no client URLs)')
    return None, errors


def members_status(client, members):
    """-> {member_id(int): status dict or None when no URL answered}."""
    return dict((m['id'], member_status(client, m)[0]) for m in members)


def reported_leaders(statuses):
    """{leader_id: number of answering members that report it} (members reporting no leader left out)."""
    counts = {}
    for st in statuses.values():
        if st and st['leader']:
            counts[st['leader']] = counts.get(st['leader'], 0) + 1
    return counts


def agreed_leader(statuses):
    """The leader ID most answering members report (ties: the lowest ID), or 0 when none reports one."""
    counts = reported_leaders(statuses)
    if not counts:
        return 0
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]


def leader_candidates(members, health, statuses, exclude_id=None):
    """Members that can take over leadership, best first: voting, started, healthy, status answered, not
    ``exclude_id``; ordered by raft index (highest first), then name. -> list of (member, status)."""
    candidates = []
    for member in members:
        st = statuses.get(member['id'])
        if member['id'] == exclude_id or member['is_learner'] or not member['name'] or st is None:
            continue
        if st.get('is_learner') or not health.get(member['id'], {}).get('healthy'):
            continue
        candidates.append((member, st))
    candidates.sort(key=lambda pair: (-pair[1]['raft_index'], pair[0]['name']))
    return candidates


def format_member(member):
    """Client member dict -> the shape the modules return (id as 16-hex, started bool)."""
    return dict(
        id=format_id(member['id']),
        name=member['name'],
        peer_urls=list(member['peer_urls']),
        client_urls=list(member['client_urls']),
        is_learner=bool(member['is_learner']),
        started=bool(member['name']),
    )


def format_status(member, st):
    """EtcdClient.status() of ``member`` -> the shape etcd_cluster_info returns."""
    return dict(
        endpoint=st['endpoint'],
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
    )


# ---------------------------------------------------------------------------------------------------
# hashes
# ---------------------------------------------------------------------------------------------------

def member_hash(client, member, revision, method):
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


def hashes_at_one_revision(client, members, attempts=HASH_ATTEMPTS):
    """Whole-backend Hash of every member, asked of all members at once; repeated (up to ``attempts`` times)
    until every member answered at the same revision, since under writes sequential answers would compare
    different revisions. -> (hashes as member_hash gives them, attempts made)."""
    hashes = []
    for attempt in range(1, attempts + 1):
        results = {}

        def probe(member):
            results[member['id']] = member_hash(client, member, 0, 'hash')

        _in_parallel(probe, members, client.timeout * 3 + 5)
        hashes = [results.get(m['id'], dict(error='hash request did not finish', method='hash')) for m in members]
        revisions = set(h.get('hash_revision') for h in hashes)
        if any('error' in h for h in hashes) or len(revisions) == 1:
            return hashes, attempt
        time.sleep(HASH_RETRY_DELAY)
    return hashes, attempts


def member_kv_digest(client, member, revision):
    """The keyspace of ONE member at ``revision``, read from its own copy (serializable) and digested here: sha256
    over every key, its mod_revision and its value. -> like member_hash, method 'kvdigest'."""
    errors = []
    for url in member['client_urls']:
        try:
            answer = client.range('\0', range_end='\0', revision=revision, serializable=True, endpoints=[url])
        except EtcdError as e:
            errors.append(str(e))
            continue
        digest = hashlib.sha256()
        for kv in sorted(answer['kvs'], key=lambda kv: kv['key']):
            digest.update(repr((kv['key'], kv['mod_revision'], kv['value'])).encode('utf-8'))
        return dict(hash=int(digest.hexdigest()[:15], 16), hash_revision=revision, compact_revision=None,
                    method='kvdigest', endpoint=url)
    return dict(error='; '.join(errors) or 'not started (no client URLs)', method='kvdigest')


def _hash_members(member_client, members, out, statuses, problems):
    """Hash every member at one revision into out[i]['hashkv']. -> (method, revision, attempts, consistent)."""
    revisions = [st['header']['revision'] for st in statuses.values() if st and st['header']['revision']]
    # the lowest revision every answering member has reached, so all of them can hash at it
    hash_revision = min(revisions) if revisions else 0
    hash_method = 'hashkv'
    try:
        hashes = [member_hash(member_client, m, hash_revision, 'hashkv') for m in members]
        hash_attempts = 1
    except EtcdNotSupportedError:
        # one gateway lacks HashKV: compare the whole-backend Hash of every member instead
        hash_method, hash_revision = 'hash', 0
        hashes, hash_attempts = hashes_at_one_revision(member_client, members)
        at = set(h.get('hash_revision') for h in hashes)
        if len(set(h.get('hash') for h in hashes)) > 1 and len(at) == 1 and not any('error' in h for h in hashes):
            # Different whole-backend hashes at one revision need not mean different keys: etcd 3.4 hashes each
            # user's password with its own salt on every member, so with authentication on the backends always
            # differ. The keys themselves, read from each member at that revision, decide.
            hash_method, hash_revision = 'kvdigest', at.pop()
            hashes = [member_kv_digest(member_client, m, hash_revision) for m in members]
    for entry, h in zip(out, hashes):
        entry['hashkv'] = h
    values = set(h['hash'] for h in hashes if 'hash' in h)
    failed = [e for e in out if 'hash' not in e['hashkv']]
    consistent = bool(hashes) and not failed and len(values) == 1
    for e in failed:
        problems.append('member %s gave no hash: %s' % (e['name'] or e['id'], e['hashkv']['error']))
    if hash_method == 'hash' and len(set(h.get('hash_revision') for h in hashes)) > 1:
        consistent = False
        problems.append('the members answered the Hash request at different revisions (writes going on); '
                        'their hashes cannot be compared: %s' % ', '.join(
                            '%s@%s' % (e['name'] or e['id'], e['hashkv'].get('hash_revision')) for e in out))
    elif len(values) > 1:
        problems.append('members have different hashes: %s' % ', '.join(
            '%s=%s' % (e['name'] or e['id'], e['hashkv']['hash']) for e in out if 'hash' in e['hashkv']))
    return hash_method, hash_revision, hash_attempts, consistent


# ---------------------------------------------------------------------------------------------------
# alarms
# ---------------------------------------------------------------------------------------------------

def _alarms_by_member(member_client, members, out, alarms, health_timeout):
    """Each member's own alarms into out[i]['alarms'] and, while a CORRUPT alarm is raised (etcd's /health is
    then false on every member), whether the member would be healthy but for it into
    out[i]['healthy_excluding_corrupt'] (/health?exclude=CORRUPT, asked of the unhealthy members only)."""
    for entry, m in zip(out, members):
        entry['alarms'] = sorted(a['alarm'] for a in alarms if a['member_id'] == m['id'])
        entry['healthy_excluding_corrupt'] = entry['healthy']
    if not any(a['alarm'] == 'CORRUPT' for a in alarms):
        return
    unhealthy = [(entry, m) for entry, m in zip(out, members) if not entry['healthy']]
    again = members_health(member_client, [pair[1] for pair in unhealthy], health_timeout, exclude=['CORRUPT'])
    for entry, m in unhealthy:
        entry['healthy_excluding_corrupt'] = again[m['id']]['healthy']


def failed_member_verdict(view, name):
    """Whether the members other than ``name`` are healthy enough to replace ``name`` as a failed member: each of
    them healthy, or unhealthy only because CORRUPT alarms are raised for ``name`` alone (etcd answers /health
    false on every member while any alarm is raised). Any other alarm, a CORRUPT alarm of another member or
    alarms that could not be read keep every member that is not healthy a problem. Members never started are left
    to the caller. -> dict(name, id, found, corrupt (a CORRUPT alarm is raised for it), problems (one line each, [] when the
    other members allow the replacement))."""
    target = [m for m in view['members'] if m['name'] == name]
    target_id = target[0]['id'] if target else None
    corrupt = [a for a in view['alarms'] if a['member_id'] == target_id and a['alarm'] == 'CORRUPT']
    other_alarms = [a for a in view['alarms'] if a not in corrupt]
    problems = []
    for a in other_alarms:
        problems.append('alarm %s raised for member %s (only a CORRUPT alarm of the member replaced is '
                        'accepted)' % (a['alarm'], a['member_name'] or a['member_id']))
    if view.get('alarms_error'):
        problems.append('alarms could not be read: %s' % view['alarms_error'])
    accept_corrupt = bool(corrupt) and not other_alarms and not view.get('alarms_error')
    for m in view['members']:
        # a member never started (no name) has no health to speak of: the caller says what it makes of it
        if m['id'] == target_id or m['healthy'] or not m['name']:
            continue
        if accept_corrupt and m.get('healthy_excluding_corrupt'):
            continue
        problems.append('%s: not healthy: %s' % (m['name'] or m['id'], m['health_reason']))
    return dict(name=name, id=target_id or '', found=bool(target), corrupt=bool(corrupt), problems=problems)


# ---------------------------------------------------------------------------------------------------
# the view
# ---------------------------------------------------------------------------------------------------

def read_cluster_view(client, member_client, health_timeout, hashkv=True):
    """Read the whole cluster once: the member list from ``client`` (the first endpoint that answers), each
    member's health, status and hash on its own client URLs through ``member_client``, the alarms.
    -> the result etcd_cluster_info returns (without changed). Raises EtcdError when no endpoint gives the
    member list."""
    listing = client.member_list()
    members = listing['members']
    by_id = dict((m['id'], m) for m in members)
    problems = []

    health = members_health(member_client, members, health_timeout)
    out, statuses = [], {}
    for m in members:
        st, errors = member_status(member_client, m)
        statuses[m['id']] = st
        entry = format_member(m)
        entry.update(status=format_status(m, st) if st else None, status_errors=errors,
                     healthy=health[m['id']]['healthy'], health_reason=health[m['id']]['reason'], hashkv=None)
        out.append(entry)
        if not health[m['id']]['healthy']:
            problems.append('member %s is not healthy: %s' % (m['name'] or format_id(m['id']),
                                                              health[m['id']]['reason']))
        elif st is None:
            problems.append('member %s does not answer status requests: %s' % (m['name'] or format_id(m['id']),
                                                                               '; '.join(errors)))

    # the leader: one that every answering member reports
    counts = reported_leaders(statuses)
    leaders = sorted(format_id(lid) for lid in counts)
    answering = [st for st in statuses.values() if st]
    leader = {}
    if len(counts) == 1 and all(st['leader'] for st in answering):
        lid = list(counts)[0]
        leader = dict(id=format_id(lid), name=by_id[lid]['name'] if lid in by_id else '')
        if lid not in by_id:
            problems.append('the leader %s is not in the member list' % format_id(lid))
    elif not counts:
        problems.append('no member reports a leader')
    else:
        problems.append('members disagree on the leader: %s' % ', '.join(leaders))
    one_leader = bool(leader) and int(leader['id'], 16) in by_id

    alarms, alarms_error = [], None
    if not counts:
        # etcd answers an alarm request through raft: with no leader it would only time out (7 s and more).
        alarms_error = 'not read: no member reports a leader, and etcd needs one to answer'
    else:
        try:
            alarms = client.alarms()
        except EtcdError as e:
            alarms_error = str(e)
            problems.append('alarms could not be read: %s' % alarms_error)
    alarms_out = [dict(member_id=format_id(a['member_id']), alarm=a['alarm'],
                       member_name=by_id[a['member_id']]['name'] if a['member_id'] in by_id else '')
                  for a in alarms]
    for a in alarms_out:
        problems.append('alarm %s raised for member %s' % (a['alarm'], a['member_name'] or a['member_id']))
    _alarms_by_member(member_client, members, out, alarms, health_timeout)

    hash_method, hash_revision, hash_attempts, hashkv_consistent = None, 0, 0, None
    if hashkv and not counts and member_client.user:
        # Hashes need a login, which etcd grants through raft: with no leader it would only time out.
        problems.append('hashes not read: no member reports a leader, and etcd logs a user in only through one')
    elif hashkv:
        hash_method, hash_revision, hash_attempts, hashkv_consistent = _hash_members(
            member_client, members, out, statuses, problems)

    voting = [m for m in members if not m['is_learner']]
    healthy_voting = [m for m in voting if health[m['id']]['healthy']]
    quorum = len(voting) > 0 and len(healthy_voting) >= quorum_size(len(voting))
    if not quorum:
        problems.append('only %d of %d voting members are healthy; quorum needs %d'
                        % (len(healthy_voting), len(voting), quorum_size(len(voting))))
    all_healthy = all(health[m['id']]['healthy'] and statuses[m['id']] for m in members)

    result = dict(
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
        quorum_size=quorum_size(len(voting)),
        healthy=bool(all_healthy and one_leader and not alarms and alarms_error is None),
        quorum=quorum,
        hashkv_consistent=hashkv_consistent,
        problems=problems,
    )
    if alarms_error is not None:
        result['alarms_error'] = alarms_error
    return result


# ---------------------------------------------------------------------------------------------------
# wait conditions
# ---------------------------------------------------------------------------------------------------

MEMBER_STATES = ('present', 'absent', 'started', 'voting', 'learner')

# Keep in step with etcd_cluster_info's documentation of wait_condition.
WAIT_CONDITION_SPEC = dict(
    healthy=dict(type='bool'),
    quorum=dict(type='bool'),
    hashkv_consistent=dict(type='bool'),
    members=dict(type='int'),
    min_members=dict(type='int'),
    voting_members=dict(type='int'),
    started_voting_members=dict(type='int'),
    member_names=dict(type='list', elements='str'),
    leader_not=dict(type='str'),
    member=dict(type='dict', options=dict(
        name=dict(type='str'),
        id=dict(type='str'),
        state=dict(type='str', default='present', choices=list(MEMBER_STATES)),
        healthy=dict(type='bool'),
        version=dict(type='str'),
        client_url=dict(type='str'),
    )),
)


class WaitCondition(object):
    """The condition of a wait, as the module's ``wait_condition`` option declares it (None values unset)."""

    def __init__(self, spec):
        self.spec = dict((k, v) for k, v in (spec or {}).items() if v is not None)
        member = self.spec.get('member')
        if member is not None:
            self.spec['member'] = dict((k, v) for k, v in member.items() if v is not None)

    def invalid(self, hashkv):
        """Why the condition cannot be waited for, or None."""
        member = self.spec.get('member')
        if member is not None and not (member.get('name') or member.get('id')):
            return 'wait_condition.member needs a name or an id'
        if member is not None and member.get('state') == 'absent' and set(member) - set(['name', 'id', 'state']):
            return 'wait_condition.member with state=absent takes only name or id'
        if self.spec.get('hashkv_consistent') is not None and not hashkv:
            return 'wait_condition.hashkv_consistent needs hashkv=true'
        return None

    def describe(self):
        """The condition in words, for messages."""
        s = self.spec
        parts = []
        for key, words in (('healthy', 'every member healthy with one leader and no alarm'), ('quorum', 'quorum'),
                           ('hashkv_consistent', 'equal hashes on every member')):
            if key in s:
                parts.append(words if s[key] else 'not ' + words)
        for key, words in (('members', '%d members'), ('min_members', 'at least %d members'),
                           ('voting_members', '%d voting members'),
                           ('started_voting_members', '%d started voting members')):
            if key in s:
                parts.append(words % s[key])
        if 'member_names' in s:
            parts.append('exactly the members %s' % ', '.join(sorted(s['member_names'])))
        if 'leader_not' in s:
            parts.append('a leader other than %s' % s['leader_not'])
        member = s.get('member')
        if member is not None:
            text = 'member %s %s' % (member.get('name') or member.get('id'), member.get('state', 'present'))
            extra = [('healthy' if member['healthy'] else 'unhealthy') if 'healthy' in member else None,
                     'at version %s' % member['version'] if 'version' in member else None,
                     'with client URL %s' % member['client_url'] if 'client_url' in member else None,
                     'with ID %s' % member['id'] if 'id' in member and 'name' in member else None]
            parts.append(' '.join([text] + [e for e in extra if e]))
        return ', '.join(parts) or 'an answer'

    def unmet(self, view):
        """What of the condition ``view`` (read_cluster_view's result) does not meet yet: [] when it holds."""
        s = self.spec
        missing = []
        for key in ('healthy', 'quorum', 'hashkv_consistent'):
            if key in s and bool(view[key]) != s[key]:
                missing.append('%s is %s' % (key, str(bool(view[key])).lower()))
        counts = dict(members=len(view['members']), voting_members=view['voting_members'],
                      started_voting_members=view['started_voting_members'])
        for key in ('members', 'voting_members', 'started_voting_members'):
            if key in s and counts[key] != s[key]:
                missing.append('%d %s, %d wanted' % (counts[key], key.replace('_', ' '), s[key]))
        if 'min_members' in s and counts['members'] < s['min_members']:
            missing.append('%d members, at least %d wanted' % (counts['members'], s['min_members']))
        if 'member_names' in s:
            names = sorted(m['name'] or m['id'] for m in view['members'])
            if names != sorted(s['member_names']):
                missing.append('the members are %s' % (', '.join(names) or 'none'))
        if 'leader_not' in s:
            if not view['leader']:
                missing.append('no leader all members agree on')
            elif s['leader_not'] in (view['leader']['name'], view['leader']['id']):
                missing.append('%s is still the leader' % s['leader_not'])
        if 'member' in s:
            missing.extend(self._member_unmet(s['member'], view['members']))
        return missing

    @staticmethod
    def _member_unmet(want, members):
        found = [m for m in members
                 if (not want.get('name') or m['name'] == want['name']) and (not want.get('id') or m['id'] == want['id'])]
        who = 'member %s' % (want.get('name') or want.get('id'))
        state = want.get('state', 'present')
        if state == 'absent':
            return ['%s is still a member (%s)' % (who, found[0]['id'])] if found else []
        if not found:
            return ['%s is not in the member list' % who]
        m = found[0]
        missing = []
        if state == 'started' and not m['started']:
            missing.append('%s has not started' % who)
        if state == 'voting' and m['is_learner']:
            missing.append('%s is a learner' % who)
        if state == 'learner' and not m['is_learner']:
            missing.append('%s is a voting member' % who)
        if 'healthy' in want and m['healthy'] != want['healthy']:
            state_text = ('unhealthy: %s' % m['health_reason']) if want['healthy'] else 'healthy'
            missing.append('%s is %s' % (who, state_text))
        if 'version' in want:
            version = (m['status'] or {}).get('version')
            if version != want['version']:
                missing.append('%s runs %s, %s wanted' % (who, version or 'an unknown version', want['version']))
        if 'client_url' in want and want['client_url'].rstrip('/') not in [u.rstrip('/') for u in m['client_urls']]:
            urls = ', '.join(m['client_urls']) or '(none)'
            missing.append('%s has client URLs %s, not %s' % (who, urls, want['client_url']))
        return missing


def wait_for(read, condition, timeout, sleep):
    """Call ``read()`` (a view; EtcdError when no endpoint answered) until ``condition`` holds or ``timeout``
    seconds have passed, pausing ``sleep`` seconds between reads.
    -> dict(view=the last view read or None, unmet=what was missing at the end ([] when met),
    error=the EtcdError of the last read or None, waited=seconds, reads=number of reads)."""
    start = time.monotonic()
    reads = 0
    last_view = None
    while True:
        reads += 1
        error = None
        try:
            last_view = read()
            unmet = condition.unmet(last_view)
        except EtcdError as e:
            error, unmet = e, ['no endpoint answered']
        waited = time.monotonic() - start
        if not unmet or waited >= timeout:
            return dict(view=last_view, unmet=unmet, error=error, waited=round(waited, 1), reads=reads)
        time.sleep(max(0.0, min(sleep, timeout - waited)))
