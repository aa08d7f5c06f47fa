"""The emergency node (role etcd_emergency) and the etcd front on gw01 (role nginx_upstream), in Molecule scenario default.

Order matters (pytest runs a file top to bottom): what site.yml built first, then refreshes that succeed, then
refreshes that must fail and leave the served data alone, then the front, then the roles' refusals.
"""

import base64
import json
import os
import re
import shlex
import subprocess
import uuid

import pytest

from conftest import TLS, client_url, container_name, lab_client_tls, lab_connection, lab_host, run_playbook, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOKS = os.path.join(HERE, '..', 'playbooks')
STATE = '/var/lib/etcd-emergency/state.json'
FAILOVER = '/var/lib/etcd-emergency/failover.json'
SCRIPT = '/usr/local/sbin/etcd-emergency-refresh'
DROP_IN_DIR = '/etc/systemd/system/etcd-emergency-refresh.service.d'
NGINX_CONF = '/etc/nginx/nginx.conf'
ACTIVE = '/etc/nginx/gatewayops/etcd-active'


@pytest.fixture(scope='module')
def gateway():
    return lab_host('gw01')


@pytest.fixture(scope='module')
def front_url(gateway):
    address = gateway.run('hostname -I').stdout.split()[0]
    return client_url(address)


def state(emergency):
    return json.loads(emergency.host.file(STATE).content_string)


def refresh(emergency):
    """Run the refresh service once, as the timer does; -> the systemctl result."""
    return emergency.host.run('systemctl start etcd-emergency-refresh.service')


def cluster_put(members, key, value):
    members[0].client().put(key, value)


def emergency_get(emergency, key):
    value, _meta = emergency.client().get(key, serializable=True)
    return value


def emergency_keys(emergency):
    return {meta.key: value for value, meta in emergency.client().get_prefix('/', serializable=True)}


def endpoint_status(member):
    """Asked again for up to 30 s: on a loaded machine etcdctl's 2-second dial can time out (seen once in tests/run)."""
    tries = []

    def answered():
        tries.append(member.etcdctl('endpoint', 'status', '-w', 'json'))
        return tries[-1].rc == 0
    assert wait_for(answered, timeout=30, interval=2), tries[-1].stderr
    return json.loads(tries[-1].stdout)[0]['Status']


CONNECTION = lab_connection()


def gateway_call(url, path, body):
    """POST to the v3 JSON gateway of whatever answers at url (the front), with the lab's TLS and login; -> the
    decoded answer."""
    return CONNECTION.request(url, path, body, timeout=10)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def front_cluster_id(front_url):
    return int(gateway_call(front_url, '/v3/maintenance/status', {})['header']['cluster_id'])


# --- what site.yml built ---------------------------------------------------------------------------------

def test_the_emergency_node_is_a_cluster_of_its_own(members, emergency):
    mine = endpoint_status(emergency)
    theirs = endpoint_status(members[0])
    assert mine['header']['cluster_id'] != theirs['header']['cluster_id']
    listing = json.loads(emergency.etcdctl('member', 'list', '-w', 'json').stdout)['members']
    assert [m['name'] for m in listing] == ['etcd-single']
    assert emergency.env['ETCD_INITIAL_CLUSTER_TOKEN'] == 'gatewayops-emergency'
    assert emergency.env['ETCD_INITIAL_CLUSTER_TOKEN'] != members[0].env['ETCD_INITIAL_CLUSTER_TOKEN']


def test_etcd_and_the_refresh_timer_run(emergency):
    host = emergency.host
    assert host.service('etcd').is_running and host.service('etcd').is_enabled
    timer = host.service('etcd-emergency-refresh.timer')
    assert timer.is_running and timer.is_enabled
    shown = host.run('systemctl show etcd-emergency-refresh.timer -p TimersMonotonic').stdout
    assert '1d' in shown, shown  # the runbook's daily refresh, the default interval
    assert host.run('systemctl show etcd-emergency-refresh.service -p Type').stdout.strip() == 'Type=oneshot'


def test_the_first_refresh_filled_the_node(emergency):
    first = state(emergency)
    assert first['last_error'] is None
    assert first['source_endpoint'].endswith(':2379')
    assert first['refreshed_at'] and first['snapshot_taken_at'] and first['sha256']
    assert emergency.host.file('/var/lib/etcd-emergency/snapshot.db').exists


# --- refreshes that succeed ----------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def refreshed(members, emergency):
    """Keys written to the cluster, then a refresh: -> (keys, state before, state after)."""
    before = state(emergency)
    keys = {('/apisix/routes/emergency-%d' % i).encode(): ('{"id":"%d","v":"%s"}' % (i, uuid.uuid4())).encode()
            for i in range(50)}
    for key, value in keys.items():
        cluster_put(members, key, value)
    done = refresh(emergency)
    assert done.rc == 0, done.stderr + emergency.host.run('journalctl -u etcd-emergency-refresh -n 30').stdout
    return keys, before, state(emergency)


def test_a_refresh_brings_the_new_keys(refreshed, emergency):
    keys, _before, _after = refreshed
    found = emergency_keys(emergency)
    missing = sorted(k for k in keys if found.get(k) != keys[k])
    assert not missing, 'the emergency node lacks %d keys, e.g. %s' % (len(missing), missing[:3])


def test_the_state_records_the_new_revision(refreshed, members):
    _keys, before, after = refreshed
    assert after['revision'] > (before['revision'] or 0)
    assert after['last_error'] is None
    # The origin: the members recorded in the snapshot, the cluster's. After a restore, etcd 3.4's backend also keeps
    # the members of before it (other IDs, the same names and peer URLs): the names are compared as a set.
    assert sorted(set(m['name'] for m in after['source_members'])) == sorted(m.env['ETCD_NAME'] for m in members)
    assert after['source_cluster_id'] == int(endpoint_status(members[0])['header']['cluster_id'])
    assert after['snapshot_taken_epoch'] >= (before['snapshot_taken_epoch'] or 0)
    # The revision is the cluster's at the time of the snapshot: not beyond what the cluster has now.
    assert after['revision'] <= endpoint_status(members[0])['header']['revision']


def test_every_key_of_the_cluster_up_to_that_revision_is_served(refreshed, members, emergency):
    served_revision = state(emergency)['revision']
    cluster = {meta.key: (value, meta.mod_revision) for value, meta in members[0].client().get_prefix('/')}
    found = emergency_keys(emergency)
    expected = {k: v for k, (v, rev) in cluster.items() if rev <= served_revision}
    assert expected, 'the cluster holds no key written before the refresh'
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    assert not wrong, 'keys missing or different on the emergency node: %s' % wrong[:5]


def test_the_previous_data_is_kept_one_generation(refreshed, emergency):
    data_dir = emergency.env['ETCD_DATA_DIR']
    assert emergency.host.file(data_dir + '.previous/member').is_directory
    assert not emergency.host.file(data_dir + '.previous.old').exists
    leftovers = emergency.host.run('ls -a %s' % os.path.dirname(data_dir)).stdout.split()
    assert not [name for name in leftovers if '.refresh-' in name], leftovers


def test_the_refresh_entry_point_returns_the_state(refreshed, ansible_runner, members, emergency):
    key = ('/apisix/routes/entry-point-%s' % uuid.uuid4()).encode()
    cluster_put(members, key, b'{"id":"entry-point"}')
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'emergency.yml'), 'emergency_entry_point=refresh')
    assert rc == 0, out
    assert re.search(r'revision\W+%d\b' % state(emergency)['revision'], out), out[-2000:]
    assert emergency_get(emergency, key) == b'{"id":"entry-point"}'


# --- refreshes that fail leave the served data alone -------------------------------------------------------

@pytest.fixture
def served_before(emergency):
    """What the node serves before a refresh that must fail, and a check that it still does afterwards."""
    keys, before = emergency_keys(emergency), state(emergency)
    revision = endpoint_status(emergency)['header']['revision']

    def unchanged():
        assert emergency.host.service('etcd').is_running
        assert emergency_keys(emergency) == keys
        assert endpoint_status(emergency)['header']['revision'] == revision
        after = state(emergency)
        for field in ('revision', 'snapshot_taken_at', 'sha256', 'refreshed_at'):
            assert after[field] == before[field], field
        return after
    return unchanged


def test_unreachable_sources_fail_the_refresh_and_keep_the_data(members, emergency, served_before):
    key = ('/apisix/routes/not-yet-%s' % uuid.uuid4()).encode()
    cluster_put(members, key, b'{"id":"not-yet"}')
    dead = '10.250.%d.99' % (77 + int(os.environ.get('LAB_SLOT') or 0))
    host = emergency.host
    host.run('mkdir -p %s' % DROP_IN_DIR)
    host.run("printf '[Service]\\nExecStart=\\nExecStart=%s --endpoints http://%s:2379\\n' > %s/dead.conf"
             % (SCRIPT, dead, DROP_IN_DIR))
    host.run('systemctl daemon-reload')
    try:
        done = refresh(emergency)
    finally:
        host.run('rm -rf %s && systemctl daemon-reload' % DROP_IN_DIR)
    assert done.rc != 0
    after = served_before()
    assert dead in after['last_error'] and 'no source endpoint gave a snapshot' in after['last_error']
    assert emergency_get(emergency, key) is None


def test_the_refresh_entry_point_fails_on_a_failed_refresh(ansible_runner, emergency, served_before):
    host = emergency.host
    host.run('mkdir -p %s' % DROP_IN_DIR)
    host.run("printf '[Service]\\nExecStart=\\nExecStart=%s --endpoints http://127.0.0.1:1\\n' > %s/dead.conf"
             % (SCRIPT, DROP_IN_DIR))
    host.run('systemctl daemon-reload')
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'emergency.yml'), 'emergency_entry_point=refresh')
    finally:
        host.run('rm -rf %s && systemctl daemon-reload' % DROP_IN_DIR)
    assert rc != 0
    assert 'The refresh of the emergency node failed' in out and 'still serves its last good data' in out
    served_before()


def damaged_snapshot(emergency, how):
    """A copy of the last good snapshot, damaged; -> its path on the emergency node."""
    path = '/var/tmp/damaged-%s.db' % how
    code = {
        'flipped': "d = bytearray(open(s, 'rb').read()); d[len(d) // 2] ^= 0xFF; open(p, 'wb').write(bytes(d))",
        'truncated': "d = open(s, 'rb').read(); open(p, 'wb').write(d[:len(d) - 1000])",
        'foreign': "open(p, 'wb').write(b'<html>not a snapshot</html>' * 100)",
        'empty': "open(p, 'wb').close()",
    }[how]
    done = emergency.host.run("python3 -c \"s, p = '/var/lib/etcd-emergency/snapshot.db', '%s'; %s\"" % (path, code))
    assert done.rc == 0, done.stderr
    return path


@pytest.mark.parametrize('how, reason', [
    ('flipped', 'hash mismatch'),
    ('truncated', 'no sha256 integrity trailer'),
    ('foreign', 'not an etcd snapshot'),
    ('empty', 'is empty'),
])
def test_a_bad_snapshot_never_replaces_good_data(emergency, served_before, how, reason):
    path = damaged_snapshot(emergency, how)
    done = emergency.host.run('%s --from-file %s' % (SCRIPT, path))
    assert done.rc == 1
    after = served_before()
    assert 'failed verification, nothing was changed' in after['last_error']
    assert reason in after['last_error'], after['last_error']
    emergency.host.run('rm -f %s' % path)


def throwaway_snapshot(emergency, key):
    """A snapshot of a throw-away etcd started on the emergency node (its defaults: member `default` at
    http://localhost:2380) holding ``key`` under /apisix; -> its path there."""
    path = '/var/tmp/throwaway.db'
    script = (
        'set -e; export ETCDCTL_API=3; d=$(mktemp -d); u=http://127.0.0.1:23790; '
        'etcd --data-dir $d/data --listen-client-urls $u --advertise-client-urls $u '
        '--listen-peer-urls http://127.0.0.1:23800 >$d/log 2>&1 & pid=$!; '
        'for i in $(seq 100); do etcdctl --endpoints=$u endpoint health >/dev/null 2>&1 && break; sleep 0.1; done; '
        'etcdctl --endpoints=$u put %s \'{"id":"throwaway"}\' && etcdctl --endpoints=$u snapshot save %s; '
        'kill $pid; wait $pid || true; rm -rf $d' % (key, path))
    done = emergency.host.run('sh -c %s' % shlex.quote(script))
    assert done.rc == 0, done.stdout + done.stderr
    return path


def test_a_snapshot_of_another_cluster_never_replaces_good_data(emergency, served_before):
    key = '/apisix/routes/throwaway-%s' % uuid.uuid4()
    path = throwaway_snapshot(emergency, key)
    kept = emergency.host.file('/var/lib/etcd-emergency/snapshot.db').sha256sum
    try:
        done = emergency.host.run('%s --from-file %s' % (SCRIPT, path))
    finally:
        emergency.host.run('rm -f %s' % path)
    assert done.rc == 1
    after = served_before()
    assert 'comes from another cluster: its members are default (http://localhost:2380)' in after['last_error']
    assert 'Nothing was changed' in after['last_error'], after['last_error']
    assert emergency_get(emergency, key.encode()) is None
    assert emergency.host.file('/var/lib/etcd-emergency/snapshot.db').sha256sum == kept


def test_while_failover_is_active_the_refresh_leaves_the_data_alone(members, emergency, served_before):
    host = emergency.host
    key = ('/apisix/routes/during-failover-%s' % uuid.uuid4()).encode()
    cluster_put(members, key, b'{"id":"during-failover"}')
    host.run("echo '{\"switched_at\": \"2026-01-01T00:00:00Z\"}' > %s" % FAILOVER)
    try:
        done = refresh(emergency)
        assert done.rc == 0
        journal = host.run('journalctl -u etcd-emergency-refresh --no-pager -n 5').stdout
        assert 'failover active, not refreshing' in journal
        served_before()
        assert emergency_get(emergency, key) is None
    finally:
        host.run('rm -f %s' % FAILOVER)
    # Once the file is gone, the next refresh catches up.
    assert refresh(emergency).rc == 0
    assert emergency_get(emergency, key) == b'{"id":"during-failover"}'
    assert state(emergency)['last_error'] is None


# --- the etcd front on gw01 ----------------------------------------------------------------------------------

def test_the_front_serves_the_cluster(gateway, front_url, members):
    assert gateway.file(ACTIVE).content_string.strip() == 'cluster'
    assert front_cluster_id(front_url) == int(endpoint_status(members[0])['header']['cluster_id'])
    gateway_call(front_url, '/v3/kv/put', {'key': b64('/apisix/front/write'), 'value': b64('through-the-front')})
    value, _meta = members[1].client().get('/apisix/front/write')
    assert value == b'through-the-front'


def version_through_the_front(client, gateway):
    """From the lab host named ``client``: GET /version through the front, with the lab's client certificate when
    etcd speaks TLS -> (curl's exit code, the answer)."""
    address = gateway.run('hostname -I').stdout.split()[0]
    tls = ''
    if TLS:
        for name, path in lab_client_tls().items():
            subprocess.run(['docker', 'cp', path, '%s:/var/tmp/lab-client-%s' % (container_name(client), name)],
                           check=True)
        # Not /tmp, where the container's systemd mounts a tmpfs over what docker cp writes. -k: the front shows a
        # member's certificate, which names the member and the front's name, not the gateway's address.
        tls = '-k --cacert /var/tmp/lab-client-ca --cert /var/tmp/lab-client-cert --key /var/tmp/lab-client-key '
    done = lab_host(client).run('curl -sS -m 5 %s%s/version' % (tls, client_url(address)))
    return done.rc, done.stdout + done.stderr


def test_the_front_admits_the_stack_and_no_one_else(gateway):
    """The front's allow-list: an APISIX node gets etcd's answer; etcd04 (a spare, in no group the front admits by
    default) gets its connection closed by nginx before it reaches etcd, and the front logs it denied (403)."""
    rc, answer = version_through_the_front('apisix01', gateway)
    assert rc == 0 and '"etcdcluster"' in answer, answer
    rc, answer = version_through_the_front('etcd04', gateway)
    # curl: 35 the TLS handshake failed (closed before it began), 52 the server closed the connection with no
    # answer, 56 it was reset.
    assert rc in (35, 52, 56), (rc, answer)
    assert 'etcdcluster' not in answer
    spare_address = lab_host('etcd04').run('hostname -I').stdout.split()[0]
    denied = gateway.run('grep -c "^%s .* 403 " /var/log/nginx/etcd-front.log' % re.escape(spare_address)).stdout
    assert int(denied or 0) >= 1, gateway.run('tail -5 /var/log/nginx/etcd-front.log').stdout


def test_the_front_switches_to_the_emergency_node_and_back(ansible_runner, gateway, front_url, members, emergency):
    emergency_id = int(endpoint_status(emergency)['header']['cluster_id'])
    cluster_id = int(endpoint_status(members[0])['header']['cluster_id'])
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'nginx_upstream_etcd_active=emergency')
    assert rc == 0, out
    assert 'switched=True' in out
    try:
        assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
        assert wait_for(lambda: front_cluster_id(front_url) == emergency_id, timeout=20)
        gateway_call(front_url, '/v3/kv/put', {'key': b64('/apisix/front/emergency'), 'value': b64('on-emergency')})
        assert emergency_get(emergency, b'/apisix/front/emergency') == b'on-emergency'

        # The role's main entry point (site.yml) keeps the persisted side: no switch back behind the operator.
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'front_entry_point=main')
        assert rc == 0, out
        assert 'switched=False' in out
        assert front_cluster_id(front_url) == emergency_id
    finally:
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'nginx_upstream_etcd_active=cluster')
    assert rc == 0, out
    assert 'switched=True' in out
    assert gateway.file(ACTIVE).content_string.strip() == 'cluster'
    assert wait_for(lambda: front_cluster_id(front_url) == cluster_id, timeout=20)


def test_a_reload_left_undone_is_done_by_the_next_run(ansible_runner, gateway, front_url, members, emergency):
    """A switch that dies after writing nginx.conf and the side but before nginx reloaded (here: the reload fails)
    leaves the new side recorded; the next run of the main entry point (site.yml) keeps it and reloads."""
    emergency_id = int(endpoint_status(emergency)['header']['cluster_id'])
    cluster_id = int(endpoint_status(members[0])['header']['cluster_id'])
    drop_in = '/etc/systemd/system/nginx.service.d/reload-fails.conf'
    gateway.run("mkdir -p %s && printf '[Service]\\nExecReload=\\nExecReload=/bin/false\\n' > %s && systemctl daemon-reload"
                % (os.path.dirname(drop_in), drop_in))
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'),
                               'nginx_upstream_etcd_active=emergency')
        assert rc != 0 and 'systemctl reload nginx failed' in out, out[-3000:]
        assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
        assert front_cluster_id(front_url) == cluster_id
        gateway.run('rm -f %s && systemctl daemon-reload' % drop_in)

        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'front_entry_point=main')
        assert rc == 0, out
        # The task's result, after whatever -vvv prints between its header and the result, before the next task.
        assert re.search(r'Reload nginx gracefully.*\n(?:(?!TASK \[).*\n)*?(changed|ok): \[gw01\]', out), out[-3000:]
        assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
        assert wait_for(lambda: front_cluster_id(front_url) == emergency_id, timeout=20)
    finally:
        gateway.run('rm -f %s && systemctl daemon-reload' % drop_in)
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'nginx_upstream_etcd_active=cluster')
    assert rc == 0, out
    assert wait_for(lambda: front_cluster_id(front_url) == cluster_id, timeout=20)


def test_a_broken_nginx_configuration_is_refused_and_the_front_keeps_working(ansible_runner, gateway, front_url,
                                                                             members):
    conf_before = gateway.file(NGINX_CONF).sha256sum
    # Past the role's checks, refused by `nginx -t` only.
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'),
                           'nginx_upstream_etcd_active=emergency', 'nginx_upstream_etcd_proxy_timeout=banana')
    assert rc != 0
    assert 'failed to validate' in out or 'nginx: configuration file' in out, out[-3000:]
    assert gateway.file(NGINX_CONF).sha256sum == conf_before
    assert gateway.file(ACTIVE).content_string.strip() == 'cluster'
    assert front_cluster_id(front_url) == int(endpoint_status(members[0])['header']['cluster_id'])


def test_the_switch_hook_gets_the_side(ansible_runner, gateway):
    hook = "sh -c 'echo \"$0\" >> /var/tmp/hook.log'"
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'),
                               'nginx_upstream_etcd_active=cluster', json.dumps({'nginx_upstream_etcd_switch_command': hook}))
        assert rc == 0, out
        assert gateway.file('/var/tmp/hook.log').content_string.split() == ['cluster']
    finally:
        gateway.run('rm -f /var/tmp/hook.log')


# --- the roles' refusals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('setting, message', [
    ('etcd_emergency_refresh_interval=30s', 'must be a systemd time span of at least 1min: systemd reads it as 30'),
    ('etcd_emergency_refresh_interval=banana', "Failed to parse time span 'banana'"),
    ('etcd_emergency_cluster_token=etcd-cluster', "differ from the cluster's (etcd-cluster)"),
    ('{"etcd_emergency_source_endpoints": ["10.0.0.1:2379"]}', 'must be client URLs (http(s)://host:port), not 10.0.0.1:2379'),
])
def test_bad_emergency_settings_are_refused_and_change_nothing(ansible_runner, emergency, setting, message):
    files = ['/etc/etcd/etcd.conf', SCRIPT, '/etc/systemd/system/etcd-emergency-refresh.timer']
    before = [emergency.host.file(f).sha256sum for f in files]
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'emergency.yml'), setting)
    assert rc != 0
    flat = re.sub(r'\s+', ' ', out)
    assert 'Nothing was changed.' in flat, out[-3000:]
    assert message in flat, out[-3000:]
    assert [emergency.host.file(f).sha256sum for f in files] == before


@pytest.mark.parametrize('setting, message', [
    ('{"nginx_upstream_etcd_allow_extra": ["10.0.0.5/24", "admin.example"]}', 'not 10.0.0.5/24, admin.example'),
    ('{"nginx_upstream_etcd_allow": ["10.0.0.300"]}', 'not 10.0.0.300'),
    ('nginx_upstream_etcd_listen=99999', "nginx_upstream_etcd_listen must be a port or ADDRESS:PORT"),
    ('nginx_upstream_etcd_listen=gw01:2379', "nginx_upstream_etcd_listen must be a port or ADDRESS:PORT"),
])
def test_a_bad_front_listen_or_allow_list_is_refused(ansible_runner, gateway, setting, message):
    before = gateway.file(NGINX_CONF).sha256sum
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'),
                           'front_entry_point=main', setting)
    assert rc != 0
    flat = re.sub(r'\s+', ' ', out)
    assert message in flat and 'Nothing was changed.' in flat, out[-3000:]
    assert gateway.file(NGINX_CONF).sha256sum == before


def test_a_bad_front_side_is_refused(ansible_runner, gateway):
    before = gateway.file(NGINX_CONF).sha256sum
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(PLAYBOOKS, 'front.yml'), 'nginx_upstream_etcd_active=somewhere')
    assert rc != 0
    assert 'nginx_upstream_etcd_active' in out
    assert gateway.file(NGINX_CONF).sha256sum == before
