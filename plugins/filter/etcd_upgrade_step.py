# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The version step of playbooks/upgrade_etcd.yml (entry point upgrade_prepare of etcd_cluster): from the versions the
members run and the one asked for, a rolling restart, an upgrade, or a refusal that says what was refused, why (with
etcd's guide), the documented way instead, and that nothing was changed.

The rules, from etcd's upgrade guides (https://etcd.io/docs/v3.6/upgrades/):
- one minor version at a time, never down (binaries cannot be swapped back once the cluster version moved);
- 3.5.0, 3.5.1 and 3.5.2 can leave members with different data (the role's refused releases);
- 3.4 -> 3.5 with authentication on: no rolling upgrade (3.5 changed the WAL format of auth entries, a mixed
  cluster may apply them differently); the all-at-once upgrade never runs mixed versions;
- a 3.6 target: every 3.5 member on 3.5.26 or later first, no v2 store enabled, and `etcdutl check v2store`
  finding no custom content on every 3.5 member."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

VERSION_RE = re.compile(r'^([0-9]+)\.([0-9]+)\.([0-9]+)$')
REFUSED_VERSIONS = ('3.5.0', '3.5.1', '3.5.2')
# upgrade_3_6: "Before upgrading to 3.6, make sure that all of your 3.5 members are updated to 3.5.26 or later."
MIN_35_FOR_36 = '3.5.26'
NOTHING = 'Nothing was changed.'
GUIDE = {
    'policy': 'https://etcd.io/docs/v3.6/upgrades/upgrading-etcd/',
    '3.5': 'https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/',
    '3.6': 'https://etcd.io/docs/v3.6/upgrades/upgrade_3_6/',
    'corruption': 'https://etcd.io/docs/v3.5/op-guide/data_corruption/',
}
# What `etcdutl check v2store` prints when the v2 store holds only membership data.
V2STORE_CLEAN = 'no custom content found in v2store'
TRUE_WORDS = ('true', '1', 'yes', 'on')


def parse_version(text):
    """'3.5.16' -> (3, 5, 16); None when it is not X.Y.Z."""
    match = VERSION_RE.match(str(text or '').strip())
    return tuple(int(part) for part in match.groups()) if match else None


def minor_of(version):
    return '%d.%d' % version[:2]


def _text(version):
    return '%d.%d.%d' % version


def v2_flags(conf='', unit=''):
    """Whether a member's configuration enables the v2 store: ETCD_ENABLE_V2 in its environment file (etcd.conf) or
    --enable-v2 on the unit's ExecStart; and the etcd binary ExecStart runs.
    -> {'enable_v2': bool, 'where': [what was found], 'etcd': path of the binary ('' when no ExecStart)}."""
    where = []
    binary = ''
    for line in (conf or '').splitlines():
        match = re.match(r'^\s*(?:export\s+)?ETCD_ENABLE_V2\s*=\s*["\']?([^"\'#\s]*)', line)
        if match and match.group(1).lower() in TRUE_WORDS:
            where.append('ETCD_ENABLE_V2=%s in etcd.conf' % match.group(1))
    for line in (unit or '').splitlines():
        match = re.match(r'^\s*ExecStart\s*=\s*[-@:+!]*(\S+)', line)
        if not match:
            continue
        binary = match.group(1)
        for match in re.finditer(r'--enable-v2(?:=(\S+)|\s+(true|false)\b|(?=\s|$))', line):
            value = (match.group(1) or match.group(2) or 'true').lower()
            if value in TRUE_WORDS:
                where.append('--enable-v2 on ExecStart')
    return dict(enable_v2=bool(where), where=where, etcd=binary)


def _v2store_problem(name, seen):
    """One 3.5 member's v2 store, as upgrade_prepare read it: {'enable_v2', 'where', 'rc', 'stdout', 'stderr'}.
    -> None when the guide's conditions hold, else why not."""
    if seen.get('enable_v2'):
        return '%s enables the v2 store (%s)' % (name, ', '.join(seen.get('where') or ['--enable-v2']))
    said = ' '.join(('%s %s' % (seen.get('stdout') or '', seen.get('stderr') or '')).split())
    if seen.get('rc') != 0:
        return '%s: `etcdutl check v2store` failed (rc %s): %s' % (name, seen.get('rc'), said or 'no output')
    if V2STORE_CLEAN not in said.lower():
        return '%s: `etcdutl check v2store` did not report a clean v2 store: %s' % (name, said or 'no output')
    return None


def _refuse(rule, what, why, instead, **extra):
    msg = 'Refused, nothing was changed: %s. %s %s %s' % (what, why, instead, NOTHING)
    return dict(extra, refused=True, rule=rule, msg=' '.join(msg.split()))


def etcd_upgrade_step(running, target='', archive_sha256='', auth_enabled=False, all_at_once=False,
                      v2store=None, refused_versions=REFUSED_VERSIONS, archive_url=''):
    """``running``: {member name: version it runs}. ``target``: the version asked (empty: the running one, a rolling
    restart). ``auth_enabled``: etcd's authentication is on. ``all_at_once``: the operator asked for the all-at-once
    upgrade (every member stopped, swapped, started). ``v2store``: {member name: what upgrade_prepare read of its v2
    store} (or a list of them, each with its 'name') once read, None before (a 3.6 target then answers ``needs: ['v2store']``).

    -> {refused, rule, msg, mode ('restart' or 'upgrade'), method ('rolling' or 'all_at_once'), target, running,
    needs: [checks still to read before the step can be allowed]}."""
    running = dict(running or {})
    if isinstance(v2store, list):
        v2store = dict((seen.get('name'), seen) for seen in v2store)
    versions = sorted(set(running.values()), key=lambda v: parse_version(v) or (0, 0, 0))
    now = ', '.join('%s %s' % (name, running[name]) for name in sorted(running))
    target = str(target or '').strip() or (versions[-1] if len(versions) == 1 else '')
    base = dict(refused=False, rule='', msg='', mode='restart', method='rolling', target=target,
                running=running, needs=[])
    asked = 'etcd_cluster_version=%s for a cluster running %s' % (target or "''", now or 'nothing')
    if not running:
        return dict(base, **_refuse('no_members', 'no member answered', 'The step cannot be decided.',
                                    'Check the cluster with playbooks/status.yml.'))
    wanted = parse_version(target)
    if wanted is None:
        return dict(base, **_refuse(
            'format', asked, 'The version must be X.Y.Z (the members run different versions, so give the one to '
            'finish the upgrade to).' if not target else 'The version must be X.Y.Z.',
            'Give the release to upgrade to, or leave it out for a rolling restart.'))
    parsed = dict((name, parse_version(version)) for name, version in running.items())
    unknown = sorted(name for name, version in parsed.items() if version is None)
    if unknown:
        return dict(base, **_refuse('unknown_running', asked, 'The version of %s could not be read.'
                                    % ', '.join(unknown), 'Check the members with playbooks/status.yml.'))
    mode = 'upgrade' if any(version != wanted for version in parsed.values()) else 'restart'
    base.update(mode=mode, method='all_at_once' if all_at_once else 'rolling')
    if target in (refused_versions or ()):
        return dict(base, **_refuse(
            'refused_version', asked, 'etcd %s can leave members with inconsistent data (%s).'
            % (', '.join(refused_versions), GUIDE['corruption']), 'Upgrade to 3.5.3 or newer.'))
    newer = sorted(set(_text(v) for v in parsed.values() if v > wanted))
    if newer:
        return dict(base, **_refuse(
            'downgrade', asked + ' is a downgrade (%s is newer)' % ', '.join(newer),
            'etcd cannot be downgraded by replacing its binaries (%s).' % GUIDE['policy'],
            'Restore a snapshot into a new cluster instead (playbooks/restore_cluster.yml).'))
    previous = (wanted[0], wanted[1] - 1) if wanted[1] > 0 else None
    too_old = sorted(set(minor_of(v) for v in parsed.values() if v[:2] not in (wanted[:2], previous)))
    if too_old:
        step = ' -> '.join(too_old[:1] + ([minor_of(previous)] if previous else []) + [minor_of(wanted)])
        return dict(base, **_refuse(
            'skipped_minor', asked + ' skips a minor version',
            'etcd upgrades one minor version at a time (%s; %s).' % (step, GUIDE['policy']),
            'Upgrade to the latest %s.x release first.' % (minor_of(previous) if previous else minor_of(wanted))))
    if mode == 'upgrade' and not re.match(r'^[0-9a-fA-F]{64}$', str(archive_sha256 or '')):
        return dict(base, **_refuse(
            'sha256', asked, 'Upgrading installs the release archive %s and needs its sha256.'
            % (archive_url or 'of etcd %s' % target),
            'Give it in etcd_cluster_archive_sha256 (64 hex digits, from the release\'s SHA256SUMS).'))
    if all_at_once and mode != 'upgrade':
        return dict(base, **_refuse(
            'all_at_once_without_upgrade', 'upgrade_etcd_all_at_once=true with ' + asked,
            'Every member already runs %s: there is nothing to upgrade, and stopping every member at once would '
            'only stop the cluster.' % target, 'Leave upgrade_etcd_all_at_once out for a rolling restart.'))
    on_34 = sorted(name for name, v in parsed.items() if v[:2] == (3, 4))
    if mode == 'upgrade' and wanted[:2] == (3, 5) and on_34 and auth_enabled and not all_at_once:
        return dict(base, **_refuse(
            'rolling_35_with_auth', 'a rolling upgrade from 3.4 to 3.5 with authentication on (%s: 3.4)'
            % ', '.join(on_34),
            '3.5 changed the format of the WAL entries of authentication, so a cluster running 3.4 and 3.5 members '
            'side by side may apply user and role changes differently; etcd does not support it (%s).'
            % GUIDE['3.5'],
            'Use the all-at-once upgrade, which never runs mixed versions: -e upgrade_etcd_all_at_once=true (every '
            'member stopped, swapped and started; the cluster refuses requests for the time of the restart, APISIX keeps '
            'serving its cached configuration), or restore a snapshot into a new %s cluster '
            '(playbooks/restore_cluster.yml).' % target))
    if mode == 'upgrade' and wanted[:2] == (3, 6):
        minimum = parse_version(MIN_35_FOR_36)
        behind = sorted('%s %s' % (name, running[name]) for name, v in parsed.items()
                        if v[:2] == (3, 5) and v < minimum)
        if behind:
            return dict(base, **_refuse(
                'min_35_for_36', asked + ' with members below %s (%s)' % (MIN_35_FOR_36, ', '.join(behind)),
                'Before 3.6 every 3.5 member must run %s or later: the patch releases before it carry known upgrade '
                'blockers (%s).' % (MIN_35_FOR_36, GUIDE['3.6']),
                'Upgrade to the latest 3.5 release (%s or later) first, with this playbook.' % MIN_35_FOR_36))
        on_35 = sorted(name for name, v in parsed.items() if v[:2] == (3, 5))
        if on_35 and v2store is None:
            return dict(base, needs=['v2store'])
        problems = [p for p in (_v2store_problem(name, (v2store or {}).get(name) or dict(rc=None))
                                for name in on_35) if p]
        if problems:
            return dict(base, **_refuse(
                'v2store', asked + ' with a v2 store in the way: ' + '; '.join(problems),
                'etcd 3.6 no longer has the v2 store and fails to start on custom v2 content (%s).' % GUIDE['3.6'],
                'Follow the guide first: migrate any v2 data to v3, remove --enable-v2 / ETCD_ENABLE_V2, run '
                '`etcdutl check v2store --data-dir <data dir>` on each member; if it finds custom content, restart the '
                'members once with --snapshot-count=1 (then set it back) and check again.'))
    return base


class FilterModule(object):
    def filters(self):
        return {'etcd_upgrade_step': etcd_upgrade_step, 'etcd_v2_flags': v2_flags}
