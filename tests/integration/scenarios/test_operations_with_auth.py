"""Every operation on the secure default (scenario secure: authentication and TLS), run as an operator would with
-vvv and --diff: each works, and no password, admin key, TLS private key or value under /apisix appears in what it
prints.

Order matters (pytest runs a file top to bottom, each operation leaving a healthy stack for the next): backup,
replace a member, a rolling restart, a forced failover with a write on the emergency node and the failback that
carries it, a rolling update then one whose plugin fails (the rollback), the status tables, and last the restore of the
backup after every member was stopped. No setting: the roles' defaults, with the passwords and certificates they
generated for the lab."""

import json
import os
import shlex
import uuid

import pytest
import yaml

from conftest import APISIX_PASSWORD, LAB_CREDENTIALS, ROOT_PASSWORD, lab_host, run_playbook, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
PLUGINS = os.path.join(REPO, 'tests', 'lab', 'apisix_standin', 'example_plugins')
# A value written under /apisix before the operations: consumer credentials live there.
SECRET_VALUE = 'gatewayops-secret-' + uuid.uuid4().hex
SECRET_KEY = '/apisix/consumers/auth-ops-test'


@pytest.fixture(scope='module')
def secrets(members):
    assert ROOT_PASSWORD and APISIX_PASSWORD, 'the roles generate the passwords (secure default)'
    members[0].client(user='apisix', password=APISIX_PASSWORD).put(SECRET_KEY, SECRET_VALUE)
    config = yaml.safe_load(lab_host('apisix01').file('/usr/local/apisix/conf/config.yaml').content_string)
    admin_key = config['deployment']['admin']['admin_key'][0]['key']
    found = dict(root_password=ROOT_PASSWORD, apisix_password=APISIX_PASSWORD, admin_key=admin_key,
                 value_under_apisix=SECRET_VALUE)
    # Each private key the roles generated and installed (the CA's, the members', the other hosts' and the client
    # one): a full line of its base64 body is enough to tell it was printed.
    pki = os.path.join(LAB_CREDENTIALS, 'etcd-pki')
    for name in sorted(os.listdir(pki)):
        if name.endswith('.key'):
            body = [line for line in open(os.path.join(pki, name)).read().splitlines() if '-----' not in line]
            assert body, name
            found['private key ' + name] = body[0]
    return found


def run(ansible_runner, secrets, playbook, *extra, expect_rc=0):
    rc, out = run_playbook(ansible_runner.inventory_file, playbook, *extra, options=['-vvv', '--diff'])
    assert (rc == 0) == (expect_rc == 0), out[-5000:]
    shown = [name for name, secret in secrets.items() if secret in out]
    assert not shown, '%s printed %s' % (playbook, ', '.join(shown))
    return out


def voting(members):
    listed = members[0].client().members
    return sorted(m.name for m in listed)


def healthy(members):
    return all(m.etcdctl('endpoint', 'health').rc == 0 for m in members)


def test_backup(ansible_runner, secrets):
    run(ansible_runner, secrets, 'backup')


def test_replace_member(ansible_runner, secrets, members):
    run(ansible_runner, secrets, 'replace_member', 'member=etcd03', 'force=true')
    assert voting(members) == ['etcd01', 'etcd02', 'etcd03']
    assert wait_for(lambda: healthy(members), timeout=60)


def test_rolling_restart(ansible_runner, secrets, members):
    run(ansible_runner, secrets, 'upgrade_etcd')
    assert wait_for(lambda: healthy(members), timeout=60)


def test_failover_and_failback_carry_a_write_made_on_the_emergency_node(ansible_runner, secrets, members,
                                                                        emergency):
    out = run(ansible_runner, secrets, 'failover', 'force=true')
    assert 'failed over: the front (gw01) now sends etcd clients to the emergency node' in out, out[-3000:]
    key = '/apisix/routes/auth-failover-%s' % uuid.uuid4().hex[:8]
    emergency.client(user='apisix', password=APISIX_PASSWORD).put(key, '{"id":"auth-failover"}')
    run(ansible_runner, secrets, 'failback')
    assert members[0].client().get(key)[0] == b'{"id":"auth-failover"}'


def rolling_update(ansible_runner, secrets, version, *extra, expect_rc=0):
    return run(ansible_runner, secrets, 'rolling_update',
               'source=' + os.path.join(PLUGINS, version, 'apisix', 'plugins'), 'rolling_update_observe_seconds=3',
               json.dumps({'apisix_node_custom_plugins': ['gatewayops-tag']}), *extra, expect_rc=expect_rc)


def test_a_rolling_update_then_a_failed_one_rolled_back(ansible_runner, secrets):
    rolling_update(ansible_runner, secrets, 'v1')
    # A route through the plugin, written with the admin API (its data goes to etcd as the apisix user): the
    # health route of the next update, which the broken build fails.
    gw01 = lab_host('gw01').run("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1")
    body = {'uri': '/lab/*', 'plugins': {'gatewayops-tag': {}},
            'upstream': {'type': 'roundrobin', 'nodes': {'%s:8080' % gw01.stdout.strip(): 1}}}
    put = lab_host('apisix01').run(
        'curl -s -o /dev/null -w %%{http_code} -X PUT http://127.0.0.1:9180/apisix/admin/routes/lab -H %s '
        '-H "Content-Type: application/json" -d %s'
        % (shlex.quote('X-API-KEY: ' + secrets['admin_key']), shlex.quote(json.dumps(body))))
    assert put.stdout in ('200', '201'), put.stdout + put.stderr
    out = rolling_update(ansible_runner, secrets, 'broken', 'apisix_node_health_path=/lab/health', expect_rc=2)
    assert 'The update of apisix01 failed' in out and 'back in service with its previous version' in out, \
        out[-3000:]


def test_status(ansible_runner, secrets):
    out = run(ansible_runner, secrets, 'status')
    assert 'healthy true, quorum true' in out, out[-3000:]


def test_restore_after_every_member_stopped(ansible_runner, secrets, members):
    for member in members:
        member.host.run('systemctl stop etcd')
    run(ansible_runner, secrets, 'restore_cluster')
    assert wait_for(lambda: healthy(members), timeout=60)
    assert members[0].client().get(SECRET_KEY)[0] == SECRET_VALUE.encode()
    # Authentication is still on: the restored data holds the users.
    try:
        members[0].client(user=None).get(SECRET_KEY)
    except Exception:  # pylint: disable=broad-except  # gRPC errors of many kinds
        pass
    else:
        raise AssertionError('an anonymous read was served after the restore')
