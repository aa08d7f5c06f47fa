# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd client's standard-library transport (stdlib_open_url), which host programs use where Ansible is not
installed: against a real https server on 127.0.0.1 that requires a client certificate of a throw-away CA (made with
openssl here) and replays the recorded answers of etcd 3.4.23 and 3.5.16; and the client loaded as a host loads it,
from a copy of the package with no Ansible importable."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_client as etcd_client

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MODULE_UTILS = os.path.join(REPO, 'plugins', 'module_utils')
TOKEN = 'recorded-token.42'


def load_fixture(version, name):
    """A recorded answer (tests/unit/fixtures/etcd/<version>/<name>.json: status, body), as the conftest's gateway
    replays it; read here by path, as another directory's conftest may be the one named conftest."""
    with open(os.path.join(REPO, 'tests', 'unit', 'fixtures', 'etcd', version, name + '.json')) as handle:
        return json.load(handle)


if not shutil.which('openssl'):
    pytest.skip('openssl not found: no throw-away CA for the https tests', allow_module_level=True)


def openssl(*args):
    subprocess.run(('openssl',) + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def issue(directory, name, ca, extension):
    """<name>.crt and <name>.key, signed by ``ca`` (its .crt and .key) with the x509v3 ``extension`` lines."""
    base = os.path.join(directory, name)
    with open(base + '.ext', 'w') as handle:
        handle.write(extension)
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', base + '.key', '-out', base + '.csr', '-subj', '/CN=' + name)
    openssl('x509', '-req', '-in', base + '.csr', '-CA', ca + '.crt', '-CAkey', ca + '.key', '-CAcreateserial',
            '-days', '1', '-out', base + '.crt', '-extfile', base + '.ext')
    return base + '.crt', base + '.key'


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('pki'))
    cas = {}
    for name in ('ca', 'other-ca'):
        base = os.path.join(directory, name)
        openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
                '-keyout', base + '.key', '-out', base + '.crt', '-subj', '/CN=' + name)
        cas[name] = base
    return dict(ca=cas['ca'] + '.crt', other_ca=cas['other-ca'] + '.crt',
                server=issue(directory, 'member', cas['ca'], 'subjectAltName=IP:127.0.0.1,DNS:localhost\n'
                             'extendedKeyUsage=serverAuth\n'),
                client=issue(directory, 'root', cas['ca'], 'extendedKeyUsage=clientAuth\n'),
                stranger=issue(directory, 'stranger', cas['other-ca'], 'extendedKeyUsage=clientAuth\n'))


class RecordedGateway(http.server.BaseHTTPRequestHandler):
    """Answers as the recorded etcd: a login gives TOKEN; the requests but the status need it (else etcd's recorded
    refusal)."""

    ROUTES = {'/v3/auth/authenticate': 'auth_authenticate', '/v3/maintenance/status': 'status_m1',
              '/v3/maintenance/alarm': 'alarm_list_nospace', '/v3/kv/range': 'range_missing'}

    def log_message(self, *args):
        pass

    def _send(self, status, text):
        data = text.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.seen.append(('GET', self.path, None, self.headers.get('Authorization')))
        self._send(302 if self.path == '/moved' else 200, '{"health":"true","reason":""}')

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', 0))) or b'{}')
        self.server.seen.append(('POST', self.path, body, self.headers.get('Authorization')))
        name = self.ROUTES.get(self.path, 'unknown_path')
        if name not in ('auth_authenticate', 'status_m1') and self.headers.get('Authorization') != TOKEN:
            name = 'auth_no_token_defragment'
        record = load_fixture(self.server.version, name)
        text = record['body']
        if name == 'auth_authenticate':
            text = json.dumps(dict(json.loads(text), token=TOKEN))
        self._send(record['status'], text)


@pytest.fixture
def server(pki, version):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki['server'])
    context.load_verify_locations(pki['ca'])
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), RecordedGateway)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.seen, httpd.version = [], version
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server, host='127.0.0.1'):
    return 'https://%s:%d' % (host, server.server_address[1])


def client(server, pki, **options):
    settings = dict(ca_cert=pki['ca'], client_cert=pki['client'][0], client_key=pki['client'][1], user='root',
                    password='s3cret', timeout=5, transport=etcd_client.stdlib_open_url)
    settings.update(options)
    return etcd_client.EtcdClient([url(server)], **settings)


def test_a_client_certificate_a_login_and_the_token_on_each_request(server, pki):
    found = client(server, pki)
    status = found.status()
    recorded = json.loads(load_fixture(server.version, 'status_m1')['body'])
    assert status['db_size'] == int(recorded['dbSize']) and status['leader'] == int(recorded['leader'])
    alarms = found.alarms()
    assert [a['alarm'] for a in alarms] == ['NOSPACE']
    # The status is asked without a token first (etcd needs none for it), then the alarm list with the one got.
    assert [(m, p, auth) for m, p, _b, auth in server.seen] == [
        ('POST', '/v3/maintenance/status', None), ('POST', '/v3/auth/authenticate', None),
        ('POST', '/v3/maintenance/alarm', TOKEN)]
    assert server.seen[1][2] == {'name': 'root', 'password': 's3cret'}


def test_an_error_answer_is_etcds_error(server, pki):
    with pytest.raises(etcd_client.EtcdAuthError) as error:
        client(server, pki, user=None).alarms()
    recorded = json.loads(load_fixture(server.version, 'auth_no_token_defragment')['body'])
    assert error.value.status == 500 and error.value.grpc_message == recorded['message']


def test_health_is_read_over_https(server, pki):
    assert client(server, pki).health(url(server)) == (True, '')


def test_a_redirect_is_not_followed(server, pki):
    status, text = client(server, pki)._open(url(server) + '/moved', 'GET', None, {})
    assert status == 302 and [p for _m, p, _b, _a in server.seen] == ['/moved']


@pytest.mark.parametrize('options, words', [
    (dict(client_cert=None, client_key=None), 'TLS error'),
    (lambda pki: dict(client_cert=pki['stranger'][0], client_key=pki['stranger'][1]), 'TLS error'),
    (lambda pki: dict(ca_cert=pki['other_ca']), 'CERTIFICATE_VERIFY_FAILED'),
], ids=['no client certificate', 'a stranger certificate', 'a server the CA did not sign'])
def test_what_tls_refuses_is_a_tls_error(server, pki, options, words):
    options = options(pki) if callable(options) else options
    with pytest.raises(etcd_client.EtcdTLSError) as error:
        client(server, pki, **options).status()
    assert words in str(error.value)
    assert not [s for s in server.seen if s[1] == '/v3/maintenance/status']


def test_validate_certs_false_accepts_a_server_no_ca_signed(server, pki):
    assert client(server, pki, ca_cert=pki['other_ca'], validate_certs=False).status()['db_size'] > 0


def test_without_ansible_the_installed_package_uses_the_standard_library(server, pki, tmp_path):
    """The files a role installs (package gatewayops_etcd), imported by a python3 where Ansible cannot be imported."""
    package = tmp_path / 'gatewayops_etcd'
    package.mkdir()
    (package / '__init__.py').write_text('')
    for name in ('_actions.py', '_etcd_client.py', '_etcd_cluster_view.py', '_etcd_defrag.py', '_etcd_leadership.py',
                 '_file_tx.py', '_textfile_metrics.py'):
        shutil.copy(os.path.join(MODULE_UTILS, name), str(package / name))
    script = '''
import json, sys
class NoAnsible(object):
    def find_spec(self, name, path=None, target=None):
        if name == 'ansible' or name.startswith(('ansible.', 'ansible_collections')):
            raise ImportError('no ansible on this host')
sys.meta_path.insert(0, NoAnsible())
sys.path.insert(0, sys.argv[1])
from gatewayops_etcd import _etcd_client, _etcd_defrag
client = _etcd_client.EtcdClient([sys.argv[2]], ca_cert=sys.argv[3], client_cert=sys.argv[4], client_key=sys.argv[5],
                                 user='root', password='s3cret', timeout=5)
print(json.dumps(dict(has_ansible=_etcd_client.HAS_ANSIBLE,
                      stdlib=_etcd_client.open_url is _etcd_client.stdlib_open_url,
                      alarms=client.alarms(), defrag=_etcd_defrag.Defragmentation.__name__)))
'''
    done = subprocess.run([sys.executable, '-c', script, str(tmp_path), url(server), pki['ca'], pki['client'][0],
                           pki['client'][1]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=''), check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found['has_ansible'] is False and found['stdlib'] is True
    assert [a['alarm'] for a in found['alarms']] == ['NOSPACE'] and found['defrag'] == 'Defragmentation'
