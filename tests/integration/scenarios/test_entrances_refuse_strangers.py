"""The secure default (molecule/secure: no setting at all) on the fresh stack: the controller keeps the generated
secrets private, and every way into etcd - each member, the emergency node and the gateway's etcd front - refuses a
client that speaks plain HTTP, one that has no client certificate, and one that has a certificate but does not log
in."""

import base64
import json
import os
import ssl
import stat
import urllib.error
import urllib.request

import pytest

from conftest import LAB_CREDENTIALS, lab_host

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


def test_the_apisix_nodes_reach_etcd_over_tls_as_the_apisix_user():
    for name in ('apisix01', 'apisix02'):
        config = lab_host(name).file('/usr/local/apisix/conf/config.yaml').content_string
        assert 'https://' in config and 'user: apisix' in config, name
