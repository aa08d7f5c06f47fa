# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""quorum_view: every viewpoint a restore or a failover hears (a member, the emergency node, the etcd front) in one
shape and one wording. The members' case runs through Ansible in tests/unit/roles/test_restore_quorum_decision.py;
here, what only the other viewpoints meet."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gatewayops.apisix_ha.plugins.filter.quorum_view import quorum_view

CLUSTER = ['etcd01', 'etcd02', 'etcd03']


def answer(names, healthy, leader):
    return dict(members=[dict(name=n) for n in names], voting_members=len(names), healthy_voting_members=healthy,
                quorum_size=len(names) // 2 + 1, quorum=healthy >= len(names) // 2 + 1,
                leader=dict(name=leader) if leader else {})


def test_the_front_leading_to_the_cluster_sees_its_quorum():
    view = quorum_view(answer(CLUSTER, 2, 'etcd02'), name='the etcd front on gw01', cluster_members=CLUSTER)
    assert view == dict(name='the etcd front on gw01', quorum=True, unsure=False,
                        said='a quorum (2 of 3 voting members healthy, 2 needed; leader etcd02)')


def test_a_front_already_on_the_emergency_node_sees_no_quorum_of_the_cluster():
    view = quorum_view(answer(['etcd-single'], 1, 'etcd-single'), name='front', cluster_members=CLUSTER)
    assert not view['quorum'] and not view['unsure']
    assert view['said'] == ('a quorum (1 of 1 voting members healthy, 1 needed; leader etcd-single), not the cluster '
                            '(members etcd-single)')


def test_a_leaderless_member_refusing_the_login_is_no_quorum_not_a_doubt():
    # With authentication on, the login itself is a raft request: a member without a leader answers it 503.
    failed = dict(failed=True, error_type='EtcdUnavailableError',
                  msg='etcd cannot serve the request now (no leader, unhealthy cluster or timeout):\n'
                      'POST /v3/auth/authenticate: HTTP 503 Unavailable (14): etcdserver: no leader')
    view = quorum_view(failed, name='etcd-single (the emergency node)')
    assert view['said'].startswith('no quorum (etcd cannot serve the request now (no leader, unhealthy cluster or '
                                   'timeout): POST /v3/auth/authenticate')
    assert not view['quorum'] and not view['unsure']


def test_refused_credentials_or_tls_cannot_tell():
    for error_type in ('EtcdAuthError', 'EtcdTLSError', None):
        view = quorum_view(dict(failed=True, error_type=error_type, msg='refused'), name='x')
        assert view == dict(name='x', quorum=False, unsure=True, said='could not tell (refused)'), error_type


def test_an_unreachable_host_gives_no_view():
    for nothing in (None, {}, dict(unreachable=True, msg='Failed to connect to the host')):
        assert quorum_view(nothing, name='etcd01')['said'] == 'no view (the host is unreachable)'
