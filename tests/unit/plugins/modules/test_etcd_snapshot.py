# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_snapshot module: verified/restored on the real etcdutl/etcdctl found on this host (skipped when none
is installed), saved against a stand-in etcdctl that hands out the real fixture snapshot."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import sys

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_snapshot_file as sf
from ansible_collections.gatewayops.apisix_ha.plugins.modules import etcd_snapshot

SNAPSHOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'snapshots',
                                        'etcd-3.4.23-6keys.db'))
SNAPSHOT_SHA256 = '723a61b45ef576e78fb2cc0e93745c8b71811b03f5a1c9f451cd606c67aa488b'


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs['failed'] = True
    kwargs['msg'] = msg
    raise FailJson(kwargs)


@pytest.fixture(autouse=True)
def _patch_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)


def run(args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        try:
            etcd_snapshot.main()
        except ExitJson as e:
            return e.args[0]
        except FailJson as e:
            return e.args[0]
    raise AssertionError('module returned without exit_json/fail_json')


def copy_snapshot(tmp_path, name='snap.db', mutate=None):
    with open(SNAPSHOT, 'rb') as f:
        data = bytearray(f.read())
    if mutate:
        data = mutate(data)
    dest = tmp_path / name
    dest.write_bytes(bytes(data))
    return str(dest)


def flip(data):
    data[10000] ^= 0xFF
    return data


def tree(path):
    """Relative paths and sizes of everything below path, to show it was not touched."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = os.lstat(full).st_size if name in files else 'dir'
    return out


# --- real tools -----------------------------------------------------------------------------------------

def _real_bin_dirs():
    """Each directory with a real etcdutl or etcdctl: PATH, plus GATEWAYOPS_ETCD_BIN_DIRS (':'-separated)."""
    dirs, seen = [], set()
    extra = [d for d in os.environ.get('GATEWAYOPS_ETCD_BIN_DIRS', '').split(':') if d]
    for d in extra + sf.tool_search_dirs():
        if not os.path.isdir(d):
            continue
        tools = sf.SnapshotTools.find(bin_dir=d)
        if tools.offline_tool and os.path.realpath(tools.offline_tool) not in seen:
            seen.add(os.path.realpath(tools.offline_tool))
            dirs.append(d)
    return dirs


REAL_BIN_DIRS = _real_bin_dirs()


@pytest.fixture(params=REAL_BIN_DIRS or [None], ids=lambda d: d or 'no-etcd-tool')
def bin_dir(request):
    if request.param is None:
        pytest.skip('neither etcdutl nor etcdctl is installed (PATH, GATEWAYOPS_ETCD_BIN_DIRS)')
    return request.param


def restore_args(snapshot, data_dir, bin_dir, **extra):
    args = dict(state='restored', path=snapshot, data_dir=data_dir, name='m1',
                initial_cluster='m1=http://127.0.0.1:32580,m2=http://127.0.0.1:32680',
                initial_cluster_token='unit-token', initial_advertise_peer_urls=['http://127.0.0.1:32580'],
                bin_dir=bin_dir)
    args.update(extra)
    return args


def test_verified_real(bin_dir):
    res = run(dict(state='verified', path=SNAPSHOT, bin_dir=bin_dir))
    assert not res.get('failed'), res
    assert res['changed'] is False
    assert res['integrity_ok'] is True
    assert res['sha256'] == SNAPSHOT_SHA256
    assert res['revision'] == 7
    assert res['total_keys'] == 10
    assert res['size'] == 20512
    assert res['total_size'] == 20480
    assert res['hash'] == 938499975
    assert res['tool'].startswith(bin_dir)
    assert any(a.startswith('ran: ') and 'snapshot status' in a for a in res['actions'])


@pytest.mark.parametrize('name,mutate,reason,text', [
    ('flipped', flip, 'hash_mismatch', 'hash mismatch'),
    ('truncated', lambda d: d[:8192], 'truncated', 'no sha256 integrity trailer'),
    ('empty', lambda d: bytearray(), 'empty', 'is empty'),
    ('foreign', lambda d: bytearray(b'just some text\n' * 30), 'foreign', 'not an etcd snapshot'),
])
def test_verified_refuses_bad_files(tmp_path, name, mutate, reason, text):
    path = copy_snapshot(tmp_path, name + '.db', mutate)
    res = run(dict(state='verified', path=path))
    assert res['failed'] is True
    assert res['integrity_error'] == reason
    assert res['integrity_ok'] is False
    assert text in res['msg'] and path in res['msg']


def test_verified_missing(tmp_path):
    res = run(dict(state='verified', path=str(tmp_path / 'none.db')))
    assert res['failed'] and res['integrity_error'] == 'missing'


def test_restored_into_absent_dir(tmp_path, bin_dir):
    data_dir = str(tmp_path / 'etcd' / 'data')
    os.mkdir(str(tmp_path / 'etcd'))
    res = run(restore_args(SNAPSHOT, data_dir, bin_dir), diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    assert res['data_dir_state'] == 'absent'
    assert os.path.isfile(os.path.join(data_dir, 'member', 'snap', 'db'))
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    assert res['diff']['before']['state'] == 'absent'
    assert res['diff']['after']['state'] == 'initialised'
    assert any('snapshot restore' in a for a in res['actions'])
    # nothing left beside it
    assert sorted(os.listdir(str(tmp_path / 'etcd'))) == ['data']

    # Seed-only-once: a second run leaves it alone.
    before = tree(data_dir)
    again = run(restore_args(SNAPSHOT, data_dir, bin_dir))
    assert again['changed'] is False
    assert 'already initialised' in again['msg']
    assert tree(data_dir) == before
    assert not any('snapshot restore' in a for a in again['actions'])


def test_restored_into_empty_dir(tmp_path, bin_dir):
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    res = run(restore_args(SNAPSHOT, str(data_dir), bin_dir))
    assert res['changed'] is True and res['data_dir_state'] == 'empty'
    assert (data_dir / 'member' / 'wal').is_dir()
    assert sorted(os.listdir(str(tmp_path))) == ['data']


def test_restored_force_keeps_old_dir(tmp_path, bin_dir):
    data_dir = tmp_path / 'data'
    (data_dir / 'member' / 'snap').mkdir(parents=True)
    (data_dir / 'member' / 'snap' / 'db').write_bytes(b'old data')
    (data_dir / 'marker').write_text('old')
    res = run(restore_args(SNAPSHOT, str(data_dir), bin_dir, force=True), diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    aside = res['replaced_dir']
    assert aside.startswith(str(data_dir) + '.replaced-') and aside.endswith('Z')
    assert (open(os.path.join(aside, 'marker')).read()) == 'old'
    assert open(os.path.join(aside, 'member', 'snap', 'db'), 'rb').read() == b'old data'
    assert not (data_dir / 'marker').exists()
    assert (data_dir / 'member' / 'snap' / 'db').stat().st_size > 1000
    assert res['diff']['after']['previous_data_dir_kept_at'] == aside
    assert sorted(os.listdir(str(tmp_path))) == sorted(['data', os.path.basename(aside)])


def test_restored_corrupt_file_leaves_data_dir_untouched(tmp_path, bin_dir):
    data_dir = tmp_path / 'data'
    (data_dir / 'member' / 'snap').mkdir(parents=True)
    (data_dir / 'member' / 'snap' / 'db').write_bytes(b'current data')
    before = tree(str(data_dir))
    bad = copy_snapshot(tmp_path, 'bad.db', flip)
    res = run(restore_args(bad, str(data_dir), bin_dir, force=True))
    assert res['failed'] is True
    assert res['integrity_error'] == 'hash_mismatch'
    assert tree(str(data_dir)) == before
    assert sorted(os.listdir(str(tmp_path))) == ['bad.db', 'data']
    assert not any('snapshot restore' in a for a in res['actions'])


def test_restored_corrupt_file_absent_dir_not_created(tmp_path, bin_dir):
    bad = copy_snapshot(tmp_path, 'bad.db', lambda d: d[:4096])
    res = run(restore_args(bad, str(tmp_path / 'data'), bin_dir))
    assert res['failed'] is True and res['integrity_error'] == 'truncated'
    assert sorted(os.listdir(str(tmp_path))) == ['bad.db']


def test_restored_check_mode_writes_nothing(tmp_path, bin_dir):
    data_dir = tmp_path / 'data'
    (data_dir / 'member').mkdir(parents=True)
    before = tree(str(tmp_path))
    res = run(restore_args(SNAPSHOT, str(data_dir), bin_dir, force=True), check_mode=True, diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    assert tree(str(tmp_path)) == before
    assert any(a.startswith('would move') for a in res['actions'])
    assert any(a.startswith('would restore') for a in res['actions'])
    assert not any('snapshot restore' in a and a.startswith('ran: ') for a in res['actions'])
    assert res['replaced_dir'].startswith(str(data_dir) + '.replaced-')


def test_restored_not_empty_without_member_refused(tmp_path, bin_dir):
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    (data_dir / 'something').write_text('x')
    res = run(restore_args(SNAPSHOT, str(data_dir), bin_dir))
    assert res['failed'] is True
    assert 'holds no etcd member' in res['msg']
    assert sorted(os.listdir(str(data_dir))) == ['something']


def test_restored_member_not_in_initial_cluster(tmp_path, bin_dir):
    res = run(restore_args(SNAPSHOT, str(tmp_path / 'data'), bin_dir, name='m9'))
    assert res['failed'] is True and 'not in initial_cluster' in res['msg']
    assert os.listdir(str(tmp_path)) == []


def test_restored_unknown_owner(tmp_path, bin_dir):
    res = run(restore_args(SNAPSHOT, str(tmp_path / 'data'), bin_dir, owner='no-such-user-gatewayops'))
    assert res['failed'] is True and 'does not exist' in res['msg']
    assert os.listdir(str(tmp_path)) == []


def test_restored_owner_applied(tmp_path, bin_dir):
    if os.geteuid() != 0:
        pytest.skip('chown needs root')
    res = run(restore_args(SNAPSHOT, str(tmp_path / 'data'), bin_dir, owner='nobody', group='65534'))
    assert not res.get('failed'), res
    import pwd
    nobody = pwd.getpwnam('nobody').pw_uid
    for root, dirs, files in os.walk(str(tmp_path / 'data')):
        for name in dirs + files + ['.']:
            st = os.lstat(os.path.join(root, name))
            assert (st.st_uid, st.st_gid) == (nobody, 65534)


def test_restored_requires_member_options(tmp_path):
    res = run(dict(state='restored', path=SNAPSHOT, data_dir=str(tmp_path / 'd')))
    assert res['failed'] is True and 'missing' in res['msg']


# --- saved, with a stand-in etcdctl -------------------------------------------------------------------------

FAKE_ETCDCTL = r'''#!{python}
import json, os, shutil, sys
argv = sys.argv[1:]
with open({log!r}, 'a') as log:
    log.write(json.dumps(dict(argv=argv, password=os.environ.get('ETCDCTL_PASSWORD'),
                              api=os.environ.get('ETCDCTL_API'),
                              stray=os.environ.get('ETCDCTL_ENDPOINTS'))) + '\n')
endpoint = [a for a in argv if a.startswith('--endpoints=')]
endpoint = endpoint[0].split('=', 1)[1] if endpoint else ''
if 'endpoint' in argv and 'status' in argv:
    if 'dead' in endpoint:
        sys.stderr.write('Failed to get the status of endpoint %s (context deadline exceeded)\n' % endpoint)
        sys.exit(1)
    print(json.dumps([dict(Endpoint=endpoint, Status=dict(
        header=dict(cluster_id=14555785113441012720, member_id=2583486490471994318, revision=27, raft_term=2),
        version='3.4.23', dbSize=24576, leader=0, errors=['etcdserver: no leader'], dbSizeInUse=24576))]))
    sys.exit(0)
if 'snapshot' in argv and 'save' in argv:
    dest = argv[argv.index('save') + 1]
    if 'broken' in endpoint:
        sys.stderr.write('Error: rpc error: code = Unavailable\n')
        sys.exit(1)
    if 'dead' in endpoint:
        sys.stderr.write('Error: context deadline exceeded\n')
        sys.exit(1)
    data = bytearray(open({snapshot!r}, 'rb').read())
    if 'corrupt' in endpoint:
        data[10000] ^= 0xFF
    with open(dest + '.part', 'wb') as f:
        f.write(bytes(data))
    os.rename(dest + '.part', dest)
    print('Snapshot saved at %s' % dest)
    sys.exit(0)
if 'snapshot' in argv and 'status' in argv:
    print(json.dumps(dict(hash=938499975, revision=7, totalKey=10, totalSize=20480)))
    sys.exit(0)
sys.stderr.write('fake etcdctl: unexpected %r\n' % argv)
sys.exit(2)
'''


@pytest.fixture
def fake_bin(tmp_path, gateway):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    log = tmp_path / 'etcdctl.log'
    script = bindir / 'etcdctl'
    script.write_text(FAKE_ETCDCTL.replace('{python}', sys.executable)
                      .replace('{log!r}', repr(str(log))).replace('{snapshot!r}', repr(SNAPSHOT)))
    script.chmod(0o755)
    # The free-space check reads the database size from the maintenance status on the JSON gateway.
    gateway.route('*', '/v3/maintenance/status', 'status_m1')
    gateway.route('*', '/v3/auth/authenticate', 'auth_not_enabled')
    gateway.refuse('http://dead.invalid:2379')
    return dict(bin_dir=str(bindir), log=str(log), gateway=gateway)


def calls(fake):
    if not os.path.exists(fake['log']):
        return []
    with open(fake['log']) as f:
        return [json.loads(line) for line in f]


def save_args(path, fake, **extra):
    args = dict(state='saved', path=path, bin_dir=fake['bin_dir'],
                endpoints=['http://dead.invalid:2379', 'http://127.0.0.1:32379'], timeout=1)
    args.update(extra)
    return args


def test_saved_fails_over_and_renames(tmp_path, fake_bin, monkeypatch):
    monkeypatch.setenv('ETCDCTL_ENDPOINTS', 'http://should-be-dropped:2379')
    backups = tmp_path / 'backups'
    backups.mkdir()
    dest = str(backups / 'apisix.db')
    res = run(save_args(dest, fake_bin, user='root', password='s3cret'), diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    assert res['endpoint'] == 'http://127.0.0.1:32379'
    assert res['sha256'] == SNAPSHOT_SHA256 and res['revision'] == 7 and res['total_keys'] == 10
    assert sf.file_sha256(dest) == SNAPSHOT_SHA256
    assert os.listdir(str(backups)) == ['apisix.db']
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    log = calls(fake_bin)
    # One probe per endpoint (the maintenance status), no second one with etcdctl: the dead endpoint is skipped
    # before any etcdctl runs.
    assert not [c for c in log if 'dead.invalid' in c['argv'][0]]
    assert not [c for c in log if 'endpoint' in c['argv'] and 'status' in c['argv']]
    assert 'http://dead.invalid:2379: maintenance status failed, not used' in res['actions']
    saves = [c for c in log if 'save' in c['argv']]
    assert len(saves) == 1 and saves[0]['argv'][0] == '--endpoints=http://127.0.0.1:32379'
    assert ['--user', 'root'] == saves[0]['argv'][saves[0]['argv'].index('--user'):][:2]
    assert all('s3cret' not in ' '.join(c['argv']) for c in log)
    assert saves[0]['password'] == 's3cret' and saves[0]['api'] == '3'
    assert all(c['stray'] is None for c in log)
    assert 's3cret' not in json.dumps(res['actions'])
    assert res['diff']['before']['state'] == 'absent'
    assert res['diff']['after']['sha256'] == SNAPSHOT_SHA256


def test_saved_probe_with_etcdctl_never_asks_the_json_gateway(tmp_path, fake_bin):
    # A certificate whose common name is an etcd user: etcd's JSON gateway refuses it, etcdctl (gRPC) is served.
    dest = str(tmp_path / 'final.db')
    res = run(save_args(dest, fake_bin, probe='etcdctl', client_cert='/pki/root.crt', client_key='/pki/root.key'))
    assert not res.get('failed'), res
    assert res['endpoint'] == 'http://127.0.0.1:32379' and res['db_size'] == 24576
    assert res['origin']['cluster_id'] == 'ca008970d9920bf0'
    assert fake_bin['gateway'].calls == []
    probes = [c['argv'] for c in calls(fake_bin) if 'endpoint' in c['argv'] and 'status' in c['argv']]
    assert [a[0] for a in probes] == ['--endpoints=http://dead.invalid:2379', '--endpoints=http://127.0.0.1:32379']
    assert all('--cert=/pki/root.crt' in a and not any(o.startswith('--user') for o in a) for a in probes), probes
    assert 'http://dead.invalid:2379: endpoint status failed (rc=1), not used' in res['actions']


def test_saved_corrupt_snapshot_never_reaches_path(tmp_path, fake_bin):
    dest = str(tmp_path / 'apisix.db')
    res = run(save_args(dest, fake_bin, endpoints=['http://corrupt:2379']))
    assert res['failed'] is True
    assert res['integrity_error'] == 'hash_mismatch'
    assert 'failed verification' in res['msg'] and 'was not written' in res['msg']
    assert sorted(os.listdir(str(tmp_path))) == ['bin', 'etcdctl.log']


def test_saved_no_endpoint(tmp_path, fake_bin):
    dest = str(tmp_path / 'apisix.db')
    res = run(save_args(dest, fake_bin, endpoints=['http://dead1:2379', 'http://broken:2379']))
    assert res['failed'] is True
    assert 'no endpoint gave a snapshot' in res['msg']
    assert len(res['endpoint_errors']) == 2
    assert sorted(os.listdir(str(tmp_path))) == ['bin', 'etcdctl.log']


def test_saved_existing_kept_unless_force(tmp_path, fake_bin):
    dest = copy_snapshot(tmp_path, 'apisix.db')
    os.utime(dest, (1000000000, 1000000000))
    res = run(save_args(dest, fake_bin))
    assert not res.get('failed'), res
    assert res['changed'] is False and 'already exists' in res['msg']
    assert os.stat(dest).st_mtime == 1000000000
    assert not [c for c in calls(fake_bin) if 'save' in c['argv']]

    res = run(save_args(dest, fake_bin, force=True))
    assert res['changed'] is True
    assert os.stat(dest).st_mtime != 1000000000


def test_saved_existing_corrupt_reported(tmp_path, fake_bin):
    dest = copy_snapshot(tmp_path, 'apisix.db', flip)
    res = run(save_args(dest, fake_bin))
    assert res['failed'] is True and res['integrity_error'] == 'hash_mismatch'


def test_saved_check_mode(tmp_path, fake_bin):
    dest = str(tmp_path / 'apisix.db')
    res = run(save_args(dest, fake_bin), check_mode=True, diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    assert not os.path.exists(dest)
    assert calls(fake_bin) == []
    # The free-space check only reads (the maintenance status); everything else is planned.
    assert res['actions'][0].startswith('checked free space in %s' % tmp_path)
    assert all(a.startswith('would ') for a in res['actions'][1:])
    assert sorted(os.listdir(str(tmp_path))) == ['bin']


def test_saved_missing_directory(tmp_path, fake_bin):
    res = run(save_args(str(tmp_path / 'nope' / 'a.db'), fake_bin))
    assert res['failed'] is True and 'does not exist' in res['msg'] and 'create_directory=true' in res['msg']
    assert not os.path.exists(str(tmp_path / 'nope'))


def test_saved_creates_the_directory_when_asked(tmp_path, fake_bin):
    dest = tmp_path / 'new' / 'deeper' / 'a.db'
    res = run(save_args(str(dest), fake_bin, create_directory=True), check_mode=True)
    assert not res.get('failed'), res
    assert 'would create the directory %s (mode 0700)' % dest.parent in res['actions']
    assert not os.path.exists(str(tmp_path / 'new'))
    res = run(save_args(str(dest), fake_bin, create_directory=True))
    assert not res.get('failed'), res
    assert res['changed'] is True and sf.file_sha256(str(dest)) == SNAPSHOT_SHA256
    assert 'created the directory %s (mode 0700)' % dest.parent in res['actions']
    assert stat.S_IMODE(os.stat(str(dest.parent)).st_mode) == 0o700
    # Once there, nothing more is created.
    res = run(save_args(str(dest), fake_bin, create_directory=True, force=True))
    assert not [a for a in res['actions'] if 'directory' in a and 'created' in a]


def test_saved_without_etcdctl(tmp_path):
    (tmp_path / 'empty').mkdir()
    res = run(dict(state='saved', path=str(tmp_path / 'a.db'), bin_dir=str(tmp_path / 'empty')))
    assert res['failed'] is True and 'etcdctl not found' in res['msg']
    assert res['error'] == 'tool_not_found'


def test_saved_reads_db_size_and_free_space(tmp_path, fake_bin):
    dest = str(tmp_path / 'apisix.db')
    res = run(save_args(dest, fake_bin))
    assert not res.get('failed'), res
    assert res['db_size'] == 20480 and res['free_bytes'] > 20480
    assert any(a.startswith('checked free space in %s' % tmp_path) for a in res['actions'])
    # Each endpoint is asked once, in order, until one answers.
    assert [c['endpoint'] for c in fake_bin['gateway'].paths('/v3/maintenance/status')] == [
        'http://dead.invalid:2379', 'http://127.0.0.1:32379']


def test_saved_refuses_without_free_space(tmp_path, fake_bin):
    old = copy_snapshot(tmp_path, 'etcd-old.db')
    os.utime(old, (1000000000, 1000000000))
    before = tree(str(tmp_path))
    # A margin no disk has: the real free space of tmp_path is too small.
    res = run(save_args(str(tmp_path / 'etcd-new.db'), fake_bin, free_space_margin_mb=10 ** 12,
                        retention_pattern='etcd-*.db', keep_newest=1))
    assert res['failed'] is True
    assert res['msg'].startswith('not enough free space in %s' % tmp_path), res['msg']
    assert 'Nothing was changed.' in res['msg'] and res['error'] == 'no_space'
    assert not [c for c in calls(fake_bin) if 'save' in c['argv']]
    assert tree(str(tmp_path)) == before


def test_saved_endpoint_without_status_not_used(tmp_path, fake_bin):
    fake_bin['gateway'].refuse('http://127.0.0.1:32379')
    res = run(save_args(str(tmp_path / 'a.db'), fake_bin, endpoints=['http://127.0.0.1:32379', 'http://127.0.0.1:32479']))
    assert not res.get('failed'), res
    assert res['endpoint'] == 'http://127.0.0.1:32479'
    assert '127.0.0.1:32379: maintenance status failed, not used' in ' '.join(res['actions'])


def old_series(tmp_path, ages_days, now=None):
    """etcd-<n>.db files in tmp_path/backups, modified ages_days[n] days ago. -> (dir, {name: path})."""
    now = now or __import__('time').time()
    backups = tmp_path / 'backups'
    backups.mkdir()
    files = {}
    for n, age in enumerate(ages_days):
        path = copy_snapshot(backups, 'etcd-old%d.db' % n)
        os.utime(path, (now - age * 86400, now - age * 86400))
        files['etcd-old%d.db' % n] = path
    return backups, files


def test_saved_retention_removes_what_no_rule_keeps(tmp_path, fake_bin):
    backups, files = old_series(tmp_path, [1, 3, 9, 10, 30])
    # Not of the series, not regular files, or a save in progress: never touched.
    (backups / 'seed.db').write_bytes(b'other')
    (backups / '.etcd-x.db.tmp').write_bytes(b'partial')
    os.symlink(files['etcd-old4.db'], str(backups / 'etcd-link.db'))
    os.utime(str(backups / 'seed.db'), (1000000000, 1000000000))
    dest = str(backups / 'etcd-new.db')
    res = run(save_args(dest, fake_bin, retention_pattern='etcd-*.db', keep_days=7, keep_newest=4), diff=True)
    assert not res.get('failed'), res
    # kept: the new one, old0 (1 day), old1 (3 days) by age; old2 as the 4th newest; removed: old3, old4
    assert res['removed'] == [files['etcd-old3.db'], files['etcd-old4.db']]
    assert sorted(os.listdir(str(backups))) == sorted(['.etcd-x.db.tmp', 'etcd-link.db', 'etcd-new.db', 'etcd-old0.db',
                                                       'etcd-old1.db', 'etcd-old2.db', 'seed.db'])
    assert sf.check_snapshot(dest)['sha256'] == SNAPSHOT_SHA256
    assert [a for a in res['actions'] if a.startswith('removed ')] == [
        'removed %s (retention keeps files matching etcd-*.db that are one of the 4 newest or younger than 7 days)'
        % files[name] for name in ('etcd-old3.db', 'etcd-old4.db')]
    # retention comes after the rename of the new file
    names = [a.split(' ')[0] for a in res['actions']]
    assert names.index('renamed') < names.index('removed')
    assert res['diff']['after']['removed'] == res['removed']
    assert 'removed 2 older snapshots' in res['msg']


def test_saved_retention_keep_newest_counts_the_new_file(tmp_path, fake_bin):
    backups, files = old_series(tmp_path, [0.1, 0.2, 0.3])
    res = run(save_args(str(backups / 'etcd-new.db'), fake_bin, retention_pattern='etcd-*.db', keep_newest=2))
    assert not res.get('failed'), res
    assert res['removed'] == [files['etcd-old1.db'], files['etcd-old2.db']]
    assert sorted(os.listdir(str(backups))) == ['etcd-new.db', 'etcd-old0.db']


def test_saved_retention_check_mode_only_plans(tmp_path, fake_bin):
    backups, files = old_series(tmp_path, [1, 20])
    before = tree(str(backups))
    res = run(save_args(str(backups / 'etcd-new.db'), fake_bin, retention_pattern='etcd-*.db', keep_days=7),
              check_mode=True)
    assert not res.get('failed'), res
    assert res['removed'] == [files['etcd-old1.db']]
    assert 'would remove %s' % files['etcd-old1.db'] in ' '.join(res['actions'])
    assert tree(str(backups)) == before
    assert not [c for c in calls(fake_bin) if 'save' in c['argv']]


@pytest.mark.parametrize('endpoint', ['http://corrupt:2379', 'http://broken:2379'])
def test_saved_failure_never_removes_older_snapshots(tmp_path, fake_bin, endpoint):
    backups, _files = old_series(tmp_path, [20, 30])
    before = tree(str(backups))
    res = run(save_args(str(backups / 'etcd-new.db'), fake_bin, endpoints=[endpoint], retention_pattern='etcd-*.db',
                        keep_newest=1, keep_days=1))
    assert res['failed'] is True
    assert 'removed' not in res
    assert tree(str(backups)) == before


@pytest.mark.parametrize('extra,text', [
    (dict(retention_pattern='other-*.db', keep_days=7), 'does not match the new snapshot'),
    (dict(retention_pattern='../etcd-*.db', keep_days=7), 'file name glob'),
    (dict(retention_pattern='etcd-*.db', keep_newest=0), 'keep_newest must be 1 or more'),
    (dict(retention_pattern='etcd-*.db', keep_days=0), 'keep_days must be 1 or more'),
    (dict(keep_days=7), "missing parameter(s) required by 'keep_days': retention_pattern"),
])
def test_saved_bad_retention_settings_refused_first(tmp_path, fake_bin, extra, text):
    backups, _files = old_series(tmp_path, [20, 30])
    before = tree(str(backups))
    res = run(save_args(str(backups / 'etcd-new.db'), fake_bin, **extra))
    assert res['failed'] is True
    assert text in res['msg'], res['msg']
    assert tree(str(backups)) == before
    assert calls(fake_bin) == []


# --- refusals leave the data untouched --------------------------------------------------------------------

BAD_FILES = [
    ('flipped', flip, 'hash mismatch'),
    ('truncated', lambda d: d[:len(d) - 100], 'no sha256 integrity trailer'),
    ('empty-file', lambda d: bytearray(), 'is empty'),
    ('empty-path', None, 'path is empty'),
]


def bad_path(tmp_path, name, mutate):
    return '' if name == 'empty-path' else copy_snapshot(tmp_path, name + '.db', mutate)


@pytest.mark.parametrize('name,mutate,text', BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_verified_refusals(tmp_path, name, mutate, text):
    path = bad_path(tmp_path, name, mutate)
    before = tree(str(tmp_path))
    res = run(dict(state='verified', path=path))
    assert res['failed'] is True
    assert text in res['msg'], res['msg']
    assert tree(str(tmp_path)) == before


@pytest.mark.parametrize('name,mutate,text', BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_restored_refusals_leave_the_data_dir_untouched(tmp_path, bin_dir, name, mutate, text):
    data_dir = tmp_path / 'data'
    (data_dir / 'member' / 'snap').mkdir(parents=True)
    (data_dir / 'member' / 'snap' / 'db').write_bytes(b'current data')
    path = bad_path(tmp_path, name, mutate)
    before = tree(str(tmp_path))
    res = run(restore_args(path, str(data_dir), bin_dir, force=True))
    assert res['failed'] is True
    assert text in res['msg'], res['msg']
    assert tree(str(tmp_path)) == before
    assert (data_dir / 'member' / 'snap' / 'db').read_bytes() == b'current data'
    assert not any('snapshot restore' in a for a in res.get('actions', []))


def test_saved_empty_path_refused(tmp_path, fake_bin):
    res = run(save_args('', fake_bin))
    assert res['failed'] is True and res['msg'] == 'path is empty: name the snapshot file. Nothing was changed.'
    assert calls(fake_bin) == []


def test_documentation_parses():
    import yaml
    doc = yaml.safe_load(etcd_snapshot.DOCUMENTATION)
    assert doc['module'] == 'etcd_snapshot'
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert doc['attributes']['diff_mode']['support'] == 'full'
    assert 'gatewayops.apisix_ha.etcd' in doc['extends_documentation_fragment']
    ret = yaml.safe_load(etcd_snapshot.RETURN)
    for key in ('actions', 'sha256', 'revision', 'total_keys', 'size', 'integrity_ok', 'replaced_dir'):
        assert key in ret and 'sample' in ret[key] or key == 'integrity_error'
    examples = yaml.safe_load(etcd_snapshot.EXAMPLES)
    assert all('gatewayops.apisix_ha.etcd_snapshot' in task for task in examples if 'ansible.builtin.debug' not in task)


# --- restored, with a stand-in etcdutl (the real-tool tests above are skipped where etcd is not installed) -----

FAKE_ETCDUTL = r'''#!{python}
import json, os, sys
argv = sys.argv[1:]
if argv[:2] == ['snapshot', 'status']:
    print(json.dumps(dict(hash=938499975, revision=7, totalKey=10, totalSize=20480)))
    sys.exit(0)
if argv[:2] == ['snapshot', 'restore']:
    target = argv[argv.index('--data-dir') + 1]
    os.makedirs(os.path.join(target, 'member', 'snap'))
    os.makedirs(os.path.join(target, 'member', 'wal'))
    open(os.path.join(target, 'member', 'snap', 'db'), 'w').write('restored')
    open(os.path.join(target, 'member', 'wal', '0.wal'), 'w').write('wal')
    sys.exit(0)
sys.exit(2)
'''


@pytest.fixture
def fake_etcdutl(tmp_path):
    bindir = tmp_path / 'fakebin'
    bindir.mkdir()
    script = bindir / 'etcdutl'
    script.write_text(FAKE_ETCDUTL.replace('{python}', sys.executable))
    script.chmod(0o755)
    return str(bindir)


def test_restored_force_with_stand_in_tool_swaps_and_keeps_the_old_dir(tmp_path, fake_etcdutl):
    parent = tmp_path / 'etcd'
    data_dir = parent / 'data'
    (data_dir / 'member' / 'snap').mkdir(parents=True)
    (data_dir / 'member' / 'snap' / 'db').write_text('old')
    res = run(restore_args(SNAPSHOT, str(data_dir), fake_etcdutl, force=True), diff=True)
    assert not res.get('failed'), res
    assert res['changed'] is True
    aside = res['replaced_dir']
    assert (data_dir / 'member' / 'snap' / 'db').read_text() == 'restored'
    assert open(os.path.join(aside, 'member', 'snap', 'db')).read() == 'old'
    assert stat.S_IMODE(os.stat(str(data_dir)).st_mode) == 0o700
    assert sorted(os.listdir(str(parent))) == sorted(['data', os.path.basename(aside)])
    assert res['actions'][-2:] == ['moved %s aside to %s (kept)' % (data_dir, aside),
                                   'renamed %s to %s' % (res['actions'][-1].split(' ')[1], data_dir)]


def test_restored_check_mode_with_stand_in_tool_says_would(tmp_path, fake_etcdutl):
    data_dir = tmp_path / 'data'
    (data_dir / 'member').mkdir(parents=True)
    before = tree(str(tmp_path))
    res = run(restore_args(SNAPSHOT, str(data_dir), fake_etcdutl, force=True), check_mode=True)
    assert not res.get('failed'), res
    assert res['changed'] is True and res['msg'].startswith('would restore')
    changes = [a for a in res['actions'] if not a.startswith(('ran: ', 'verified '))]
    assert changes and all(a.startswith('would ') for a in changes), changes
    assert tree(str(tmp_path)) == before


# --- origin: the members recorded in the snapshot, checked against expected_members -----------------------------

THROWAWAY = os.path.join(os.path.dirname(SNAPSHOT), 'etcd-3.4.23-default.db')
# The one member of the fixture SNAPSHOT.
FIXTURE_MEMBER = dict(id='62cac17f23c0a92b', name='d34', peer_urls=['http://127.0.0.1:32380'])
EXPECTED = ['d34=http://127.0.0.1:32380', dict(name='m2', peer_urls=['http://127.0.0.1:32680'])]


def test_verified_returns_the_origin_and_checks_it():
    res = run(dict(state='verified', path=SNAPSHOT, read_status=False))
    assert not res.get('failed'), res
    assert res['origin'] == dict(members=[FIXTURE_MEMBER])
    res = run(dict(state='verified', path=SNAPSHOT, read_status=False, expected_members=EXPECTED))
    assert not res.get('failed'), res
    assert res['origin'] == dict(members=[FIXTURE_MEMBER], matched=['d34'])
    assert 'checked the origin of %s: its members include d34' % SNAPSHOT in res['actions']


def test_verified_refuses_a_snapshot_of_another_cluster():
    res = run(dict(state='verified', path=THROWAWAY, read_status=False, expected_members=EXPECTED))
    assert res['failed'] is True and res['changed'] is False
    assert res['error'] == 'foreign_origin' and 'integrity_ok' not in res and 'revision' not in res
    assert res['msg'] == (
        'snapshot %s comes from another cluster: its members are default (http://localhost:2380); none has the name '
        'and peer URL of an expected member (d34 (http://127.0.0.1:32380), m2 (http://127.0.0.1:32680)). Refused, '
        'nothing was changed; allow_foreign_origin: true uses it all the same (to restore another deployment on '
        'purpose)' % THROWAWAY)
    assert [m['name'] for m in res['origin']['members']] == ['default']


def test_verified_allow_foreign_origin_uses_it_and_says_whose_it_is():
    res = run(dict(state='verified', path=THROWAWAY, read_status=False, expected_members=EXPECTED,
                   allow_foreign_origin=True))
    assert not res.get('failed'), res
    assert res['origin']['matched'] == [] and res['origin']['members'][0]['peer_urls'] == ['http://localhost:2380']
    assert any('comes from another cluster' in a and 'used all the same, as allowed' in a for a in res['actions'])


@pytest.mark.parametrize('bad', [['d34'], [dict(name='d34')], ['=http://h:2380']])
def test_malformed_expected_members_are_refused(bad):
    res = run(dict(state='verified', path=SNAPSHOT, read_status=False, expected_members=bad))
    assert res['failed'] is True and res['msg'].startswith('expected_members: ')
    assert res['msg'].endswith('Nothing was changed.')


@pytest.mark.parametrize('check_mode', [False, True])
def test_restored_refuses_a_snapshot_of_another_cluster_and_touches_nothing(tmp_path, fake_etcdutl, check_mode):
    data_dir = tmp_path / 'etcd' / 'data'
    (data_dir / 'member' / 'snap').mkdir(parents=True)
    (data_dir / 'member' / 'snap' / 'db').write_text('old')
    before = tree(str(tmp_path))
    res = run(restore_args(THROWAWAY, str(data_dir), fake_etcdutl, force=True,
                           expected_members=['m1=http://127.0.0.1:32580', 'm2=http://127.0.0.1:32680']),
              check_mode=check_mode)
    assert res['failed'] is True and res['error'] == 'foreign_origin' and res['changed'] is False
    assert 'default (http://localhost:2380)' in res['msg'] and 'm1 (http://127.0.0.1:32580)' in res['msg']
    assert tree(str(tmp_path)) == before
    assert not [a for a in res['actions'] if 'snapshot restore' in a or a.startswith(('would ', 'moved', 'renamed'))]


def test_restored_allow_foreign_origin_restores_another_deployment(tmp_path, fake_etcdutl):
    data_dir = tmp_path / 'data'
    res = run(restore_args(THROWAWAY, str(data_dir), fake_etcdutl, expected_members=['m1=http://127.0.0.1:32580'],
                           allow_foreign_origin=True))
    assert not res.get('failed'), res
    assert res['changed'] is True and (data_dir / 'member' / 'snap' / 'db').read_text() == 'restored'
    assert res['origin']['matched'] == [] and res['origin']['members'][0]['name'] == 'default'


def test_saved_records_the_origin(tmp_path, fake_bin):
    dest = str(tmp_path / 'apisix.db')
    res = run(save_args(dest, fake_bin))
    assert not res.get('failed'), res
    origin = res['origin']
    assert origin['members'] == [FIXTURE_MEMBER] and origin['endpoint'] == 'http://127.0.0.1:32379'
    assert len(origin['cluster_id']) == 16 and int(origin['cluster_id'], 16)
    assert 'from http://127.0.0.1:32379 (cluster %s)' % origin['cluster_id'] in res['msg']
