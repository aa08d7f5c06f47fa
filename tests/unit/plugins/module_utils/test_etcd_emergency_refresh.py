# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/etcd_emergency/files/etcd_emergency_refresh.py against a fake host; killed at each of its steps, the next
run recovers by itself."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import json
import os
import pwd
import shutil
import stat

import pytest

from snapshot_fakes import (FakeHost, Killed, Killer, KillableOps, REPO, copy_fixture, load_program,
                            make_bin_dir)
from textfile_format import parse

refresh = load_program('roles/etcd_emergency/files/etcd_emergency_refresh.py', 'etcd_emergency_refresh')


class Node(object):
    """An emergency node in tmp_path: config, data dir, state dir, the fake host."""

    def __init__(self, tmp_path):
        self.root = str(tmp_path)
        self.state_dir = os.path.join(self.root, 'state')
        self.parent = os.path.join(self.root, 'etcd')
        self.data_dir = os.path.join(self.parent, 'emergency.etcd')
        os.makedirs(self.parent, 0o700)
        self.host = FakeHost(data_dir=self.data_dir)
        self.config_file = os.path.join(self.root, 'refresh.json')
        config = dict(
            lib_dir=os.path.join(self.root, 'lib'), state_dir=self.state_dir, data_dir=self.data_dir,
            name='emergency', initial_cluster='emergency=http://127.0.0.1:2380', token='t',
            peer_url='http://127.0.0.1:2380', local_url=self.host.local_url,
            endpoints=['http://dead.invalid:2379', 'http://10.0.0.2:2379'], ca_cert='', client_cert='',
            client_key='', user='root', password='s3cret', bin_dir=make_bin_dir(os.path.join(self.root, 'bin')),
            owner=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name, service='etcd',
            probe_timeout=1, save_timeout=60, health_timeout=3,
            # The fake cluster's snapshots are the fixture's: its one member d34 at http://127.0.0.1:32380.
            cluster_members=['d34=http://127.0.0.1:32380', 'etcd02=http://10.0.0.2:2380'])
        with open(self.config_file, 'w') as handle:
            json.dump(config, handle)
        self.now = [0.0]

    def configure(self, **changes):
        with open(self.config_file) as handle:
            config = json.load(handle)
        config.update(changes)
        with open(self.config_file, 'w') as handle:
            json.dump(config, handle)

    def clock(self):
        return self.now[0]

    def sleep(self, seconds):
        self.now[0] += seconds

    def run(self, *args, **kwargs):
        killer = kwargs.pop('killer', None)
        self.host.killer = killer
        ops = KillableOps(killer or Killer())
        try:
            return refresh.main(['--config', self.config_file] + list(args), run=self.host, ops=ops,
                                sleep=self.sleep, clock=self.clock)
        finally:
            self.host.killer = None

    def state(self):
        with open(os.path.join(self.state_dir, 'state.json')) as handle:
            return json.load(handle)

    def disk_revision(self, path=None):
        try:
            with open(os.path.join(path or self.data_dir, 'member', 'snap', 'db')) as handle:
                return int(handle.read().split('=')[1])
        except (IOError, OSError):
            return None

    def leftovers(self):
        """What is there beyond the data dir, its previous generation and the state files."""
        expected = set([os.path.basename(self.data_dir), os.path.basename(self.data_dir) + '.previous'])
        extra = sorted(set(os.listdir(self.parent)) - expected)
        extra += sorted(set(os.listdir(self.state_dir)) - set(['state.json', 'snapshot.db', '.refresh.lock']))
        return extra


@pytest.fixture
def node(tmp_path):
    node = Node(tmp_path)
    assert node.run() == 0  # the first fill, at revision 10
    node.host.cluster_revision = 20
    return node


def test_first_fill_then_refresh_keeps_one_previous_generation(node, capsys):
    assert node.state()['revision'] == 10 and node.host.serving == 10
    assert node.run() == 0
    state = node.state()
    assert state['revision'] == 20 and state['last_error'] is None and state['source_cluster_id'] == 4242
    assert state['source_endpoint'] == 'http://10.0.0.2:2379'
    assert node.host.serving == 20 and node.disk_revision() == 20
    assert node.disk_revision(node.data_dir + '.previous') == 10
    node.host.cluster_revision = 30
    assert node.run() == 0
    assert node.disk_revision(node.data_dir + '.previous') == 20 and node.host.serving == 30
    assert node.leftovers() == []
    assert stat.S_IMODE(os.stat(os.path.join(node.state_dir, 'snapshot.db')).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node.data_dir).st_mode) == 0o700
    # The password goes in the environment, never on a command line; one status probe per endpoint.
    assert all('s3cret' not in ' '.join(c['argv']) for c in node.host.calls)
    saves = [c for c in node.host.calls if 'save' in c['argv']]
    assert saves and all(c['env'].get('ETCDCTL_PASSWORD') == 's3cret' for c in saves)
    assert 'now serving revision 30' in capsys.readouterr().out


def test_the_local_etcd_is_probed_with_the_node_certificate_when_it_serves_tls(node):
    node.configure(local_ca_cert='/pki/ca.crt', local_client_cert='/pki/member.crt', local_client_key='/pki/member.key')
    del node.host.calls[:]
    assert node.run() == 0 and node.host.serving == 20
    local = [c['argv'] for c in node.host.calls
             if 'status' in c['argv'] and '--endpoints=%s' % node.host.local_url in c['argv']]
    assert local and all(set(['--cacert=/pki/ca.crt', '--cert=/pki/member.crt', '--key=/pki/member.key'])
                         <= set(argv) for argv in local)


def test_a_start_failure_puts_the_previous_data_back(node):
    node.host.unhealthy.add(20)
    assert node.run() == 1
    state = node.state()
    assert 'did not start' in state['last_error'] and 'did not serve revision 20' in state['last_error']
    assert state['revision'] == 10 and node.disk_revision() == 10 and node.host.serving == 10
    assert node.leftovers() == []


def test_a_failed_restore_leaves_nothing_and_changes_nothing(node):
    node.host.restore_fails = True
    assert node.run() == 1
    assert 'the served data was not touched' in node.state()['last_error']
    assert node.state()['revision'] == 10 and node.host.serving == 10 and node.disk_revision() == 10
    assert node.leftovers() == []


def test_a_corrupt_snapshot_changes_nothing(node):
    node.configure(endpoints=['http://corrupt:2379'])
    assert node.run() == 1
    assert 'failed verification, nothing was changed' in node.state()['last_error']
    assert node.host.serving == 10 and node.leftovers() == []


def test_from_file_restores_that_file(node, tmp_path):
    path = copy_fixture(str(tmp_path / 'given.db'))
    assert node.run('--from-file', path) == 0
    assert node.state()['revision'] == 7 and node.host.serving == 7
    assert node.state()['source_endpoint'] == 'file://%s' % path
    assert os.path.exists(path) and node.leftovers() == []


THROWAWAY = os.path.join(REPO, 'tests', 'unit', 'fixtures', 'snapshots', 'etcd-3.4.23-default.db')


def kept_snapshot(node):
    with open(os.path.join(node.state_dir, 'snapshot.db'), 'rb') as handle:
        return handle.read()


def test_the_state_records_the_origin(node):
    assert node.run() == 0
    state = node.state()
    assert state['source_cluster_id'] == 4242
    assert state['source_members'] == [dict(id='62cac17f23c0a92b', name='d34', peer_urls=['http://127.0.0.1:32380'])]


def test_a_snapshot_of_another_cluster_from_a_file_changes_nothing(node, tmp_path):
    before, kept = node.state(), kept_snapshot(node)
    path = str(tmp_path / 'throwaway.db')
    shutil.copyfile(THROWAWAY, path)
    node.host.saved[os.path.abspath(path)] = 25
    node.host.calls = []
    assert node.run('--from-file', path) == 1
    state = node.state()
    assert 'refused the snapshot from file://%s' % path in state['last_error']
    assert 'comes from another cluster: its members are default (http://localhost:2380)' in state['last_error']
    assert 'd34 (http://127.0.0.1:32380)' in state['last_error'] and 'Nothing was changed' in state['last_error']
    assert dict((k, state[k]) for k in refresh.SERVED_KEYS) == dict((k, before[k]) for k in refresh.SERVED_KEYS)
    assert node.host.serving == 10 and node.disk_revision() == 10 and kept_snapshot(node) == kept
    assert not [c for c in node.host.calls if 'restore' in c['argv'] or c['argv'][:2] == ['systemctl', 'stop']]
    assert node.leftovers() == [] and os.path.exists(path)
    # An operator who means it:
    assert node.run('--from-file', path, '--allow-foreign-origin') == 0
    assert node.host.serving == 25 and node.state()['source_members'][0]['name'] == 'default'


def test_a_snapshot_of_another_cluster_from_the_sources_changes_nothing(node):
    node.configure(cluster_members=['etcd01=http://10.0.0.1:2380', 'd34=http://10.0.0.4:2380'])
    assert node.run() == 1
    assert 'refused the snapshot from http://10.0.0.2:2379' in node.state()['last_error']
    assert node.host.serving == 10 and node.state()['revision'] == 10 and node.leftovers() == []


def test_without_cluster_members_the_origin_is_not_checked(node, tmp_path, capsys):
    node.configure(cluster_members=[])
    assert node.run('--from-file', copy_fixture(str(tmp_path / 'any.db'))) == 0
    assert 'origin not checked: the config names no cluster_members' in capsys.readouterr().out


def test_begin_failover_keeps_the_served_data_when_the_final_snapshot_is_another_clusters(node, tmp_path, capsys):
    final = str(tmp_path / 'final.db')
    shutil.copyfile(THROWAWAY, final)
    node.host.saved[os.path.abspath(final)] = 25
    assert node.run('--begin-failover', '--from-file', final) == 0
    doc = last_doc(capsys)
    assert doc['refresh'] == 'failed' and 'comes from another cluster' in doc['state']['last_error']
    assert node.host.serving == 10 and marker(node)['revision_at_switch'] == 10


def test_leftovers_of_the_previous_program_are_cleaned(node):
    """What a refresh killed in the swap window of the template version left: a second older generation."""
    os.rename(node.data_dir, node.data_dir + '.previous')
    os.makedirs(os.path.join(node.data_dir + '.previous.old', 'member'))
    node.host.restore_fails = False
    # The live data came back with the kill (it is served); .previous.old blocked every later refresh.
    os.makedirs(os.path.join(node.data_dir, 'member', 'snap'))
    with open(os.path.join(node.data_dir, 'member', 'snap', 'db'), 'w') as handle:
        handle.write('rev=10')
    with open(os.path.join(node.state_dir, '.snapshot.abc.tmp'), 'w') as handle:
        handle.write('68 MB of snapshot')
    assert node.run() == 0
    assert node.state()['revision'] == 20 and node.host.serving == 20
    assert node.leftovers() == []


def filled(tmp_path, generations):
    """A node that went through ``generations`` refreshes (revisions 10, 15, ...), the cluster now at 20."""
    node = Node(tmp_path)
    for n in range(generations):
        node.host.cluster_revision = 10 + 5 * n
        assert node.run() == 0
    node.host.cluster_revision = 20
    return node


def count_steps(generations):
    counter = Killer()
    node = filled(__import__('pathlib').Path(__import__('tempfile').mkdtemp(prefix='refresh-steps-')), generations)
    assert node.run(killer=counter) == 0
    return counter.count


# Killed at each step of a refresh: of a node with one generation (no .previous yet), and with two.
KILL_POINTS = [(generations, at) for generations in (1, 2) for at in range(count_steps(generations))]


@pytest.mark.parametrize('generations,at', KILL_POINTS)
def test_killed_at_any_step_the_next_run_recovers(tmp_path, generations, at):
    node = filled(tmp_path, generations)
    old = node.host.serving
    killer = Killer(at)
    with pytest.raises(Killed):
        node.run(killer=killer)
    # Right after the kill: what runs is one whole generation, and state.json names it when etcd runs.
    if node.host.running:
        assert node.host.serving in (old, 20), killer.killed_in
        assert node.state()['revision'] == node.host.serving, killer.killed_in
    for disk in (node.disk_revision(), node.disk_revision(node.data_dir + '.previous')):
        assert disk in (None, 10, 15, 20), killer.killed_in

    node.host.cluster_revision = 30
    assert node.run() == 0, (killer.killed_in, node.state())
    state = node.state()
    assert state['last_error'] is None
    assert state['revision'] == 30 and node.host.serving == 30 and node.disk_revision() == 30, killer.killed_in
    assert node.leftovers() == [], killer.killed_in
    assert node.disk_revision(node.data_dir + '.previous') in (old, 20), killer.killed_in


@pytest.mark.parametrize('generations,at', KILL_POINTS)
def test_killed_then_the_recovery_alone_tells_the_truth(tmp_path, generations, at):
    """The next run recovers even when its own refresh fails (no source answers): state.json names what is served."""
    node = filled(tmp_path, generations)
    with pytest.raises(Killed):
        node.run(killer=Killer(at))
    node.configure(endpoints=['http://dead.invalid:2379'])
    assert node.run() == 1
    state = node.state()
    assert 'no source endpoint gave a snapshot: http://dead.invalid:2379: ' in state['last_error']
    assert node.host.running and state['revision'] == node.host.serving == node.disk_revision()
    assert node.leftovers() == []


# --- --begin-failover (the role's failover_begin) ---------------------------------------------------------------

def last_doc(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def marker(node):
    with open(os.path.join(node.state_dir, 'failover.json')) as handle:
        return json.load(handle)


def test_begin_failover_restores_a_newer_final_snapshot_then_marks(node, tmp_path, capsys):
    final = copy_fixture(str(tmp_path / 'final.db'))
    node.host.saved[os.path.abspath(final)] = 25
    assert node.run('--begin-failover', '--lock-timeout', '5', '--from-file', final) == 0
    doc = last_doc(capsys)
    assert doc['refresh'] == 'done' and doc['already_active'] is False
    assert node.host.serving == 25 and node.state()['revision'] == 25
    # revision_at_switch is the node's own revision once the final snapshot is served; the marker is on disk.
    assert doc['marker']['revision_at_switch'] == 25 and doc['marker']['cluster_revision_at_switch'] == 25
    assert marker(node) == doc['marker'] and doc['state']['revision'] == 25
    assert stat.S_IMODE(os.stat(os.path.join(node.state_dir, 'failover.json')).st_mode) == 0o644
    # While it exists, a refresh changes nothing.
    node.host.cluster_revision = 40
    assert node.run() == 0 and node.host.serving == 25


def test_begin_failover_keeps_the_served_data_when_the_final_snapshot_is_not_newer(node, tmp_path, capsys):
    final = copy_fixture(str(tmp_path / 'final.db'))  # revision 7; the node serves 10
    assert node.run('--begin-failover', '--from-file', final) == 0
    doc = last_doc(capsys)
    assert doc['refresh'] == 'none' and node.host.serving == 10
    assert marker(node)['revision_at_switch'] == 10 and marker(node)['cluster_revision_at_switch'] == 10


def test_begin_failover_goes_on_when_the_final_restore_fails(node, tmp_path, capsys):
    final = copy_fixture(str(tmp_path / 'final.db'))
    node.host.saved[os.path.abspath(final)] = 25
    node.host.restore_fails = True
    assert node.run('--begin-failover', '--from-file', final) == 0
    doc = last_doc(capsys)
    assert doc['refresh'] == 'failed' and 'the served data was not touched' in doc['state']['last_error']
    assert node.host.serving == 10 and marker(node)['revision_at_switch'] == 10
    assert node.leftovers() == ['failover.json']


def test_begin_failover_never_overwrites_a_marker(node, tmp_path, capsys):
    assert node.run('--begin-failover') == 0
    first = marker(node)
    final = copy_fixture(str(tmp_path / 'final.db'))
    node.host.saved[os.path.abspath(final)] = 25
    capsys.readouterr()
    # Already failed over: the node holds the outage's writes; no refresh, the marker as it was.
    assert node.run('--begin-failover', '--from-file', final) == 0
    doc = last_doc(capsys)
    assert doc['already_active'] is True and doc['refresh'] == 'none' and doc['marker'] == first
    assert marker(node) == first and node.host.serving == 10


def test_begin_failover_cleans_what_a_killed_one_left(node, capsys):
    # Killed while it wrote the marker's temporary file, then before it linked it in place.
    for name in ('.failover.json.new.abc.tmp', 'failover.json.new'):
        with open(os.path.join(node.state_dir, name), 'w') as handle:
            handle.write('{"switched_epoch": 1}')
    assert node.run('--begin-failover') == 0
    assert marker(node)['revision_at_switch'] == 10
    assert node.leftovers() == ['failover.json']


def test_begin_failover_refuses_a_node_that_does_not_serve(node, capsys):
    node.host.running = False
    assert node.run('--begin-failover') == 1
    assert 'failover.json was not written' in capsys.readouterr().out
    assert not os.path.exists(os.path.join(node.state_dir, 'failover.json'))
    assert node.leftovers() == []


def test_begin_failover_waits_for_the_lock_a_bounded_time(node, capsys):
    import fcntl
    with open(os.path.join(node.state_dir, '.refresh.lock'), 'w') as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert node.run('--begin-failover', '--lock-timeout', '3') == 1
    assert 'failover.json was not written' in capsys.readouterr().out
    assert node.now[0] >= 3
    assert not os.path.exists(os.path.join(node.state_dir, 'failover.json'))


def test_a_refresh_that_gets_the_lock_after_the_failover_began_changes_nothing(node, monkeypatch, capsys):
    # The timer started a refresh before failover_begin paused it; it reached the lock only once --begin-failover
    # had written the marker (failover_begin does not wait for the service: the lock orders the two).
    take_lock = refresh.take_lock

    def failover_begins_meanwhile(lock, timeout, sleep, clock):
        monkeypatch.setattr(refresh, 'take_lock', take_lock)
        assert node.run('--begin-failover') == 0
        return take_lock(lock, timeout, sleep, clock)
    monkeypatch.setattr(refresh, 'take_lock', failover_begins_meanwhile)
    assert node.run() == 0
    assert 'failover active, not refreshing' in capsys.readouterr().out
    assert node.host.serving == 10 and marker(node)['revision_at_switch'] == 10 and node.state()['revision'] == 10


# --- the gauges for node_exporter's textfile collector ---------------------------------------------------

def refresh_gauges(metrics):
    with open(os.path.join(metrics, 'gatewayops-emergency-refresh.prom')) as handle:
        return parse(handle.read())


def test_each_refresh_writes_its_gauges_from_the_state(node, tmp_path):
    metrics = str(tmp_path / 'node-exporter')
    os.mkdir(metrics)
    node.configure(metrics_textfile_dir=metrics, refresh_period_seconds=86400)
    umask = os.umask(0o077)  # the program's own (__main__): the gauges are 0644 all the same
    try:
        assert node.run() == 0
    finally:
        os.umask(umask)
    values = refresh_gauges(metrics)
    taken = node.state()['snapshot_taken_epoch']
    assert taken and values[('gatewayops_emergency_data_timestamp_seconds', ())] == pytest.approx(taken)
    assert values[('gatewayops_emergency_last_refresh_success', ())] == 1
    assert values[('gatewayops_emergency_refresh_period_seconds', ())] == 86400
    assert os.listdir(metrics) == ['gatewayops-emergency-refresh.prom']
    assert stat.S_IMODE(os.stat(os.path.join(metrics, 'gatewayops-emergency-refresh.prom')).st_mode) == 0o644
    # A failed refresh: the data served (and its age) stay, the failure shows.
    node.configure(endpoints=['http://corrupt:2379'])
    assert node.run() == 1
    values = refresh_gauges(metrics)
    assert values[('gatewayops_emergency_data_timestamp_seconds', ())] == pytest.approx(taken)
    assert values[('gatewayops_emergency_last_refresh_success', ())] == 0


def test_a_node_without_data_says_so(tmp_path):
    node = Node(tmp_path)
    metrics = str(tmp_path / 'node-exporter')
    os.mkdir(metrics)
    node.configure(metrics_textfile_dir=metrics, refresh_period_seconds=60, endpoints=['http://dead.invalid:2379'])
    assert node.run() == 1
    values = refresh_gauges(metrics)
    assert values[('gatewayops_emergency_data_timestamp_seconds', ())] == 0
    assert values[('gatewayops_emergency_last_refresh_success', ())] == 0


def test_no_textfile_dir_no_gauges(node, tmp_path):
    node.configure(metrics_textfile_dir='')
    assert node.run() == 0
    assert not [name for name in os.listdir(str(tmp_path)) if name.endswith('.prom')]
