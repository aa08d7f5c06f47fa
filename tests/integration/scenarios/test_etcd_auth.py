"""etcd authentication on (scenario etcd_auth): who may read and write what, and the parts of the stack that log in;
last, a forced failover: the APISIX nodes, logging in as the apisix user over TLS through the front, serve and take
routes on the emergency node, and failback carries the new route to the cluster.

site.yml ran with etcd_cluster_auth: the root user, an `apisix` user whose role reads and writes only /apisix, the
APISIX nodes logging in as it, the scheduled backup and the emergency node's refresh as root. The passwords come
from the scenario's environment (molecule/etcd_auth/molecule.yml).
"""

import json
import re
import shlex
import uuid

import pytest
import yaml

from conftest import APISIX_PASSWORD, ROOT_PASSWORD, admin, curl, lab_host as host, run_playbook, wait_for

APISIX_USER = 'apisix'
CONFIG = '/usr/local/apisix/conf/config.yaml'
BACKUP_SCRIPT = '/usr/local/sbin/etcd-backup'
NODES = ('apisix01', 'apisix02')


@pytest.fixture(scope='module', autouse=True)
def auth_is_on():
    assert ROOT_PASSWORD and APISIX_PASSWORD, 'the roles generate the passwords (secure default)'


@pytest.fixture(scope='module')
def etcd01(members):
    """The member that holds the scheduled backup (etcd_cluster_backup_host: the first member)."""
    return [m for m in members if m.name == 'etcd01'][0]


def refused(call):
    """The error etcd answered a call with (permission denied, missing login, ...); None when it succeeded."""
    try:
        call()
    except Exception as error:  # pylint: disable=broad-except  # the etcd3 client raises gRPC errors of many kinds
        return str(error) or type(error).__name__
    return None


def key(prefix):
    return '%s/gatewayops-auth-test-%s' % (prefix, uuid.uuid4().hex[:8])


# --- who may do what -------------------------------------------------------------------------------------------

def test_root_and_the_apisix_user_exist(members):
    users = members[0].etcdctl('user', 'list').stdout.split()
    assert sorted(users) == ['apisix', 'root'], users
    role = members[0].etcdctl('role', 'get', APISIX_USER).stdout
    assert '[/apisix, /apisiy)' in role, role


def test_anonymous_access_is_refused(members):
    client = members[0].client(user=None)
    assert refused(lambda: client.get('/apisix/routes')) is not None
    assert refused(lambda: client.put(key('/apisix'), 'x')) is not None


def test_a_wrong_password_is_refused(members):
    assert refused(lambda: members[0].client(user=APISIX_USER, password='not-' + APISIX_PASSWORD)) is not None


def test_the_apisix_user_reads_and_writes_its_prefix_only(members):
    client = members[0].client(user=APISIX_USER, password=APISIX_PASSWORD)
    mine = key('/apisix')
    client.put(mine, 'apisix may write here')
    assert client.get(mine)[0] == b'apisix may write here'
    client.delete(mine)
    outside = key('/gatewayops')
    error = refused(lambda: client.put(outside, 'x'))
    assert error is not None and 'permission denied' in error, error
    assert refused(lambda: client.get('/gatewayops')) is not None
    assert members[0].client().get(outside)[0] is None, 'the refused write reached etcd'


def test_root_reads_and_writes_anywhere(members):
    client = members[0].client()
    outside = key('/gatewayops')
    client.put(outside, 'root')
    assert client.get(outside)[0] == b'root'
    client.delete(outside)


# --- the stack logged in -------------------------------------------------------------------------------------

def config(name):
    return yaml.safe_load(host(name).file(CONFIG).content_string)


def test_the_apisix_nodes_log_in_as_the_apisix_user():
    for name in NODES:
        assert host(name).file(CONFIG).mode == 0o640
        etcd = config(name)['deployment']['etcd']
        assert (etcd['user'], etcd['password']) == (APISIX_USER, APISIX_PASSWORD), name


def test_an_admin_write_is_stored_under_the_apisix_user_and_served(members):
    """A route written through the admin API of apisix01 (which writes to etcd as `apisix`) is served by both
    nodes through the gateway."""
    node = host('apisix01')
    admin_key = config('apisix01')['deployment']['admin']['admin_key'][0]['key']
    gateway = host('gw01')
    route = {'uri': '/auth/*', 'upstream': {'type': 'roundrobin',
                                            'nodes': {'%s:8080' % gateway.interface('eth0').addresses[0]: 1}}}
    done = node.run('curl -s -o /dev/null -w %%{http_code} -X PUT http://127.0.0.1:9180/apisix/admin/routes/auth '
                    '-H %s -H "Content-Type: application/json" -d %s'
                    % (shlex.quote('X-API-KEY: ' + admin_key), shlex.quote(json.dumps(route))))
    assert done.stdout in ('200', '201'), done.stdout + done.stderr
    assert members[0].client().get('/apisix/routes/auth')[0] is not None
    # Each node reads the route from etcd on its own poll: under load one may serve it a little later than the
    # other. Both must serve it: six answers in a row through the gateway's round robin, all 200.
    answers = []

    def both_serve():
        answers[:] = [gateway.run('curl -s -o /dev/null -w %{http_code} http://127.0.0.1/auth/hello').stdout
                      for _attempt in range(6)]
        return answers == ['200'] * 6
    assert wait_for(both_serve, timeout=30), \
        'the route written as the apisix user is not served by both nodes through the gateway: %s' % answers


def test_the_scheduled_backup_logs_in_as_root(etcd01):
    assert etcd01.host.file(BACKUP_SCRIPT).mode == 0o700
    before = set(etcd01.host.run('ls /var/backups/etcd').stdout.split())
    done = etcd01.host.run('systemctl start etcd-backup.service')
    journal = etcd01.host.run('journalctl -u etcd-backup --no-pager -n 20').stdout
    assert done.rc == 0, journal
    assert len(set(etcd01.host.run('ls /var/backups/etcd').stdout.split()) - before) == 1, journal
    assert ROOT_PASSWORD not in journal


def test_the_emergency_refresh_logs_in_as_root_and_carries_the_users(members, emergency):
    members[0].client().put('/apisix/routes/auth-refresh', '{"id":"auth-refresh"}')
    done = emergency.host.run('systemctl start etcd-emergency-refresh.service')
    journal = emergency.host.run('journalctl -u etcd-emergency-refresh --no-pager -n 30').stdout
    assert done.rc == 0, journal
    assert emergency.host.file('/usr/local/sbin/etcd-emergency-refresh').mode == 0o700
    # The snapshot holds the users: the node APISIX fails over to refuses anonymous access as the cluster does.
    assert refused(lambda: emergency.client(user=None).get('/apisix/routes/auth-refresh')) is not None
    apisix = emergency.client(user=APISIX_USER, password=APISIX_PASSWORD)
    assert apisix.get('/apisix/routes/auth-refresh', serializable=True)[0] == b'{"id":"auth-refresh"}'


def test_the_passwords_are_never_logged(ansible_runner):
    """The cluster's playbook run verbose and with --diff, as an operator would, once with a change that rewrites the
    backup script (which holds the root password), once to put it back: neither password appears."""
    for change in (['etcd_cluster_backup_keep_days=8'], []):
        rc, out = run_playbook(ansible_runner.inventory_file, 'etcd_cluster', *change, options=['-v', '--diff'])
        assert rc == 0, out[-4000:]
        assert re.search(r'etcd01\s*:.*changed=[1-9]', out.rsplit('PLAY RECAP', maxsplit=1)[-1]), out[-3000:]
        assert ROOT_PASSWORD not in out and APISIX_PASSWORD not in out


def test_the_switch_without_a_password_is_refused_and_changes_nothing(ansible_runner, members, etcd01):
    before = (members[0].etcdctl('user', 'list').stdout, etcd01.host.file(BACKUP_SCRIPT).sha256sum)
    rc, out = run_playbook(ansible_runner.inventory_file, 'etcd_cluster', 'etcd_cluster_apisix_password=')
    assert rc != 0, out[-3000:]
    assert 'etcd_cluster_auth needs etcd_cluster_root_password and etcd_cluster_apisix_password' in out, out[-3000:]
    assert 'Nothing was changed' in out
    assert (members[0].etcdctl('user', 'list').stdout,
            etcd01.host.file(BACKUP_SCRIPT).sha256sum) == before
    assert refused(lambda: members[0].client(user=APISIX_USER, password=APISIX_PASSWORD).get('/apisix')) is None


# --- the APISIX nodes on the emergency node, after a failover ---------------------------------------------------

def lab_route(uri_prefix):
    upstream = '%s:8080' % host('gw01').interface('eth0').addresses[0]
    return {'uri': uri_prefix + '/*', 'upstream': {'type': 'roundrobin', 'nodes': {upstream: 1}}}


def served_by_both_and_the_gateway(path):
    """Both nodes serve path (each reads its routes from etcd on its own), then the gateway does, every time."""
    gateway = host('gw01')
    for name in NODES:
        address = host(name).interface('eth0').addresses[0]
        if not wait_for(lambda a=address: curl(gateway, 'http://%s:9080%s' % (a, path))[0] == 200, timeout=30):
            return False
    return all(curl(gateway, 'http://127.0.0.1' + path)[0] == 200 for _attempt in range(6))


@pytest.fixture(scope='module')
def failed_over(ansible_runner):
    """A route both nodes serve, then a forced failover: the front (TLS passed through) sends the nodes, logged in as
    the apisix user, to the emergency node, whose snapshot carries the users."""
    code, body = admin('apisix01', 'PUT', 'routes/before-failover', lab_route('/before-failover'))
    assert code in (200, 201), body
    assert served_by_both_and_the_gateway('/before-failover/hello')
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    assert rc == 0, out[-5000:]
    assert 'failed over: the front (gw01) now sends etcd clients to the emergency node' in out, out[-3000:]


def test_after_a_failover_the_nodes_serve_and_take_routes_from_the_emergency_node(failed_over, emergency):
    assert served_by_both_and_the_gateway('/before-failover/hello'), 'the route of before the failover is not served'
    code, body = admin('apisix02', 'PUT', 'routes/after-failover', lab_route('/after-failover'))
    assert code in (200, 201), body
    assert emergency.client().get('/apisix/routes/after-failover')[0], 'the route is not on the emergency node'
    assert served_by_both_and_the_gateway('/after-failover/hello')


def test_failback_carries_the_route_taken_during_the_failover(failed_over, ansible_runner, members):
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc == 0, out[-5000:]
    assert 'failed back: the front (gw01) sends etcd clients to the cluster' in out, out[-3000:]
    assert members[0].client().get('/apisix/routes/after-failover')[0], 'the route APISIX wrote was not carried'
    assert served_by_both_and_the_gateway('/after-failover/hello')
