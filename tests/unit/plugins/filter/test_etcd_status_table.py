"""The status table: one row per member, sizes, fragmentation and quota use, unreachable members and problems
shown, 120 columns by default and every column on request, bad input refused."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gatewayops.apisix_ha.plugins.filter.etcd_status_table import etcd_status_table


def member(name, member_id, leader=False, healthy=True, status=True, db_size=20480, in_use=16384):
    return dict(
        id=member_id, name=name, started=True, is_learner=False, healthy=healthy,
        peer_urls=['https://10.250.77.1%s:2380' % name[-1]], client_urls=['https://10.250.77.1%s:2379' % name[-1]],
        health_reason=None if healthy else 'connection refused',
        status=dict(endpoint='https://10.250.77.1%s:2379' % name[-1], version='3.5.16', db_size=db_size,
                    db_size_in_use=in_use, leader=leader, raft_term=2, raft_index=17, raft_applied_index=17,
                    errors=[]) if status else None,
    )


INFO = dict(
    cluster_id='6c9ebb0b8cdfe1a8', healthy=False, quorum=True, healthy_voting_members=2, voting_members=3,
    quorum_size=2, leader=dict(id='bcbd437443d61d09', name='etcd01'), hashkv_consistent=True, hash_method='hashkv',
    alarms=[], problems=['etcd03: connection refused'],
    members=[member('etcd02', 'cd9bd97570aeef5f', db_size=14700000, in_use=460000),
             member('etcd01', 'bcbd437443d61d09', leader=True),
             member('etcd03', '3a6db8b4ccdfe155', healthy=False, status=False)],
)


def rows(text):
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    return [dict(zip(header, (cell.strip() for cell in line.strip('|').split('|')))) for line in lines[1:]]


def test_one_row_per_member_sorted_by_name_with_sizes_fragmentation_and_quota_use():
    table = rows(etcd_status_table(INFO, quota_bytes=16 * 1024 * 1024))
    assert [r['NAME'] for r in table] == ['etcd01', 'etcd02', 'etcd03']
    assert table[0]['DB SIZE'] == '20 kB' and table[0]['IN USE'] == '16 kB' and table[0]['IS LEADER'] == 'true'
    assert table[1]['DB SIZE'] == '14 MB' and table[1]['FRAG'] == '97%' and table[1]['QUOTA'] == '88%'
    assert table[2]['DB SIZE'] == '' and table[2]['HEALTH'] == 'false'


def test_no_quota_column_without_the_quota():
    assert 'QUOTA' not in rows(etcd_status_table(INFO))[0]


def test_the_default_fits_120_columns_and_the_errors_follow_the_table():
    text = etcd_status_table(INFO, quota_bytes=2147483648)
    assert max(len(line) for line in text.splitlines() if not line.startswith('problem:')) <= 120, text
    assert 'etcd03: connection refused' in text.splitlines()
    assert 'ENDPOINT' not in text


def test_full_shows_every_column_and_the_errors_in_the_row():
    table = rows(etcd_status_table(INFO, full=True))
    assert table[0]['ENDPOINT'] == 'https://10.250.77.11:2379' and table[0]['RAFT APPLIED INDEX'] == '17'
    assert table[2]['ERRORS'] == 'connection refused'


def test_summary_tells_leader_quorum_and_problems():
    text = etcd_status_table(INFO)
    assert 'cluster 6c9ebb0b8cdfe1a8, leader etcd01 (bcbd437443d61d09)' in text
    assert 'healthy false, quorum true (2/3 voting members healthy, 2 needed)' in text
    assert 'problem: etcd03: connection refused' in text
    assert 'alarms: none' in text


def test_alarms_and_unequal_hashes_are_said():
    info = dict(INFO, hashkv_consistent=False, alarms=[dict(alarm='CORRUPT', member_name='etcd02', member_id='cd9b')])
    text = etcd_status_table(info)
    assert 'hashes (hashkv) consistent: false' in text and 'alarms: CORRUPT on etcd02' in text


def test_anything_but_an_info_result_is_refused():
    with pytest.raises(AnsibleFilterError):
        etcd_status_table({'changed': False})
