"""Grow 3 -> 5 and shrink back (playbooks/add_member.yml, remove_member.yml) with the lab writer running.

The writer's log is the record of what etcd acknowledged; every acknowledged key must be on every member at the
end, read from each member's own store. molecule/grow_shrink/converge.yml recorded the five-member cluster.
"""

import base64
import json
import os

import pytest

from conftest import assert_equal_hashes, lab_host, read_writer_log

EPHEMERAL = os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '')
ADDED = ['etcd04', 'etcd05']


def member_keys(member, prefix):
    """{key: value} under prefix, from the member's own store (serializable read)."""
    result = member.etcdctl('get', '--prefix', prefix, '--consistency=s', '-w', 'json')
    assert result.rc == 0, '%s: %s' % (member.name, result.stderr)
    kvs = json.loads(result.stdout).get('kvs', [])
    return {base64.b64decode(kv['key']).decode(): base64.b64decode(kv['value']).decode() for kv in kvs}


@pytest.fixture(scope='module')
def writer():
    return read_writer_log(os.path.join(EPHEMERAL, 'writer.log'))


def test_writer_never_failed_and_stopped(writer):
    acked, failed, summary = writer
    assert summary is not None, 'the writer did not stop (no summary line)'
    assert summary['failed'] == 0 and not failed, 'puts failed during the member changes: %s' % failed[:5]
    assert summary['acked'] == len(acked) > 50, summary


def test_every_acknowledged_key_on_every_member(members, writer, explain):
    acked, _failed, _summary = writer
    for member in members:
        stored = member_keys(member, '/gatewayops-writer/')
        missing = sorted(k for k in acked if stored.get(k) != acked[k])
        assert not missing, explain('%s lacks %d acknowledged keys, first: %s' % (member.name, len(missing), missing[:5]))


def test_cluster_had_five_voting_members():
    with open(os.path.join(EPHEMERAL, 'at_five.json')) as recorded:
        at_five = json.load(recorded)
    assert sorted(m['name'] for m in at_five) == ['etcd01', 'etcd02', 'etcd03', 'etcd04', 'etcd05']
    assert not [m for m in at_five if m['is_learner']], at_five


def test_back_to_the_three_original_members(members, explain):
    listing = json.loads(members[0].etcdctl('member', 'list', '-w', 'json').stdout)['members']
    assert sorted(m.get('name', '') for m in listing) == ['etcd01', 'etcd02', 'etcd03'], explain(str(listing))


def test_hashkv_equal_at_one_revision(members, explain):
    assert_equal_hashes(members, explain)


@pytest.mark.parametrize('name', ADDED)
def test_removed_hosts_are_stopped_disabled_with_data_kept_aside(name):
    host = lab_host(name)
    service = host.service('etcd')
    assert not service.is_running and not service.is_enabled, name
    assert not host.file('/var/lib/etcd/%s.etcd' % name).exists, 'the data dir was not moved aside on %s' % name
    kept = host.run('ls -d /var/lib/etcd/%s.etcd.removed-*/member' % name)
    assert kept.rc == 0, 'no kept data dir on %s: %s' % (name, kept.stderr)
