"""A running plain cluster moved to TLS and authentication (playbooks/secure_migration.yml, docs/secure-migration.md).

Runs on a plain stack (site.yml with etcd_cluster_auth and etcd_cluster_tls false) and leaves it secure: the last
test of scenario plain. site.yml with the secure settings is refused first, changing nothing; then the migration
runs under a writer going through the members' http client URLs. 3 min 45 s to 5 min in the lab (Debian 13),
half of it the migration's site.yml part.
"""

import json
import os
import secrets
import shlex

import pytest
import yaml

from conftest import LabWriter, lab_host, read_writer_log, run_playbook, start_playbook

SEED = 100
STACK_PLAY = 'PLAY [Gather the facts of every host of the stack]'


@pytest.fixture(scope='module')
def secure(tmp_path_factory):
    """The secure settings in a vars file, as an operator keeps them: generated certificates in a scratch dir."""
    scratch = tmp_path_factory.mktemp('secure-migration')
    settings = dict(etcd_cluster_auth=True, etcd_cluster_tls=True, etcd_cluster_tls_generate=True,
                    etcd_cluster_root_password=secrets.token_hex(12), etcd_cluster_apisix_password=secrets.token_hex(12),
                    etcd_cluster_tls_local_dir=str(scratch / 'pki'))
    path = scratch / 'secure-vars.yml'
    path.write_text(yaml.safe_dump(settings))
    return dict(settings, path=str(path), scratch=scratch)


def member_state(etcd_hosts):
    """What a refusal must leave as it was: each member's etcd.conf, /etc/etcd, etcd's start time, the member list."""
    return dict((name, host.run('md5sum /etc/etcd/etcd.conf; ls -la /etc/etcd; '
                                'systemctl show -p ActiveEnterTimestamp etcd; '
                                'ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 member list').stdout)
                for name, host in etcd_hosts.items())


def etcdctl(host, *args, tls=True, user=None):
    """etcdctl on a member against its own loopback client URL, as the migration left it."""
    cmd = ['ETCDCTL_API=3', 'etcdctl', '--endpoints', 'https://127.0.0.1:2379']
    if tls:
        cmd += ['--cacert', '/etc/etcd/pki/ca.crt', '--cert', '/etc/etcd/pki/member.crt',
                '--key', '/etc/etcd/pki/member.key']
    if user:
        cmd += ['--user', shlex.quote(user)]
    return host.run(' '.join(cmd + list(args)))


def test_site_with_the_secure_settings_is_refused_on_a_plain_cluster(ansible_runner, etcd_hosts, secure):
    before = member_state(etcd_hosts)
    rc, out = run_playbook(ansible_runner.inventory_file, 'site', '@' + secure['path'])
    assert rc != 0, out[-3000:]
    assert 'Refused, nothing was changed: etcd01 (peer http, client http)' in out, out[-3000:]
    assert 'secure_migration.yml' in out and 'etcd_cluster_auth: false and etcd_cluster_tls: false' in out, out[-3000:]
    assert member_state(etcd_hosts) == before
    assert not os.path.exists(secure['etcd_cluster_tls_local_dir']), 'the refusal generated certificates'


def test_secure_migration_keeps_every_key_and_locks_the_cluster(ansible_runner, etcd_hosts, secure):
    etcd01 = etcd_hosts['etcd01']
    seeded = etcd01.run('for i in $(seq 1 %d); do ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 '
                        'put /secure-migration/seed-$i v$i >/dev/null || exit 1; done' % SEED)
    assert seeded.rc == 0, seeded.stderr
    # A route written as an operator does, through an APISIX node's admin API (etcd through the gateway's front).
    apisix01 = lab_host('apisix01')
    admin_key = yaml.safe_load(apisix01.file('/usr/local/apisix/conf/config.yaml').content_string)[
        'deployment']['admin']['admin_key'][0]['key']
    route = json.dumps({'uri': '/secure-migration/*', 'upstream': {'type': 'roundrobin', 'nodes': {'127.0.0.1:8080': 1}}})
    put = apisix01.run('curl -s -o /dev/null -w %%{http_code} -X PUT http://127.0.0.1:9180/apisix/admin/routes/secmig '
                       '-H %s -H "Content-Type: application/json" -d %s'
                       % (shlex.quote('X-API-KEY: ' + admin_key), shlex.quote(route)))
    assert put.stdout in ('200', '201'), put.stdout + put.stderr

    # The writer goes through the http client URLs, which every member serves until site.yml's part.
    plain_urls = sorted(host.run("grep ^ETCD_ADVERTISE_CLIENT_URLS= /etc/etcd/etcd.conf | cut -d'\"' -f2").stdout.strip()
                        for host in etcd_hosts.values())
    log = secure['scratch'] / 'writer.log'
    with LabWriter(plain_urls, log, '--prefix', '/secure-migration/w-', '--interval', '0.05', '--max-seconds', '900',
                   '--retry-seconds', '10', secure=False) as writer:
        run = start_playbook(ansible_runner.inventory_file, 'secure_migration', '@' + secure['path'])
        out = []
        for line in run.stdout:
            out.append(line)
            if line.startswith(STACK_PLAY):
                writer.stop()
        rc, out = run.wait(), ''.join(out)
    assert rc == 0, out[-4000:]
    acked, failed, summary = read_writer_log(str(log))
    assert summary and not failed and len(acked) > 100, (summary, failed[:5])

    root = 'root:' + secure['etcd_cluster_root_password']
    expected = set(acked) | set('/secure-migration/seed-%d' % i for i in range(1, SEED + 1)) | {'/apisix/routes/secmig'}
    for name, host in sorted(etcd_hosts.items()):
        conf = host.file('/etc/etcd/etcd.conf').content_string
        # Every client and peer URL (the metrics URLs are plain http by design: no keys or values there).
        urls = '\n'.join(line for line in conf.splitlines() if not line.startswith('ETCD_LISTEN_METRICS_URLS='))
        assert 'http://' not in urls, '%s still has a plain URL:\n%s' % (name, conf)
        # Each member's own copy (serializable reads), every key there.
        keys = set(etcdctl(host, 'get', '--consistency=s', '--prefix', '/', '--keys-only', user=root).stdout.split())
        assert not expected - keys, '%s lacks %d keys, e.g. %s' % (name, len(expected - keys), sorted(expected - keys)[:5])
        anonymous = etcdctl(host, 'get', '/apisix/routes/secmig')
        assert anonymous.rc != 0 and 'permission denied' in anonymous.stderr, anonymous.stdout + anonymous.stderr
        no_cert = host.run('curl -s -m 5 --cacert /etc/etcd/pki/ca.crt -X POST https://127.0.0.1:2379/v3/kv/range '
                           '-d \'{"key": "L2FwaXNpeC9yb3V0ZXMvc2VjbWln"}\'')
        assert no_cert.rc != 0, 'a client without certificate was answered: %s' % no_cert.stdout
        plain = host.run('curl -s -m 5 http://127.0.0.1:2379/version')
        assert plain.rc != 0 or 'etcdserver' not in plain.stdout, 'plain http still answered: %s' % plain.stdout
    members = etcdctl(etcd01, 'member', 'list', '-w', 'json', user=root)
    peers = [url for m in json.loads(members.stdout)['members'] for url in m['peerURLs']]
    assert len(peers) == 3 and all(url.startswith('https://') for url in peers), peers
    health = etcdctl(etcd01, 'endpoint', 'health', '--cluster', user=root)
    assert health.rc == 0 and health.stdout.count('is healthy') == 3, health.stdout + health.stderr
    config = apisix01.file('/usr/local/apisix/conf/config.yaml').content_string
    assert 'user: apisix' in config and secure['etcd_cluster_apisix_password'] in config
