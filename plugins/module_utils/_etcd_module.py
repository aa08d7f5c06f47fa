# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""Shared layer of the etcd modules: the common argument spec (documented by the doc fragment
gatewayops.apisix_ha.etcd), the module base class and URL checks. What the modules read of the cluster
(members, health, status, leader, quorum) is in _etcd_cluster_view."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import copy

from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import GatewayopsModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdClient,
    EtcdError,
    EtcdApiError,
    EtcdAuthError,
    EtcdConnectionError,
    EtcdNotSupportedError,
    EtcdTLSError,
    EtcdUnavailableError,
)


# Keep in step with plugins/doc_fragments/etcd.py.
ETCD_COMMON_ARGUMENT_SPEC = dict(
    endpoints=dict(type='list', elements='str', default=['http://127.0.0.1:2379']),
    timeout=dict(type='float', default=10),
    ca_cert=dict(type='path'),
    client_cert=dict(type='path'),
    client_key=dict(type='path', no_log=False),
    validate_certs=dict(type='bool', default=True),
    user=dict(type='str'),
    password=dict(type='str', no_log=True),
)


def etcd_argument_spec(spec=None):
    """The common connection options merged with a module's own ``spec`` (the module's own win)."""
    merged = copy.deepcopy(ETCD_COMMON_ARGUMENT_SPEC)
    merged.update(spec or {})
    return merged


class EtcdModule(GatewayopsModule):
    """Base of the etcd modules: the collection's module base (one failure path, the action recorder, diff)
    with the common connection options (user and password go together), a lazily built EtcdClient, and
    failure_result() which turns the client's exceptions into a message saying which endpoint answered what."""

    def __init__(self, argument_spec=None, **kwargs):
        kwargs['required_together'] = list(kwargs.get('required_together') or []) + [['user', 'password']]
        super(EtcdModule, self).__init__(argument_spec=etcd_argument_spec(argument_spec), **kwargs)
        self._client = None

    def make_client(self, endpoints=None, timeout=None):
        """A new EtcdClient from the connection options (optionally other endpoints/timeout)."""
        p = self.params
        try:
            return EtcdClient(
                endpoints=endpoints or p['endpoints'],
                timeout=timeout or p['timeout'],
                ca_cert=p['ca_cert'],
                client_cert=p['client_cert'],
                client_key=p['client_key'],
                validate_certs=p['validate_certs'],
                user=p['user'],
                password=p['password'],
            )
        except EtcdError as e:
            self.fail('Invalid etcd connection options: %s' % to_native(e))

    @property
    def client(self):
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def run(self, func, *args, **kwargs):
        """Call ``func(*args, **kwargs)``; an etcd exception ends the module with fail_json."""
        return self.execute(func, *args, **kwargs)

    def failure_result(self, exc):
        if not isinstance(exc, EtcdError):
            return None
        for cls, what in ETCD_FAILURE_WORDING:
            if isinstance(exc, cls):
                break
        result = dict(msg='%s: %s' % (what, to_native(exc)), error_type=exc.__class__.__name__,
                      attempts=[dict(endpoint=ep, error=text) for ep, text in exc.attempts])
        if isinstance(exc, EtcdApiError):
            result.update(http_status=exc.status, grpc_code=exc.code, etcd_message=exc.grpc_message)
        return result


# What each client exception means to the operator; the first class that matches wins.
ETCD_FAILURE_WORDING = (
    (EtcdTLSError, 'TLS connection to etcd failed (check ca_cert, client_cert, client_key, validate_certs)'),
    (EtcdConnectionError, 'Could not reach any etcd endpoint'),
    (EtcdAuthError, 'etcd refused the credentials or the permission (check user, password)'),
    (EtcdUnavailableError, 'etcd cannot serve the request now (no leader, unhealthy cluster or timeout)'),
    (EtcdNotSupportedError, 'This etcd version does not offer this request on its JSON gateway'),
    (EtcdApiError, 'etcd refused the request'),
    (EtcdError, 'etcd error'),
)


# ---------------------------------------------------------------------------------------------------
# helpers shared by the etcd modules
# ---------------------------------------------------------------------------------------------------

def check_url(url, what='peer URL'):
    """None if ``url`` is http(s)://host:port with no path, else the reason it is not."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError as e:
        return '%s %r is malformed: %s' % (what, url, to_native(e))
    if parsed.scheme not in ('http', 'https'):
        return '%s %r: the scheme must be http or https' % (what, url)
    if not parsed.hostname:
        return '%s %r: a host is required' % (what, url)
    if port is None:
        return '%s %r: a port is required' % (what, url)
    if parsed.path not in ('', '/') or parsed.query or parsed.fragment or parsed.params:
        return '%s %r: must not have a path, query or fragment' % (what, url)
    if parsed.username or parsed.password:
        return '%s %r: must not carry user information' % (what, url)
    return None


def normalize_url(url):
    """Canonical form for comparing URLs: lower-case scheme and host, no trailing slash."""
    parsed = urlparse(url.strip())
    host = parsed.hostname or ''
    if ':' in host:
        host = '[%s]' % host
    return '%s://%s:%s' % (parsed.scheme.lower(), host.lower(), parsed.port)
