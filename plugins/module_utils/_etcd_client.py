# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The one etcd client of the collection.

It speaks the v3 JSON gateway (grpc-gateway) that every etcd 3.4+ serves on its client port:
POST JSON to /v3/..., bytes fields in base64, 64-bit integers as decimal strings, fields that are
zero/false/empty left out of the answer. Only the standard library and ansible.module_utils are used,
because this runs on the managed hosts; where Ansible is not installed (a host program of the roles imports this
file from the package installed beside it) the standard library alone: stdlib_open_url is the transport then.

Everything returned is normalised to plain Python types: member and cluster IDs are ints
(format_id() gives the 16-hex form etcdctl prints), missing zero/false fields are filled in.

Checked against real etcd 3.4.23 and 3.5.16 gateways, whose answers the repository's unit tests replay:
https://github.com/gatewayops/apisix_ha/tree/main/tests/unit/fixtures/etcd
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl

try:
    from ansible.module_utils.urls import open_url, ConnectionError as UrlsConnectionError, SSLValidationError
    from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
    HAS_ANSIBLE = True
except ImportError:
    # A host program (roles/etcd_cluster/files/etcd_maintenance.py) on a host without Ansible: the standard
    # library's transport below, and the few converters this file needs.
    HAS_ANSIBLE = False

    class UrlsConnectionError(Exception):
        """Never raised without ansible.module_utils.urls."""

    class SSLValidationError(Exception):
        """Never raised without ansible.module_utils.urls."""

    def to_bytes(value, errors='strict'):
        return value if isinstance(value, bytes) else str(value).encode('utf-8', 'surrogateescape')

    def to_text(value, errors='strict'):
        return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)

    to_native = to_text

try:
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    from urllib import request as urllib_request
except ImportError:  # pragma: no cover - Python 2, where the module runs with Ansible's six
    from httplib import HTTPException
    from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
    from ansible.module_utils.six.moves.urllib.parse import urlparse
    urllib_request = None


# gRPC status codes that the gateway puts in "code"
GRPC_CODES = {
    0: 'OK', 1: 'CANCELLED', 2: 'UNKNOWN', 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND',
    6: 'ALREADY_EXISTS', 7: 'PERMISSION_DENIED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION',
    10: 'ABORTED', 11: 'OUT_OF_RANGE', 12: 'UNIMPLEMENTED', 13: 'INTERNAL', 14: 'UNAVAILABLE',
    15: 'DATA_LOSS', 16: 'UNAUTHENTICATED',
}
GRPC_UNAVAILABLE = 14
GRPC_DEADLINE_EXCEEDED = 4
GRPC_UNAUTHENTICATED = 16
GRPC_PERMISSION_DENIED = 7

# Answers after which the next endpoint is tried: the member cannot serve now, another one may.
FAILOVER_MESSAGES = (
    'etcdserver: no leader',
    'etcdserver: leader changed',
    'etcdserver: request timed out',
    'etcdserver: unhealthy cluster',
    'etcdserver: server stopped',
    'etcdserver: not capable',
    'context deadline exceeded',
)
# Answers that mean: the token we sent is no good (any more); authenticate again once.
TOKEN_MESSAGES = (
    'etcdserver: invalid auth token',
    'etcdserver: revision of auth store is old',
)
# Answers that mean: credentials or permissions are wrong; another endpoint will say the same.
AUTH_MESSAGES = (
    'authentication failed',
    'user name is empty',  # 3.5 hashkv says 'auth: user name is empty' with code 2
    'permission denied',
    'user name not found',
    'authentication is not enabled',
    'invalid auth management',
)


# ---------------------------------------------------------------------------------------------------
# exceptions
# ---------------------------------------------------------------------------------------------------

class EtcdError(Exception):
    """Base class. ``attempts`` is a list of (endpoint, what happened) in the order tried."""

    def __init__(self, message, attempts=None, operation=None):
        self.attempts = list(attempts or [])
        self.operation = operation
        self.detail = message
        super(EtcdError, self).__init__(self._render())

    def _render(self):
        parts = []
        if self.operation:
            parts.append('%s failed' % self.operation)
        if self.attempts:
            parts.append('; '.join('%s: %s' % (ep, what) for ep, what in self.attempts))
        elif self.detail:
            parts.append(self.detail)
        return ': '.join(parts) if parts else 'etcd error'


class EtcdConnectionError(EtcdError):
    """No endpoint answered (refused, timed out, reset, DNS, ...)."""


class EtcdTLSError(EtcdConnectionError):
    """The TLS handshake failed (certificate verification, client certificate refused, ...)."""


class EtcdApiError(EtcdError):
    """An endpoint answered with an error. ``endpoint``, ``status`` (HTTP), ``code`` (gRPC code int),
    ``grpc_message`` (etcd's error text) describe the deciding answer."""

    def __init__(self, message, attempts=None, operation=None, endpoint=None, status=None, code=None,
                 grpc_message=None):
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.grpc_message = grpc_message
        super(EtcdApiError, self).__init__(message, attempts=attempts, operation=operation)

    @property
    def code_name(self):
        return GRPC_CODES.get(self.code, str(self.code))


class EtcdAuthError(EtcdApiError):
    """Authentication failed, the token is rejected, or the user lacks a permission."""


class EtcdUnavailableError(EtcdApiError):
    """Every endpoint that answered said it cannot serve now (no leader, unhealthy cluster, timed out)."""


class EtcdNotSupportedError(EtcdApiError):
    """The gateway of that endpoint does not route this path (HTTP 404 'Not Found', plain text)."""


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------

def format_id(value):
    """Member/cluster ID as the 16 lower-case hex digits etcdctl prints."""
    if value is None:
        return None
    return '%016x' % int(value)


def parse_id(value):
    """ID to int. Accepts int, decimal string (as the gateway sends), '0x...' or exactly 16 hex digits
    (as etcdctl prints). A 16-character all-decimal string is read as hex (the etcdctl form)."""
    if isinstance(value, int):
        return value
    text = to_text(value).strip().lower()
    if text.startswith('0x'):
        return int(text[2:], 16)
    if len(text) == 16:
        return int(text, 16)
    return int(text, 10)


def b64encode(value):
    return to_text(base64.b64encode(to_bytes(value, errors='surrogate_or_strict')))


def b64decode_text(value):
    if value is None:
        return None
    return to_text(base64.b64decode(value), errors='surrogate_then_replace')


def prefix_range_end(prefix):
    """range_end that selects every key starting with ``prefix`` (clientv3.GetPrefixRangeEnd)."""
    key = bytearray(to_bytes(prefix, errors='surrogate_or_strict'))
    for i in range(len(key) - 1, -1, -1):
        if key[i] < 0xff:
            key[i] += 1
            return bytes(key[:i + 1])
    return b'\x00'


def _int(value, default=0):
    if value is None or value == '':
        return default
    return int(value)


def normalize_header(header):
    header = header or {}
    return dict(
        cluster_id=_int(header.get('cluster_id')),
        member_id=_int(header.get('member_id')),
        revision=_int(header.get('revision')),
        raft_term=_int(header.get('raft_term')),
    )


def normalize_member(member):
    """Gateway member -> dict(id, name, peer_urls, client_urls, is_learner). 3.4 and 3.5 leave out
    ``isLearner`` when false and ``name``/``clientURLs`` while the member has not started."""
    return dict(
        id=_int(member.get('ID')),
        name=member.get('name', '') or '',
        peer_urls=list(member.get('peerURLs') or []),
        client_urls=list(member.get('clientURLs') or []),
        is_learner=bool(member.get('isLearner', False)),
    )


def normalize_kv(kv):
    return dict(
        key=b64decode_text(kv.get('key')),
        value=b64decode_text(kv.get('value', '')),
        create_revision=_int(kv.get('create_revision')),
        mod_revision=_int(kv.get('mod_revision')),
        version=_int(kv.get('version')),
        lease=_int(kv.get('lease')),
    )


def normalize_range(answer):
    """Range answer (also a txn's response_range) -> dict(header, kvs, count:int, more:bool)."""
    return dict(header=normalize_header(answer.get('header')),
                kvs=[normalize_kv(kv) for kv in answer.get('kvs') or []],
                count=_int(answer.get('count')), more=bool(answer.get('more', False)))


def _describe_transport_error(exc):
    """Short text for a transport exception, and whether it is a TLS problem."""
    reason = getattr(exc, 'reason', None)
    inner = reason if reason is not None else exc
    if isinstance(inner, (ssl.SSLError, ssl.CertificateError)) or isinstance(exc, SSLValidationError):
        return 'TLS error: %s' % to_native(inner), True
    if isinstance(inner, socket.timeout) or 'timed out' in to_native(inner).lower():
        return 'timed out', False
    if isinstance(inner, ConnectionRefusedError):
        return 'connection refused', False
    if isinstance(inner, ConnectionResetError):
        return 'connection reset', False
    if isinstance(inner, socket.gaierror):
        return 'name resolution failed: %s' % to_native(inner), False
    text = to_native(inner)
    # A refused client certificate may show only after the TLS 1.3 handshake, as the alert's name (TLSV1_ALERT_...).
    if any(word in text.lower() for word in ('ssl', 'certificate', 'tlsv1_alert')):
        return 'TLS error: %s' % text, True
    return text or inner.__class__.__name__, False


# ---------------------------------------------------------------------------------------------------
# transports: open_url(url, data, headers, method, ...) -> a response with getcode() and read(); an HTTP error
# answer raises HTTPError, a failed exchange URLError / OSError / ssl errors.
# ---------------------------------------------------------------------------------------------------

class _NoRedirect(urllib_request.HTTPRedirectHandler if urllib_request else object):
    """A redirect is answered as the HTTPError it is, as open_url(follow_redirects='none') does: etcd never
    redirects, so one is not followed to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def stdlib_open_url(url, data=None, headers=None, method=None, use_proxy=False, timeout=10, validate_certs=True,
                    client_cert=None, client_key=None, ca_path=None, follow_redirects='none', use_netrc=False):
    """The standard library's stand-in for the subset of ansible.module_utils.urls.open_url the client uses: TLS
    verified against ``ca_path`` (else the system's CAs) unless ``validate_certs`` is false, a client certificate,
    no proxy unless ``use_proxy``, no redirect followed, no netrc."""
    handlers = [_NoRedirect()]
    if not use_proxy:
        handlers.append(urllib_request.ProxyHandler({}))
    if url.lower().startswith('https://'):
        context = ssl.create_default_context(cafile=ca_path if validate_certs else None)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert:
            context.load_cert_chain(client_cert, client_key)
        handlers.append(urllib_request.HTTPSHandler(context=context))
    request = urllib_request.Request(url, data=to_bytes(data) if data is not None else None, headers=headers or {},
                                     method=method)
    return urllib_request.build_opener(*handlers).open(request, timeout=timeout)


if not HAS_ANSIBLE:
    open_url = stdlib_open_url


# ---------------------------------------------------------------------------------------------------
# client
# ---------------------------------------------------------------------------------------------------

class EtcdClient(object):
    """etcd v3 JSON gateway client with endpoint fail-over, TLS and token auth.

    endpoints: list of client URLs ('https://10.0.0.1:2379'), tried in order.
    timeout: seconds per request to one endpoint.
    transport: a function with open_url's arguments (stdlib_open_url); None = ansible.module_utils.urls' open_url,
    or stdlib_open_url where Ansible is not installed.
    """

    def __init__(self, endpoints, timeout=10, ca_cert=None, client_cert=None, client_key=None,
                 validate_certs=True, user=None, password=None, use_proxy=False, transport=None):
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self.endpoints = [self._normalize_endpoint(e) for e in endpoints]
        if not self.endpoints:
            raise EtcdError('no endpoints given')
        self.timeout = timeout
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key
        self.validate_certs = validate_certs
        self.user = user
        self.password = password
        self.use_proxy = use_proxy
        self._token = None
        self.transport = transport
        # requests sent, (method, url, body) - handy in tests and for debugging
        self.requests = []

    # -- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _normalize_endpoint(endpoint):
        endpoint = to_text(endpoint).strip().rstrip('/')
        if '://' not in endpoint:
            endpoint = 'http://' + endpoint
        parsed = urlparse(endpoint)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise EtcdError('invalid endpoint %r: expected http(s)://host:port' % endpoint)
        return endpoint

    def _open(self, url, method, body, headers, timeout=None):
        """One HTTP exchange. Returns (status, text). Raises transport exceptions."""
        data = None
        if method != 'GET':
            data = json.dumps(body if body is not None else {})
        self.requests.append((method, url, body))
        try:
            # open_url is looked up at each call, so tests can stand in for it.
            transport = self.transport or open_url
            resp = transport(url, data=data, headers=headers, method=method, use_proxy=self.use_proxy,
                             timeout=timeout or self.timeout, validate_certs=self.validate_certs,
                             client_cert=self.client_cert, client_key=self.client_key, ca_path=self.ca_cert,
                             follow_redirects='none', use_netrc=False)
        except HTTPError as e:
            try:
                text = to_text(e.read(), errors='surrogate_or_replace') if e.fp is not None else ''
            except Exception:
                text = ''
            return e.code, text
        return resp.getcode() if hasattr(resp, 'getcode') else resp.status, to_text(resp.read())

    def _exchange(self, endpoint, path, body, method='POST', auth=True, timeout=None):
        """One request to one endpoint: returns ('ok', data) | ('api', info dict) | ('transport', (text, tls))."""
        headers = {}
        if method != 'GET':
            headers['Content-Type'] = 'application/json'
        if auth and self._token:
            headers['Authorization'] = self._token
        try:
            status, text = self._open(endpoint + path, method, body, headers, timeout=timeout)
        except (URLError, UrlsConnectionError, socket.timeout, socket.error, HTTPException, ssl.SSLError,
                ssl.CertificateError, OSError, ValueError) as e:
            return 'transport', _describe_transport_error(e)
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            data = None
        if 200 <= status < 300 and isinstance(data, dict):
            return 'ok', data
        if 200 <= status < 300:
            return 'transport', ('HTTP %s with a non-JSON answer: %s' % (status, text.strip()[:200]), False)
        info = dict(status=status, text=text.strip(), data=data)
        if isinstance(data, dict) and ('code' in data or 'error' in data or 'message' in data):
            info['code'] = data.get('code')
            info['message'] = data.get('message') or data.get('error') or ''
        else:
            info['code'] = None
            info['message'] = text.strip()[:200]
        return 'api', info

    @staticmethod
    def _api_text(info):
        if info.get('code') is not None:
            name = GRPC_CODES.get(info['code'], info['code'])
            return 'HTTP %s %s (%s): %s' % (info['status'], name, info['code'], info['message'])
        return 'HTTP %s: %s' % (info['status'], info['message'] or '(empty answer)')

    @staticmethod
    def _classify(info):
        """What to do with an API error answer: 'token', 'auth', 'failover', 'notsupported', 'final'."""
        msg = (info.get('message') or '').lower()
        code = info.get('code')
        if any(m in msg for m in TOKEN_MESSAGES):
            return 'token'
        if code in (GRPC_UNAUTHENTICATED, GRPC_PERMISSION_DENIED) or any(m in msg for m in AUTH_MESSAGES):
            return 'auth'
        if code in (GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED) or any(m in msg for m in FAILOVER_MESSAGES):
            return 'failover'
        if info['status'] == 404 and (info.get('message') or '').strip() == 'Not Found':
            # no route: 3.4 answers text 'Not Found', 3.5 {"code":5,"message":"Not Found"}
            return 'notsupported'
        if code is None and info['status'] >= 500:
            # not the gateway's JSON: a proxy or a half-started server; try the next one
            return 'failover'
        return 'final'

    def _api_error(self, cls, operation, attempts, endpoint, info):
        return cls(self._api_text(info), attempts=attempts, operation=operation, endpoint=endpoint,
                   status=info['status'], code=info.get('code'), grpc_message=info.get('message'))

    def _request(self, path, body=None, endpoints=None, method='POST', auth=True, timeout=None):
        """Send to the endpoints in order until one gives a definitive answer. Returns the parsed JSON.
        auth: True (log in first when a user is set), False (never send a token), or 'lazy': send the token held,
        else none, and log in only when etcd asks for one. etcd logs in through raft, so without a leader a login
        only times out, while the requests it never checks (member list, status) still answer."""
        operation = '%s %s' % (method, path)
        endpoints = [self._normalize_endpoint(e) for e in endpoints] if endpoints else self.endpoints
        if auth is True and self.user and self._token is None:  # '' = auth not enabled
            self._authenticate(endpoints)
        attempts = []
        last_api = None
        all_tls = True
        for endpoint in endpoints:
            reauthenticated = False
            while True:
                kind, result = self._exchange(endpoint, path, body, method=method, auth=bool(auth), timeout=timeout)
                if kind == 'ok':
                    return result
                if kind == 'transport':
                    text, is_tls = result
                    all_tls = all_tls and is_tls
                    attempts.append((endpoint, text))
                    break
                all_tls = False
                what = self._classify(result)
                attempts.append((endpoint, self._api_text(result)))
                # A lazy request etcd refused for want of a user is sent again after a login, as a rejected token is.
                asked_for_login = what == 'token' or (what == 'auth' and auth == 'lazy' and not self._token)
                if asked_for_login and self.user and not reauthenticated:
                    reauthenticated = True
                    self._token = None
                    self._authenticate([endpoint] + [e for e in endpoints if e != endpoint])
                    attempts.pop()
                    continue
                if what in ('token', 'auth'):
                    raise self._api_error(EtcdAuthError, operation, attempts, endpoint, result)
                if what == 'notsupported':
                    raise self._api_error(EtcdNotSupportedError, operation, attempts, endpoint, result)
                if what == 'final':
                    raise self._api_error(EtcdApiError, operation, attempts, endpoint, result)
                last_api = (endpoint, result)
                break
        if last_api is not None:
            raise self._api_error(EtcdUnavailableError, operation, attempts, last_api[0], last_api[1])
        if all_tls:
            raise EtcdTLSError('', attempts=attempts, operation=operation)
        raise EtcdConnectionError('', attempts=attempts, operation=operation)

    def _authenticate(self, endpoints=None):
        """POST /v3/auth/authenticate; keeps the token for the following requests."""
        if not self.user:
            return None
        self._token = None
        try:
            answer = self._request('/v3/auth/authenticate', dict(name=self.user, password=self.password or ''),
                                   endpoints=endpoints, auth=False)
        except EtcdAuthError as e:
            if 'authentication is not enabled' in (e.grpc_message or ''):
                # like etcdctl --user against a cluster without auth: carry on without a token
                self._token = ''
                return ''
            raise
        token = answer.get('token')
        if not token:
            raise EtcdAuthError('no token in the authenticate answer', operation='POST /v3/auth/authenticate')
        self._token = token
        return token

    def authenticate(self):
        """Authenticate now (otherwise done lazily on the first request). Returns the token."""
        return self._authenticate(self.endpoints)

    def forget_token(self):
        """Drop the token (and the 'authentication is not enabled' mark): the next request authenticates again.
        Needed after authentication was switched on, or after the password of ``user`` changed."""
        self._token = None

    # -- auth (RBAC) ---------------------------------------------------------------------------
    # Every call below needs the root role once authentication is on (etcd answers 'permission denied').

    def check_password(self, name, password):
        """Whether etcd accepts ``name``/``password`` (POST /v3/auth/authenticate, the token is thrown away).
        -> True, False (etcd says 'authentication failed'), or None when authentication is not enabled: etcd
        checks no password then."""
        try:
            self._request('/v3/auth/authenticate', dict(name=name, password=password or ''), auth=False)
        except EtcdAuthError as e:
            text = e.grpc_message or ''
            if 'authentication is not enabled' in text:
                return None
            if 'authentication failed' in text:
                return False
            raise
        return True

    def auth_enable(self):
        """Switch authentication on (etcd refuses unless user root exists and has the root role)."""
        return normalize_header(self._request('/v3/auth/enable', {}).get('header'))

    def auth_disable(self):
        return normalize_header(self._request('/v3/auth/disable', {}).get('header'))

    def role_list(self):
        """-> role names (sorted as etcd gives them)."""
        return list(self._request('/v3/auth/role/list', {}).get('roles') or [])

    def role_get(self, name):
        """-> permissions of role ``name``: list of dict(key: bytes, range_end: bytes (b'' for a single key),
        type: 'READ'|'WRITE'|'READWRITE'). The gateway leaves out permType READ (the enum's zero value) and an
        empty range_end."""
        answer = self._request('/v3/auth/role/get', {'role': name})
        return [dict(key=base64.b64decode(p.get('key') or ''), range_end=base64.b64decode(p.get('range_end') or ''),
                     type=p.get('permType') or 'READ')
                for p in answer.get('perm') or []]

    def role_add(self, name):
        return normalize_header(self._request('/v3/auth/role/add', {'name': name}).get('header'))

    def role_delete(self, name):
        return normalize_header(self._request('/v3/auth/role/delete', {'role': name}).get('header'))

    def role_grant(self, name, key, range_end=b'', perm_type='READWRITE'):
        """Grant (or change the type of) the permission on key..range_end (bytes or text; b'' = that one key)."""
        perm = {'permType': perm_type, 'key': to_text(base64.b64encode(to_bytes(key)))}
        if range_end:
            perm['range_end'] = to_text(base64.b64encode(to_bytes(range_end)))
        return normalize_header(self._request('/v3/auth/role/grant', {'name': name, 'perm': perm}).get('header'))

    def role_revoke(self, name, key, range_end=b''):
        body = {'role': name, 'key': to_text(base64.b64encode(to_bytes(key)))}
        if range_end:
            body['range_end'] = to_text(base64.b64encode(to_bytes(range_end)))
        return normalize_header(self._request('/v3/auth/role/revoke', body).get('header'))

    def user_list(self):
        """-> user names (sorted as etcd gives them)."""
        return list(self._request('/v3/auth/user/list', {}).get('users') or [])

    def user_get(self, name):
        """-> role names of user ``name``."""
        return list(self._request('/v3/auth/user/get', {'name': name}).get('roles') or [])

    def user_add(self, name, password):
        return normalize_header(self._request('/v3/auth/user/add', {'name': name, 'password': password})
                                .get('header'))

    def user_delete(self, name):
        return normalize_header(self._request('/v3/auth/user/delete', {'name': name}).get('header'))

    def user_change_password(self, name, password):
        return normalize_header(self._request('/v3/auth/user/changepw', {'name': name, 'password': password})
                                .get('header'))

    def user_grant(self, name, role):
        return normalize_header(self._request('/v3/auth/user/grant', {'user': name, 'role': role}).get('header'))

    def user_revoke(self, name, role):
        return normalize_header(self._request('/v3/auth/user/revoke', {'name': name, 'role': role}).get('header'))

    # -- cluster -------------------------------------------------------------------------------

    def _members_answer(self, answer):
        return dict(header=normalize_header(answer.get('header')),
                    members=[normalize_member(m) for m in answer.get('members') or []])

    def member_list(self, endpoints=None, linearizable=False):
        """-> dict(header=dict(cluster_id, member_id, revision, raft_term), members=[member...]).
        member: dict(id:int, name:str ('' if not started), peer_urls, client_urls, is_learner:bool).
        linearizable=True asks the leader (etcd >= 3.5.13 only; older ones ignore/refuse the field)."""
        body = {'linearizable': True} if linearizable else {}
        return self._members_answer(self._request('/v3/cluster/member/list', body, endpoints=endpoints, auth='lazy'))

    def member_add(self, peer_urls, is_learner=False):
        """-> dict(header, member=new member (name '' and no client URLs yet), members=[...])."""
        body = {'peerURLs': list(peer_urls)}
        if is_learner:
            body['isLearner'] = True
        answer = self._request('/v3/cluster/member/add', body)
        result = self._members_answer(answer)
        result['member'] = normalize_member(answer.get('member') or {})
        return result

    def member_remove(self, member_id):
        """-> dict(header, members=[remaining members])."""
        return self._members_answer(self._request('/v3/cluster/member/remove', {'ID': str(int(member_id))}))

    def member_update(self, member_id, peer_urls):
        """-> dict(header, members=[...])."""
        return self._members_answer(self._request('/v3/cluster/member/update',
                                                  {'ID': str(int(member_id)), 'peerURLs': list(peer_urls)}))

    def member_promote(self, member_id):
        """Learner -> voting member. -> dict(header, members=[...])."""
        return self._members_answer(self._request('/v3/cluster/member/promote', {'ID': str(int(member_id))}))

    # -- maintenance ---------------------------------------------------------------------------

    def status(self, endpoint=None):
        """Status of ONE member (the one at ``endpoint``; default: first endpoint that answers).
        -> dict(endpoint, header, member_id, leader (id, 0 if none), version, db_size, db_size_in_use,
        raft_index, raft_term, raft_applied_index, is_learner, errors (list of str))."""
        endpoints = [endpoint] if endpoint else None
        answer = self._request('/v3/maintenance/status', {}, endpoints=endpoints, auth='lazy')
        header = normalize_header(answer.get('header'))
        return dict(
            endpoint=self._normalize_endpoint(endpoint) if endpoint else None,
            header=header,
            member_id=header['member_id'],
            leader=_int(answer.get('leader')),
            version=answer.get('version', ''),
            db_size=_int(answer.get('dbSize')),
            db_size_in_use=_int(answer.get('dbSizeInUse')),
            raft_index=_int(answer.get('raftIndex')),
            raft_term=_int(answer.get('raftTerm')),
            raft_applied_index=_int(answer.get('raftAppliedIndex')),
            is_learner=bool(answer.get('isLearner', False)),
            errors=list(answer.get('errors') or []),
        )

    def health(self, endpoint, timeout=None, exclude=None):
        """GET /health on one endpoint. -> (healthy: bool, reason: str). Never raises for the member's
        state: an unreachable member gives (False, 'connection refused') etc.
        ``exclude``: alarm names (like 'CORRUPT') that do not make the answer false (etcd's ?exclude=, which
        3.4.23 and 3.5.16 both honour)."""
        endpoint = self._normalize_endpoint(endpoint)
        query = '&'.join('exclude=%s' % name for name in exclude or [])
        try:
            status, text = self._open(endpoint + '/health' + ('?' + query if query else ''), 'GET', None, {},
                                      timeout=timeout)
        except (URLError, UrlsConnectionError, socket.timeout, socket.error, HTTPException, ssl.SSLError,
                ssl.CertificateError, OSError, ValueError) as e:
            return False, _describe_transport_error(e)[0]
        try:
            data = json.loads(text)
        except ValueError:
            return False, 'HTTP %s: %s' % (status, text.strip()[:200])
        healthy = to_text(data.get('health', '')).lower() == 'true'
        reason = data.get('reason', '') or ''
        if not healthy and not reason:
            reason = 'HTTP %s: health=%s' % (status, data.get('health'))
        return healthy, reason

    def alarms(self):
        """-> list of dict(member_id:int, alarm:str) ('NOSPACE', 'CORRUPT'); [] when none."""
        answer = self._request('/v3/maintenance/alarm', {'action': 'GET', 'memberID': '0', 'alarm': 'NONE'})
        return [dict(member_id=_int(a.get('memberID')), alarm=a.get('alarm', 'NONE'))
                for a in answer.get('alarms') or []]

    def alarm_disarm(self, member_id, alarm):
        """Deactivate one alarm (etcd keeps an alarm by member ID, also after the member's removal).
        -> the alarms etcd answers with, as in alarms(): the one deactivated (3.4.23 and 3.5.16), [] when none."""
        answer = self._request('/v3/maintenance/alarm', {'action': 'DEACTIVATE', 'memberID': str(int(member_id)),
                                                         'alarm': alarm})
        return [dict(member_id=_int(a.get('memberID')), alarm=a.get('alarm', 'NONE'))
                for a in answer.get('alarms') or []]

    def hashkv(self, endpoint, revision=0):
        """HashKV of ONE member at ``revision`` (0 = its latest).
        -> dict(endpoint, header, member_id, hash:int, compact_revision:int, hash_revision:int).
        hash_revision is the revision actually hashed (etcd >= 3.5.? sends it; else ``revision`` or the header's).
        Raises EtcdNotSupportedError where the gateway does not route /v3/maintenance/hashkv (etcd 3.4 and
        3.5 < 3.5.10: Hash and HashKV shared one URL); use hash() there."""
        answer = self._request('/v3/maintenance/hashkv', {'revision': str(int(revision))}, endpoints=[endpoint])
        header = normalize_header(answer.get('header'))
        hash_revision = _int(answer.get('hash_revision')) or int(revision) or header['revision']
        return dict(endpoint=self._normalize_endpoint(endpoint), header=header, member_id=header['member_id'],
                    hash=_int(answer.get('hash')), compact_revision=_int(answer.get('compact_revision')),
                    hash_revision=hash_revision)

    def hash(self, endpoint):
        """Hash RPC (whole backend, no revision) of ONE member. -> dict(endpoint, header, member_id, hash)."""
        answer = self._request('/v3/maintenance/hash', {}, endpoints=[endpoint])
        header = normalize_header(answer.get('header'))
        return dict(endpoint=self._normalize_endpoint(endpoint), header=header, member_id=header['member_id'],
                    hash=_int(answer.get('hash')))

    def compact(self, revision, physical=True):
        """Compact the keyspace: drop the history older than ``revision`` (the whole cluster, through raft).
        ``physical``: answer once the members' backends have removed it. -> the answer's header."""
        answer = self._request('/v3/kv/compaction', {'revision': str(int(revision)), 'physical': bool(physical)})
        return normalize_header(answer.get('header'))

    def defragment(self, endpoint, timeout=None):
        """Defragment the backend of ONE member (the one at ``endpoint``): the member serves nothing until it is
        done, seconds per GiB. -> the answer's header."""
        answer = self._request('/v3/maintenance/defragment', {}, endpoints=[endpoint], timeout=timeout)
        return normalize_header(answer.get('header'))

    def find_leader(self):
        """-> (leader_id, client_urls of the leader) using status from the endpoints and the member list."""
        st = self.status()
        leader = st['leader']
        if not leader:
            raise EtcdUnavailableError('no leader', operation='find leader',
                                       attempts=[(self.endpoints[0], 'status says: no leader')])
        for member in self.member_list()['members']:
            if member['id'] == leader:
                return leader, member['client_urls']
        raise EtcdError('leader %s is not in the member list' % format_id(leader), operation='find leader')

    def move_leader(self, target_id):
        """Transfer leadership to ``target_id`` (sent to the current leader's client URLs).
        -> dict(changed: bool, previous_leader: int, leader: int)."""
        target_id = int(target_id)
        leader, urls = self.find_leader()
        if leader == target_id:
            return dict(changed=False, previous_leader=leader, leader=leader)
        if not urls:
            raise EtcdError('leader %s has no client URLs' % format_id(leader), operation='move leader')
        self._request('/v3/maintenance/transfer-leadership', {'targetID': str(target_id)}, endpoints=urls)
        return dict(changed=True, previous_leader=leader, leader=target_id)

    # -- kv ------------------------------------------------------------------------------------

    def put(self, key, value, prev_kv=False, lease=0):
        """-> dict(header, prev_kv=kv or None)."""
        body = {'key': b64encode(key), 'value': b64encode(value)}
        if prev_kv:
            body['prev_kv'] = True
        if lease:
            body['lease'] = str(int(lease))
        answer = self._request('/v3/kv/put', body)
        prev = answer.get('prev_kv')
        return dict(header=normalize_header(answer.get('header')), prev_kv=normalize_kv(prev) if prev else None)

    def range(self, key, range_end=None, prefix=False, revision=0, limit=0, keys_only=False, serializable=False,
              endpoints=None, min_mod_revision=0):
        """Range request. prefix=True selects every key starting with ``key``. revision reads the store as it was
        then (the member answers 'required revision has been compacted' when it no longer can);
        min_mod_revision keeps only keys modified at or after that revision.
        -> dict(header, kvs=[dict(key, value, create_revision, mod_revision, version, lease)], count:int, more:bool)."""
        body = range_request(key, range_end=range_end, prefix=prefix, revision=revision)
        if min_mod_revision:
            body['min_mod_revision'] = str(int(min_mod_revision))
        if limit:
            body['limit'] = str(int(limit))
        if keys_only:
            body['keys_only'] = True
        if serializable:
            body['serializable'] = True
        return normalize_range(self._request('/v3/kv/range', body, endpoints=endpoints))

    def get(self, key):
        """-> kv dict (see range) or None."""
        kvs = self.range(key)['kvs']
        return kvs[0] if kvs else None

    def get_prefix(self, prefix):
        """-> list of kv dicts under ``prefix``."""
        return self.range(prefix, prefix=True)['kvs']

    def delete(self, key, prefix=False):
        """-> dict(header, deleted:int)."""
        body = {'key': b64encode(key)}
        if prefix:
            body['range_end'] = to_text(base64.b64encode(prefix_range_end(key)))
        answer = self._request('/v3/kv/deleterange', body)
        return dict(header=normalize_header(answer.get('header')), deleted=_int(answer.get('deleted')))

    def txn(self, compare=None, success=None, failure=None):
        """Transaction: when every ``compare`` holds, run the ``success`` ops, else the ``failure`` ops, atomically.
        compare: txn_compare() dicts; success/failure: txn_put()/txn_delete()/txn_range() dicts (etcd refuses more
        than --max-txn-ops, 128 by default, ops in one branch).
        -> dict(header, succeeded:bool, responses=[dict(op='put'|'delete'|'range', header, ...)]): a range response
        carries kvs/count/more as range() gives them, a delete one ``deleted``."""
        answer = self._request('/v3/kv/txn', {'compare': list(compare or []), 'success': list(success or []),
                                              'failure': list(failure or [])})
        responses = []
        for item in answer.get('responses') or []:
            if 'response_range' in item:
                responses.append(dict(normalize_range(item['response_range']), op='range'))
            elif 'response_delete_range' in item:
                r = item['response_delete_range']
                responses.append(dict(op='delete', header=normalize_header(r.get('header')),
                                      deleted=_int(r.get('deleted'))))
            else:
                r = item.get('response_put') or {}
                responses.append(dict(op='put', header=normalize_header(r.get('header'))))
        return dict(header=normalize_header(answer.get('header')), succeeded=bool(answer.get('succeeded', False)),
                    responses=responses)


# ---------------------------------------------------------------------------------------------------
# request bodies (also the ops of txn())
# ---------------------------------------------------------------------------------------------------

def range_request(key, range_end=None, prefix=False, revision=0):
    """Body of a range request (also a txn op's request_range)."""
    body = {'key': b64encode(key)}
    if prefix:
        body['range_end'] = to_text(base64.b64encode(prefix_range_end(key)))
    elif range_end is not None:
        body['range_end'] = b64encode(range_end)
    if revision:
        body['revision'] = str(int(revision))
    return body


def txn_compare(key, target='MOD', result='EQUAL', value=None):
    """A txn compare: ``target`` MOD (mod_revision), VERSION, CREATE (create_revision) or VALUE of ``key``
    ``result`` EQUAL, NOT_EQUAL, GREATER or LESS than ``value``. A key that does not exist has mod_revision,
    version and create_revision 0 (so MOD EQUAL 0 means: still absent)."""
    field = dict(MOD='mod_revision', VERSION='version', CREATE='create_revision', VALUE='value')[target]
    return {'key': b64encode(key), 'target': target, 'result': result,
            field: b64encode(value) if target == 'VALUE' else str(int(value or 0))}


def txn_put(key, value):
    return {'request_put': {'key': b64encode(key), 'value': b64encode(value)}}


def txn_delete(key):
    return {'request_delete_range': {'key': b64encode(key)}}


def txn_range(key, revision=0):
    """Read one key in a txn (at ``revision`` when given)."""
    return {'request_range': range_request(key, revision=revision)}
