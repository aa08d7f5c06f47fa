"""playbooks/maintenance.yml on a cluster whose keyspace grew and then lost most of its keys, under the lab writer:
the members defragmented one at a time, followers first, the leader last after a handoff, every acknowledged put on
every member, equal hashes; a second run finds nothing to do. The figures go to maintenance-figures.json.
Then the members restarted with a 16 MiB quota and filled until etcd raises NOSPACE: maintenance.yml refuses
without -e nospace=true, and with it brings writes back, every acknowledged value kept.

The fill: BULK_KEYS values of BULK_VALUE bytes put in transactions, then all deleted, then the keyspace compacted by
the test, as etcd's periodic compaction (--auto-compaction-retention) does within its period: that is when the
freed pages show as fragmentation, which the role's rule (etcd_cluster_maintenance_*) reads.
"""

import json
import os
import re
import time

import pytest

from conftest import LabWriter, assert_equal_hashes, flat, read_writer_log, recap_changed, run_playbook, wait_for

PREFIX = '/gatewayops-maintenance-writer/'
BULK = '/gatewayops-maintenance-bulk/'
BULK_KEYS, BULK_VALUE, PER_TXN = 2400, 4096, 100


def statuses(members):
    """{name: etcdctl's endpoint status} of each member, asked on its own client URL."""
    found = {}
    for member in members:
        result = member.etcdctl('endpoint', 'status', '-w', 'json')
        assert result.rc == 0, '%s: %s' % (member.name, result.stderr)
        found[member.name] = json.loads(result.stdout)[0]['Status']
    return found


def leader_name(members):
    status = statuses(members)
    ids = dict((s['header']['member_id'], name) for name, s in status.items())
    leaders = set(s['leader'] for s in status.values())
    assert len(leaders) == 1, status
    return ids[leaders.pop()]


def fill_and_empty(member):
    client = member.client()
    value = 'x' * BULK_VALUE
    for start in range(0, BULK_KEYS, PER_TXN):
        puts = [client.transactions.put('%s%06d' % (BULK, i), value) for i in range(start, start + PER_TXN)]
        client.transaction(compare=[], success=puts, failure=[])
    client.delete_prefix(BULK)
    now = json.loads(member.etcdctl('endpoint', 'status', '-w', 'json').stdout)[0]['Status']['header']['revision']
    result = member.etcdctl('compact', str(now), '--physical')
    assert result.rc == 0, result.stderr


@pytest.fixture(scope='module')
def maintained(ansible_runner, members, tmp_path_factory):
    """The fill, then maintenance.yml under the writer. -> dict(rc, out, leader, before, after, log, seconds)."""
    assert wait_for(lambda: all(m.etcdctl('endpoint', 'health').rc == 0 for m in members), timeout=90)
    fill_and_empty(members[0])
    before = statuses(members)
    leader = leader_name(members)
    work = tmp_path_factory.mktemp('maintenance')
    log = str(work / 'writer.log')
    with LabWriter([m.client_url for m in members], log, '--prefix', PREFIX, '--retry-seconds', '30'):
        time.sleep(2)
        start = time.monotonic()
        rc, out = run_playbook(ansible_runner.inventory_file, 'maintenance')
        seconds = time.monotonic() - start
        time.sleep(2)
    after = statuses(members)
    figures = dict(distro=os.environ.get('LAB_DISTRO', 'bookworm'), seconds=round(seconds, 1), leader=leader,
                   before=dict((n, [s['dbSize'], s['dbSizeInUse']]) for n, s in before.items()),
                   after=dict((n, [s['dbSize'], s['dbSizeInUse']]) for n, s in after.items()),
                   members=re.findall(r'(\w+(?: \(the leader\))?: [0-9.]+ \w+ \([^)]*\) before, [^;]*; '
                                      r'defragmented in [0-9.]+ s)', flat(out)))
    figures['writer'] = read_writer_log(log)[2]
    for path in (os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY'), '/tmp'):
        if path:
            with open(os.path.join(path, 'maintenance-figures-%s.json' % figures['distro']), 'w') as f:
                json.dump(figures, f, indent=1)
    return dict(rc=rc, out=out, leader=leader, before=before, after=after, log=log, summary=figures['writer'])


def report(out, what):
    """A line of the playbook's report ("order: ...")."""
    found = re.search(r"- '?%s: ([^'\n]*)'?\n" % what, out)
    assert found, out[-4000:]
    return found.group(1).strip()


def test_the_maintenance_succeeds(maintained):
    assert maintained['rc'] == 0, maintained['out'][-6000:]


def test_followers_first_the_leader_last_after_a_handoff(maintained, members):
    order = report(maintained['out'], 'order').split(', ')
    assert sorted(order) == sorted(m.name for m in members), maintained['out'][-4000:]
    assert order[-1] == maintained['leader'], order
    leaders = report(maintained['out'], 'leader')
    assert leaders == '%s before, %s after' % (maintained['leader'], order[0]), leaders
    assert leader_name(members) != maintained['leader']


def test_every_database_shrank(maintained):
    for name, before in maintained['before'].items():
        after = maintained['after'][name]
        assert after['dbSize'] < before['dbSize'] / 2, (name, before, after)


def test_every_acknowledged_put_is_on_every_member(maintained, members):
    acked = read_writer_log(maintained['log'])[0]
    assert len(acked) > 20, 'the writer wrote too little: %d' % len(acked)
    assert maintained['summary'] and maintained['summary']['failed'] == 0, maintained['summary']
    for member in members:
        found = dict((meta.key.decode(), value.decode())
                     for value, meta in member.client().get_prefix(PREFIX, serializable=True))
        lost = [k for k, v in acked.items() if found.get(k) != v]
        assert not lost, '%s lacks %d acknowledged keys, e.g. %s' % (member.name, len(lost), sorted(lost)[:5])


def test_hashkv_equal_on_every_member(maintained, members, explain):
    assert_equal_hashes(members, explain)


def test_a_second_run_finds_nothing_to_do(maintained, ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'maintenance')
    assert rc == 0, out[-4000:]
    assert 'nothing to do: every member is within the rule' in out, out[-4000:]
    recap = recap_changed(out)
    assert recap and not any(recap.values()), recap


def test_bad_extra_vars_are_refused_and_change_nothing(maintained, ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'maintenance', 'force=maybe')
    assert rc != 0
    assert "Refusing to run the maintenance" in out and "force='maybe'" in out and 'Nothing was changed.' in out


# --- the NOSPACE recovery ---------------------------------------------------------------------------------------

QUOTA = 16 * 1024 * 1024
SPACE = '/gatewayops-nospace/'


@pytest.fixture(scope='module')
def out_of_space(maintained, ansible_runner, members):
    """The members restarted with a 16 MiB quota (etcd_cluster.yml, one at a time), then the same 8 keys overwritten
    with 256 KiB values (etcd keeps each overwritten value until a compaction) until etcd refuses a put.
    -> dict(acked={key: last acknowledged value}, refused=etcd's answer, refused_put=(key, value)).
    etcd applies the put that crosses the quota and then answers it with NOSPACE (its applier checks the quota
    around the write): that key may hold the refused value afterwards."""
    rc, out = run_playbook(ansible_runner.inventory_file, 'etcd_cluster', 'etcd_cluster_quota_backend_bytes=%d' % QUOTA)
    assert rc == 0, out[-4000:]
    client = members[0].client()
    acked, refused, refused_put = {}, None, None
    for i in range(4 * QUOTA // (256 * 1024)):
        key, value = '%s%d' % (SPACE, i % 8), '%06d' % i + 'y' * (256 * 1024)
        try:
            client.put(key, value)
        except Exception as e:  # noqa: BLE001 - etcd's refusal is what is looked for
            refused, refused_put = str(e), (key, value)
            break
        acked[key] = value
    return dict(acked=acked, refused=refused, refused_put=refused_put)


def test_the_cluster_ran_out_of_space(out_of_space):
    assert out_of_space['refused'] and 'database space exceeded' in out_of_space['refused'], out_of_space['refused']
    assert len(out_of_space['acked']) == 8


def test_without_the_flag_nospace_is_refused_and_nothing_changes(out_of_space, ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'maintenance')
    assert rc != 0
    text = flat(out)
    assert 'Refusing to defragment: the cluster is out of space (NOSPACE raised for ' in text, out[-4000:]
    assert 'recover_nospace=true' in text and 'Nothing was changed.' in text


def test_the_nospace_recovery_brings_writes_back(out_of_space, ansible_runner, members, explain):
    rc, out = run_playbook(ansible_runner.inventory_file, 'maintenance', 'nospace=true',
                           'etcd_cluster_quota_backend_bytes=%d' % QUOTA)
    assert rc == 0, out[-6000:]
    assert re.search(r'NOSPACE disarmed: NOSPACE@etcd0\d', out), out[-4000:]
    members[1].client().put(SPACE + 'after', 'written after the recovery')
    for member in members:
        found = dict((meta.key.decode(), value.decode())
                     for value, meta in member.client().get_prefix(SPACE, serializable=True))
        lost = [k for k, v in out_of_space['acked'].items()
                if found.get(k) != v and (k, found.get(k)) != out_of_space['refused_put']]
        assert not lost, explain('%s lacks the last acknowledged value of %s' % (member.name, lost))
        assert wait_for(lambda: member.client().get(SPACE + 'after')[0] is not None, timeout=10), member.name
    alarms = members[0].etcdctl('alarm', 'list')
    assert alarms.rc == 0 and not alarms.stdout.strip(), alarms.stdout
    assert_equal_hashes(members, explain)


# --- the scheduled maintenance (entry point maintenance_schedule) --------------------------------------------------

SCHEDULE_PLAY = '''
- hosts: etcd
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: gatewayops.apisix_ha.etcd_cluster
        tasks_from: maintenance_schedule
'''
MAINTENANCE_GAUGES = '/var/lib/prometheus/node-exporter/gatewayops-etcd-maintenance.prom'


def with_timer(members):
    return [m for m in members if m.host.file('/etc/systemd/system/etcd-maintenance.timer').exists]


@pytest.fixture(scope='module')
def scheduled(ansible_runner, members, tmp_path_factory):
    """The timer turned on by the entry point, then one run started by hand, as an operator checks it.
    -> dict(rc, out, member (the one with the timer), run (systemctl start), journal, gauges, play)."""
    play = tmp_path_factory.mktemp('schedule') / 'schedule.yml'
    play.write_text(SCHEDULE_PLAY)
    rc, out = run_playbook(ansible_runner.inventory_file, str(play), 'etcd_cluster_maintenance_schedule=true')
    found = dict(rc=rc, out=out, play=str(play), member=None)
    timers = with_timer(members)
    if rc == 0 and len(timers) == 1:
        member = timers[0]
        found.update(member=member, run=member.host.run('systemctl start etcd-maintenance.service'),
                     journal=member.host.run('journalctl -u etcd-maintenance.service --no-pager -o cat').stdout,
                     gauges=member.host.run('cat %s' % MAINTENANCE_GAUGES).stdout)
    return found


def test_scheduled_the_entry_point_puts_the_timer_on_one_member(scheduled, members, etcd_names):
    assert scheduled['rc'] == 0, scheduled['out'][-4000:]
    assert [m.name for m in with_timer(members)] == [scheduled['member'].name]
    host = scheduled['member'].host
    assert host.run('systemctl is-enabled etcd-maintenance.timer').stdout.strip() == 'enabled'
    assert host.run('systemctl is-active etcd-maintenance.timer').stdout.strip() == 'active'
    credentials = host.file('/etc/etcd-maintenance/credentials.json')
    assert credentials.mode == 0o600 and credentials.user == 'root'


def test_scheduled_a_run_reports_in_the_journal_and_the_gauges(scheduled, members):
    run = scheduled['run']
    assert run.rc == 0, run.stderr + scheduled['journal'][-3000:]
    journal = scheduled['journal']
    # After the playbook runs above, the members are within the rule: the run reads and leaves them.
    assert 'nothing to do: every member is within the rule' in journal or 'defragmented ' in journal, journal
    gauges = scheduled['gauges']
    assert re.search(r'^gatewayops_etcd_maintenance_last_run_success 1$', gauges, re.M), gauges
    for member in members:
        assert re.search(r'^gatewayops_etcd_db_size_bytes\{member="%s"\} [1-9][0-9]*$' % member.name, gauges,
                         re.M), gauges
    assert wait_for(lambda: all(m.etcdctl('endpoint', 'health').rc == 0 for m in members), timeout=30)


def test_scheduled_an_alarm_is_a_gauge_at_the_next_run(scheduled, members):
    """NOSPACE raised through etcd's alarm API (what etcd raises at the quota, without filling it): the next run
    refuses, changing nothing, and its gauges name the alarm; disarmed after."""
    member = scheduled['member']
    ids = dict((json.loads(m.etcdctl('endpoint', 'status', '-w', 'json').stdout)[0]['Status']['header']['member_id'],
                m.name) for m in members)
    target = sorted(ids)[0]
    client = members[0].client()
    client.create_alarm(member_id=target)
    try:
        run = member.host.run('systemctl start etcd-maintenance.service')
        gauges = member.host.run('cat %s' % MAINTENANCE_GAUGES).stdout
    finally:
        client.disarm_alarm(member_id=target)
    assert run.rc != 0
    assert re.search(r'^gatewayops_etcd_alarm\{alarm="NOSPACE",member="%s"\} 1$' % ids[target], gauges, re.M), gauges
    assert re.search(r'^gatewayops_etcd_maintenance_last_run_success 0$', gauges, re.M), gauges
    journal = member.host.run('journalctl -u etcd-maintenance.service --no-pager -o cat').stdout
    assert 'Refusing to defragment: the cluster is out of space' in journal, journal[-3000:]
    assert wait_for(lambda: not members[0].etcdctl('alarm', 'list').stdout.strip(), timeout=30)


def test_scheduled_off_removes_the_timer_and_its_gauges(scheduled, ansible_runner, members):
    rc, out = run_playbook(ansible_runner.inventory_file, scheduled['play'], 'etcd_cluster_maintenance_schedule=false')
    assert rc == 0, out[-4000:]
    assert with_timer(members) == []
    host = scheduled['member'].host
    assert host.run('systemctl cat etcd-maintenance.timer').rc != 0
    assert not host.file(MAINTENANCE_GAUGES).exists
    assert not host.file('/etc/etcd-maintenance').exists
