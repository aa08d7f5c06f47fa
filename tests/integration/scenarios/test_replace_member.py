"""playbooks/replace_member.yml: refusals that change nothing, then two replacements.

Order matters (pytest runs a file top to bottom): the refusals first, on the cluster site.yml built; then the
`replaced` fixture raises etcd's CORRUPT alarm for a member that does not lead and replaces it without force (the
alarm makes every member's /health false; etcd refuses writes meanwhile), then, while tests/lab/writer.py keeps
writing, kills and wipes the member that leads and replaces it (the path of a dead member); the tests after it
check what is left.
"""

import json
import os
import re
import time

import pytest

from conftest import (LabWriter, flat, lab_connection, lab_host, read_writer_log, recap_changed, run_playbook,
                      start_playbook, wait_for)

PREFIX = '/gatewayops-writer/'


LOCK = '/var/lib/gatewayops/deployment.lock'
ALARM = '/v3/maintenance/alarm'
# Keys put before the CORRUPT alarm is raised, looked for on every member after its replacement.
MARKERS = '/gatewayops-corrupt-round/'
CONNECTION = lab_connection()


def lock_holder():
    """The operation holding the deployment lock on the gateway, or None."""
    found = lab_host('gw01').run('cat %s' % LOCK)
    return json.loads(found.stdout)['operation'] if found.rc == 0 and found.stdout.strip() else None


def run_replace(inventory, name, *extra, intruder=None):
    """Run the playbook; with INTRUDER (a playbook name), run that one too while the replace holds the deployment
    lock. -> (returncode, output, seconds, the intruder's (returncode, output) or None)."""
    started = time.monotonic()
    replace = start_playbook(inventory, 'replace_member', 'member=%s' % name, *extra)
    second = None
    if intruder:
        if wait_for(lambda: lock_holder() == 'replace_member', timeout=60, interval=0.2):
            second = run_playbook(inventory, intruder, 'deployment_lock_wait_timeout=2')
        else:
            second = (None, 'the replace never held the lock')
    out = replace.communicate()[0]
    return replace.returncode, out, time.monotonic() - started, second


def member_table(members):
    """(id, name, learner) of every member, read by etcdctl on the first member that answers."""
    for member in members:
        listing = member.etcdctl('member', 'list', '-w', 'json')
        if listing.rc == 0:
            found = json.loads(listing.stdout)['members']
            return sorted(('%016x' % m['ID'], m.get('name', ''), bool(m.get('isLearner'))) for m in found)
    raise AssertionError('no member answered member list')


def data_dirs(members):
    """Per member: inode of <data dir>/member (the same directory, not a new one), and the data dirs moved aside."""
    out = {}
    for m in members:
        data_dir = m.env['ETCD_DATA_DIR']
        stat = m.host.run('stat -c %%i %s/member' % data_dir).stdout.strip()
        aside = m.host.run('ls -d %s.replaced-* 2>/dev/null' % data_dir).stdout.split()
        out[m.name] = (stat, tuple(sorted(aside)))
    return out


def member_ids(members):
    return dict((name, int(member_id, 16)) for member_id, name, _learner in member_table(members))


def alarms(members):
    """(member name or ID, alarm) of every alarm raised, through the JSON gateway as root."""
    names = dict((v, k) for k, v in member_ids(members).items())
    answer = CONNECTION.request(members[0].client_url, ALARM, {'action': 'GET', 'memberID': '0', 'alarm': 'NONE'}, 10)
    return sorted((names.get(int(a['memberID']), a['memberID']), a['alarm']) for a in answer.get('alarms') or [])


def corrupt_alarm(members, name, action='ACTIVATE'):
    """etcd's CORRUPT alarm raised (or disarmed) for member NAME, as the leader's corruption check raises it."""
    CONNECTION.request(members[0].client_url, ALARM, {'action': action, 'memberID': str(member_ids(members)[name]),
                                                      'alarm': 'CORRUPT'}, 10)


def all_healthy(members):
    return all(m.etcdctl('endpoint', 'health').rc == 0 for m in members)


@pytest.fixture
def nothing_changes(members):
    """Asserts after the test that member IDs, names and data dirs are what they were."""
    assert wait_for(lambda: all_healthy(members), timeout=60)
    before = (member_table(members), data_dirs(members))
    yield
    assert (member_table(members), data_dirs(members)) == before


def test_member_not_in_inventory_is_refused(ansible_runner, nothing_changes):
    rc, out, _seconds, _second = run_replace(ansible_runner.inventory_file, 'etcd09')
    assert rc != 0, out
    assert 'Name the member to replace with -e member=NAME' in out, out


def test_healthy_member_is_refused_without_force(ansible_runner, nothing_changes):
    rc, out, _seconds, _second = run_replace(ansible_runner.inventory_file, 'etcd02')
    assert rc != 0, out
    assert 'Refusing to replace etcd02' in out and 'it is healthy' in out and 'force=true' in out, out


def test_second_member_down_is_refused_before_anything_is_touched(ansible_runner, members, explain):
    assert wait_for(lambda: all_healthy(members), timeout=60)
    by_name = dict((m.name, m) for m in members)
    table, dirs = member_table(members), data_dirs(members)
    for name in ('etcd02', 'etcd03'):
        by_name[name].host.run('systemctl stop etcd')
    try:
        rc, out, _seconds, _second = run_replace(ansible_runner.inventory_file, 'etcd03')
        assert rc != 0, out
        assert 'Refusing to replace etcd03' in out, out
        # With authentication on too: the member list, status and health need no login (the lone etcd01, without a
        # leader, could not log anyone in).
        assert 'etcd02: not healthy' in out, out
        assert 'Nothing was changed' in out, out
    finally:
        for name in ('etcd02', 'etcd03'):
            by_name[name].host.run('systemctl start --no-block etcd')
        assert wait_for(lambda: all_healthy(members), timeout=90), explain('etcd02/etcd03 did not come back')
    assert member_table(members) == table
    assert data_dirs(members) == dirs


def test_corrupt_alarm_on_a_member_that_stays_is_refused(ansible_runner, members, nothing_changes):
    corrupt_alarm(members, 'etcd01')
    try:
        assert alarms(members) == [('etcd01', 'CORRUPT')]
        rc, out, _seconds, _second = run_replace(ansible_runner.inventory_file, 'etcd03')
        assert rc != 0, out
        text = flat(out)
        assert 'Refusing to replace etcd03' in text, out
        assert 'alarm CORRUPT raised for member etcd01 (only a CORRUPT alarm of the member replaced is accepted)' in text, out
        assert 'Nothing was changed' in text, out
        assert alarms(members) == [('etcd01', 'CORRUPT')]
    finally:
        corrupt_alarm(members, 'etcd01', 'DEACTIVATE')
    assert alarms(members) == []


def kill_and_wipe(member):
    """A truly failed member: etcd killed, its data dir gone."""
    result = member.host.run('systemctl kill -s KILL etcd; rm -rf %s' % member.env['ETCD_DATA_DIR'])
    assert result.rc == 0, result.stderr


def leader_name(members):
    ids = {}
    for m in members:
        try:
            client = m.client()
            for cm in client.members:
                ids[cm.id] = cm.name
            return ids[client.status().leader.id]
        except Exception:  # noqa: BLE001 - try the next member
            continue
    raise AssertionError('no member reports a leader')


def voting_after(output):
    found = re.search(r'voting after ([0-9.]+) s, healthy and consistent after ([0-9.]+) s', output)
    return (float(found.group(1)), float(found.group(2))) if found else (None, None)


def corrupt_round(inventory, members):
    """Round 1: keys put, CORRUPT raised for a member that does not lead, a put tried (etcd refuses it), the member
    replaced without force while a site.yml started meanwhile meets the lock. -> the round's dict."""
    name = [n for n in ('etcd03', 'etcd02') if n != leader_name(members)][0]
    markers = dict(('%s%02d' % (MARKERS, i), 'v%d' % i) for i in range(10))
    for key, value in markers.items():
        CONNECTION.put(members[0].client_url, key, value, 10)
    corrupt_alarm(members, name)
    try:
        CONNECTION.put(members[0].client_url, MARKERS + 'refused', 'x', 10)
        refused = 'accepted'
    except RuntimeError as error:
        refused = str(error)
    rc, out, seconds, second = run_replace(inventory, name, intruder='site')
    return dict(name=name, picked='corrupt', rc=rc, output=out, seconds=round(seconds, 1), intruder=second,
                refused_put=refused, markers=markers, alarms_after=alarms(members))


@pytest.fixture(scope='module')
def replaced(ansible_runner, members, tmp_path_factory):
    """Both replacement rounds, the second under the writer. -> dict(rounds=[...], log=path, names_before=[...])."""
    assert wait_for(lambda: all_healthy(members), timeout=90)
    names_before = sorted(row[1] for row in member_table(members))
    work = tmp_path_factory.mktemp('replace')
    log = str(work / 'writer.log')
    rounds = [corrupt_round(ansible_runner.inventory_file, members)]
    rounds[0].update(zip(('voting_after', 'consistent_after'), voting_after(rounds[0]['output'])))
    # etcd refuses every write while a CORRUPT alarm is raised: the writer starts once round 1 is over.
    with LabWriter([m.client_url for m in members], log, '--prefix', PREFIX, '--retry-seconds', '30'):
        time.sleep(3)
        by_name = dict((m.name, m) for m in members)
        if rounds[0]['rc'] == 0:
            name = leader_name(members)
            kill_and_wipe(by_name[name])
            time.sleep(2)
            rc, out, seconds, second = run_replace(ansible_runner.inventory_file, name)
            voting, consistent = voting_after(out)
            rounds.append(dict(name=name, picked='leader', rc=rc, output=out, seconds=round(seconds, 1),
                               voting_after=voting, consistent_after=consistent, intruder=second))
            time.sleep(3)
    figures = dict(distro=os.environ.get('LAB_DISTRO', 'bookworm'),
                   rounds=[dict((k, v) for k, v in r.items() if k not in ('output', 'intruder', 'markers'))
                           for r in rounds],
                   writer=read_writer_log(log)[2])
    for path in (os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY'), '/tmp'):
        if path:
            with open(os.path.join(path, 'replace-member-figures-%s.json' % figures['distro']), 'w') as f:
                json.dump(dict(figures, outputs=[r['output'] for r in rounds]), f, indent=1)
    return dict(rounds=rounds, log=log, names_before=names_before, summary=figures['writer'])


def test_both_replacements_succeed(replaced):
    assert [r['picked'] for r in replaced['rounds']] == ['corrupt', 'leader'], replaced['rounds'][0]['output'][-6000:]
    for r in replaced['rounds']:
        assert r['rc'] == 0, r['output'][-6000:]
        assert r['voting_after'] is not None, r['output'][-3000:]


def test_the_corrupt_member_was_replaced_and_its_alarm_disarmed(replaced, members):
    first = replaced['rounds'][0]
    # etcd refused the write while the alarm was raised ...
    assert 'corrupt cluster' in first['refused_put'], first['refused_put']
    # ... replace_member.yml took the member as failed without force, and no alarm is left
    assert first['alarms_after'] == [], first['alarms_after']
    assert alarms(members) == []


def test_keys_put_before_the_corrupt_alarm_are_on_every_member(replaced, members):
    markers = replaced['rounds'][0]['markers']
    for member in members:
        found = dict((meta.key.decode(), value.decode())
                     for value, meta in member.client().get_prefix(MARKERS, serializable=True))
        assert found == markers, '%s: %s' % (member.name, found)


def test_a_site_run_during_the_replace_is_refused_naming_it_and_changes_nothing(replaced):
    rc, out = replaced['rounds'][0]['intruder']
    assert rc not in (0, None), out[-3000:]
    assert 'Refusing to start site: the deployment lock %s on gw01 is held by replace_member' % LOCK in out, out[-3000:]
    assert 'Nothing was changed.' in out
    recap = recap_changed(out)
    assert recap and not any(recap.values()), out[-3000:]


def test_the_replace_gave_the_lock_back(replaced):
    assert lock_holder() is None


def test_three_started_voting_members_with_unchanged_names(replaced, members, explain):
    table = member_table(members)
    assert sorted(row[1] for row in table) == replaced['names_before'], explain(str(table))
    assert not [t for t in table if t[2]], 'learners left: %s' % table
    listing = json.loads(members[0].etcdctl('member', 'list', '-w', 'json').stdout)['members']
    assert len(listing) == 3 and all(m.get('clientURLs') for m in listing), listing


def test_hashkv_equal_on_every_member(replaced, members, explain):
    def hashes():
        result = members[0].etcdctl('endpoint', 'hashkv', '--cluster', '-w', 'json')
        if result.rc != 0:
            return None
        found = json.loads(result.stdout)
        values = set((e['HashKV']['header']['revision'], e['HashKV']['hash']) for e in found)
        return values if len(found) == 3 and len(values) == 1 else None
    assert wait_for(hashes, timeout=30), explain('hashkv differs: %s' % members[0].etcdctl(
        'endpoint', 'hashkv', '--cluster', '-w', 'json').stdout)


def test_every_acknowledged_put_is_on_every_member(replaced, members):
    acked = read_writer_log(replaced['log'])[0]
    assert len(acked) > 100, 'the writer wrote too little: %d' % len(acked)

    def missing(member):
        client = member.client()
        found = dict((meta.key.decode(), value.decode())
                     for value, meta in client.get_prefix(PREFIX, serializable=True))
        return [k for k, v in acked.items() if found.get(k) != v]

    for member in members:
        if wait_for(lambda: not missing(member), timeout=30):
            continue
        lost = missing(member)
        assert not lost, '%s lacks %d acknowledged keys, e.g. %s' % (member.name, len(lost), sorted(lost)[:5])


def test_writer_never_failed(replaced):
    summary = replaced['summary']
    assert summary is not None
    assert summary['failed'] == 0, summary
    assert summary['acked'] > 0, summary


def test_old_data_dirs_are_kept(replaced, members):
    by_name = dict((m.name, m) for m in members)
    for r in replaced['rounds']:
        m = by_name[r['name']]
        aside = m.host.run('ls -d %s.replaced-*' % m.env['ETCD_DATA_DIR'])
        assert aside.rc == 0 and aside.stdout.strip(), '%s: no data dir kept aside' % r['name']


def test_site_rerun_changes_nothing_after_the_replacements(replaced, ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'site')
    assert rc == 0, out[-4000:]
    # Every host of the stack, not only the members: on Debian 12 this is the proof that site.yml is idempotent
    # (default:bookworm has no Molecule idempotence step, tests/run).
    recap = recap_changed(out)
    assert {'etcd01', 'etcd02', 'etcd03', 'etcd-single', 'apisix01', 'apisix02', 'gw01'} <= set(recap), out[-4000:]
    changed = dict((host, n) for host, n in recap.items() if n)
    assert not changed, (changed, out[-8000:])


def test_not_leader_moves_the_leadership_and_is_idempotent(replaced, members, module_runner):
    # The rounds above lose their leader by a kill; here the live transfer of etcd_member state=not_leader.
    leader = leader_name(members)
    endpoints = [m.client_url for m in members]
    result = module_runner(members[0].name, 'gatewayops.apisix_ha.etcd_member', name=leader, state='not_leader',
                           endpoints=endpoints, **members[0].module_connection())
    assert result['changed'] is True, result
    assert result['previous_leader']['name'] == leader and result['leader']['name'] != leader, result
    assert leader_name(members) == result['leader']['name']
    again = module_runner(members[0].name, 'gatewayops.apisix_ha.etcd_member', name=leader, state='not_leader',
                          endpoints=endpoints, **members[0].module_connection())
    assert again['changed'] is False and again['actions'] == [], again
