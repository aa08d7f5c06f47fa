"""etcd through its v3 JSON gateway, and the start-up check of the real CLI."""

import base64
import http.client
import json
import ssl
import sys
import threading
import urllib.parse

from .common import ETCD_DIRS, ConfigError, die, log


class EtcdError(Exception):
    pass


class _HTTPSConnection(http.client.HTTPSConnection):
    """https with the server name APISIX uses: deployment.etcd.tls.sni, sent and verified, else the URL's host."""

    def __init__(self, host, port, server_name, context, timeout):
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def tls_context(tls):
    """The client side of etcd's TLS from conf['etcd_tls']: the CA (or the system's), the client certificate, and
    verification of the chain and of the name unless verify is false."""
    context = ssl.create_default_context(cafile=tls['ca'])
    if not tls['verify']:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls['cert']:
        context.load_cert_chain(tls['cert'], tls['key'])
    return context


class Etcd:
    """Client of the etcd v3 JSON gateway: one host at a time, the next one when it fails."""

    def __init__(self, conf):
        self.hosts = list(conf['etcd_hosts'])
        self.prefix = conf['etcd_prefix']
        self.timeout = conf['etcd_timeout']
        self.user, self.password = conf['etcd_user'], conf['etcd_password']
        self.tls = conf['etcd_tls']
        self.context = None
        if any(host.startswith('https://') for host in self.hosts):
            try:
                self.context = tls_context(self.tls)
            except (OSError, ValueError) as error:
                raise ConfigError('cannot load the TLS files of deployment.etcd.tls and apisix.ssl.'
                                  'ssl_trusted_certificate: %s' % error)
        self.current = 0
        self.token = None
        self.lock = threading.Lock()

    def raw_request(self, host, method, path, body=None, headers=None, timeout=None):
        parsed = urllib.parse.urlsplit(host)
        timeout = self.timeout if timeout is None else timeout
        if parsed.scheme == 'https':
            conn = _HTTPSConnection(parsed.hostname, parsed.port or 2379, self.tls['sni'] or parsed.hostname,
                                    self.context, timeout)
        else:
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 2379, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            all_headers = {'Content-Type': 'application/json'}
            all_headers.update(headers or {})
            conn.request(method, path, body=data, headers=all_headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def authenticate(self, host):
        status, data = self.raw_request(host, 'POST', '/v3/auth/authenticate',
                                        {'name': self.user, 'password': self.password})
        try:
            reply = json.loads(data)
        except ValueError:
            reply = {}
        if status != 200 or 'token' not in reply:
            raise EtcdError('etcd authentication as %r failed on %s: %s' % (self.user, host, data[:200]))
        return reply['token']

    def call(self, path, body, timeout=None):
        """POST body to the first host that answers; returns the decoded reply."""
        errors = []
        for attempt in range(len(self.hosts)):
            index = (self.current + attempt) % len(self.hosts)
            host = self.hosts[index]
            try:
                reply = self._call_host(host, path, body, timeout)
                self.current = index
                return reply
            except (OSError, http.client.HTTPException, EtcdError, ValueError) as error:
                errors.append('%s: %s' % (host, error))
                with self.lock:
                    self.token = None
        raise EtcdError('; '.join(errors))

    def _call_host(self, host, path, body, timeout):
        for retry in (0, 1):
            headers = {}
            if self.user and self.password:
                with self.lock:
                    token = self.token
                if token is None:
                    token = self.authenticate(host)
                    with self.lock:
                        self.token = token
                headers['Authorization'] = token
            status, data = self.raw_request(host, 'POST', path, body, headers, timeout)
            try:
                reply = json.loads(data) if data else {}
            except ValueError:
                raise EtcdError('HTTP %d, not JSON: %r' % (status, data[:200]))
            if status == 200:
                return reply
            message = reply.get('error') or reply.get('message') or data[:200]
            if retry == 0 and self.user and ('token' in str(message) or status == 401):
                with self.lock:
                    self.token = None
                continue
            raise EtcdError('HTTP %d: %s' % (status, message))
        raise EtcdError('authentication keeps failing')

    @staticmethod
    def b64(text):
        return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()

    def range_prefix(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self.call('/v3/kv/range', {'key': self.b64(prefix), 'range_end': self.b64(end)})
        kvs = []
        for kv in reply.get('kvs', []):
            kvs.append({'key': base64.b64decode(kv['key']).decode(),
                        'value': base64.b64decode(kv.get('value', '')).decode(errors='replace'),
                        'create_revision': int(kv.get('create_revision', 0)),
                        'mod_revision': int(kv.get('mod_revision', 0))})
        return reply.get('header', {}), kvs

    def get(self, key):
        reply = self.call('/v3/kv/range', {'key': self.b64(key)})
        for kv in reply.get('kvs', []):
            return {'key': key, 'value': base64.b64decode(kv.get('value', '')).decode(errors='replace'),
                    'create_revision': int(kv.get('create_revision', 0)),
                    'mod_revision': int(kv.get('mod_revision', 0))}
        return None

    def put(self, key, value):
        return self.call('/v3/kv/put', {'key': self.b64(key), 'value': self.b64(value), 'prev_kv': True})

    def delete(self, key):
        reply = self.call('/v3/kv/deleterange', {'key': self.b64(key)})
        return int(reply.get('deleted', 0))


def etcd_startup_check(conf):
    """What `apisix start` does before anything else: the etcd hosts' health and the init_dir writes."""
    try:
        client = Etcd(conf)
    except ConfigError as error:
        die(str(error))
    healthy = []
    for host in conf['etcd_hosts']:
        answer, error = None, None
        for retry in range(max(conf['etcd_startup_retry'], 1)):
            try:
                status, data = client.raw_request(host, 'GET', '/version', timeout=3)
                answer = json.loads(data)
                break
            except (OSError, http.client.HTTPException, ValueError) as err:
                error = err
                print("Warning! Request etcd endpoint '%s/version' error, %s, retry time=%d" % (host, err, retry + 1))
        if answer is None:
            log('warn', "request etcd endpoint '%s/version' error, %s" % (host, error))
            sys.stderr.write("request etcd endpoint '%s/version' error, %s\n" % (host, error))
            continue
        cluster_version = str(answer.get('etcdcluster', ''))
        if not cluster_version:
            die('got malformed version message: "%s" from etcd "%s/version"' % (answer, host))
        parts = [int(p) for p in cluster_version.split('.')[:2] if p.isdigit()]
        if parts < [3, 4]:
            die('etcd cluster version %s is less than the required version 3.4.0, please upgrade your etcd cluster'
                % cluster_version)
        healthy.append(host)
    if not healthy:
        die('all etcd nodes are unavailable')
    if len(healthy) * 100.0 / len(conf['etcd_hosts']) <= 50:
        die('the etcd cluster needs at least 50%% and above healthy nodes (%d of %d answer: %s)'
            % (len(healthy), len(conf['etcd_hosts']), ', '.join(healthy)))
    errors = []
    for host in healthy:
        client.hosts = [host]
        client.token = None
        try:
            for name in ETCD_DIRS:
                client.put(conf['etcd_prefix'] + name + '/', 'init_dir')
            return
        except EtcdError as error:
            errors.append(str(error))
    die('none of the configured etcd works well: %s' % '; '.join(errors))
