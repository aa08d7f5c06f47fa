"""playbooks/failover.yml and failback.yml: refusals that change nothing, an outage with the writer going through
the front, and a conflicting key that stops the failback.

Order matters (pytest runs a file top to bottom): the refusals on the healthy stack first; then the `outage`
fixture (writer through the front on gw01, one forced refresh of the emergency node, etcd02 and etcd03 killed,
failover.yml) and the tests of the failed-over state; then `failed_back` (the members back, failback.yml) and the
tests of the result; a forced failover whose controller is killed right after the switch, then site.yml and a
rolling update, which must leave the front on the emergency node; last, a forced failover with one key written on
both sides, which failback.yml must refuse.
"""

import base64
import json
import os
import signal
import time

import pytest

from conftest import (LabWriter, Member, client_url, lab_client_tls, lab_connection, lab_host, read_writer_log,
                      run_playbook, start_playbook, wait_for)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
PREFIX = '/gatewayops-writer/'
STATE = '/var/lib/etcd-emergency/state.json'
MARKER = '/var/lib/etcd-emergency/failover.json'
ACTIVE = '/etc/nginx/gatewayops/etcd-active'
KILLED = ('etcd02', 'etcd03')


def b64(text):
    return base64.b64encode(text.encode()).decode()


class Front(object):
    """The etcd front on gw01, spoken to like a client does: the v3 JSON gateway through nginx, with the lab's TLS
    and login."""

    def __init__(self, url):
        self.url = url
        self.connection = lab_connection()

    def call(self, path, body):
        return self.connection.request(self.url, path, body, timeout=5)

    def put(self, key, value):
        return self.call('/v3/kv/put', {'key': b64(key), 'value': b64(value)})

    def get_prefix(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        answer = self.call('/v3/kv/range', {'key': b64(prefix), 'range_end': b64(end)})
        return {base64.b64decode(kv['key']).decode(): base64.b64decode(kv.get('value', '')).decode()
                for kv in answer.get('kvs', [])}

    def cluster_id(self):
        return int(self.call('/v3/maintenance/status', {})['header']['cluster_id'])


@pytest.fixture(scope='module')
def gateway():
    return lab_host('gw01')


@pytest.fixture(scope='module')
def emergency():
    return lab_host('etcd-single')


@pytest.fixture(scope='module')
def front(gateway):
    address = gateway.run("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1").stdout.strip()
    return Front(client_url(address))


def cluster_id(members):
    said = []
    for member in members:
        result = member.etcdctl('endpoint', 'status', '-w', 'json')
        if result.rc == 0:
            return json.loads(result.stdout)[0]['Status']['header']['cluster_id']
        said.append('%s: %s %s' % (member.name, result.stdout, result.stderr))
    raise AssertionError('no member answered: %s' % '; '.join(said))


def member_keys(member, prefix):
    result = member.etcdctl('get', '--prefix', prefix, '--consistency=s', '-w', 'json')
    assert result.rc == 0, '%s: %s' % (member.name, result.stderr)
    return {base64.b64decode(kv['key']).decode(): base64.b64decode(kv['value']).decode()
            for kv in json.loads(result.stdout).get('kvs', [])}


def json_file(host, path):
    f = host.file(path)
    return json.loads(f.content_string) if f.exists else None


def lab_view(gateway, emergency, front):
    """What a failover or failback changes: the front's side, the marker, the emergency node's state, who answers."""
    return dict(active=gateway.file(ACTIVE).content_string.strip(), marker=json_file(emergency, MARKER),
                state=json_file(emergency, STATE), answering=front.cluster_id())


def all_healthy(members):
    return all(m.etcdctl('endpoint', 'health').rc == 0 for m in members)


def acked_with_times(path):
    """Acknowledged puts of the writer's log as (at, key, value)."""
    with open(path) as log:
        entries = [json.loads(line) for line in log]
    return [(e['at'], e['key'], e['value']) for e in entries if e.get('acked')]


# -- refusals on the healthy stack ----------------------------------------------------------------------------

def test_stack_starts_on_the_cluster(gateway, emergency, front, members):
    view = lab_view(gateway, emergency, front)
    assert view['active'] == 'cluster' and view['marker'] is None
    assert view['answering'] == cluster_id(members)
    # Filled by site.yml's first refresh (a cluster without keys has snapshot revision 0).
    assert view['state'] and view['state']['last_error'] is None and view['state']['refreshed_at'], view


def test_failover_refused_while_the_cluster_has_quorum(ansible_runner, gateway, emergency, front):
    before = lab_view(gateway, emergency, front)
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover')
    assert rc != 0, out
    assert 'Refusing to fail over: the cluster still has quorum' in out and 'Nothing was changed.' in out, out
    assert lab_view(gateway, emergency, front) == before


def cut(pairs, members, emergency, undo=False):
    """A network cut between lab hosts (blackhole routes on both sides: packets vanish, as in a real partition)."""
    address = dict((m.name, m.address) for m in members)
    address['etcd-single'] = emergency.run("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 "
                                           "| head -1").stdout.strip()
    hosts = dict((m.name, m.host) for m in members)
    hosts['etcd-single'] = emergency
    for one, other in pairs:
        for here, there in ((one, other), (other, one)):
            done = hosts[here].run('ip route %s blackhole %s/32' % ('del' if undo else 'add', address[there]))
            assert undo or done.rc == 0, done.stderr


@pytest.fixture
def first_member_and_emergency_cut_off(members, emergency):
    """etcd01 and the emergency node cut off from etcd02 and etcd03, which keep a quorum between them."""
    pairs = [(a, b) for a in ('etcd01', 'etcd-single') for b in ('etcd02', 'etcd03')]
    cut(pairs, members, emergency)
    try:
        etcd01 = [m for m in members if m.name == 'etcd01'][0]
        # etcd01 sees no quorum once it has noticed (its election timeout): no leader, health fails.
        assert wait_for(lambda: etcd01.etcdctl('endpoint', 'health').rc != 0, timeout=30)
        yield
    finally:
        cut(pairs, members, emergency, undo=True)
        assert wait_for(lambda: all_healthy(members), timeout=60)


def test_failover_and_restore_refused_while_members_cut_off_from_the_emergency_node_see_a_quorum(
        ansible_runner, gateway, emergency, front, first_member_and_emergency_cut_off):
    # From the emergency node only etcd01 answers, without a leader: one viewpoint alone would switch the clients
    # off a cluster that runs.
    before = lab_view(gateway, emergency, front)
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover')
    assert rc != 0, out[-3000:]
    assert ('Refusing to fail over: the cluster still has quorum, as seen from etcd02, etcd03, the etcd front on '
            'gw01; its clients should stay on it.') in out, out[-3000:]
    assert 'etcd-single (the emergency node): no quorum' in out and 'etcd01: no quorum' in out, out[-3000:]
    assert 'Nothing was changed.' in out
    assert lab_view(gateway, emergency, front) == before
    # The restore asks every member too: etcd01, the first, sees no quorum; the others do.
    rc, out = run_playbook(ansible_runner.inventory_file, 'restore_cluster')
    assert rc != 0, out[-3000:]
    assert 'Refusing to restore: the old cluster still has a quorum' in out and 'as seen from etcd02, etcd03.' in out, \
        out[-3000:]
    assert lab_view(gateway, emergency, front) == before


def test_a_failover_that_cannot_begin_re_arms_the_refresh_timer(ansible_runner, gateway, emergency, front):
    # A refresh holding the node's lock longer than the failover waits: no marker, so the timer must not stay paused.
    before = lab_view(gateway, emergency, front)
    holder = emergency.run('systemd-run --unit gatewayops-test-lock flock /var/lib/etcd-emergency/.refresh.lock '
                           'sleep 120')
    assert holder.rc == 0, holder.stderr
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true',
                               'etcd_emergency_refresh_timeout=3')
    finally:
        emergency.run('systemctl stop gatewayops-test-lock')
    assert rc != 0, out[-3000:]
    assert 'did not take the failover' in out and 'the refresh timer was re-armed' in out, out[-3000:]
    assert emergency.run('systemctl is-active etcd-emergency-refresh.timer').stdout.strip() == 'active'
    assert lab_view(gateway, emergency, front) == before


def test_failback_refused_without_a_failover(ansible_runner, gateway, emergency, front):
    before = lab_view(gateway, emergency, front)
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc != 0, out
    assert 'Refusing to fail back: there is no /var/lib/etcd-emergency/failover.json' in out, out
    assert lab_view(gateway, emergency, front) == before


# -- the outage ------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def outage(ansible_runner, members, emergency, front, tmp_path_factory):
    """Writer through the front, one refresh, two members killed, failover.yml. The writer keeps running."""
    work = tmp_path_factory.mktemp('failover')
    log = str(work / 'writer.log')
    with LabWriter([front.url], log, '--prefix', PREFIX, '--retry-seconds', '20') as writer:
        assert wait_for(lambda: os.path.exists(log) and len(acked_with_times(log)) > 20, timeout=30)
        refresh = emergency.run('systemctl start etcd-emergency-refresh.service')
        assert refresh.rc == 0, refresh.stderr
        refreshed = json_file(emergency, STATE)
        time.sleep(3)  # keys the cluster acknowledges after the refresh: the final snapshot must bring them
        cluster = cluster_id(members)  # asked before: with authentication on, the lone etcd01 cannot log anyone in
        by_name = dict((m.name, m) for m in members)
        for name in KILLED:
            result = by_name[name].host.run('systemctl kill -s SIGKILL etcd; systemctl stop etcd')
            assert result.rc == 0, result.stderr
        killed_at = time.time()
        time.sleep(2)
        rc, out = run_playbook(ansible_runner.inventory_file, 'failover')
        yield dict(rc=rc, out=out, log=log, writer=writer, refreshed=refreshed, killed_at=killed_at,
                   cluster=cluster, state=json_file(emergency, STATE), marker=json_file(emergency, MARKER))


def test_failover_switched_the_front(outage, gateway, emergency, front):
    assert outage['rc'] == 0, outage['out']
    assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
    marker = outage['marker']
    assert marker and set(marker) >= {'switched_at', 'switched_epoch', 'revision_at_switch',
                                      'cluster_revision_at_switch'}, marker
    assert marker['cluster_revision_at_switch'] == outage['state']['revision']
    assert front.cluster_id() == cluster_id([Member('etcd-single', emergency, lab_client_tls())]) != outage['cluster']
    assert 'failed over: the front' in outage['out'] and 'RTO: first write through the front' in outage['out']


def test_final_snapshot_is_newer_than_the_last_refresh(outage):
    assert outage['state']['last_error'] is None, outage['state']
    # The writer had puts acknowledged for 3 s after the refresh: the final snapshot must carry them. With
    # authentication on, the lone etcd01 (no leader) cannot log anyone in: the snapshot is taken as the certificate
    # of the root user, which etcd takes without a login.
    assert outage['state']['revision'] > outage['refreshed']['revision'], (outage['refreshed'], outage['state'])
    assert 'the emergency node was refreshed from the final snapshot' in outage['out'], outage['out']


def test_keys_acknowledged_before_the_last_refresh_read_through_the_front(outage, front):
    cutoff = outage['state']['snapshot_taken_epoch']
    before = [(key, value) for at, key, value in acked_with_times(outage['log']) if at < cutoff]
    assert before, 'the writer acknowledged nothing before the refresh at %s' % cutoff
    stored = front.get_prefix(PREFIX)
    missing = [key for key, value in before if stored.get(key) != value]
    assert not missing, '%d of %d keys acknowledged before the refresh are missing through the front: %s' % (
        len(missing), len(before), missing[:5])


def test_writes_through_the_front_succeed(outage, front):
    switched = outage['marker']['switched_epoch']
    assert wait_for(lambda: [a for a in acked_with_times(outage['log']) if a[0] > switched + 1], timeout=60), \
        'the writer got no put acknowledged through the front after the switch'
    front.put('/gatewayops-test/after-failover', 'written')
    assert front.get_prefix('/gatewayops-test/after-failover') == {'/gatewayops-test/after-failover': 'written'}


def test_failback_refused_while_the_cluster_lacks_quorum(outage, ansible_runner, gateway, emergency, front):
    before = lab_view(gateway, emergency, front)
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc != 0, out
    assert 'Refusing to fail back: the cluster is not healthy' in out and 'Nothing was changed' in out, out
    assert lab_view(gateway, emergency, front) == before


def test_failover_again_changes_nothing(outage, ansible_runner, gateway, emergency, front):
    before = lab_view(gateway, emergency, front)
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover')
    assert rc == 0, out
    assert lab_view(gateway, emergency, front) == before


# -- the failback ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def failed_back(outage, ansible_runner, members, explain):
    by_name = dict((m.name, m) for m in members)
    for name in KILLED:
        by_name[name].host.run('systemctl start --no-block etcd')
    assert wait_for(lambda: all_healthy(members), timeout=120), explain('the killed members did not come back')
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    time.sleep(2)
    outage['writer'].stop()
    return dict(rc=rc, out=out)


def test_failback_switched_the_front_back(failed_back, gateway, emergency, front, members):
    assert failed_back['rc'] == 0, failed_back['out']
    assert gateway.file(ACTIVE).content_string.strip() == 'cluster'
    assert not emergency.file(MARKER).exists
    assert front.cluster_id() == cluster_id(members)


def test_every_write_acknowledged_during_the_outage_is_on_every_member(outage, failed_back, members, explain):
    assert failed_back['rc'] == 0, failed_back['out']
    acked, _failed, summary = read_writer_log(outage['log'])
    assert summary is not None, 'the writer did not stop'
    during = [key for at, key, _value in acked_with_times(outage['log']) if at > outage['marker']['switched_epoch']]
    assert during, 'no write was acknowledged during the outage'
    for member in members:
        stored = member_keys(member, PREFIX)
        missing = sorted(k for k in acked if stored.get(k) != acked[k])
        assert not missing, explain('%s lacks %d acknowledged keys (%d written during the outage), first: %s'
                                    % (member.name, len(missing), len(during), missing[:5]))
        assert member_keys(member, '/gatewayops-test/') == {'/gatewayops-test/after-failover': 'written'}


def test_emergency_node_refreshed_from_the_cluster(outage, failed_back, emergency):
    state = json_file(emergency, STATE)
    assert state['last_error'] is None and state['snapshot_taken_epoch'] > outage['marker']['switched_epoch'], state


# -- a failover killed after the switch ------------------------------------------------------------------------

def kill_after(run, line_start):
    """Read the running playbook's output until a line starts with ``line_start``, then SIGKILL its whole process
    group, as a controller that dies does. -> the output read."""
    seen = []
    for line in run.stdout:
        seen.append(line)
        if line.startswith(line_start):
            break
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    return ''.join(seen)


def test_a_failover_killed_after_the_switch_stays_switched_through_site_and_a_rolling_update(
        failed_back, ansible_runner, gateway, emergency, front, tmp_path):
    assert failed_back['rc'] == 0, failed_back['out']
    emergency_id = cluster_id([Member('etcd-single', emergency, lab_client_tls())])
    run = start_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    out = kill_after(run, 'PLAY [Make APISIX re-read etcd]')
    assert 'PLAY [Make APISIX re-read etcd]' in out, out[-3000:]
    assert gateway.file(ACTIVE).content_string.strip() == 'emergency'

    # The next runs of the same controller take the dead run's lock over; neither may put the front back.
    rc, out = run_playbook(ansible_runner.inventory_file, 'site')
    assert rc == 0, out[-5000:]
    assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
    assert front.cluster_id() == emergency_id
    plugins = tmp_path / 'plugins'  # nothing to ship: each node is still drained, updated and put back
    plugins.mkdir()
    rc, out = run_playbook(ansible_runner.inventory_file, 'rolling_update', 'source=%s' % plugins,
                           'rolling_update_observe_seconds=3', 'rolling_update_check_seconds=2')
    assert rc == 0, out[-5000:]
    assert 'Take the node out of the gateway' in out, out[-3000:]
    assert gateway.file(ACTIVE).content_string.strip() == 'emergency'
    assert front.cluster_id() == emergency_id

    # The failover run again completes it; the next test starts from there (its own forced failover changes
    # nothing) and ends with the failback.
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    assert rc == 0, out[-5000:]
    assert gateway.file(ACTIVE).content_string.strip() == 'emergency'


# -- a key written on both sides -------------------------------------------------------------------------------

def test_failback_refuses_a_conflicting_key(failed_back, ansible_runner, gateway, emergency, front, members):
    assert failed_back['rc'] == 0, failed_back['out']
    # Already failed over by the test above when it passed; a forced failover on a healthy cluster otherwise.
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    assert rc == 0, out
    members[0].etcdctl('put', '/gatewayops-test/both', 'on-the-cluster')
    front.put('/gatewayops-test/both', 'on-the-emergency-node')
    front.put('/gatewayops-test/emergency-only', 'x')
    before = lab_view(gateway, emergency, front)
    cluster_before = member_keys(members[0], '/gatewayops-test/')

    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc != 0, out
    assert 'Refusing to fail back' in out and '/gatewayops-test/both' in out and 'Nothing was written' in out, out
    assert lab_view(gateway, emergency, front) == before
    for member in members:
        assert member_keys(member, '/gatewayops-test/') == cluster_before, member.name

    # settled the way the operator is told to: the emergency node's value wins
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback', 'failback_conflict=keep_source')
    assert rc == 0, out
    assert gateway.file(ACTIVE).content_string.strip() == 'cluster'
    assert member_keys(members[0], '/gatewayops-test/both') == {'/gatewayops-test/both': 'on-the-emergency-node'}
    assert '/gatewayops-test/emergency-only' in member_keys(members[0], '/gatewayops-test/')
