"""molecule/seeded: a fresh cluster seeded from the old single node's snapshot, with etcd installed from the release
archive prepare.yml serves in the lab (Debian's packages purged from the members): every key of the snapshot is on
every member, and etcd runs from the archive."""

import base64
import json
import os

EPHEMERAL = os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '')


def seed_keys():
    manifest = os.path.join(EPHEMERAL, 'seed', 'etcd-seed.keys.json')
    with open(manifest) as handle:
        kvs = json.load(handle)['kvs']
    return {base64.b64decode(kv['key']): base64.b64decode(kv.get('value', '')) for kv in kvs}


def test_the_seed_holds_keys():
    # Guards the test below against an empty manifest.
    assert len(seed_keys()) >= 200


def test_every_key_of_the_snapshot_is_on_every_member(members):
    expected = seed_keys()
    for member in members:
        # Serializable: each member answers from its own store, so this reads what was restored into it.
        found = {meta.key: value for value, meta in member.client().get_prefix('/', serializable=True)}
        missing = sorted(set(expected) - set(found))
        assert not missing, '%s lacks %d keys, e.g. %s' % (member.name, len(missing), missing[:5])
        wrong = sorted(key for key in expected if found[key] != expected[key])
        assert not wrong, '%s has other values for %s' % (member.name, wrong[:5])


def test_etcd_runs_from_the_release_archive_not_from_debians_package(members, explain):
    with open(os.path.join(EPHEMERAL, 'etcd-release.json')) as handle:
        release = json.load(handle)
    for member in members:
        for package in ('etcd-server', 'etcd-client'):
            assert not member.host.package(package).is_installed, '%s: %s' % (member.name, package)
        assert not member.host.file('/usr/bin/etcd').exists, member.name
        unit = member.host.file('/etc/systemd/system/etcd.service').content_string
        assert 'ExecStart=/usr/local/bin/etcd\n' in unit, unit
        status = member.etcdctl('endpoint', 'status', '-w', 'json')
        assert status.rc == 0, explain('%s: %s' % (member.name, status.stderr))
        assert json.loads(status.stdout)[0]['Status']['version'] == release['version'], status.stdout
