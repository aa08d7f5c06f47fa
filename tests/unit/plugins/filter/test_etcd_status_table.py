"""The status table: one row per member, unreachable members and problems shown, bad input refused."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gatewayops.apisix_ha.plugins.filter.etcd_status_table import etcd_status_table


def member(name, member_id, leader=False, healthy=True, status=True):
    return dict(
        id=member_id, name=name, started=True, is_learner=False, healthy=healthy,
        peer_urls=['http://10.0.0.%s:2380' % name[-1]], client_urls=['http://10.0.0.%s:2379' % name[-1]],
        health_reason=None if healthy else 'connection refused',
        status=dict(endpoint='http://10.0.0.%s:2379' % name[-1], version='3.5.16', db_size=20480, leader=leader,
                    raft_term=2, raft_index=17, raft_applied_index=17, errors=[]) if status else None,
    )


INFO = dict(
    cluster_id='6c9ebb0b8cdfe1a8', healthy=False, quorum=True, healthy_voting_members=2, voting_members=3,
    quorum_size=2, leader=dict(id='bcbd437443d61d09', name='etcd01'), hashkv_consistent=True, hash_method='hashkv',
    alarms=[], problems=['etcd03: connection refused'],
    members=[member('etcd02', 'cd9bd97570aeef5f'), member('etcd01', 'bcbd437443d61d09', leader=True),
             member('etcd03', '3a6db8b4ccdfe155', healthy=False, status=False)],
)


def test_one_row_per_member_sorted_by_name():
    lines = etcd_status_table(INFO).splitlines()
    rows = [line for line in lines if line.startswith('| ') and 'ENDPOINT' not in line]
    assert [row.split('|')[3].strip() for row in rows] == ['etcd01', 'etcd02', 'etcd03']
    assert '20 kB' in rows[0] and 'true' in rows[0].split('|')[8]


def test_summary_tells_leader_quorum_and_problems():
    text = etcd_status_table(INFO)
    assert 'leader etcd01 (bcbd437443d61d09), healthy false, quorum true (2/3 voting members healthy, 2 needed)' in text
    assert 'problem: etcd03: connection refused' in text
    assert 'alarms: none' in text


def test_unreachable_member_row_carries_the_reason():
    row = [line for line in etcd_status_table(INFO).splitlines() if 'etcd03' in line and line.startswith('| ')][0]
    assert 'connection refused' in row


def test_anything_but_an_info_result_is_refused():
    with pytest.raises(AnsibleFilterError):
        etcd_status_table({'changed': False})
