"""Backups and recovery (Molecule scenario default): the scheduled backup on etcd01, playbooks/backup.yml with a copy
on the controller, retention, the refusals (each proven to change nothing), then restore_cluster.yml after every
member was SIGKILLed and its data dir wiped.

Order matters (pytest runs a file top to bottom): the tests share the `lab` dict (the fetched snapshot, the keys it
holds) and the last ones destroy and rebuild the cluster.
"""

import hashlib
import json
import os
import re
import subprocess

import pytest

from conftest import ModuleFailed, container_name, flat, run_playbook, wait_for

BACKUP_HOST = 'etcd01'
BACKUP_DIR = '/var/backups/etcd'
PREFIX = '/apisix/routes/'
SNAPSHOT_NAME = re.compile(r'^etcd-\d{8}T\d{6}Z\.db$')


@pytest.fixture(scope='module')
def lab():
    """State handed from one test to the next."""
    return {}


def by_name(members):
    return dict((m.name, m) for m in members)


def backups(host):
    """{file name: (size, mtime)} of the backup directory."""
    listing = host.run("find %s -maxdepth 1 -type f -printf '%%f %%s %%T@\\n'" % BACKUP_DIR)
    assert listing.rc == 0, listing.stderr
    return dict((name, (int(size), float(mtime))) for name, size, mtime in
                (line.split() for line in listing.stdout.splitlines()))


def snapshot_status(host, path):
    """`snapshot status -w json` with the host's offline tool (etcdutl on 3.5, etcdctl on 3.4)."""
    tool = 'etcdutl' if host.exists('etcdutl') else 'ETCDCTL_API=3 etcdctl'
    result = host.run('%s snapshot status %s -w json' % (tool, path))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def all_keys(member):
    """Every key and value the member holds, read from its own store (serializable)."""
    return {meta.key: value for value, meta in member.client().get_prefix('/', serializable=True)}


def member_table(members):
    for member in members:
        listing = member.etcdctl('member', 'list', '-w', 'json')
        if listing.rc == 0:
            return sorted(('%016x' % m['ID'], m.get('name', ''), bool(m.get('isLearner')))
                          for m in json.loads(listing.stdout)['members'])
    raise AssertionError('no member answered member list')


def data_dirs(members):
    """Per member: inode of <data dir>/member, and the data dirs moved aside."""
    out = {}
    for m in members:
        data_dir = m.env['ETCD_DATA_DIR']
        inode = m.host.run('stat -c %%i %s/member' % data_dir).stdout.strip()
        aside = m.host.run('ls -d %s.replaced-* 2>/dev/null' % data_dir).stdout.split()
        out[m.name] = (inode, tuple(sorted(aside)))
    return out


def picture(members):
    """What a refusal must leave exactly as it was: members, every key on every member, data dirs."""
    return member_table(members), [all_keys(m) for m in members], data_dirs(members)


def all_healthy(members):
    return all(m.etcdctl('endpoint', 'health').rc == 0 for m in members)


def hashkv(members, explain):
    revision = json.loads(members[0].etcdctl('endpoint', 'status', '-w', 'json').stdout)[0]['Status']['header'][
        'revision']
    hashes = {}
    for member in members:
        result = member.etcdctl('endpoint', 'hashkv', '--rev=%d' % revision, '-w', 'json')
        assert result.rc == 0, explain(result.stderr)
        hashes[member.name] = json.loads(result.stdout)[0]['HashKV']['hash']
    return hashes


# --- scheduled backups ---------------------------------------------------------------------------------------

def test_the_timer_runs_on_the_backup_host_only(members):
    for member in members:
        timer = member.host.service('etcd-backup.timer')
        if member.name == BACKUP_HOST:
            assert timer.is_enabled and timer.is_running, member.name
            assert member.host.file('/etc/systemd/system/etcd-backup.timer').contains('OnCalendar=daily')
        else:
            assert not member.host.file('/etc/systemd/system/etcd-backup.timer').exists, member.name
            assert not member.host.file('/usr/local/sbin/etcd-backup').exists, member.name


def test_the_backup_service_saves_a_verified_snapshot(members, explain):
    host = by_name(members)[BACKUP_HOST].host
    client = members[1].client()
    for n in range(300):
        client.put('%s%d' % (PREFIX, n), json.dumps({'id': str(n), 'uri': '/backup/%d' % n}))
    before = backups(host)
    started = host.run('systemctl start etcd-backup.service')
    assert started.rc == 0, explain(host.run('journalctl -u etcd-backup --no-pager -n 30').stdout)
    new = sorted(set(backups(host)) - set(before))
    assert len(new) == 1 and SNAPSHOT_NAME.match(new[0]), new
    path = '%s/%s' % (BACKUP_DIR, new[0])
    assert host.file(path).mode == 0o600
    assert snapshot_status(host, path)['totalKey'] >= 300
    assert not [name for name in backups(host) if name.startswith('.')], 'a temporary file was left behind'
    journal = host.run('journalctl -u etcd-backup --no-pager -n 20').stdout
    assert 'saved %s from ' % path in journal, journal


# --- backup.yml ----------------------------------------------------------------------------------------------

def test_backup_playbook_fetches_a_copy_checked_by_sha256(ansible_runner, members, lab, tmp_path_factory):
    host = by_name(members)[BACKUP_HOST].host
    members[0].client().delete('/gatewayops-after-backup')
    lab['keys'] = all_keys(members[0])
    fetch_dir = str(tmp_path_factory.mktemp('fetched'))
    before = backups(host)
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', 'fetch_dir=%s' % fetch_dir)
    assert rc == 0, out
    new = sorted(set(backups(host)) - set(before))
    assert len(new) == 1 and SNAPSHOT_NAME.match(new[0]), new
    copy = os.path.join(fetch_dir, new[0])
    with open(copy, 'rb') as handle:
        local = hashlib.sha256(handle.read()).hexdigest()
    remote = host.run('sha256sum %s/%s' % (BACKUP_DIR, new[0])).stdout.split()[0]
    assert local == remote
    assert 'copy on the controller: %s, sha256 checked' % copy in flat(out), out
    lab['snapshot'] = copy
    # A key written after the backup: the restore must not bring it back.
    members[0].client().put('/gatewayops-after-backup', 'not in the snapshot')


# --- retention -------------------------------------------------------------------------------------------------

def age(host, name, days):
    assert host.run('touch -d "%d days ago" %s/%s' % (days, BACKUP_DIR, name)).rc == 0


def test_a_failed_backup_removes_nothing(members, explain):
    host = by_name(members)[BACKUP_HOST].host
    for name, days in (('etcd-20200110T000000Z.db', 10), ('etcd-20200111T000000Z.db', 11)):
        assert host.run('cp %s/%s %s/%s' % (BACKUP_DIR, sorted(backups(host))[0], BACKUP_DIR, name)).rc == 0
        age(host, name, days)
    before = backups(host)
    # etcdctl gone missing: the backup cannot be taken.
    assert host.run('chmod -x /usr/bin/etcdctl').rc == 0
    try:
        failed = host.run('systemctl start etcd-backup.service')
    finally:
        host.run('chmod +x /usr/bin/etcdctl')
    assert failed.rc != 0
    assert backups(host) == before
    journal = host.run('journalctl -u etcd-backup --no-pager -n 20').stdout
    assert 'etcd backup FAILED, older backups left as they are' in journal, explain(journal)


def test_retention_keeps_seven_days_and_the_three_newest(members):
    host = by_name(members)[BACKUP_HOST].host
    ours = sorted(name for name in backups(host) if not name.startswith('etcd-2020'))
    assert len(ours) == 2, ours
    # The two taken above become 8 and 9 days old; the two dated copies are 10 and 11 days old.
    age(host, ours[1], 8)
    age(host, ours[0], 9)
    assert host.run('touch -d "30 days ago" %s/notes.txt' % BACKUP_DIR).rc == 0
    result = host.run('systemctl start etcd-backup.service')
    assert result.rc == 0, result.stderr
    left = backups(host)
    new = [name for name in left if name not in ours and not name.startswith('etcd-2020') and name != 'notes.txt']
    assert len(new) == 1, left
    # Kept: the new one and the two newest of the older ones (no other is younger than 7 days); a file outside
    # the etcd-*.db series is never touched.
    assert sorted(left) == sorted(new + ours + ['notes.txt']), left
    journal = host.run('journalctl -u etcd-backup --no-pager -n 20').stdout
    for gone in ('etcd-20200110T000000Z.db', 'etcd-20200111T000000Z.db'):
        assert 'removed %s/%s' % (BACKUP_DIR, gone) in journal, journal


# --- refusals ------------------------------------------------------------------------------------------------

def bad_copies(member, snapshot):
    """A one-byte-flipped copy of the fetched snapshot on the member, and one cut short as an interrupted copy
    would be (not at a page boundary). -> {kind: path}."""
    subprocess.run(['docker', 'cp', snapshot, '%s:/var/tmp/good.db' % container_name(member.name)], check=True)
    script = ("import sys; d = bytearray(open('/var/tmp/good.db', 'rb').read()); "
              "f = bytearray(d); f[len(f) // 2] ^= 0xFF; open('/var/tmp/flipped.db', 'wb').write(bytes(f)); "
              "open('/var/tmp/truncated.db', 'wb').write(bytes(d[:len(d) - 1000]))")
    assert member.host.run('python3 -c "%s"' % script).rc == 0
    return {'flipped': '/var/tmp/flipped.db', 'truncated': '/var/tmp/truncated.db', 'empty path': ''}


REFUSALS = [('flipped', 'hash mismatch'), ('truncated', 'no sha256 integrity trailer'),
            ('empty path', 'path is empty')]


@pytest.mark.parametrize('kind,text', REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_snapshots_are_refused_and_change_nothing(module_runner, members, lab, kind, text):
    target = by_name(members)['etcd02']
    path = bad_copies(target, lab['snapshot'])[kind]
    assert wait_for(lambda: all_healthy(members), timeout=60)
    before = picture(members)
    with pytest.raises(ModuleFailed) as verified:
        module_runner('etcd02', 'gatewayops.apisix_ha.etcd_snapshot', state='verified', path=path)
    assert text in verified.value.result['msg']
    # Restoring it over the live member's data dir, forced: refused before anything is touched.
    with pytest.raises(ModuleFailed) as restored:
        module_runner('etcd02', 'gatewayops.apisix_ha.etcd_snapshot', state='restored', path=path, force=True,
                      data_dir=target.env['ETCD_DATA_DIR'], name='etcd02',
                      initial_cluster=target.env['ETCD_INITIAL_CLUSTER'], initial_cluster_token='refused',
                      initial_advertise_peer_urls=[target.env['ETCD_INITIAL_ADVERTISE_PEER_URLS']])
    assert text in restored.value.result['msg']
    assert not [a for a in restored.value.result.get('actions', []) if 'snapshot restore' in a]
    assert picture(members) == before


BAD_EXTRA_VARS = [
    ('restore_cluster', ['snapshot=relative/etcd.db'], "Got snapshot='relative/etcd.db', allow_foreign_origin='False', "
                                                       "other restore_cluster_* extra vars: none"),
    ('restore_cluster', ['allow_foreign_origin=maybe'], "allow_foreign_origin='maybe', other restore_cluster_* extra "
                                                        "vars: none"),
    ('restore_cluster', ['restore_cluster_gate_timeout=5'], 'other restore_cluster_* extra vars: '
                                                            'restore_cluster_gate_timeout (set the role variables'),
    ('backup', ['fetch_dir=relative/dir'], "Got fetch_dir='relative/dir', other backup_* extra vars: none."),
]
REFUSED_EXTRA_VARS = {
    'restore_cluster': 'Refusing to restore: the extra vars read are',
    'backup': 'Refusing to back up: the one extra var read is',
}


@pytest.mark.parametrize('playbook,extra,text', BAD_EXTRA_VARS,
                         ids=['relative snapshot', 'not a boolean', 'unknown extra var', 'relative fetch_dir'])
def test_bad_extra_vars_are_refused_and_change_nothing(ansible_runner, members, playbook, extra, text):
    host = by_name(members)[BACKUP_HOST].host
    assert wait_for(lambda: all_healthy(members), timeout=60)
    before, files = picture(members), backups(host)
    rc, out = run_playbook(ansible_runner.inventory_file, playbook, *extra)
    assert rc != 0, out
    assert REFUSED_EXTRA_VARS[playbook] in flat(out), out
    assert text in flat(out) and 'Nothing was changed.' in flat(out), out
    assert backups(host) == files
    assert picture(members) == before


def test_restore_cluster_is_refused_while_the_cluster_runs(ansible_runner, members, lab):
    assert wait_for(lambda: all_healthy(members), timeout=60)
    before = picture(members)
    rc, out = run_playbook(ansible_runner.inventory_file, 'restore_cluster', 'snapshot=%s' % lab['snapshot'])
    assert rc != 0, out
    assert 'Refusing to restore: the old cluster still has a quorum (3 of 3 voting members healthy' in flat(out), out
    # One message, ending with the promise.
    assert re.search(r'Refusing to restore: the old cluster still has a quorum .*? Nothing was changed\.', flat(out)), out
    assert picture(members) == before
    for member in members:
        assert member.host.service('etcd').is_running
        assert not member.host.file('/var/lib/etcd-restore').exists


def test_restore_cluster_is_refused_when_only_the_first_member_is_cut_off(ansible_runner, members, lab, explain):
    """etcd01 cut off from the two others: from etcd01 no quorum can be seen, while etcd02 and etcd03 still run
    one. Asked from etcd01 alone, the restore would roll that healthy cluster back to the snapshot."""
    cut_off, others = members[0], members[1:]
    assert wait_for(lambda: all_healthy(members), timeout=60)
    before = picture(members)
    # Blackhole routes inside etcd01 (the containers have NET_ADMIN): nothing leaves etcd01 for the others, and
    # their packets to it get no answer. Ansible and the test reach every container through docker, not this net.
    routes = ['%s/32' % m.address for m in others]
    try:
        for route in routes:
            assert cut_off.host.run('ip route add blackhole %s' % route).rc == 0
        assert wait_for(lambda: not all_healthy([cut_off]) and all_healthy(others), timeout=60), \
            explain('etcd01 cut off: it should have lost its leader while etcd02 and etcd03 keep one')
        rc, out = run_playbook(ansible_runner.inventory_file, 'restore_cluster', 'snapshot=%s' % lab['snapshot'])
        assert rc != 0, out
        text = flat(out)
        assert 'Refusing to restore: the old cluster still has a quorum (2 of 3 voting members healthy' in text, out
        assert 'as seen from etcd02, etcd03.' in text, out
        assert re.search(r"own view: etcd01: no quorum .*?; etcd02: a quorum \(2 of 3 voting members "
                         r"healthy, 2 needed; leader etcd0[23]\); etcd03: a quorum", text), out
        assert re.search(r'Refusing to restore: the old cluster still has a quorum .*? Nothing was changed\.', text), out
        for member in members:
            assert member.host.service('etcd').is_running, member.name
            assert not member.host.file('/var/lib/etcd-restore').exists, member.name
    finally:
        for route in routes:
            cut_off.host.run('ip route del blackhole %s' % route)
    assert wait_for(lambda: all_healthy(members), timeout=60), explain('not healthy after the cut was mended')
    assert picture(members) == before


# --- recovery ------------------------------------------------------------------------------------------------

def kill_and_wipe(member):
    result = member.host.run('systemctl kill -s KILL etcd; systemctl stop etcd; rm -rf %s' % member.env['ETCD_DATA_DIR'])
    assert result.rc == 0, result.stderr


def test_restore_refuses_a_corrupt_snapshot_after_the_cluster_is_lost(ansible_runner, members, lab, tmp_path):
    for member in members:
        kill_and_wipe(member)
    data = bytearray(open(lab['snapshot'], 'rb').read())
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / 'corrupt.db'
    corrupt.write_bytes(bytes(data))
    rc, out = run_playbook(ansible_runner.inventory_file, 'restore_cluster', 'snapshot=%s' % corrupt)
    assert rc != 0, out
    assert "Refusing to restore from '%s'" % corrupt in flat(out) and 'hash mismatch' in flat(out), out
    assert 'Nothing was changed.' in flat(out), out
    for member in members:
        assert not member.host.file(member.env['ETCD_DATA_DIR']).exists, member.name
        assert not member.host.service('etcd').is_running, member.name


def test_restore_cluster_rebuilds_every_member_from_the_snapshot(ansible_runner, members, lab, explain):
    rc, out = run_playbook(ansible_runner.inventory_file, 'restore_cluster', 'snapshot=%s' % lab['snapshot'])
    assert rc == 0, explain(out)
    assert 'hashes equal: True' in flat(out), out
    assert wait_for(lambda: all_healthy(members), timeout=60), explain('not healthy after the restore')
    expected = lab['keys']
    # APISIX's own directory marker (/apisix/routes/ = init_dir) sits beside the 300 routes written above.
    assert len([k for k in expected if k.startswith(PREFIX.encode()) and k[len(PREFIX):].isdigit()]) == 300
    for member in members:
        found = all_keys(member)
        missing = sorted(set(expected) - set(found))
        assert not missing, '%s lacks %d keys, e.g. %s' % (member.name, len(missing), missing[:5])
        assert all(found[key] == expected[key] for key in expected), member.name
        assert b'/gatewayops-after-backup' not in found, '%s holds a key written after the backup' % member.name
    table = member_table(members)
    assert sorted(name for _id, name, _learner in table) == ['etcd01', 'etcd02', 'etcd03']
    assert not [row for row in table if row[2]], table
    hashes = hashkv(members, explain)
    assert len(set(hashes.values())) == 1, explain('hashkv differs: %s' % hashes)
