# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: etcd_status_table
short_description: Render an etcd_cluster_info result as one text table
version_added: 0.1.0
description:
  - Turns the result of M(gatewayops.apisix_ha.etcd_cluster_info) into the table an operator reads after
    C(etcdctl endpoint status --cluster -w table), C(etcdctl member list) and C(etcdctl endpoint health),
    one row per member, followed by a summary line (cluster ID, leader, quorum, health, alarms, hashes, problems).
  - By default a table that fits 120 columns - name, version, leader, database size, in use, fragmentation
    (1 - in use / size), quota use, raft index, health - with each member's errors on lines of their own below it.
    O(full) gives every column of C(etcdctl)'s tables beside those.
author:
  - gatewayops maintainers
options:
  _input:
    description: The registered result of M(gatewayops.apisix_ha.etcd_cluster_info).
    type: dict
    required: true
  full:
    description: Every column (endpoint, ID, peer addresses, learner, raft term and applied index, errors).
    type: bool
    default: false
  quota_bytes:
    description: The members' space quota (C(--quota-backend-bytes)); without it, no quota column.
    type: int
"""

EXAMPLES = r"""
- name: Read the cluster
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints: "{{ etcd_cluster_endpoints }}"
  register: etcd_info

- name: Print it, with the quota use
  ansible.builtin.debug:
    msg: "{{ etcd_info | gatewayops.apisix_ha.etcd_status_table(quota_bytes=2147483648) }}"
"""

RETURN = r"""
_value:
  description: The table, lines separated by newlines.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

FULL_COLUMNS = ('ENDPOINT', 'ID', 'NAME', 'STATUS', 'PEER ADDRS', 'VERSION', 'DB SIZE', 'IN USE', 'FRAG', 'QUOTA',
                'IS LEADER', 'IS LEARNER', 'RAFT TERM', 'RAFT INDEX', 'RAFT APPLIED INDEX', 'HEALTH', 'ERRORS')
# The default: what fits 120 columns; the errors follow the table.
COLUMNS = ('NAME', 'VERSION', 'DB SIZE', 'IN USE', 'FRAG', 'QUOTA', 'IS LEADER', 'RAFT INDEX', 'HEALTH')


def _si_bytes(value):
    """Bytes the way etcdctl's table prints them (SI units: 20 kB, 1.2 MB)."""
    if value is None or value == '':
        return ''
    size = float(value)
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if size < 1000 or unit == 'TB':
            return ('%d %s' % (size, unit)) if unit == 'B' or size >= 10 else ('%.1f %s' % (size, unit))
        size /= 1000.0
    return str(value)


def _text(value):
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if is_sequence(value):
        return ','.join(_text(v) for v in value)
    return str(value)


def _percent(part, whole):
    if part in (None, '') or not whole:
        return ''
    return '%d%%' % round(100.0 * float(part) / float(whole))


def _errors(member):
    status = member.get('status') or {}
    errors = list(status.get('errors') or []) + list(member.get('status_errors') or [])
    if member.get('health_reason'):
        errors.append(member['health_reason'])
    return '; '.join(_text(e) for e in errors)


def _cells(member, quota_bytes):
    status = member.get('status') or {}
    size, in_use = status.get('db_size'), status.get('db_size_in_use')
    return {
        'ENDPOINT': status.get('endpoint') or ','.join(member.get('client_urls') or []),
        'ID': member.get('id', ''),
        'NAME': member.get('name', ''),
        'STATUS': 'started' if member.get('started') else 'unstarted',
        'PEER ADDRS': _text(member.get('peer_urls')),
        'VERSION': _text(status.get('version')),
        'DB SIZE': _si_bytes(size),
        'IN USE': _si_bytes(in_use),
        'FRAG': _percent(size - in_use, size) if size and in_use is not None else '',
        'QUOTA': _percent(size, quota_bytes),
        'IS LEADER': _text(status.get('leader')) if status else '',
        'IS LEARNER': _text(member.get('is_learner')),
        'RAFT TERM': _text(status.get('raft_term')),
        'RAFT INDEX': _text(status.get('raft_index')),
        'RAFT APPLIED INDEX': _text(status.get('raft_applied_index')),
        'HEALTH': _text(member.get('healthy')),
        'ERRORS': _errors(member),
    }


def etcd_status_table(info, full=False, quota_bytes=None):
    if not isinstance(info, dict) or 'members' not in info:
        raise AnsibleFilterError('etcd_status_table expects the registered result of etcd_cluster_info')
    columns = [c for c in (FULL_COLUMNS if full else COLUMNS) if quota_bytes or c != 'QUOTA']
    members = sorted(info['members'], key=lambda m: m.get('name') or '')
    cells = [_cells(m, quota_bytes) for m in members]
    rows = [columns] + [[c[name] for name in columns] for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(row):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |'

    out = [rule, line(rows[0]), rule] + [line(r) for r in rows[1:]] + [rule]
    if not full:
        out.extend('%s: %s' % (c['NAME'] or c['ENDPOINT'], c['ERRORS']) for c in cells if c['ERRORS'])
    leader = info.get('leader') or {}
    out.append('cluster %s, leader %s' % (
        info.get('cluster_id', '?'), ('%s (%s)' % (leader.get('name'), leader.get('id'))) if leader.get('id') else 'none'))
    out.append('healthy %s, quorum %s (%s/%s voting members healthy, %s needed)' % (
        _text(info.get('healthy')), _text(info.get('quorum')), info.get('healthy_voting_members', '?'),
        info.get('voting_members', '?'), info.get('quorum_size', '?')))
    if info.get('hashkv_consistent') is not None:
        out.append('hashes (%s) consistent: %s' % (info.get('hash_method'), _text(info.get('hashkv_consistent'))))
    alarms = info.get('alarms') or []
    out.append('alarms: %s' % (', '.join('%s on %s' % (a.get('alarm'), a.get('member_name') or a.get('member_id'))
                                         for a in alarms) or 'none'))
    for problem in info.get('problems') or []:
        out.append('problem: %s' % problem)
    return '\n'.join(out)


class FilterModule(object):
    def filters(self):
        return {'etcd_status_table': etcd_status_table}
