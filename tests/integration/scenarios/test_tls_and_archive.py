"""TLS on (molecule/tls): clients without a certificate are refused, the modules work with one; etcd runs from
the release archive, not from Debian's package. The emergency node serves TLS like the members, its refresh takes
its snapshots over TLS. The APISIX nodes reach etcd over TLS through the gateway's front (which passes TLS through)
with client certificates of their own, checking the front's name that every member's certificate and the emergency
node's carry. A forced failover then a failback work through the front with TLS, APISIX serving and taking new
routes on the emergency node meanwhile (the settings of molecule/tls/tls-vars.yml, given to the playbooks through
GATEWAYOPS_TEST_EXTRA_VARS)."""

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from cryptography import x509

from conftest import APISIX_CONFIG, ModuleFailed, admin, curl, etcd3, lab_host, run_playbook, wait_for

APISIX_NODES = ('apisix01', 'apisix02')
FRONT_NAME = 'etcd-front'
FRONT_PORT = 2379


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


def dns_names(host, path):
    """The DNS names of the certificate at path on a lab host."""
    cert = x509.load_pem_x509_certificate(host.file(path).content_string.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_every_member_and_the_emergency_node_carry_the_front_name(members, emergency):
    for member in members + [emergency]:
        assert FRONT_NAME in dns_names(member.host, member.env['ETCD_CERT_FILE']), member.name


# --- the APISIX nodes, through the front ---------------------------------------------------------------------

def gateway_address():
    return lab_host('gw01').interface('eth0').addresses[0]


def front_health(client_tls, with_certificate):
    """GET /health through the front as an etcd client does, sending and checking the front's name."""
    context = ssl.create_default_context(cafile=client_tls['ca'])
    if with_certificate:
        context.load_cert_chain(client_tls['cert'], client_tls['key'])
    sock = context.wrap_socket(socket.create_connection((gateway_address(), FRONT_PORT), timeout=5),
                               server_hostname=FRONT_NAME)
    try:
        sock.sendall(b'GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' % FRONT_NAME.encode())
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, json.loads(answer.read())
    finally:
        sock.close()


def test_every_apisix_node_names_an_https_front_with_its_client_certificate():
    for name in APISIX_NODES:
        node = lab_host(name)
        config = yaml.safe_load(node.file(APISIX_CONFIG).content_string)
        etcd = config['deployment']['etcd']
        assert etcd['host'] == ['https://%s:%d' % (gateway_address(), FRONT_PORT)], etcd['host']
        assert etcd['tls']['verify'] is True and etcd['tls']['sni'] == FRONT_NAME, etcd['tls']
        assert node.file(config['apisix']['ssl']['ssl_trusted_certificate']).is_file
        assert node.file(etcd['tls']['cert']).is_file
        key = node.file(etcd['tls']['key'])
        assert (key.mode, key.user, key.group) == (0o640, 'root', 'nogroup'), name
        assert curl(node, 'http://127.0.0.1:7085/status/ready')[0] == 200, name


def test_a_client_without_a_certificate_is_refused_through_the_front(client_tls):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
        front_health(client_tls, with_certificate=False)
    status, answer = front_health(client_tls, with_certificate=True)
    assert status == 200 and answer['health'] == 'true', answer


def lab_route(uri_prefix):
    return {'uri': uri_prefix + '/*', 'upstream': {'type': 'roundrobin', 'nodes': {'%s:8080' % gateway_address(): 1}}}


def served_through_the_gateway(path):
    """Both APISIX nodes serve path (each reads its routes from etcd on its own), then the gateway does."""
    gateway = lab_host('gw01')
    for name in APISIX_NODES:
        address = lab_host(name).interface('eth0').addresses[0]
        if not wait_for(lambda a=address: curl(gateway, 'http://%s:9080%s' % (a, path))[0] == 200, timeout=30):
            return False
    return all(curl(gateway, 'http://127.0.0.1' + path)[0] == 200 for _attempt in range(6))


def test_a_route_written_through_the_admin_api_is_served_through_the_gateway():
    code, body = admin('apisix01', 'PUT', 'routes/tls-lab', lab_route('/tls-lab'))
    assert code in (200, 201), body
    assert served_through_the_gateway('/tls-lab/hello')


# --- failover and failback with TLS --------------------------------------------------------------------------

@pytest.fixture(scope='module')
def failed_over(ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', 'force=true')
    assert rc == 0, out[-5000:]
    assert 'failed over: the front (gw01) now sends etcd clients to the emergency node' in out, out[-3000:]
    return {'key': '/apisix/routes/tls-failover-%s' % uuid.uuid4().hex[:8]}


def test_a_forced_failover_takes_writes_on_the_emergency_node_over_tls(failed_over, emergency):
    emergency.client().put(failed_over['key'], '{"id":"tls-failover"}')


def test_apisix_serves_and_takes_a_new_route_on_the_emergency_node(failed_over, emergency):
    assert served_through_the_gateway('/tls-lab/hello'), 'the route of before the failover is not served'
    code, body = admin('apisix02', 'PUT', 'routes/tls-after-failover', lab_route('/tls-after-failover'))
    assert code in (200, 201), body
    assert emergency.client().get('/apisix/routes/tls-after-failover')[0], 'the route is not on the emergency node'
    assert served_through_the_gateway('/tls-after-failover/hello')


def test_a_failback_carries_the_outages_writes_over_tls(failed_over, ansible_runner, members):
    rc, out = run_playbook(ansible_runner.inventory_file, 'failback')
    assert rc == 0, out[-5000:]
    assert 'failed back: the front (gw01) sends etcd clients to the cluster' in out, out[-3000:]
    assert members[0].client().get(failed_over['key'])[0] == b'{"id":"tls-failover"}'
    assert members[0].client().get('/apisix/routes/tls-after-failover')[0], 'the route APISIX wrote was not carried'
    assert served_through_the_gateway('/tls-after-failover/hello')
