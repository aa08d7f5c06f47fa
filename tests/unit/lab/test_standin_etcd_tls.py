# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's APISIX stand-in (tests/lab/apisix_standin) reaches etcd over TLS as APISIX does: https hosts,
deployment.etcd.tls {cert, key, verify, sni}, the CA from apisix.ssl.ssl_trusted_certificate, the server's name
checked against sni (else the URL's host). Against a real local TLS server requiring client certificates, with a
throw-away CA made here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import sys
import tempfile
import threading

import pytest
import yaml

cryptography = pytest.importorskip('cryptography')
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

# The stand-in logs under its home: a private one, set before it is imported.
os.environ.setdefault('APISIX_STANDIN_HOME', tempfile.mkdtemp(prefix='standin-home.'))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'lab', 'apisix_standin'))

from standin.common import ConfigError  # noqa: E402
from standin.config import load_config  # noqa: E402
from standin.etcd import Etcd, EtcdError, etcd_startup_check  # noqa: E402

FRONT = 'etcd-front'


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path, data):
    with open(path, 'wb') as handle:
        handle.write(data)
    return path


class _CA:
    """A CA on disk (ca.crt) that issues server and client certificates (<name>.crt, <name>.key)."""

    def __init__(self, directory, name='test CA'):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.path = _write(os.path.join(directory, name.replace(' ', '-') + '.crt'),
                           self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name, dns_names=(), ip_addresses=(), server=True):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server
                       else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        sans = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = _write(os.path.join(self.dir, name + '.crt'), cert.public_bytes(serialization.Encoding.PEM))
        key_path = _write(os.path.join(self.dir, name + '.key'), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return cert_path, key_path


class _EtcdHandler(http.server.BaseHTTPRequestHandler):
    """Just enough of etcd's JSON gateway: /version and the KV calls, each answered with a header."""

    def log_message(self, *args):
        pass

    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer({'etcdserver': '3.5.16', 'etcdcluster': '3.5.0'})

    def do_POST(self):
        length = int(self.headers.get('Content-Length', 0))
        self.server.requests.append((self.path, json.loads(self.rfile.read(length) or b'{}')))
        self._answer({'header': {'cluster_id': '1', 'revision': '2'}})


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('pki'))
    ca = _CA(directory)
    server = ca.issue('member', dns_names=[FRONT, 'localhost'])
    client = ca.issue('apisix01', server=False)
    other_ca = _CA(directory, 'other CA')
    stranger = other_ca.issue('stranger', server=False)
    return {'dir': directory, 'ca': ca.path, 'server': server, 'client': client, 'other_ca': other_ca.path,
            'stranger': stranger}


@pytest.fixture(scope='module')
def etcd_server(pki):
    """An https etcd on 127.0.0.1 whose certificate names only etcd-front and localhost (like a member behind the
    front, reached at an address its certificate does not carry), requiring a client certificate of the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki['server'])
    context.load_verify_locations(pki['ca'])
    context.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _EtcdHandler)
    server.requests = []
    server.server_names = []
    context.sni_callback = lambda sock, name, ctx: server.server_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _config(tmp_path, hosts, tls=None, trusted=None):
    raw = {'deployment': {'etcd': {'host': hosts, 'prefix': '/apisix', 'timeout': 5}}}
    if tls is not None:
        raw['deployment']['etcd']['tls'] = tls
    if trusted is not None:
        raw['apisix'] = {'ssl': {'ssl_trusted_certificate': trusted}}
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(raw))
    return load_config(str(path))


def _url(server, host='127.0.0.1'):
    return 'https://%s:%d' % (host, server.server_address[1])


def _tls(pki, **overrides):
    tls = {'cert': pki['client'][0], 'key': pki['client'][1], 'verify': True, 'sni': FRONT}
    tls.update(overrides)
    return {k: v for k, v in tls.items() if v is not None}


def test_https_hosts_are_accepted_with_the_keys_apisix_reads(tmp_path, pki):
    conf = _config(tmp_path, ['https://10.0.0.1:2379'], _tls(pki), pki['ca'])
    assert conf['etcd_hosts'] == ['https://10.0.0.1:2379']
    assert conf['etcd_tls'] == {'verify': True, 'cert': pki['client'][0], 'key': pki['client'][1], 'sni': FRONT,
                                'ca': pki['ca']}


def test_without_a_tls_section_apisix_verifies_with_the_system_cas(tmp_path):
    conf = _config(tmp_path, ['https://10.0.0.1:2379'])
    assert conf['etcd_tls'] == {'verify': True, 'cert': None, 'key': None, 'sni': None, 'ca': None}


@pytest.mark.parametrize('what', ['cert', 'key', 'ca'])
def test_a_missing_file_is_a_clear_startup_error(tmp_path, pki, what):
    missing = str(tmp_path / 'nowhere.pem')
    tls = _tls(pki, **({what: missing} if what != 'ca' else {}))
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, ['https://10.0.0.1:2379'], tls, missing if what == 'ca' else pki['ca'])
    assert missing in str(error.value) and "doesn't exist" in str(error.value)
    key = 'apisix.ssl.ssl_trusted_certificate' if what == 'ca' else 'deployment.etcd.tls.' + what
    assert key in str(error.value)


def test_a_certificate_without_its_key_is_refused(tmp_path, pki):
    with pytest.raises(ConfigError, match='deployment.etcd.tls.key is required'):
        _config(tmp_path, ['https://10.0.0.1:2379'], _tls(pki, key=None), pki['ca'])


def test_a_key_that_is_not_one_is_a_clear_error(tmp_path, pki):
    conf = _config(tmp_path, ['https://10.0.0.1:2379'], _tls(pki, key=pki['ca']), pki['ca'])
    with pytest.raises(ConfigError, match='cannot load the TLS files'):
        Etcd(conf)


def test_the_client_certificate_and_the_sni_reach_etcd(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki), pki['ca'])
    client = Etcd(conf)
    client.put('/apisix/routes/1', '{"uri": "/"}')
    assert etcd_server.requests[-1][0] == '/v3/kv/put'
    assert etcd_server.server_names[-1] == FRONT


def test_the_start_up_check_works_over_tls(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki), pki['ca'])
    etcd_startup_check(conf)
    assert etcd_server.requests[-1][1]['value']


def test_without_sni_the_urls_host_is_checked_and_fails(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki, sni=None), pki['ca'])
    with pytest.raises(EtcdError, match='127.0.0.1'):
        Etcd(conf).put('/apisix/routes/1', '{}')


def test_without_sni_a_host_name_the_certificate_carries_passes(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server, 'localhost')], _tls(pki, sni=None), pki['ca'])
    Etcd(conf).put('/apisix/routes/1', '{}')
    assert etcd_server.server_names[-1] == 'localhost'


def test_an_sni_the_certificate_does_not_carry_fails(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki, sni='other-front'), pki['ca'])
    with pytest.raises(EtcdError, match='other-front|match|CERTIFICATE_VERIFY_FAILED'):
        Etcd(conf).put('/apisix/routes/1', '{}')


def test_a_server_of_another_ca_is_refused(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki), pki['other_ca'])
    with pytest.raises(EtcdError, match='CERTIFICATE_VERIFY_FAILED'):
        Etcd(conf).put('/apisix/routes/1', '{}')


def test_verify_false_accepts_any_server_certificate(tmp_path, pki, etcd_server):
    conf = _config(tmp_path, [_url(etcd_server)], _tls(pki, sni=None, verify=False), pki['other_ca'])
    Etcd(conf).put('/apisix/routes/1', '{}')


@pytest.mark.parametrize('client', [None, 'stranger'])
def test_etcd_refuses_a_client_without_a_certificate_of_its_ca(tmp_path, pki, etcd_server, client):
    tls = _tls(pki, cert=None, key=None) if client is None else _tls(pki, cert=pki[client][0], key=pki[client][1])
    conf = _config(tmp_path, [_url(etcd_server)], tls, pki['ca'])
    with pytest.raises(EtcdError):
        Etcd(conf).put('/apisix/routes/1', '{}')
