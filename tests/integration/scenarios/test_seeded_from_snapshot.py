"""Every key of the seed snapshot is on every member (molecule/seeded)."""

import base64
import json
import os


def seed_keys():
    manifest = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'seed', 'etcd-seed.keys.json')
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
