"""Move etcd03 to the spare host etcd04 keeping its ID and data (playbooks/migrate_member.yml, method copy),
then etcd02 to etcd05 as a fresh member (method replace).

molecule/migrate_member/converge.yml recorded the member list before the moves and ran the lab writer through
them. After the moves the member etcd03 runs on the host etcd04 and the member etcd05 replaces etcd02; the
inventory still lists the hosts etcd02 and etcd03 in `etcd`, so the members are found here by container, not
through the `members` fixture.
"""

import base64
import json
import os
import subprocess

import pytest
import yaml

from conftest import Member, client_url, lab_client_tls, lab_host as host, read_writer_log

EPHEMERAL = os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '')
# member name -> host it runs on after the move
PLACEMENT = {'etcd01': 'etcd01', 'etcd03': 'etcd04', 'etcd05': 'etcd05'}


def etcdctl(on, *args):
    """etcdctl on the host ``on`` against the member it runs, with the lab's TLS and login."""
    return Member(on, host(on), lab_client_tls()).etcdctl(*args)


def read_env(h):
    settings = {}
    for line in h.file('/etc/etcd/etcd.conf').content_string.splitlines():
        if '=' in line and not line.startswith('#'):
            key, value = line.split('=', 1)
            settings[key] = value.strip('"')
    return settings


def member_list(on='etcd01'):
    result = etcdctl(on, 'member', 'list', '-w', 'json')
    assert result.rc == 0, result.stderr
    return {m.get('name', ''): m for m in json.loads(result.stdout)['members']}


@pytest.fixture(scope='module')
def before():
    with open(os.path.join(EPHEMERAL, 'before.json')) as recorded:
        return {m['name']: m for m in json.load(recorded)}


def test_member_keeps_its_id_and_moves_its_peer_url(before):
    after = member_list()
    assert sorted(after) == sorted(PLACEMENT), after
    assert '%016x' % after['etcd03']['ID'] == before['etcd03']['id'], (after['etcd03'], before['etcd03'])
    new_address = read_env(host('etcd04'))['ETCD_ADVERTISE_CLIENT_URLS'].split('//')[1].split(':')[0]
    assert after['etcd03']['peerURLs'] == [client_url(new_address, 2380)], after['etcd03']
    assert after['etcd03']['clientURLs'] == [client_url(new_address)], after['etcd03']
    assert not [m for m in after.values() if m.get('isLearner')], after


def test_old_host_stopped_disabled_with_data_kept_aside(before):
    old = host('etcd03')
    service = old.service('etcd')
    assert not service.is_running and not service.is_enabled
    assert not old.file('/var/lib/etcd/etcd03.etcd').exists
    assert old.file('/var/lib/etcd/etcd03.etcd.migrated-%s/member' % before['etcd03']['id']).is_directory


def test_no_copy_of_the_database_is_left_behind():
    """The data dir travelled through private temporary directories, removed once the copy was done."""
    for name in ('etcd03', 'etcd04'):
        left = host(name).run('ls -d /var/tmp/etcd-migrate* 2>/dev/null')
        assert left.stdout.strip() == '', '%s keeps %s' % (name, left.stdout)


def test_replace_method_gives_a_fresh_voting_member_and_retires_the_old_host(before):
    after = member_list()
    assert 'etcd02' not in after, after
    assert not after['etcd05'].get('isLearner'), after['etcd05']
    assert '%016x' % after['etcd05']['ID'] != before['etcd02']['id']
    old = host('etcd02').service('etcd')
    assert not old.is_running and not old.is_enabled
    new = host('etcd05').service('etcd')
    assert new.is_running and new.is_enabled


def test_new_host_runs_the_member():
    new = host('etcd04')
    assert new.service('etcd').is_running and new.service('etcd').is_enabled
    env = read_env(new)
    assert env['ETCD_NAME'] == 'etcd03' and env['ETCD_DATA_DIR'] == '/var/lib/etcd/etcd03.etcd', env


def test_writer_never_failed_and_every_key_is_on_every_member():
    acked, failed, summary = read_writer_log(os.path.join(EPHEMERAL, 'writer.log'))
    assert summary is not None and summary['failed'] == 0 and not failed, (summary, failed[:5])
    assert len(acked) > 20, summary
    for name, on in sorted(PLACEMENT.items()):
        result = etcdctl(on, 'get', '--prefix', '/gatewayops-writer/', '--consistency=s', '-w', 'json')
        assert result.rc == 0, result.stderr
        stored = {base64.b64decode(kv['key']).decode(): base64.b64decode(kv['value']).decode()
                  for kv in json.loads(result.stdout).get('kvs', [])}
        missing = sorted(k for k in acked if stored.get(k) != acked[k])
        assert not missing, '%s (on %s) lacks %d acknowledged keys: %s' % (name, on, len(missing), missing[:5])


def test_hashkv_equal_on_every_member():
    revision = json.loads(etcdctl('etcd01', 'endpoint', 'status', '-w', 'json').stdout)[0]['Status']['header']['revision']
    hashes = {}
    for name, on in sorted(PLACEMENT.items()):
        result = etcdctl(on, 'endpoint', 'hashkv', '--rev=%d' % revision, '-w', 'json')
        assert result.rc == 0, result.stderr
        hashes[name] = json.loads(result.stdout)[0]['HashKV']['hash']
    assert len(set(hashes.values())) == 1, hashes


def inventory_after_the_moves(directory):
    """The lab inventory edited as migrate_member.yml tells the operator: the new hosts in `etcd` (etcd04 under
    the member name etcd03), the retired ones back in `etcd_spare`."""
    lab = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'inventory', 'lab', 'hosts.yml')
    with open(lab) as source:
        inventory = yaml.safe_load(source)
    groups = inventory['all']['children']
    etcd, spare = groups['etcd']['hosts'], groups['etcd_spare']['hosts']
    for retired in ('etcd02', 'etcd03'):
        spare[retired] = etcd.pop(retired)
    for moved_to in ('etcd04', 'etcd05'):
        etcd[moved_to] = spare.pop(moved_to)
    etcd['etcd04']['etcd_cluster_member_name'] = 'etcd03'
    path = os.path.join(str(directory), 'hosts.yml')
    with open(path, 'w') as target:
        yaml.safe_dump(inventory, target)
    return path


def test_moving_onto_a_host_running_etcd_with_other_data_is_refused(tmp_path):
    """etcd04 now runs etcd03: moving etcd01 there must be refused before anything changes."""
    listing = member_list()
    playbook = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'playbooks', 'migrate_member.yml')
    done = subprocess.run(['ansible-playbook', '-i', inventory_after_the_moves(tmp_path), playbook,
                           '-e', 'member=etcd01', '-e', 'new_host=etcd04'],
                          env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert done.returncode != 0, done.stdout[-3000:]
    assert 'cannot take etcd01' in done.stdout and 'Nothing was changed' in done.stdout, done.stdout[-3000:]
    assert member_list() == listing
    assert host('etcd01').service('etcd').is_running and host('etcd01').service('etcd').is_enabled
    assert host('etcd04').service('etcd').is_running
