# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_snapshot_file against a real snapshot saved by etcdctl 3.4.23 (fixtures/snapshots/)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import os
import shutil
import stat

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_file as sf

SNAPSHOTS = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'snapshots')
SNAPSHOT = os.path.abspath(os.path.join(SNAPSHOTS, 'etcd-3.4.23-6keys.db'))
# sha256sum of the fixture; `etcdctl snapshot status -w json` says
# {"hash":938499975,"revision":7,"totalKey":10,"totalSize":20480}
SNAPSHOT_SHA256 = '723a61b45ef576e78fb2cc0e93745c8b71811b03f5a1c9f451cd606c67aa488b'


def _copy(tmp_path, name='copy.db', mutate=None):
    with open(SNAPSHOT, 'rb') as f:
        data = bytearray(f.read())
    if mutate:
        data = mutate(data)
    dest = tmp_path / name
    dest.write_bytes(bytes(data))
    return str(dest)


def _flip(offset):
    def mutate(data):
        data[offset] ^= 0xFF
        return data
    return mutate


def test_fixture_is_small_and_has_trailer():
    size = os.path.getsize(SNAPSHOT)
    assert size < 100 * 1024
    assert size % 512 == 32


def test_valid_snapshot_passes():
    info = sf.check_snapshot(SNAPSHOT)
    assert info['sha256'] == SNAPSHOT_SHA256
    assert info['size'] == 20512
    assert info['bolt_page_size'] == 4096
    assert info['bolt_version'] == 2
    with open(SNAPSHOT, 'rb') as f:
        data = f.read()
    assert info['content_sha256'] == hashlib.sha256(data[:-32]).hexdigest()


def test_file_sha256_matches_sha256sum():
    assert sf.file_sha256(SNAPSHOT) == SNAPSHOT_SHA256


@pytest.mark.parametrize('offset', [100, 10000, 20000, 20479])
def test_one_flipped_byte_is_a_hash_mismatch(tmp_path, offset):
    path = _copy(tmp_path, mutate=_flip(offset))
    with pytest.raises(sf.SnapshotHashMismatchError) as err:
        sf.check_snapshot(path)
    assert err.value.reason == 'hash_mismatch'
    assert 'failed its sha256 integrity check (hash mismatch)' in str(err.value)
    assert path in str(err.value)
    assert err.value.expected != err.value.actual
    assert err.value.expected in str(err.value) and err.value.actual in str(err.value)


def test_flipped_byte_in_trailer_is_a_hash_mismatch(tmp_path):
    path = _copy(tmp_path, mutate=_flip(20512 - 1))
    with pytest.raises(sf.SnapshotHashMismatchError):
        sf.check_snapshot(path)


def test_flipped_magic_of_first_meta_page_still_caught_by_hash(tmp_path):
    # bbolt falls back to the second meta page; so does the check, and the hash catches the damage.
    path = _copy(tmp_path, mutate=_flip(16))
    with pytest.raises(sf.SnapshotHashMismatchError):
        sf.check_snapshot(path)


@pytest.mark.parametrize('keep', [20512 - 1, 20480, 16384, 5000, 100])
def test_truncated_copy_fails(tmp_path, keep):
    path = _copy(tmp_path, mutate=lambda d: d[:keep])
    with pytest.raises(sf.SnapshotTruncatedError) as err:
        sf.check_snapshot(path)
    assert err.value.reason == 'truncated'
    assert 'no sha256 integrity trailer' in str(err.value)
    assert 'truncated' in str(err.value)


def test_truncated_at_trailer_alignment_is_a_hash_mismatch(tmp_path):
    # Cut so that the size happens to be 32 past a 512 boundary: the "trailer" is then data, and wrong.
    path = _copy(tmp_path, mutate=lambda d: d[:16384 + 32])
    with pytest.raises(sf.SnapshotHashMismatchError):
        sf.check_snapshot(path)


def test_raw_db_without_trailer_is_reported_as_such(tmp_path):
    path = _copy(tmp_path, mutate=lambda d: d[:-32])
    with pytest.raises(sf.SnapshotTruncatedError) as err:
        sf.check_snapshot(path)
    assert 'raw db copied out of a data dir' in str(err.value)


def test_empty_file_fails(tmp_path):
    path = tmp_path / 'empty.db'
    path.write_bytes(b'')
    with pytest.raises(sf.SnapshotEmptyError) as err:
        sf.check_snapshot(str(path))
    assert err.value.reason == 'empty'
    assert 'is empty' in str(err.value)


def test_missing_file_fails(tmp_path):
    with pytest.raises(sf.SnapshotMissingError) as err:
        sf.check_snapshot(str(tmp_path / 'nope.db'))
    assert err.value.reason == 'missing'
    assert 'does not exist' in str(err.value)


def test_dangling_symlink_fails_as_missing(tmp_path):
    link = tmp_path / 'link.db'
    os.symlink(str(tmp_path / 'gone.db'), str(link))
    with pytest.raises(sf.SnapshotMissingError):
        sf.check_snapshot(str(link))


def test_directory_is_foreign(tmp_path):
    with pytest.raises(sf.SnapshotForeignError) as err:
        sf.check_snapshot(str(tmp_path))
    assert 'is a directory' in str(err.value)


def test_text_file_is_foreign(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('etcd backup notes\n' * 40)
    with pytest.raises(sf.SnapshotForeignError) as err:
        sf.check_snapshot(str(path))
    assert err.value.reason == 'foreign'
    assert 'not an etcd snapshot' in str(err.value)
    assert '0xED0CDAED' in str(err.value)


def test_foreign_file_with_valid_looking_trailer_is_foreign(tmp_path):
    # 480 bytes of text + its sha256: passes the size/hash test, but is no bbolt file.
    body = b'x' * 480
    path = tmp_path / 'fake.db'
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(sf.SnapshotForeignError):
        sf.check_snapshot(str(path))


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root reads everything')
    path = _copy(tmp_path)
    os.chmod(path, 0)
    with pytest.raises(sf.SnapshotMissingError):
        sf.check_snapshot(path)


def test_all_integrity_errors_share_a_base():
    for cls in (sf.SnapshotMissingError, sf.SnapshotEmptyError, sf.SnapshotTruncatedError,
                sf.SnapshotHashMismatchError, sf.SnapshotForeignError):
        assert issubclass(cls, sf.SnapshotIntegrityError)
        assert issubclass(cls, sf.SnapshotError)
    assert not issubclass(sf.SnapshotToolNotFoundError, sf.SnapshotIntegrityError)


# --- tools ------------------------------------------------------------------------------------------

def _fake_tool(directory, name):
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text('#!/bin/sh\nexit 0\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_find_prefers_etcdutl(tmp_path):
    util = _fake_tool(tmp_path / 'bin', 'etcdutl')
    ctl = _fake_tool(tmp_path / 'bin', 'etcdctl')
    tools = sf.SnapshotTools.find(bin_dir=str(tmp_path / 'bin'))
    assert tools.offline_tool == util and tools.offline_kind == 'etcdutl'
    assert tools.etcdctl == ctl
    assert tools.offline_environ() == {}
    assert tools.status_argv('/s.db') == [util, 'snapshot', 'status', '/s.db', '-w', 'json']


def test_find_falls_back_to_etcdctl_with_api3(tmp_path):
    ctl = _fake_tool(tmp_path / 'bin', 'etcdctl')
    tools = sf.SnapshotTools.find(bin_dir=str(tmp_path / 'bin'))
    assert tools.offline_tool == ctl and tools.offline_kind == 'etcdctl'
    assert tools.offline_environ() == {'ETCDCTL_API': '3'}


def test_bin_dir_is_the_only_place_searched(tmp_path):
    _fake_tool(tmp_path / 'elsewhere', 'etcdutl')
    (tmp_path / 'empty').mkdir()
    tools = sf.SnapshotTools.find(bin_dir=str(tmp_path / 'empty'))
    assert tools.offline_tool is None
    with pytest.raises(sf.SnapshotToolNotFoundError) as err:
        tools.require_offline(str(tmp_path / 'empty'))
    assert 'neither etcdutl' in str(err.value)
    with pytest.raises(sf.SnapshotToolNotFoundError):
        tools.require_etcdctl()


def test_path_search(tmp_path):
    util = _fake_tool(tmp_path / 'a', 'etcdutl')
    ctl = _fake_tool(tmp_path / 'b', 'etcdctl')
    tools = sf.SnapshotTools.find(path_env=os.pathsep.join([str(tmp_path / 'a'), str(tmp_path / 'b')]))
    assert tools.etcdutl == util and tools.etcdctl == ctl
    dirs = sf.tool_search_dirs(path_env=str(tmp_path / 'a'))
    assert dirs[0] == str(tmp_path / 'a') and '/usr/bin' in dirs


def test_restore_argv():
    tools = sf.SnapshotTools(etcdutl='/x/etcdutl', etcdctl='/x/etcdctl')
    argv = tools.restore_argv('/s.db', '/d', 'm1', 'm1=http://a:2380,m2=http://b:2380', 'tok',
                              ['http://a:2380'])
    assert argv == ['/x/etcdutl', 'snapshot', 'restore', '/s.db', '--data-dir', '/d', '--name', 'm1',
                    '--initial-cluster', 'm1=http://a:2380,m2=http://b:2380', '--initial-cluster-token', 'tok',
                    '--initial-advertise-peer-urls', 'http://a:2380']


def test_save_and_probe_argv_keep_password_off_the_command_line():
    tools = sf.SnapshotTools(etcdctl='/x/etcdctl')
    conn = dict(ca_cert='/ca', client_cert='/c', client_key='/k', validate_certs=False, user='root', timeout=2.5)
    argv = tools.save_argv('/tmp/s.db', 'https://10.0.0.1:2379', **conn)
    assert argv == ['/x/etcdctl', '--endpoints=https://10.0.0.1:2379', '--dial-timeout=2500ms', '--cacert=/ca',
                    '--cert=/c', '--key=/k', '--insecure-skip-tls-verify', '--user', 'root',
                    'snapshot', 'save', '/tmp/s.db']
    probe = tools.probe_argv('https://10.0.0.1:2379', **conn)
    assert probe[-4:] == ['endpoint', 'status', '-w', 'json'] and '--command-timeout=2500ms' in probe
    assert tools.save_environ('s3cret') == {'ETCDCTL_API': '3', 'ETCDCTL_PASSWORD': 's3cret'}
    assert tools.save_environ() == {'ETCDCTL_API': '3'}
    plain = tools.save_argv('/s', 'http://h:2379', timeout=10)
    assert plain == ['/x/etcdctl', '--endpoints=http://h:2379', '--dial-timeout=10s', 'snapshot', 'save', '/s']


def test_tool_environ_drop():
    env = {'ETCDCTL_ENDPOINTS': 'x', 'ETCDCTL_API': '2', 'ETCDUTL_DATA_DIR': 'y', 'PATH': '/bin', 'ETCD_NAME': 'z'}
    assert sf.tool_environ_drop(env) == ['ETCDCTL_API', 'ETCDCTL_ENDPOINTS', 'ETCDUTL_DATA_DIR']


# --- status output ------------------------------------------------------------------------------------

def test_parse_status_etcdctl34():
    out = '{"hash":938499975,"revision":7,"totalKey":10,"totalSize":20480}\n'
    assert sf.parse_status(out) == dict(hash=938499975, revision=7, total_keys=10, total_size=20480)


def test_parse_status_with_noise_and_version():
    out = ('Deprecated: Use `etcdutl snapshot status` instead.\n\n'
           '{"hash":1,"revision":9,"totalKey":3,"totalSize":4096,"version":"3.5.0"}')
    assert sf.parse_status(out)['version'] == '3.5.0'
    assert sf.parse_status(out)['revision'] == 9


@pytest.mark.parametrize('out', ['', 'Error: invalid database', '{"hash":1}', '{not json'])
def test_parse_status_garbage(out):
    with pytest.raises(sf.SnapshotStatusParseError):
        sf.parse_status(out)


# --- restore helpers -----------------------------------------------------------------------------------

def test_parse_initial_cluster():
    assert sf.parse_initial_cluster('a=http://h1:2380, b=http://h2:2380') == [
        ('a', 'http://h1:2380'), ('b', 'http://h2:2380')]
    for bad in ('', 'a', 'a=', '=http://x'):
        with pytest.raises(sf.SnapshotArgumentError):
            sf.parse_initial_cluster(bad)


def test_check_member_arguments():
    ic = 'a=http://h1:2380,b=http://h2:2380'
    sf.check_member_arguments('a', ic, ['http://h1:2380'])
    sf.check_member_arguments('b', ic, 'http://h2:2380')
    with pytest.raises(sf.SnapshotArgumentError) as err:
        sf.check_member_arguments('c', ic, ['http://h3:2380'])
    assert "member 'c' is not in initial_cluster" in str(err.value)
    with pytest.raises(sf.SnapshotArgumentError) as err:
        sf.check_member_arguments('a', ic, ['http://h9:2380'])
    assert 'must match' in str(err.value)


def test_data_dir_state(tmp_path):
    d = tmp_path / 'data'
    assert sf.data_dir_state(str(d)) == sf.DATA_DIR_ABSENT
    d.mkdir()
    assert sf.data_dir_state(str(d)) == sf.DATA_DIR_EMPTY
    (d / 'lost+found').mkdir()
    assert sf.data_dir_state(str(d)) == sf.DATA_DIR_OTHER
    (d / 'member').mkdir()
    assert sf.data_dir_state(str(d)) == sf.DATA_DIR_INITIALISED
    f = tmp_path / 'file'
    f.write_text('x')
    assert sf.data_dir_state(str(f)) == sf.DATA_DIR_NOT_A_DIR


def test_restored_layout_ok(tmp_path):
    assert len(sf.restored_layout_ok(str(tmp_path))) == 2
    (tmp_path / 'member' / 'snap').mkdir(parents=True)
    (tmp_path / 'member' / 'wal').mkdir()
    (tmp_path / 'member' / 'snap' / 'db').write_bytes(b'x')
    (tmp_path / 'member' / 'wal' / '0000000000000000-0000000000000000.wal').write_bytes(b'x')
    assert sf.restored_layout_ok(str(tmp_path)) == []


def test_replaced_dir_name(tmp_path):
    now = datetime.datetime(2026, 3, 1, 10, 15, 0)
    d = str(tmp_path / 'data')
    assert sf.replaced_dir_name(d, now) == d + '.replaced-20260301T101500Z'
    os.mkdir(d + '.replaced-20260301T101500Z')
    assert sf.replaced_dir_name(d, now) == d + '.replaced-20260301T101500Z-1'
    assert sf.replaced_dir_name(d + '/', now) == d + '.replaced-20260301T101500Z-1'


def test_check_does_not_modify_the_file(tmp_path):
    path = _copy(tmp_path)
    before = os.stat(path)
    sf.check_snapshot(path)
    after = os.stat(path)
    assert (before.st_size, before.st_mtime) == (after.st_size, after.st_mtime)
    shutil.rmtree(str(tmp_path))


# --- free space and retention ------------------------------------------------------------------------------

def test_check_free_space(tmp_path, monkeypatch):
    monkeypatch.setattr(sf, 'free_bytes', lambda directory: 100 * sf.MIB)
    assert sf.check_free_space(str(tmp_path), 30 * sf.MIB, 64 * sf.MIB) == (100 * sf.MIB, 94 * sf.MIB)
    with pytest.raises(sf.SnapshotSpaceError) as exc:
        sf.check_free_space(str(tmp_path), 40 * sf.MIB, 64 * sf.MIB)
    assert str(exc.value) == ('not enough free space in %s for a snapshot: 100 MiB free, 104 MiB needed (the '
                              'database is 40 MiB, plus a margin of 64 MiB)' % tmp_path)
    assert exc.value.reason == 'no_space'


def test_parse_endpoint_db_size():
    out = ('[{"Endpoint":"http://10.250.81.11:2379","Status":{"header":{"cluster_id":1,"member_id":2,"revision":9,'
           '"raft_term":2},"version":"3.4.23","dbSize":2383872,"leader":2,"raftIndex":40,"raftTerm":2}}]\n')
    assert sf.parse_endpoint_db_size(out) == 2383872
    with pytest.raises(sf.SnapshotStatusParseError):
        sf.parse_endpoint_db_size('Error: context deadline exceeded')


def _series(directory, ages_days, now):
    paths = {}
    for n, age in enumerate(ages_days):
        path = directory / ('etcd-%d.db' % n)
        path.write_bytes(b'x')
        os.utime(str(path), (now - age * 86400, now - age * 86400))
        paths[n] = str(path)
    return paths


def test_plan_retention_either_rule_keeps(tmp_path):
    now = 2000000000
    paths = _series(tmp_path, [0.5, 2, 8, 9, 40], now)
    new = str(tmp_path / 'etcd-new.db')
    assert sf.plan_retention(str(tmp_path), 'etcd-*.db', keep_days=7, keep=[new], now=now) == (
        [paths[0], paths[1]], [paths[2], paths[3], paths[4]])
    # the new file takes one of the 3 newest slots, even before it exists (check mode)
    assert sf.plan_retention(str(tmp_path), 'etcd-*.db', keep_newest=3, keep=[new], now=now) == (
        [paths[0], paths[1]], [paths[2], paths[3], paths[4]])
    assert sf.plan_retention(str(tmp_path), 'etcd-*.db', keep_newest=4, keep_days=1, keep=[new], now=now) == (
        [paths[0], paths[1], paths[2]], [paths[3], paths[4]])


def test_plan_retention_never_touches_others(tmp_path):
    now = 2000000000
    paths = _series(tmp_path, [30, 31], now)
    (tmp_path / '.etcd-9.db.tmp').write_bytes(b'partial')
    (tmp_path / 'etcd-dir.db').mkdir()
    os.symlink(paths[1], str(tmp_path / 'etcd-link.db'))
    (tmp_path / 'seed.db').write_bytes(b'x')
    os.utime(str(tmp_path / 'seed.db'), (0, 0))
    kept, removed = sf.plan_retention(str(tmp_path), 'etcd-*.db', keep_newest=1, keep=[paths[0]], now=now)
    assert (kept, removed) == ([], [paths[1]])
    # no rule, nothing removed
    assert sf.plan_retention(str(tmp_path), 'etcd-*.db', keep=[paths[0]], now=now) == ([], [])


def test_remove_files_reports_errors(tmp_path):
    there = tmp_path / 'a.db'
    there.write_bytes(b'x')
    removed, errors = sf.remove_files([str(there), str(tmp_path / 'gone.db')])
    assert removed == [str(there)] and not there.exists()
    assert errors == ['%s: No such file or directory' % (tmp_path / 'gone.db')]
