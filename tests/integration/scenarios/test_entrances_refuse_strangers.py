"""The secure default (molecule/default: no setting at all) on the fresh stack: the controller keeps the generated
secrets private, and every way into etcd - each member, the emergency node and the gateway's etcd front - refuses a
client that speaks plain HTTP, one that has no client certificate, and one that has a certificate but does not log
in; the members and the emergency node speak TLS to their peers too, and the collection's modules without the
certificate fail naming the endpoint. Through the front: every member's certificate and the emergency node's
carry the front's name, and each APISIX node's config.yaml names the https front with the front's name as SNI and
a client certificate of its own."""

import base64
import json
import os
import ssl
import stat
import urllib.error
import urllib.request

import pytest
import yaml
from cryptography import x509

from conftest import APISIX_CONFIG, LAB_CREDENTIALS, ModuleFailed, curl, lab_host

APISIX_NODES = ('apisix01', 'apisix02')
FRONT_NAME = 'etcd-front'  # etcd_cluster_tls_front_name's default
# etcd's JSON gateway: a read of the APISIX prefix.
RANGE = '/v3/kv/range'
BODY = json.dumps({'key': base64.b64encode(b'/apisix').decode(), 'range_end': base64.b64encode(b'/apisiy').decode()})


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def entrances(members, emergency):
    """(what, https URL) of every way into etcd: the members, the emergency node, the gateway's front."""
    front = lab_host('gw01').interface('eth0').addresses[0]
    return ([(m.name, m.client_url) for m in members] + [('emergency node', emergency.client_url)]
            + [('gateway front', 'https://%s:2379' % front)])


def post(url, context=None):
    request = urllib.request.Request(url + RANGE, data=BODY.encode(), headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=5, context=context) as answer:
        return answer.status, answer.read().decode()


def tls_context(client_tls, with_certificate):
    # The front passes TLS through: it shows a member's certificate, named for the member, not for the gateway.
    context = ssl.create_default_context(cafile=client_tls['ca'])
    context.check_hostname = False
    if with_certificate:
        context.load_cert_chain(client_tls['cert'], client_tls['key'])
    return context


def test_the_generated_secrets_are_private_on_the_controller():
    assert mode(LAB_CREDENTIALS) == 0o700
    for name in ('etcd-root', 'etcd-apisix'):
        path = os.path.join(LAB_CREDENTIALS, name)
        assert mode(path) == 0o600, path
        assert len(open(path).read().strip()) >= 32
    pki = os.path.join(LAB_CREDENTIALS, 'etcd-pki')
    keys = [name for name in os.listdir(pki) if name.endswith('.key')]
    assert 'ca.key' in keys and 'client.key' in keys, keys
    for name in keys:
        assert mode(os.path.join(pki, name)) & 0o077 == 0, name


def test_plain_http_is_refused_everywhere(members, emergency):
    for what, url in entrances(members, emergency):
        # etcd answers 400 "client sent an HTTP request to an HTTPS server" (an HTTPError, a URLError).
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            post(url.replace('https://', 'http://'))
            pytest.fail('%s served plain HTTP' % what)


def test_a_client_without_a_certificate_is_refused_everywhere(members, emergency, client_tls):
    for what, url in entrances(members, emergency):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError, OSError)):
            post(url, tls_context(client_tls, with_certificate=False))
            pytest.fail('%s served a client without a certificate' % what)


def test_a_client_with_a_certificate_but_no_login_is_refused_everywhere(members, emergency, client_tls):
    for what, url in entrances(members, emergency):
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, tls_context(client_tls, with_certificate=True))
            pytest.fail('%s served an anonymous read of /apisix' % what)
        said = refused.value.read().decode()
        assert 'user name' in said or 'permission denied' in said, (what, said)


def test_the_members_and_the_emergency_node_speak_tls_to_clients_and_peers(members, emergency):
    for member in members + [emergency]:
        env = member.env
        assert all(url.startswith('https://') for url in env['ETCD_LISTEN_CLIENT_URLS'].split(',')), member.name
        assert env['ETCD_ADVERTISE_CLIENT_URLS'].startswith('https://'), member.name
        assert env['ETCD_LISTEN_PEER_URLS'].startswith('https://'), member.name
        assert env['ETCD_INITIAL_ADVERTISE_PEER_URLS'].startswith('https://'), member.name
        assert env['ETCD_CLIENT_CERT_AUTH'] == 'true' and env['ETCD_PEER_CLIENT_CERT_AUTH'] == 'true', member.name
        key = member.host.file(env['ETCD_KEY_FILE'])
        assert (key.mode, key.user) == (0o600, 'etcd'), member.name


def test_the_modules_without_the_certificate_fail_naming_the_endpoint(members, module_runner):
    member = members[0]
    with pytest.raises(ModuleFailed) as failure:
        module_runner(member.name, 'gatewayops.apisix_ha.etcd_cluster_info', endpoints=[member.client_url],
                      ca_cert=member.env['ETCD_TRUSTED_CA_FILE'])
    message = failure.value.result.get('msg', '')
    assert member.client_url in message, message


def dns_names(host, path):
    """The DNS names of the certificate at path on a lab host."""
    cert = x509.load_pem_x509_certificate(host.file(path).content_string.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_every_member_and_the_emergency_node_carry_the_front_name(members, emergency):
    # The front passes TLS through: a client that checks the front's name (the APISIX nodes) meets a member's
    # certificate, or the emergency node's after a failover.
    for member in members + [emergency]:
        assert FRONT_NAME in dns_names(member.host, member.env['ETCD_CERT_FILE']), member.name


def test_every_apisix_node_names_the_https_front_with_a_client_certificate_of_its_own():
    front = lab_host('gw01').interface('eth0').addresses[0]
    certificates = set()
    for name in APISIX_NODES:
        node = lab_host(name)
        config = yaml.safe_load(node.file(APISIX_CONFIG).content_string)
        etcd = config['deployment']['etcd']
        assert etcd['host'] == ['https://%s:2379' % front], etcd['host']
        assert etcd['user'] == 'apisix', name
        assert etcd['tls']['verify'] is True and etcd['tls']['sni'] == FRONT_NAME, etcd['tls']
        assert node.file(config['apisix']['ssl']['ssl_trusted_certificate']).is_file, name
        certificate = node.file(etcd['tls']['cert'])
        assert certificate.is_file, name
        certificates.add(certificate.sha256sum)
        key = node.file(etcd['tls']['key'])
        assert (key.mode, key.user, key.group) == (0o640, 'root', 'nogroup'), name
        # Ready: it has read its configuration from etcd through the front, with all of the above.
        assert curl(node, 'http://127.0.0.1:7085/status/ready')[0] == 200, name
    assert len(certificates) == len(APISIX_NODES), 'the APISIX nodes share a client certificate'
