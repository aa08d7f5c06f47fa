# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A snapshot's origin: the bbolt reader on real snapshots of etcd 3.4.23 and 3.5.16 (fixtures/snapshots/README.md),
and the check of its members against the cluster it is meant for."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_file as sf

SNAPSHOTS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'snapshots'))
RELEASES = ['3.4.23', '3.5.16']
# The lab cluster the cluster snapshots were saved from (LAB_SLOT=4: 10.250.81.0/24).
LAB = ['etcd01=http://10.250.81.11:2380', 'etcd02=http://10.250.81.12:2380', 'etcd03=http://10.250.81.13:2380']


def fixture(release, kind):
    return os.path.join(SNAPSHOTS, 'etcd-%s-%s.db' % (release, kind))


def reader_of(path):
    handle = open(path, 'rb')
    return handle, sf.BoltReader(handle, os.path.getsize(path), path)


def damaged(tmp_path, source, mutate):
    data = bytearray(open(source, 'rb').read())
    mutate(data)
    path = str(tmp_path / 'damaged.db')
    with open(path, 'wb') as handle:
        handle.write(bytes(data))
    return path


# --- the reader -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('release', RELEASES)
def test_the_members_of_a_lab_cluster_snapshot(release):
    members = sf.read_members(fixture(release, 'cluster'))
    assert [(m['name'], m['peer_urls']) for m in members] == [
        ('etcd01', ['http://10.250.81.11:2380']), ('etcd02', ['http://10.250.81.12:2380']),
        ('etcd03', ['http://10.250.81.13:2380'])]
    assert all(len(m['id']) == 16 and int(m['id'], 16) for m in members)


@pytest.mark.parametrize('release', RELEASES)
def test_the_member_of_a_throwaway_etcd(release):
    assert [(m['name'], m['peer_urls']) for m in sf.read_members(fixture(release, 'default'))] == [
        ('default', ['http://localhost:2380'])]


def test_the_member_of_the_older_fixture():
    assert sf.read_members(fixture('3.4.23', '6keys')) == [
        dict(id='62cac17f23c0a92b', name='d34', peer_urls=['http://127.0.0.1:32380'])]


@pytest.mark.parametrize('release', RELEASES)
def test_the_root_bucket_is_etcds_and_members_is_inline(release):
    handle, reader = reader_of(fixture(release, 'cluster'))
    with handle:
        names = [key for key, _value, is_bucket in reader.items() if is_bucket]
        members = reader.bucket(b'members')
    assert b'key' in names and b'members' in names and b'meta' in names
    # Three small members fit in their parent's leaf: the bucket header's root is 0, its page follows.
    assert struct.unpack_from('<Q', members, 0)[0] == 0


@pytest.mark.parametrize('release', RELEASES)
def test_branch_pages_lead_to_every_leaf(release):
    """300 keys do not fit one page: the bucket `key` of the throw-away snapshot has branch pages."""
    handle, reader = reader_of(fixture(release, 'default'))
    with handle:
        bucket = reader.bucket(b'key')
        root = struct.unpack_from('<Q', bucket, 0)[0]
        flags = struct.unpack_from('<H', reader._page(root), 8)[0]
        keys = reader.items(bucket)
    assert flags & sf.BOLT_BRANCH_PAGE_FLAG
    # Keys are revisions (8 bytes big-endian, '_', sub-revision): in order, none lost, none twice.
    revisions = [struct.unpack_from('>Q', key, 0)[0] for key, _value, _bucket in keys]
    assert len(revisions) == 300 and revisions == sorted(set(revisions))
    assert b'/apisix/routes/300' in b''.join(value for _key, value, _bucket in keys)


def test_a_member_too_big_for_a_page_is_read_from_its_overflow_page():
    """A member advertising 200 peer URLs: the bucket `members` gets a page of its own that runs on into an
    overflow page."""
    path = fixture('3.4.23', 'wide')
    handle, reader = reader_of(path)
    with handle:
        root = struct.unpack_from('<Q', reader.bucket(b'members'), 0)[0]
        overflow = struct.unpack_from('<I', reader._page(root), 12)[0]
    assert root and overflow >= 1
    (member,) = sf.read_members(path)
    assert member['name'] == 'wide' and len(member['peer_urls']) == 200
    assert member['peer_urls'][0] == 'http://127.0.0.1:40000' and member['peer_urls'][-1] == 'http://127.0.0.1:40199'


def test_the_meta_page_with_the_highest_valid_txid_wins(tmp_path):
    source = fixture('3.4.23', 'cluster')
    handle, reader = reader_of(source)
    with handle:
        metas = [reader._meta(0), reader._meta(1)]
    newest = max((0, 1), key=lambda i: metas[i]['txid'])

    def break_newest(data):
        data[newest * 4096 + 16 + 20] ^= 0xFF  # its root page id: the checksum no longer matches

    assert sf.read_members(damaged(tmp_path, source, break_newest)) == sf.read_members(source)


def test_no_valid_meta_page_is_a_layout_error(tmp_path):
    def break_both(data):
        data[16 + 20] ^= 0xFF
        data[4096 + 16 + 20] ^= 0xFF

    with pytest.raises(sf.SnapshotLayoutError) as err:
        sf.read_members(damaged(tmp_path, fixture('3.4.23', 'cluster'), break_both))
    assert 'no valid bbolt meta page' in str(err.value) and err.value.reason == 'layout'


def test_a_page_outside_the_file_is_a_layout_error(tmp_path):
    source = fixture('3.4.23', 'wide')
    handle, reader = reader_of(source)
    with handle:
        bucket_root = struct.unpack_from('<Q', reader.bucket(b'members'), 0)[0]
        root_page = reader._page(reader.root)
    # The leaf element of `members` in the root page: point its bucket header at page 9999.
    at = root_page.index(b'members' + struct.pack('<Q', bucket_root))

    def redirect(data):
        data[reader.root * 4096 + at + 7:reader.root * 4096 + at + 15] = struct.pack('<Q', 9999)

    with pytest.raises(sf.SnapshotLayoutError) as err:
        sf.read_members(damaged(tmp_path, source, redirect))
    assert 'page 9999 is outside the file' in str(err.value)


def test_a_bbolt_file_without_members_is_a_layout_error(tmp_path):
    source = fixture('3.4.23', 'cluster')
    handle, reader = reader_of(source)
    with handle:
        # The key `members` in the root page, then its value: an inline bucket's header (root 0).
        at = reader.root * 4096 + reader._page(reader.root).index(b'members' + b'\0' * 8)

    def rename_bucket(data):
        data[at:at + 7] = b'memberz'

    with pytest.raises(sf.SnapshotLayoutError) as err:
        sf.read_members(damaged(tmp_path, source, rename_bucket))
    assert 'holds no etcd membership (no bucket "members")' in str(err.value)


def test_not_a_bbolt_file_is_foreign(tmp_path):
    path = tmp_path / 'page.html'
    path.write_bytes(b'<html>not a snapshot</html>' * 200)
    with pytest.raises(sf.SnapshotForeignError):
        sf.read_members(str(path))


# --- the origin check ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('release', RELEASES)
def test_the_cluster_it_was_saved_from_matches(release):
    path = fixture(release, 'cluster')
    matched = sf.check_origin(path, sf.read_members(path), sf.expected_member_pairs(LAB))
    assert matched == ['etcd01', 'etcd02', 'etcd03']


@pytest.mark.parametrize('release', RELEASES)
def test_one_member_moved_still_matches(release):
    """A snapshot taken before migrate_member moved etcd03 (and replaced etcd02 under another name)."""
    path = fixture(release, 'cluster')
    expected = sf.expected_member_pairs(['etcd01=http://10.250.81.11:2380', 'etcd04=http://10.250.81.12:2380',
                                         'etcd03=http://10.250.81.23:2380'])
    assert sf.check_origin(path, sf.read_members(path), expected) == ['etcd01']


@pytest.mark.parametrize('release', RELEASES)
def test_a_throwaway_etcd_is_refused(release):
    path = fixture(release, 'default')
    with pytest.raises(sf.SnapshotForeignOriginError) as err:
        sf.check_origin(path, sf.read_members(path), sf.expected_member_pairs(LAB))
    assert str(err.value) == (
        'snapshot %s comes from another cluster: its members are default (http://localhost:2380); none has the name '
        'and peer URL of an expected member (etcd01 (http://10.250.81.11:2380), etcd02 (http://10.250.81.12:2380), '
        'etcd03 (http://10.250.81.13:2380))' % path)
    assert err.value.reason == 'foreign_origin' and err.value.members[0]['name'] == 'default'


@pytest.mark.parametrize('release', RELEASES)
def test_another_deployment_with_the_same_names_is_refused(release):
    path = fixture(release, 'cluster')
    other = ['etcd01=http://10.20.0.11:2380', 'etcd02=http://10.20.0.12:2380', 'etcd03=http://10.20.0.13:2380']
    with pytest.raises(sf.SnapshotForeignOriginError):
        sf.check_origin(path, sf.read_members(path), sf.expected_member_pairs(other))


def test_the_same_address_under_another_name_is_refused():
    path = fixture('3.4.23', 'cluster')
    with pytest.raises(sf.SnapshotForeignOriginError):
        sf.check_origin(path, sf.read_members(path), [('etcd09', 'http://10.250.81.11:2380')])


def test_expected_members_in_every_spelling():
    assert sf.expected_member_pairs([
        'a=http://h1:2380',
        'b=http://h2:2380,c=http://h3:2380',
        dict(name='d', peer_urls=['http://h4:2380', 'http://h4b:2380']),
        dict(name='e', peer_url='https://h5:2380', client_url='https://h5:2379', address='h5'),
    ]) == [('a', 'http://h1:2380'), ('b', 'http://h2:2380'), ('c', 'http://h3:2380'), ('d', 'http://h4:2380'),
           ('d', 'http://h4b:2380'), ('e', 'https://h5:2380')]
    # URLs compare without case or a trailing slash.
    path = fixture('3.4.23', 'cluster')
    assert sf.check_origin(path, sf.read_members(path), [('etcd02', 'HTTP://10.250.81.12:2380/')]) == ['etcd02']


@pytest.mark.parametrize('bad', ['etcd01', 'etcd01=', dict(name='etcd01'), dict(peer_urls=['http://h:2380'])])
def test_an_expected_member_without_name_or_url_is_refused(bad):
    with pytest.raises(sf.SnapshotArgumentError):
        sf.expected_member_pairs([bad])
