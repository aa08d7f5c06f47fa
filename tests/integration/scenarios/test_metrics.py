"""Monitoring (docs/monitoring.md): etcd's metrics endpoint on every member and on the emergency node - plain http on
port 2381, on the host's address and loopback only - and the gauges the collection writes for node_exporter's
textfile collector, on the hosts that know them."""

import re

import pytest

from conftest import curl, lab_host

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
