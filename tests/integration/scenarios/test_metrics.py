"""Monitoring (docs/monitoring.md): etcd's metrics endpoint on every member and on the emergency node - plain http on
port 2381, on the host's address and loopback only - and the gauges the collection writes for node_exporter's
textfile collector, on the hosts that know them; then, end to end, a real Prometheus (Debian's, on the gateway host:
tests/lab/prometheus.yml) scraping all of it with the collection's rules installed by playbooks/monitoring.yml: a
real fault makes its alert fire, and the fix clears it."""

import json
import os
import re

import pytest
import yaml

from conftest import REPO, curl, lab_host, run_playbook, wait_for

TEXTFILE_DIR = '/var/lib/prometheus/node-exporter'
METRICS_PORT = 2381
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def gauges(host, name):
    """{(metric, labels text): value} of one gauge file; every metric with its HELP and TYPE gauge lines."""
    text = host.file('%s/%s' % (TEXTFILE_DIR, name)).content_string
    assert text.endswith('\n'), text
    typed, values = set(), {}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            assert line.endswith(' gauge'), text
            typed.add(line.split()[2])
            continue
        if line.startswith('# HELP '):
            continue
        match = SAMPLE.match(line)
        assert match and match.group(1) in typed, text
        values[(match.group(1), match.group(2) or '')] = float(match.group(3))
    return values


def host_time(host):
    return float(host.run('date +%s.%N').stdout)


def metrics_urls(host):
    for line in host.file('/etc/etcd/etcd.conf').content_string.splitlines():
        if line.startswith('ETCD_LISTEN_METRICS_URLS='):
            return line.split('=', 1)[1].strip('"').split(',')
    return []


@pytest.mark.parametrize('name', ['etcd01', 'etcd02', 'etcd03', 'etcd-single'])
def test_the_metrics_endpoint_answers_from_the_gateway_and_listens_nowhere_else(name):
    host = lab_host(name)
    urls = metrics_urls(host)
    assert len(urls) == 2 and 'http://127.0.0.1:%d' % METRICS_PORT in urls, urls
    own = [url for url in urls if '127.0.0.1' not in url][0]
    # From the gateway (where Prometheus would scrape from): no TLS, no credentials.
    code, body = curl(lab_host('gw01'), own + '/metrics')
    assert code == 200 and re.search(r'(?m)^etcd_server_has_leader 1$', body), body[:500]
    for metric in ('etcd_mvcc_db_total_size_in_bytes', 'etcd_mvcc_db_total_size_in_use_in_bytes',
                   'etcd_server_quota_backend_bytes'):
        assert re.search(r'(?m)^%s ' % metric, body), metric
    code, body = curl(lab_host('gw01'), own + '/health')
    assert code == 200 and '"health":"true"' in body, body
    # Bound to the two addresses, not to every address: another loopback address is refused.
    assert curl(host, 'http://127.0.0.1:%d/health' % METRICS_PORT)[0] == 200
    assert curl(host, 'http://127.0.0.2:%d/health' % METRICS_PORT)[0] == 0


def test_the_backup_writes_its_gauges_after_a_run():
    etcd01 = lab_host('etcd01')
    done = etcd01.run('systemctl start etcd-backup.service')
    assert done.rc == 0, done.stderr
    values = gauges(etcd01, 'gatewayops-etcd-backup.prom')
    assert values[('gatewayops_etcd_backup_last_run_success', '')] == 1
    assert 0 <= host_time(etcd01) - values[('gatewayops_etcd_backup_last_success_timestamp_seconds', '')] < 120
    assert values[('gatewayops_etcd_backup_last_revision', '')] > 1
    assert values[('gatewayops_etcd_backup_period_seconds', '')] == 86400
    # No alarm is raised on a healthy cluster: no series.
    assert not [key for key in values if key[0] == 'gatewayops_etcd_alarm'], values
    # The backup host only.
    assert not lab_host('etcd02').file('%s/gatewayops-etcd-backup.prom' % TEXTFILE_DIR).exists


def test_the_emergency_refresh_writes_its_gauges():
    node = lab_host('etcd-single')
    done = node.run('systemctl start etcd-emergency-refresh.service')
    assert done.rc == 0, done.stderr
    values = gauges(node, 'gatewayops-emergency-refresh.prom')
    assert values[('gatewayops_emergency_last_refresh_success', '')] == 1
    assert 0 < values[('gatewayops_emergency_data_timestamp_seconds', '')] <= host_time(node)
    assert values[('gatewayops_emergency_refresh_period_seconds', '')] >= 60


def test_the_front_says_it_serves_the_cluster():
    values = gauges(lab_host('gw01'), 'gatewayops-front.prom')
    assert values == {('gatewayops_front_on_emergency', ''): 0}


@pytest.mark.parametrize('name,gauge_file,paths', [
    ('etcd02', 'gatewayops-certificates-etcd-cluster.prom', ['/etc/etcd/pki/ca.crt', '/etc/etcd/pki/member.crt']),
    ('etcd-single', 'gatewayops-certificates-etcd-emergency.prom',
     ['/etc/etcd/pki/ca.crt', '/etc/etcd/pki/member.crt', '/etc/etcd/pki/source-user.crt']),
    ('gw01', 'gatewayops-certificates-nginx-upstream.prom',
     ['/etc/gatewayops/etcd-pki/ca.crt', '/etc/gatewayops/etcd-pki/client.crt']),
    ('apisix01', 'gatewayops-certificates-apisix-node.prom',
     ['/etc/gatewayops/etcd-pki/ca.crt', '/etc/gatewayops/etcd-pki/client.crt']),
])
def test_each_installed_certificate_has_its_expiry(name, gauge_file, paths):
    host = lab_host(name)
    values = gauges(host, gauge_file)
    assert sorted(labels for _metric, labels in values) == sorted('{path="%s"}' % path for path in paths), values
    for (_metric, labels), expires in values.items():
        path = labels[len('{path="'):-2]
        # The certificate on the host says the same (openssl's notAfter), and it is years away (3650 days).
        not_after = host.run('date -d "$(openssl x509 -enddate -noout -in %s | cut -d= -f2)" +%%s' % path)
        assert not_after.rc == 0 and int(not_after.stdout) == expires, not_after.stderr
        assert expires - host_time(host) > 365 * 86400


# --- a real Prometheus, end to end --------------------------------------------------------------------------------

PROMETHEUS_API = 'http://127.0.0.1:9090/api/v1/'
NODE_EXPORTER_PORT = 9100
RULES = os.path.join(REPO, 'roles', 'monitoring', 'files', 'gatewayops-etcd.rules.yml')
FRONT_PLAYBOOK = os.path.join(REPO, 'tests', 'integration', 'playbooks', 'front.yml')


@pytest.fixture(scope='module')
def prometheus(ansible_runner):
    """The lab's Prometheus and node_exporters started (tests/lab/prometheus.yml, which runs playbooks/monitoring.yml)
    -> api(path): the data of an answer of its HTTP API, asked on the gateway host."""
    rc, out = run_playbook(ansible_runner.inventory_file, os.path.join(REPO, 'tests', 'lab', 'prometheus.yml'))
    assert rc == 0, out[-3000:]
    gateway = lab_host('gw01')

    def api(path):
        code, body = curl(gateway, PROMETHEUS_API + path)
        assert code == 200, (path, code, body[:500])
        return json.loads(body)['data']
    return api


def watch(read, until, timeout, what):
    """Ask read() every 2 s until until(its answer) holds, for at most timeout seconds; fail saying what was awaited
    and the last answer."""
    last = {}

    def check():
        last['answer'] = read()
        return until(last['answer'])
    assert wait_for(check, timeout=timeout, interval=2), (
        'after %d s, %s; last seen: %s' % (timeout, what, last['answer']))
    return last['answer']


def targets(api):
    """{(job, instance): health} of Prometheus's active targets."""
    return {(target['labels']['job'], target['labels']['instance']): target['health']
            for target in api('targets?state=active')['activeTargets']}


def address(name):
    return lab_host(name).run('hostname -i').stdout.split()[0]


def gauge_hosts(ansible_runner):
    """The hosts the collection writes gauges on, each running node_exporter in the lab."""
    return sorted({name for group in ('etcd', 'etcd_emergency', 'gateway', 'apisix')
                   for name in ansible_runner.get_hosts(group)})


def test_prometheus_scrapes_every_member_the_emergency_node_and_the_gauges_with_the_shipped_rules(
        prometheus, ansible_runner):
    expected = {('etcd', '%s:%d' % (address(name), METRICS_PORT)) for name in ansible_runner.get_hosts('etcd')}
    expected.add(('etcd_emergency', '%s:%d' % (address('etcd-single'), METRICS_PORT)))
    # node_exporter, for the textfile gauges, on every host the collection writes some on.
    expected |= {('node', '%s:%d' % (address(name), NODE_EXPORTER_PORT)) for name in gauge_hosts(ansible_runner)}
    watch(lambda: targets(prometheus), lambda seen: seen == dict.fromkeys(expected, 'up'), 60,
          'every target is not up: expected %s' % sorted(expected))
    # The gauges reach Prometheus through node_exporter: the front's, and a certificate's of every host.
    front = prometheus('query?query=gatewayops_front_on_emergency')['result']
    assert [sample['value'][1] for sample in front] == ['0'], front
    expiries = prometheus('query?query=count+by+(instance)+(gatewayops_certificate_expiry_timestamp_seconds)')
    assert len(expiries['result']) == len(gauge_hosts(ansible_runner)), expiries
    # The rules loaded are the shipped file's, every one of them (installed and reloaded by playbooks/monitoring.yml).
    with open(RULES) as shipped:
        names = sorted(rule['alert'] for group in yaml.safe_load(shipped)['groups'] for rule in group['rules'])
    loaded = sorted(rule['name'] for group in prometheus('rules?type=alert')['groups'] for rule in group['rules'])
    assert loaded == names


def front_alerts(api):
    """The GatewayopsFrontOnEmergency alerts Prometheus has active (pending or firing)."""
    return [alert for alert in api('alerts')['alerts'] if alert['labels']['alertname'] == 'GatewayopsFrontOnEmergency']


def test_the_front_on_the_emergency_node_fires_its_alert_and_the_switch_back_clears_it(prometheus, ansible_runner):
    assert front_alerts(prometheus) == []
    try:
        rc, out = run_playbook(ansible_runner.inventory_file, FRONT_PLAYBOOK, 'nginx_upstream_etcd_active=emergency')
        assert rc == 0 and 'switched=True' in out, out[-3000:]
        # Pending first, firing after the rule's `for: 1m`.
        firing = watch(lambda: front_alerts(prometheus), lambda seen: [a['state'] for a in seen] == ['firing'], 120,
                       'GatewayopsFrontOnEmergency is not firing')
        assert firing[0]['labels']['instance'] == '%s:%d' % (address('gw01'), NODE_EXPORTER_PORT), firing
        assert firing[0]['labels']['severity'] == 'warning', firing
        assert 'failback' in firing[0]['annotations']['description'], firing
    finally:
        rc, out = run_playbook(ansible_runner.inventory_file, FRONT_PLAYBOOK, 'nginx_upstream_etcd_active=cluster')
    assert rc == 0 and 'switched=True' in out, out[-3000:]
    watch(lambda: front_alerts(prometheus), lambda seen: seen == [], 60, 'GatewayopsFrontOnEmergency is still active')
