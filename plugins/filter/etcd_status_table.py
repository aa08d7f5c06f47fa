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
author:
  - gatewayops maintainers
options:
  _input:
    description: The registered result of M(gatewayops.apisix_ha.etcd_cluster_info).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Read the cluster
  gatewayops.apisix_ha.etcd_cluster_info:
    endpoints: "{{ etcd_cluster_endpoints }}"
  register: etcd_info

- name: Print it
  ansible.builtin.debug:
    msg: "{{ etcd_info | gatewayops.apisix_ha.etcd_status_table }}"
"""

RETURN = r"""
_value:
  description: The table, lines separated by newlines.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

COLUMNS = ('ENDPOINT', 'ID', 'NAME', 'STATUS', 'PEER ADDRS', 'VERSION', 'DB SIZE', 'IS LEADER', 'IS LEARNER',
           'RAFT TERM', 'RAFT INDEX', 'RAFT APPLIED INDEX', 'HEALTH', 'ERRORS')


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


def _row(member):
    status = member.get('status') or {}
    errors = list(status.get('errors') or []) + list(member.get('status_errors') or [])
    if member.get('health_reason'):
        errors.append(member['health_reason'])
    endpoint = status.get('endpoint') or ','.join(member.get('client_urls') or [])
    return [
        endpoint,
        member.get('id', ''),
        member.get('name', ''),
        'started' if member.get('started') else 'unstarted',
        _text(member.get('peer_urls')),
        _text(status.get('version')),
        _si_bytes(status.get('db_size')),
        _text(status.get('leader')) if status else '',
        _text(member.get('is_learner')),
        _text(status.get('raft_term')),
        _text(status.get('raft_index')),
        _text(status.get('raft_applied_index')),
        _text(member.get('healthy')),
        '; '.join(_text(e) for e in errors),
    ]


def etcd_status_table(info):
    if not isinstance(info, dict) or 'members' not in info:
        raise AnsibleFilterError('etcd_status_table expects the registered result of etcd_cluster_info')
    rows = [list(COLUMNS)] + [_row(m) for m in sorted(info['members'], key=lambda m: m.get('name') or '')]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'

    out = [rule, line(rows[0]), rule] + [line(r) for r in rows[1:]] + [rule]
    leader = info.get('leader') or {}
    summary = 'cluster %s, leader %s, healthy %s, quorum %s (%s/%s voting members healthy, %s needed)' % (
        info.get('cluster_id', '?'),
        ('%s (%s)' % (leader.get('name'), leader.get('id'))) if leader.get('id') else 'none',
        _text(info.get('healthy')), _text(info.get('quorum')), info.get('healthy_voting_members', '?'),
        info.get('voting_members', '?'), info.get('quorum_size', '?'))
    out.append(summary)
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
