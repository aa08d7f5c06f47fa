# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One viewpoint's answer to "does the cluster still have quorum?" in the shape every decider takes
({name, quorum, unsure, said}): each member's own view (etcd_cluster's quorum_views), the emergency node's
(etcd_emergency's failover_begin) and the gateway's etcd front's (nginx_upstream's etcd_front_view). One wording, so
a refusal reads the same whoever decides."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# What a viewpoint that cannot see a quorum gets: nothing reachable, or etcd saying it cannot serve (no leader; with
# authentication on, even the login of a leaderless member fails so). A TLS handshake refused or credentials
# refused are something else: that viewpoint could not tell.
NO_QUORUM_ERRORS = ('EtcdConnectionError', 'EtcdUnavailableError')
UNREACHABLE = 'no view (the host is unreachable)'


def quorum_view(answer, name='', cluster_members=None):
    """``answer``: a registered gatewayops.apisix_ha.etcd_cluster_info result (failed or not), or None/{} when the
    host that would have asked was unreachable. ``cluster_members``: when given, the answer counts as the cluster's
    only if one of these member names answered (a front that already leads to the emergency node sees another
    cluster). -> {name, quorum, unsure, said}."""
    view = dict(name=name, quorum=False, unsure=False)
    if not answer or answer.get('unreachable'):
        return dict(view, said=UNREACHABLE)
    if 'voting_members' in answer:
        answered = [m.get('name') or '' for m in answer.get('members') or []]
        of_cluster = cluster_members is None or any(n in cluster_members for n in answered)
        leader = (answer.get('leader') or {}).get('name') or 'none'
        said = '%s (%s of %s voting members healthy, %s needed; leader %s)' % (
            'a quorum' if answer.get('quorum') else 'no quorum', answer.get('healthy_voting_members'),
            answer.get('voting_members'), answer.get('quorum_size'), leader)
        if not of_cluster:
            said += ', not the cluster (members %s)' % ', '.join(answered)
        return dict(view, quorum=bool(answer.get('quorum')) and of_cluster, said=said)
    msg = ' '.join(str(answer.get('msg') or 'no answer').split())
    if answer.get('error_type') in NO_QUORUM_ERRORS:
        return dict(view, said='no quorum (%s)' % msg)
    return dict(view, unsure=True, said='could not tell (%s)' % msg)


class FilterModule(object):
    def filters(self):
        return {'quorum_view': quorum_view}
