"""Benchmark command: times the collection's playbooks on fresh lab containers and prints JSON.

usage: python3 tests/benchmark.py [--distro bookworm|trixie] [--keep] [--skip-replace] [--skip-snapshot]
                                  [--skip-rolling] [--skip-failover] [--skip-defrag]

Figures: wall time of playbooks/site.yml on fresh containers, wall time of the idempotent re-run, their ratio,
and how many tasks the re-run changed (0 expected); then, with etcd03 failed (SIGKILL, data dir wiped):
replace_member.yml's wall time and the time from its start until the new etcd03 is a started voting member,
against the runbook's manual steps (tests/lab/replace_member_by_hand.sh) timed in the same run until the cluster
is healthy again. Then, with 100,000 keys written: a bare `etcdctl snapshot save` against the collection's snapshot
workflow's save+verify (both timed on the member itself), and the etcd_snapshot module run ad hoc by `ansible`.
Then rolling_update.yml shipping a custom plugin to both APISIX nodes (observing each for 10 s) while
tests/lab/loadgen.py sends 30 GET and POST requests a second through the gateway: its wall time, that time per node
(preflight included), and the requests served and failed while it ran.
Last, with etcd02 and etcd03 killed: the failover RTO (seconds from the start of failover.yml to the first write
acknowledged through the front on gw01, tried every 0.2 s), the emergency node's staleness at the switch
(failover.json switched_epoch - state.json snapshot_taken_epoch), and failback.yml's wall time once they are back.
Then defragmentation, with 120,000 values of 2 KiB written and half of them deleted (a database of a few hundred MB,
half of it in use), under a writer putting through the front one put after another: the runbook's way (compact, then
`etcdctl defrag` member by member, the leader first, no handoff) against maintenance.yml -e force=true (followers
first, the leader last after its leadership is handed away), in the same run: each member's defragmentation time, and
the writer's longest put and the puts that took over a second, over the leader's turn and over the whole run.
Before each figure the benchmark waits (up to 2 min) for the previous step's load to die down; each figure comes
with the 1-min load average at its start and the load averages read as it ended, and the output lists any running
container that is not this lab's (none expected: run it on a lab alone on the machine). Timings are reported, never
asserted. Every playbook runs in the runbook's plain mode (molecule/plain-vars.yml).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The runbook's plain mode for now: the benchmark's own clients (front writes, replace_member_by_hand.sh, loadgen's
# admin writes) speak plain HTTP to etcd; the secure default's figures are not measured yet.
SETTINGS = os.path.join(REPO, 'molecule', 'plain-vars.yml')


def run(*argv, env):
    if argv[0] == 'ansible-playbook':
        argv += ('-e', '@' + SETTINGS)
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-6000:])
        raise SystemExit('%s failed with exit code %d' % (' '.join(argv), result.returncode))
    return elapsed, result.stdout


def changed_tasks(output):
    return sum(int(n) for n in re.findall(r'\bchanged=(\d+)', output))


def container(name):
    slot = int(os.environ.get('LAB_SLOT') or 0)
    return name + ('-s%d' % slot if slot else '')


def etcdctl(env, *args):
    """etcdctl on etcd01 against its own client URL; (rc, stdout)."""
    command = 'etcdctl --endpoints "$(. /etc/etcd/etcd.conf; echo $ETCD_ADVERTISE_CLIENT_URLS)" ' + ' '.join(args)
    done = subprocess.run(['docker', 'exec', container('etcd01'), 'sh', '-c', command], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    return done.returncode, done.stdout


def member_id(env, name):
    members = json.loads(etcdctl(env, 'member', 'list', '-w', 'json')[1])['members']
    return [m['ID'] for m in members if m.get('name') == name]


def fail_member(env, name):
    """SIGKILL etcd on a member, keep it down and wipe its data dir: a member that has really failed."""
    subprocess.run(['docker', 'exec', container(name), 'sh', '-c',
                    'systemctl kill -s KILL etcd; systemctl stop etcd; . /etc/etcd/etcd.conf; rm -rf "$ETCD_DATA_DIR"'],
                   env=env, check=True, stdout=subprocess.DEVNULL)


class VotingWatch(threading.Thread):
    """Records when a member called `name` with another ID than `old_ids` is started and voting."""

    def __init__(self, env, name, old_ids):
        super().__init__(daemon=True)
        self.env, self.name, self.old_ids = env, name, old_ids
        self.started_at, self.voting_at, self.stop = time.monotonic(), None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.voting_at is None:
            rc, out = etcdctl(self.env, 'member', 'list', '-w', 'json')
            if rc == 0:
                for m in json.loads(out).get('members', []):
                    if m.get('name') == self.name and m['ID'] not in self.old_ids and not m.get('isLearner'):
                        self.voting_at = time.monotonic()
            time.sleep(0.5)

    def seconds(self):
        return None if self.voting_at is None else round(self.voting_at - self.started_at, 2)


def wait_all_started_and_healthy(env, members, timeout=300):
    """Until every one of `members` is listed as started (it has a name) and every endpoint answers healthy:
    --cluster alone would pass while a re-added member has not started, since it has no client URL yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc, out = etcdctl(env, 'member', 'list', '-w', 'json')
        started = {m.get('name') for m in json.loads(out).get('members', [])} if rc == 0 else set()
        if set(members) <= started and etcdctl(env, 'endpoint', 'health', '--cluster')[0] == 0:
            return True
        time.sleep(0.5)
    return False


def measure_replace(env):
    fail_member(env, 'etcd03')
    watch = VotingWatch(env, 'etcd03', member_id(env, 'etcd03'))
    watch.start()
    playbook = run('ansible-playbook', 'playbooks/replace_member.yml', '-e', 'member=etcd03', env=env)[0]
    watch.join(timeout=30)
    watch.stop.set()

    fail_member(env, 'etcd03')
    started = time.monotonic()
    run('tests/lab/replace_member_by_hand.sh', 'etcd03', 'etcd01', env=env)
    healthy = wait_all_started_and_healthy(env, ['etcd01', 'etcd02', 'etcd03'])
    by_hand = time.monotonic() - started
    return {
        'replace_member_yml_seconds': round(playbook, 2),
        'replace_member_until_voting_seconds': watch.seconds(),
        'by_hand_until_healthy_seconds': round(by_hand, 2) if healthy else None,
        'replace_member_to_by_hand_ratio': round(playbook / by_hand, 3) if healthy else None,
    }


SNAPSHOT_KEYS = 100000

# Runs inside etcd01 through the JSON gateway: `fill` puts the keys, 100 per transaction (etcd allows 128 operations
# per txn); `delete` removes them with one deleterange.
BENCH_KEYS = r"""
import base64, json, sys, time, urllib.error, urllib.request
mode, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pad = 'x' * int(sys.argv[4]) if len(sys.argv) > 4 else ''  # fill: each value padded by that many bytes
b64 = lambda text: base64.b64encode(text.encode()).decode()
key = lambda n: b64('/apisix/routes/%06d' % n)

def post(path, body, timeout, tries=10):
    # etcd answers 503 (Unavailable: "too many requests") while its apply lags behind: wait and send it again.
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {'Content-Type': 'application/json'})
    for attempt in range(tries):
        try:
            return json.loads(urllib.request.urlopen(request, timeout=timeout).read())
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == tries - 1:
                raise
            time.sleep(1 + attempt)

if mode == 'fill':
    for start in range(0, count, 100):
        post('/v3/kv/txn', {'success': [
            {'requestPut': {'key': key(n), 'value': b64(json.dumps({'id': str(n), 'uri': '/bench/%d' % n,
                                                                   'upstream_id': '1', 'desc': pad}))}}
            for n in range(start, min(start + 100, count))]}, 30)
else:
    print(post('/v3/kv/deleterange', {'key': key(0), 'range_end': key(count)}, 120).get('deleted'))
"""

# Defragmentation: 120,000 values of about 2 KiB, the first half deleted.
DEFRAG_KEYS, DEFRAG_PAD = 120000, 2048

# Runs a command on the member and prints its wall time in seconds, so the figure leaves out `docker exec`.
TIMED = 'start=$(date +%s%N); "$@" >/tmp/bench-timed.out 2>&1 || { cat /tmp/bench-timed.out; exit 1; }; ' \
        'echo $(( $(date +%s%N) - start ))'


def timed_on_member(env, name, *argv):
    """Wall time of argv run on the member itself; (seconds, its output)."""
    nanos = run('docker', 'exec', container(name), 'sh', '-c', TIMED, 'timed', *argv, env=env)[1].split()[-1]
    output = subprocess.check_output(['docker', 'exec', container(name), 'cat', '/tmp/bench-timed.out'], env=env,
                                     text=True)
    return int(nanos) / 1e9, output


def measure_snapshot(env):
    """Snapshot save+verify of the same keyspace three ways, same run: a bare `etcdctl snapshot save` and the
    collection's snapshot workflow (the scheduled backup program, which saves, verifies and publishes with the same
    code as the etcd_snapshot module), both timed on the member itself; and the etcd_snapshot module run ad hoc by
    `ansible`, as an operator would, Ansible's start-up included."""
    url = subprocess.check_output(['docker', 'exec', container('etcd01'), 'sh', '-c',
                                   '. /etc/etcd/etcd.conf; echo ${ETCD_ADVERTISE_CLIENT_URLS%%,*}'], env=env,
                                  text=True).strip()
    run('docker', 'exec', container('etcd01'), 'python3', '-c', BENCH_KEYS, 'fill', url, str(SNAPSHOT_KEYS), env=env)
    bare = timed_on_member(env, 'etcd01', 'env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints', url,
                           'snapshot', 'save', '/var/tmp/bench-bare.db')[0]
    workflow, saved = timed_on_member(env, 'etcd01', '/usr/local/sbin/etcd-backup')
    published = re.search(r'saved (\S+) from', saved)
    module, output = run('ansible', 'etcd01', '-m', 'gatewayops.apisix_ha.etcd_snapshot', '-a',
                         json.dumps(dict(state='saved', path='/var/tmp/bench-module.db', endpoints=[url])), env=env)
    keys = re.search(r'"?total_keys"?: (\d+)', output)
    size = re.search(r'(?m)^\s*"?size"?: (\d+)', output)
    run('docker', 'exec', container('etcd01'), 'rm', '-f', '/var/tmp/bench-bare.db', '/var/tmp/bench-module.db',
        *([published.group(1)] if published else []), env=env)
    # The filler routes would shadow the rolling update's test route (exact URIs beat its prefix) and make every
    # APISIX node re-list 100,000 keys: the measurements after this one run on the usual keyspace.
    run('docker', 'exec', container('etcd01'), 'python3', '-c', BENCH_KEYS, 'delete', url, str(SNAPSHOT_KEYS),
        env=env)
    return {
        'snapshot_keys_written': SNAPSHOT_KEYS,
        'snapshot_total_keys': int(keys.group(1)) if keys else None,
        'snapshot_bytes': int(size.group(1)) if size else None,
        'bare_etcdctl_snapshot_save_on_member_seconds': round(bare, 2),
        'snapshot_workflow_save_verify_on_member_seconds': round(workflow, 2),
        'snapshot_workflow_to_bare_ratio': round(workflow / bare, 3),
        'etcd_snapshot_module_ad_hoc_seconds': round(module, 2),
        'etcd_snapshot_module_ad_hoc_to_bare_ratio': round(module / bare, 3),
    }


def front_put(url):
    """One put through the etcd front; True when acknowledged."""
    body = json.dumps({'key': 'L2dhdGV3YXlvcHMtYmVuY2gvcnRv', 'value': 'eA=='}).encode()  # /gatewayops-bench/rto
    request = urllib.request.Request(url + '/v3/kv/put', body, {'Content-Type': 'application/json'})
    try:
        return 'header' in json.loads(urllib.request.urlopen(request, timeout=2).read())
    except (OSError, ValueError):
        return False


def emergency_json(env, name):
    return json.loads(subprocess.check_output(['docker', 'exec', container('etcd-single'), 'cat',
                                               '/var/lib/etcd-emergency/' + name], env=env, text=True))


def measure_failover(env):
    """Two members killed, failover.yml timed until the first write through the front; then failback.yml."""
    address = subprocess.check_output(['docker', 'exec', container('gw01'), 'hostname', '-I'], env=env,
                                      text=True).split()[0]
    front = 'http://%s:2379' % address
    for name in ('etcd02', 'etcd03'):
        subprocess.run(['docker', 'exec', container(name), 'sh', '-c', 'systemctl kill -s KILL etcd; systemctl stop etcd'],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    started = time.monotonic()
    first_write = []

    def probe():
        while not first_write and time.monotonic() - started < 600:
            if front_put(front):
                first_write.append(time.monotonic())
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    playbook = run('ansible-playbook', 'playbooks/failover.yml', env=env)[0]
    prober.join(timeout=60)
    marker, state = emergency_json(env, 'failover.json'), emergency_json(env, 'state.json')
    for name in ('etcd02', 'etcd03'):
        subprocess.run(['docker', 'exec', container(name), 'systemctl', 'start', '--no-block', 'etcd'], env=env,
                       check=True)
    wait_all_started_and_healthy(env, ['etcd01', 'etcd02', 'etcd03'])
    failback = run('ansible-playbook', 'playbooks/failback.yml', env=env)[0]
    return {
        'failover_yml_seconds': round(playbook, 2),
        'failover_rto_seconds': round(first_write[0] - started, 2) if first_write else None,
        'emergency_staleness_at_switch_seconds': round(marker['switched_epoch'] - state['snapshot_taken_epoch'], 2),
        'failback_yml_seconds': round(failback, 2),
    }


LOADGEN = os.path.join(REPO, 'tests', 'lab', 'loadgen.py')
PLUGIN_SOURCE = os.path.join(REPO, 'tests', 'lab', 'apisix_standin', 'example_plugins', 'v1', 'apisix', 'plugins')
ROLLING_OBSERVE_SECONDS = 10


def address(env, name):
    return subprocess.check_output(['docker', 'exec', container(name), 'hostname', '-I'], env=env, text=True).split()[0]


def served_lately(log, count):
    """Whether the load generator's last ``count`` requests were all answered 200."""
    try:
        with open(log) as lines:
            last = [json.loads(line) for line in lines][-count:]
    except (OSError, ValueError):
        return False
    return len(last) == count and all(e['status'] == 200 for e in last)


def measure_rolling(env, work):
    """rolling_update.yml under steady GET and POST traffic through the gateway."""
    key = subprocess.check_output(
        ['docker', 'exec', container('apisix01'), 'sh', '-c',
         "sed -n 's/^ *key: //p' /usr/local/apisix/conf/config.yaml | head -n 1"], env=env, text=True).strip()
    route = {'uri': '/bench/*', 'upstream': {'type': 'roundrobin', 'nodes': {address(env, 'gw01') + ':8080': 1}}}
    run('docker', 'exec', container('apisix01'), 'curl', '-sf', '-X', 'PUT', '-H', 'X-API-KEY: ' + key,
        '-d', json.dumps(route), 'http://127.0.0.1:9180/apisix/admin/routes/bench', env=env)
    log, stop = os.path.join(work, 'load.log'), os.path.join(work, 'stop')
    load = subprocess.Popen([sys.executable, LOADGEN, '--url', 'http://%s:80/bench/' % address(env, 'gw01'),
                             '--log', log, '--stop-file', stop, '--rate', '30'], env=env)
    # The route is new: the playbook starts once both nodes serve it (its last 60 requests answered 200), so that
    # the figures count what the rolling update does, not the route reaching the nodes.
    deadline = time.time() + 120
    while time.time() < deadline and not served_lately(log, 60):
        time.sleep(0.5)
    started = time.time()
    elapsed = run('ansible-playbook', 'playbooks/rolling_update.yml', '-e', 'source=' + PLUGIN_SOURCE,
                  '-e', 'rolling_update_observe_seconds=%d' % ROLLING_OBSERVE_SECONDS,
                  '-e', json.dumps({'apisix_node_custom_plugins': ['gatewayops-tag']}), env=env)[0]
    ended = time.time()
    open(stop, 'w').close()
    load.wait(timeout=60)
    with open(log) as lines:
        during = [e for e in map(json.loads, lines) if started <= e['at'] <= ended]
    if not any(e['status'] == 200 for e in during):
        raise SystemExit('rolling update: no request through the gateway was served, the figures would mean nothing')
    return {
        'rolling_update_yml_seconds': round(elapsed, 2),
        'rolling_update_seconds_per_node': round(elapsed / 2, 2),
        'rolling_update_observe_seconds_per_node': ROLLING_OBSERVE_SECONDS,
        'rolling_update_requests_served': sum(1 for e in during if e['status'] == 200),
        'rolling_update_requests_failed': sum(1 for e in during if e['status'] != 200),
    }


class FrontWriter(threading.Thread):
    """Puts through the etcd front, one after another, as APISIX's Admin API writes go; records each put's start,
    end and whether it was acknowledged."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.puts, self.stop = url, [], threading.Event()

    def run(self):
        body = json.dumps({'key': 'L2dhdGV3YXlvcHMtYmVuY2gvd3JpdGVy', 'value': 'eA=='}).encode()  # /gatewayops-bench/writer
        while not self.stop.is_set():
            started = time.monotonic()
            request = urllib.request.Request(self.url + '/v3/kv/put', body, {'Content-Type': 'application/json'})
            try:
                acknowledged = 'header' in json.loads(urllib.request.urlopen(request, timeout=60).read())
            except (OSError, ValueError):
                acknowledged = False
            self.puts.append((started, time.monotonic(), acknowledged))

    def seen(self, start=None, end=None):
        """The puts that overlap [start, end]: how many, the failed ones, the longest and those over a second."""
        puts = [p for p in self.puts if (start is None or p[1] >= start) and (end is None or p[0] <= end)]
        longest = max((p[1] - p[0] for p in puts), default=0)
        return {'puts': len(puts), 'failed': sum(1 for p in puts if not p[2]), 'longest_put_seconds': round(longest, 2),
                'puts_over_1s': sum(1 for p in puts if p[1] - p[0] > 1)}


def endpoint_statuses(env):
    """name -> (client URL, is leader), from etcd01."""
    members = {m['ID']: m for m in json.loads(etcdctl(env, 'member', 'list', '-w', 'json')[1])['members']}
    statuses = json.loads(etcdctl(env, 'endpoint', 'status', '--cluster', '-w', 'json')[1])
    return {members[s['Status']['header']['member_id']]['name']: (s['Endpoint'], s['Status']['leader'] == s['Status']['header']['member_id'])
            for s in statuses}


def fragment(env, url):
    """The keyspace filled with DEFRAG_KEYS values, the first half deleted, compacted: half of each database free."""
    run('docker', 'exec', container('etcd01'), 'python3', '-c', BENCH_KEYS, 'fill', url, str(DEFRAG_KEYS),
        str(DEFRAG_PAD), env=env)
    run('docker', 'exec', container('etcd01'), 'python3', '-c', BENCH_KEYS, 'delete', url, str(DEFRAG_KEYS // 2),
        env=env)
    revision = json.loads(etcdctl(env, 'endpoint', 'status', '-w', 'json')[1])[0]['Status']['header']['revision']
    etcdctl(env, 'compact', str(revision), '--physical')


def measure_defrag(env):
    """The runbook's defragmentation (the leader first, no handoff) against maintenance.yml's, same keyspace, same
    run, under a writer through the front."""
    url = subprocess.check_output(['docker', 'exec', container('etcd01'), 'sh', '-c',
                                   '. /etc/etcd/etcd.conf; echo ${ETCD_ADVERTISE_CLIENT_URLS%%,*}'], env=env,
                                  text=True).strip()
    fragment(env, url)
    sizes = json.loads(etcdctl(env, 'endpoint', 'status', '-w', 'json')[1])[0]['Status']
    figures = {'defrag_db_size_bytes': sizes['dbSize'], 'defrag_db_in_use_bytes': sizes.get('dbSizeInUse')}
    front = 'http://%s:2379' % address(env, 'gw01')

    writer = FrontWriter(front)
    writer.start()
    time.sleep(2)
    statuses = endpoint_statuses(env)
    order = sorted(statuses, key=lambda name: not statuses[name][1])  # the leader first
    naive, windows = {}, {}
    for name in order:
        started = time.monotonic()
        naive[name] = round(timed_on_member(env, name, 'etcdctl', '--command-timeout=600s', '--endpoints',
                                            statuses[name][0], 'defrag')[0], 2)
        windows[name] = (started, time.monotonic())
        time.sleep(2)
    writer.stop.set()
    writer.join()
    figures.update({
        'naive_order': order,
        'naive_defrag_seconds_per_member': naive,
        'naive_writer_during_leader_turn': writer.seen(*windows[order[0]]),
        'naive_writer_whole_run': writer.seen(),
    })

    fragment(env, url)  # the same half free again
    writer = FrontWriter(front)
    writer.start()
    time.sleep(2)
    elapsed, output = run('ansible-playbook', 'playbooks/maintenance.yml', '-e', 'force=true', env=env)
    writer.stop.set()
    writer.join()
    flat = ' '.join(output.split())
    per_member = {m.group(1): float(m.group(3)) for m in re.finditer(
        r'(etcd\d+)( \(the leader\))?: [^;]*; defragmented in ([0-9.]+) s', flat)}
    leader = re.search(r'(etcd\d+) \(the leader\):', flat)
    figures.update({
        'maintenance_yml_seconds': round(elapsed, 2),
        'maintenance_order': (re.search(r'order: ([\w, ]+?)"', flat) or re.search(r'order: ([\w, ]+)', flat)).group(1),
        'maintenance_leader_at_start': leader.group(1) if leader else None,
        'maintenance_defrag_seconds_per_member': per_member,
        'maintenance_writer_whole_run': writer.seen(),
    })
    run('docker', 'exec', container('etcd01'), 'python3', '-c', BENCH_KEYS, 'delete', url, str(DEFRAG_KEYS), env=env)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--distro', default=os.environ.get('LAB_DISTRO', 'bookworm'), choices=['bookworm', 'trixie'])
    parser.add_argument('--keep', action='store_true', help='leave the lab running afterwards')
    parser.add_argument('--skip-replace', action='store_true', help='no replace_member.yml figures')
    parser.add_argument('--skip-snapshot', action='store_true', help='no snapshot save+verify figures')
    parser.add_argument('--skip-rolling', action='store_true', help='no APISIX rolling update figures')
    parser.add_argument('--skip-failover', action='store_true', help='no failover RTO / staleness figures')
    parser.add_argument('--skip-defrag', action='store_true', help='no defragmentation figures')
    options = parser.parse_args()

    subprocess.run([os.path.join(REPO, 'tests/lab/bootstrap.sh')], check=True, stdout=sys.stderr,
                   env=dict(os.environ, LAB_DISTROS=options.distro))
    env = dict(os.environ, LAB_DISTRO=options.distro)
    env.update(json.loads(subprocess.check_output(
        ['bash', '-c', 'source tests/lab/env.sh && python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'],
        cwd=REPO, env=env)))

    run('ansible-playbook', 'tests/lab/destroy.yml', env=env)
    run('ansible-playbook', 'tests/lab/create.yml', env=env)
    figures = {'distro': options.distro}
    # Each figure with the load average (1, 5, 15 min) read as it ends, and the containers running on the machine
    # that are not this lab's: the figures mean something only for a lab alone on the machine.
    loads, settled, others = {}, {}, set()

    def measured(name, measure):
        settled[name] = settle()
        figures.update(measure())
        loads[name] = [round(load, 2) for load in os.getloadavg()]
        others.update(other_containers(env))

    try:
        measured('site_yml', lambda: measure_site(env))
        for name, skip, measure in (
                ('replace_member', options.skip_replace, measure_replace),
                ('snapshot', options.skip_snapshot, measure_snapshot),
                ('rolling_update', options.skip_rolling,
                 lambda e: measure_rolling(e, tempfile.mkdtemp(prefix='benchmark-'))),
                ('failover', options.skip_failover, measure_failover),
                ('defrag', options.skip_defrag, measure_defrag)):
            if not skip:
                measured(name, lambda measure=measure: measure(env))
    finally:
        if not options.keep:
            run('ansible-playbook', 'tests/lab/destroy.yml', env=env)
    figures.update(cpus=os.cpu_count(), load_average_1_5_15_at_end_of=loads,
                   load_average_1_at_start_of=settled, other_containers_running=sorted(others))
    print(json.dumps(figures, indent=2))


def measure_site(env):
    fresh = run('ansible-playbook', 'playbooks/site.yml', env=env)[0]
    rerun, rerun_output = run('ansible-playbook', 'playbooks/site.yml', env=env)
    return {
        'site_yml_fresh_seconds': round(fresh, 2),
        'site_yml_rerun_seconds': round(rerun, 2),
        'rerun_to_fresh_ratio': round(rerun / fresh, 3),
        'rerun_changed_tasks': changed_tasks(rerun_output),
    }


def settle(below=1.0, longest=120):
    """Let the previous step's load die down before the next figure (at most ``longest`` s): the 1-min load average
    below ``below`` or no longer falling. -> the 1-min load average at the start."""
    started, last = time.monotonic(), os.getloadavg()[0]
    while last >= below and time.monotonic() - started < longest:
        time.sleep(10)
        now = os.getloadavg()[0]
        if now >= last:
            break
        last = now
    return round(last, 2)


def other_containers(env):
    """Names of the running containers that are not this lab's hosts."""
    hosts = json.loads(subprocess.check_output(['ansible-inventory', '--list'], cwd=REPO, env=env,
                                               text=True))['_meta']['hostvars']
    ours = {container(name) for name in hosts}
    names = subprocess.check_output(['docker', 'ps', '--format', '{{.Names}}'], env=env, text=True).split()
    return [name for name in names if name not in ours]


if __name__ == '__main__':
    main()
