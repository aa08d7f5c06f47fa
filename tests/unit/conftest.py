# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the checkout importable as ansible_collections.gatewayops.apisix_ha (as tests/lab/env.sh does)
and offer a fake etcd JSON gateway that replays the captured real answers in fixtures/etcd/."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
_link = os.path.join(COLLECTIONS, 'ansible_collections', 'gatewayops', 'apisix_ha')
if not os.path.exists(_link):
    os.makedirs(os.path.dirname(_link), exist_ok=True)
    if os.path.islink(_link):
        os.unlink(_link)
    os.symlink(os.path.join('..', '..', '..', '..'), _link)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'etcd')
VERSIONS = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d)))


def load_fixture(version, name):
    with open(os.path.join(FIXTURES, version, name + '.json')) as f:
        return json.load(f)


class FakeResponse(object):
    def __init__(self, status, body):
        self.status = status
        self._body = body.encode('utf-8')

    def getcode(self):
        return self.status

    def read(self):
        return self._body


class FakeGateway(object):
    """Stands in for ansible.module_utils.urls.open_url inside etcd_client.

    route(endpoint, path, answer): answer is a fixture name (replayed from fixtures/etcd/<version>/),
    a (status, body) tuple, an exception instance (raised), a list of those (one per call, the last repeats), or a
    function of the call (dict(endpoint, path, body, ...)) returning one of those (a cluster whose state changes).
    endpoint '*' matches any endpoint. Unrouted requests raise AssertionError so tests notice them."""

    def __init__(self, version):
        self.version = version
        self.routes = {}
        self.calls = []

    def route(self, endpoint, path, answer):
        self.routes[(endpoint.rstrip('/'), path)] = answer if isinstance(answer, list) else [answer]
        return self

    def refuse(self, endpoint):
        import urllib.error
        return self.route(endpoint, '*', urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused')))

    def __call__(self, url, data=None, headers=None, method=None, **kwargs):
        import urllib.error
        from urllib.parse import urlparse
        parsed = urlparse(url)
        endpoint = '%s://%s' % (parsed.scheme, parsed.netloc)
        path = parsed.path
        body = json.loads(data) if data else None
        self.calls.append(dict(endpoint=endpoint, path=path, body=body, method=method, headers=dict(headers or {}),
                               kwargs=kwargs, query=parsed.query))
        # a route for the path with its query string first (/health?exclude=CORRUPT), then for the path alone
        with_query = [(endpoint, path + '?' + parsed.query), ('*', path + '?' + parsed.query)] if parsed.query else []
        for key in with_query + [(endpoint, path), (endpoint, '*'), ('*', path)]:
            if key in self.routes:
                answers = self.routes[key]
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                break
        else:
            raise AssertionError('unexpected request %s %s%s %r' % (method, endpoint, path, body))
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(self.calls[-1])
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, tuple):
            status, text = answer
        else:
            rec = load_fixture(self.version, answer)
            status, text = rec['status'], rec['body']
        if status >= 400:
            raise urllib.error.HTTPError(url, status, 'error', {}, io.BytesIO(text.encode('utf-8')))
        return FakeResponse(status, text)

    def answer(self, name):
        """The parsed JSON body of fixture ``name`` for this etcd version."""
        return json.loads(load_fixture(self.version, name)['body'])

    def paths(self, path=None):
        return [c for c in self.calls if path is None or c['path'] == path]


@pytest.fixture(params=VERSIONS)
def version(request):
    return request.param


@pytest.fixture
def gateway(version, monkeypatch):
    from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _etcd_client as etcd_client
    fake = FakeGateway(version)
    monkeypatch.setattr(etcd_client, 'open_url', fake)
    return fake
