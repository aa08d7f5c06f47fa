"""playbooks/upgrade_etcd.yml (molecule/upgrade_etcd): with authentication on, the rolling upgrade of the 3.4 cluster
to the served 3.5 release was refused and changed nothing (etcd's upgrade_3_5 guide); the all-at-once upgrade then
moved every member to 3.5 while the lab writer kept writing; nothing acknowledged was lost, the members are the same
ones, authentication is still on and the users still log in; the version steps etcd does not support are refused
before anything changes."""

import base64
import json
import os
import ssl
import urllib.request

import pytest

from conftest import APISIX_PASSWORD, AUTH, flat, lab_client_tls, run_playbook

EPHEMERAL = os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '')
WRITER_PREFIX = '/gatewayops-writer/'
# What a refused run must leave exactly as it was on every member.
WATCHED_FILES = ['/etc/systemd/system/etcd.service', '/etc/etcd/etcd.conf', '/usr/local/bin/etcd',
                 '/usr/local/bin/etcdctl', '/usr/bin/etcd']


def read_json(name):
    with open(os.path.join(EPHEMERAL, name)) as handle:
        return json.load(handle)


@pytest.fixture(scope='module')
def release():
    """The archive prepare.yml served: version, url, sha256."""
    return read_json('etcd-release.json')


@pytest.fixture(scope='module')
def writer_log():
    entries = []
    with open(os.path.join(EPHEMERAL, 'writer.log')) as handle:
        for line in handle:
            if line.strip():
                entries.append(json.loads(line))
    return entries


def test_every_member_runs_the_new_release(members, release, explain):
    for member in members:
        status = member.etcdctl('endpoint', 'status', '-w', 'json')
        assert status.rc == 0, explain('%s: %s' % (member.name, status.stderr))
        assert json.loads(status.stdout)[0]['Status']['version'] == release['version'], status.stdout
        unit = member.host.file('/etc/systemd/system/etcd.service').content_string
        assert 'ExecStart=/usr/local/bin/etcd\n' in unit, unit


def test_the_upgraded_members_run_the_corruption_checks_of_the_new_release(members):
    # upgrade_member.yml wrote the 3.5 flags (the compact hash check, which 3.4 lacks) before the restart
    for member in members:
        conf = member.host.file('/etc/etcd/etcd.conf').content_string
        assert 'ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED="true"\n' in conf, conf
        started = member.host.run("journalctl -u etcd --no-pager -o cat | grep 'starting an etcd server' | tail -1")
        assert '"compact-check-time-enabled":true' in started.stdout, started.stdout
        assert '"corrupt-check-time-interval":"2h0m0s"' in started.stdout, started.stdout


def version_answer(member):
    """etcd's /version of the member, over TLS with the lab's client certificate when the member speaks https."""
    context = None
    if member.client_url.startswith('https'):
        tls = lab_client_tls()
        context = ssl.create_default_context(cafile=tls['ca'])
        context.load_cert_chain(tls['cert'], tls['key'])
    return json.loads(urllib.request.urlopen(member.client_url + '/version', timeout=5, context=context).read())


def test_the_cluster_version_moved_to_the_new_minor(members, release):
    minor = '.'.join(release['version'].split('.')[:2])
    for member in members:
        answer = version_answer(member)
        assert answer['etcdserver'] == release['version'], answer
        assert answer['etcdcluster'] == minor + '.0', answer


def test_the_members_are_the_same(members):
    before = {name: int(member_id, 16) for name, member_id in read_json('members-before.json').items()}
    listing = json.loads(members[0].etcdctl('member', 'list', '-w', 'json').stdout)['members']
    assert {m['name']: m['ID'] for m in listing} == before


def test_a_snapshot_was_saved_before_the_upgrade(members):
    found = [m.name for m in members if m.host.run('ls /var/backups/etcd/before-upgrade-*.db').rc == 0]
    assert found, 'no snapshot in /var/backups/etcd on any member'


def test_the_rolling_upgrade_with_auth_was_refused(release):
    run = read_json('rolling-refused.json')
    out = flat(run['out'])
    assert run['rc'] != 0, out[-3000:]
    for words in ('Refused, nothing was changed', 'rolling upgrade from 3.4 to 3.5 with authentication on',
                  'WAL entries', 'https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/', 'upgrade_etcd_all_at_once=true'):
        assert words in out, (words, out[-3000:])
    assert 'changed=0' in out and 'changed=1' not in out, out[-3000:]


def test_the_refused_rolling_upgrade_changed_nothing():
    before, after = read_json('rolling-before.json'), read_json('rolling-after.json')
    # Per member: the unit, config and binaries' checksums, when etcd started, its PID, the staged releases and
    # the backups.
    assert after['hosts'] == before['hosts']

    def seen(record):
        return {m['name']: (m['status']['version'], m['status']['revision'], m['hashkv']['hash'])
                for m in record['members']}
    assert seen(after) == seen(before)
    assert {seen_member[0] for seen_member in seen(after).values()} == {'3.4.23'}


def test_the_writer_went_on_through_the_upgrade(writer_log):
    summary = writer_log[-1].get('summary')
    assert summary, 'the writer did not finish: %s' % writer_log[-1:]
    assert summary['acked'] > 100, summary
    # The cluster refuses requests while every member restarts; the writer's puts are acknowledged after it again.
    last_failed = max([i for i, e in enumerate(writer_log) if e.get('acked') is False] or [-1])
    assert any(e.get('acked') for e in writer_log[last_failed + 1:]), writer_log[last_failed:][:5]


@pytest.mark.skipif(not AUTH, reason='the scenario runs with authentication on')
def test_authentication_is_still_on_and_the_users_log_in(members, explain):
    for member in members:
        status = member.etcdctl('auth', 'status')
        assert status.rc == 0 and 'Authentication Status: true' in status.stdout, explain(status.stderr)
        assert member.client().get('/gatewayops-upgrade-probe')[0] is None
        apisix = member.client(user='apisix', password=APISIX_PASSWORD)
        apisix.get('/apisix/routes')
        with pytest.raises(Exception, match='(?i)permission denied'):
            apisix.get('/gatewayops-upgrade-probe')


def test_every_acknowledged_key_is_on_every_member(members, writer_log, explain):
    acked = {entry['key'] for entry in writer_log if entry.get('acked')}
    for member in members:
        # Serializable: the member's own store, so this proves each member has the keys.
        result = member.etcdctl('get', '--prefix', WRITER_PREFIX, '--keys-only', '--consistency=s', '-w', 'json')
        assert result.rc == 0, explain(result.stderr)
        present = {base64.b64decode(kv['key']).decode() for kv in json.loads(result.stdout).get('kvs', [])}
        missing = sorted(acked - present)
        assert not missing, '%s lacks %d acknowledged keys, first %s' % (member.name, len(missing), missing[:5])


def member_state(member):
    """Checksums of the unit, config and binaries, and when etcd started: what a refused run must not change."""
    files = {path: member.host.file(path).sha256sum if member.host.file(path).exists else None
             for path in WATCHED_FILES}
    started = member.host.run('systemctl show etcd -p ActiveEnterTimestampMonotonic -p MainPID').stdout
    releases = member.host.run('ls /opt/etcd').stdout
    backups = member.host.run('ls /var/backups/etcd').stdout
    return dict(files=files, started=started, releases=releases, backups=backups)


def skipped_minor(version):
    """The release two minor versions above `version` (3.5.16 -> 3.7.0)."""
    major, minor = version.split('.')[:2]
    return '%s.%d.0' % (major, int(minor) + 2)


@pytest.mark.parametrize('step, reason', [
    ('skip', 'skips a minor version'),
    ('3.5.1', 'inconsistent data'),
    ('3.4.23', 'downgrade'),
])
def test_unsupported_version_step_is_refused_and_changes_nothing(ansible_runner, members, release, step, reason):
    # The cluster runs the served release now: skipping a minor version means going two above it.
    version = skipped_minor(release['version']) if step == 'skip' else step
    before = {m.name: member_state(m) for m in members}
    rc, out = run_playbook(ansible_runner.inventory_file, 'upgrade_etcd', 'etcd_cluster_version=%s' % version,
                           'etcd_cluster_archive_sha256=%s' % ('0' * 64),
                           'etcd_cluster_archive_url=%s' % release['url'].replace(release['version'], version))
    assert rc != 0, out
    assert 'Refused, nothing was changed' in out and reason in out, out
    assert 'changed=0' in out and 'changed=1' not in out, out
    assert {m.name: member_state(m) for m in members} == before
