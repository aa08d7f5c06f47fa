"""What an operator checks after site.yml: the runbook's status tables, read independently of the collection."""

import json
import uuid

from conftest import assert_equal_hashes, wait_for


def test_units_enabled_and_running(members, explain):
    for member in members:
        service = member.host.service('etcd')
        assert service.is_enabled, explain('etcd is not enabled on %s' % member.name)
        assert service.is_running, explain('etcd is not running on %s' % member.name)


def test_data_dirs_are_private(members):
    for member in members:
        data_dir = member.host.file(member.env['ETCD_DATA_DIR'])
        assert data_dir.is_directory, member.name
        assert data_dir.mode == 0o700, '%s: %s has mode %o' % (member.name, data_dir.path, data_dir.mode)
        assert data_dir.user == 'etcd', member.name


def test_three_started_voting_members_named_after_the_inventory(members, etcd_names, explain):
    listing = members[0].etcdctl('member', 'list', '-w', 'json')
    assert listing.rc == 0, explain(listing.stderr)
    found = json.loads(listing.stdout)['members']
    assert sorted(m.get('name', '') for m in found) == etcd_names, explain('member list: %s' % found)
    assert not [m for m in found if m.get('isLearner')], 'learners left in the cluster: %s' % found
    # The independent client sees the same members.
    names = sorted(m.name for m in members[0].client().members)
    assert names == etcd_names


def test_exactly_one_leader_that_every_member_agrees_on(members, explain):
    member_ids = {m.id for m in members[0].client().members}
    leaders = {member.name: member.client().status().leader.id for member in members}
    assert len(set(leaders.values())) == 1, explain('members disagree on the leader: %s' % leaders)
    assert set(leaders.values()) <= member_ids


def test_every_endpoint_healthy(members, explain):
    for member in members:
        health = member.etcdctl('endpoint', 'health', '-w', 'json')
        assert health.rc == 0, explain('%s: %s %s' % (member.name, health.stdout, health.stderr))
        assert all(entry['health'] for entry in json.loads(health.stdout)), health.stdout


def test_hashkv_equal_on_every_member(members, explain):
    assert_equal_hashes(members, explain)


def test_a_key_written_through_one_member_reads_back_from_the_others(members):
    key = '/gatewayops-test/replication/%s' % uuid.uuid4()
    value = b'written through ' + members[0].name.encode()
    members[0].client().put(key, value)
    for member in members[1:]:
        client = member.client()
        # A serializable read answers from the member's own store, so it proves replication to that member.
        seen = wait_for(lambda: client.get(key, serializable=True)[0], timeout=10)
        assert seen == value, '%s does not have %s' % (member.name, key)
    members[0].client().delete(key)
