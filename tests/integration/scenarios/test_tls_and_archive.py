"""TLS on (molecule/tls): clients without a certificate are refused, the modules work with one; etcd runs from
the release archive, not from Debian's package. The emergency node serves TLS like the members, its refresh takes
its snapshots over TLS, and a forced failover then a failback work through the gateway's front with TLS (the
settings of molecule/tls/tls-vars.yml, given to the playbooks through GATEWAYOPS_TEST_EXTRA_VARS)."""

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import ModuleFailed, etcd3, run_playbook


def test_every_client_url_is_https(members):
    for member in members:
        assert member.client_url.startswith('https://'), member.env['ETCD_ADVERTISE_CLIENT_URLS']
        assert member.env['ETCD_CLIENT_CERT_AUTH'] == 'true'
        assert member.env['ETCD_INITIAL_ADVERTISE_PEER_URLS'].startswith('https://')


def test_plain_http_is_refused(members):
    url = members[0].client_url.replace('https://', 'http://') + '/health'
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(url, timeout=5).read()


def test_client_without_certificate_is_refused(members, client_tls):
    context = ssl.create_default_context(cafile=client_tls['ca'])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(members[0].client_url + '/health', timeout=5, context=context).read()


def test_grpc_client_without_certificate_is_refused(members, client_tls):
    client = etcd3.client(host=members[0].address, port=members[0].port, ca_cert=client_tls['ca'], timeout=5)
    with pytest.raises(Exception):
        client.get('/any')


def test_client_with_certificate_is_served(members, client_tls):
    context = ssl.create_default_context(cafile=client_tls['ca'])
    context.load_cert_chain(client_tls['cert'], client_tls['key'])
    answer = json.loads(urllib.request.urlopen(members[0].client_url + '/health', timeout=5, context=context).read())
    assert answer['health'] == 'true'


def test_modules_work_with_the_certificate(members, module_runner):
    member = members[0]
    # The member's own certificate is also a client certificate (the role issues it for both uses).
    info = module_runner(member.name, 'gatewayops.apisix_ha.etcd_cluster_info', endpoints=[member.client_url],
                         ca_cert=member.env['ETCD_TRUSTED_CA_FILE'], client_cert=member.env['ETCD_CERT_FILE'],
                         client_key=member.env['ETCD_KEY_FILE'])
    assert info['healthy'], info
    assert sorted(m['name'] for m in info['members']) == sorted(m.name for m in members)


def test_modules_without_the_certificate_fail_clearly(members, module_runner):
    member = members[0]
    with pytest.raises(ModuleFailed) as failure:
        module_runner(member.name, 'gatewayops.apisix_ha.etcd_cluster_info', endpoints=[member.client_url],
                      ca_cert=member.env['ETCD_TRUSTED_CA_FILE'])
    message = failure.value.result.get('msg', '')
    assert member.client_url in message, message


def test_etcd_runs_from_the_release_archive(members):
    for member in members:
        assert not member.host.package('etcd-server').is_installed, member.name
        unit = member.host.file('/etc/systemd/system/etcd.service').content_string
        assert 'ExecStart=/usr/local/bin/etcd' in unit, unit
        assert member.host.run('/usr/local/bin/etcd --version').rc == 0


# --- the emergency node and the failover with TLS ------------------------------------------------------------

def test_the_emergency_node_serves_tls_like_the_members(emergency):
    assert emergency.client_url.startswith('https://'), emergency.env['ETCD_ADVERTISE_CLIENT_URLS']
    assert emergency.env['ETCD_CLIENT_CERT_AUTH'] == 'true'
    assert emergency.env['ETCD_PEER_CLIENT_CERT_AUTH'] == 'true'
    assert emergency.env['ETCD_LISTEN_PEER_URLS'].startswith('https://')
    assert all(url.startswith('https://') for url in emergency.env['ETCD_LISTEN_CLIENT_URLS'].split(','))
    key = emergency.host.file(emergency.env['ETCD_KEY_FILE'])
    assert key.mode == 0o600 and key.user == 'etcd'


def test_the_emergency_node_refuses_plain_http_and_clients_without_a_certificate(emergency, client_tls):
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(emergency.client_url.replace('https://', 'http://') + '/health', timeout=5).read()
    context = ssl.create_default_context(cafile=client_tls['ca'])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(emergency.client_url + '/health', timeout=5, context=context).read()
    context.load_cert_chain(client_tls['cert'], client_tls['key'])
    answer = json.loads(urllib.request.urlopen(emergency.client_url + '/health', timeout=5, context=context).read())
    assert answer['health'] == 'true'


def test_the_emergency_refresh_took_its_snapshot_over_tls(emergency):
    state = json.loads(emergency.host.file('/var/lib/etcd-emergency/state.json').content_string)
    assert state['last_error'] is None, state
    assert isinstance(state['revision'], int) and state['sha256'], state
    assert state['source_endpoint'].startswith('https://'), state


def test_a_forced_failover_then_a_failback_carry_a_write_over_tls(ansible_runner, members, emergency):
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    assert rc == 0, out[-5000:]
    assert 'failed over: the front (gw01) now sends etcd clients to the emergency node' in out, out[-3000:]
    key = '/apisix/routes/tls-failover-%s' % uuid.uuid4().hex[:8]
    emergency.client().put(key, '{"id":"tls-failover"}')
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc == 0, out[-5000:]
    assert 'failed back: the front (gw01) sends etcd clients to the cluster' in out, out[-3000:]
    assert members[0].client().get(key)[0] == b'{"id":"tls-failover"}'
