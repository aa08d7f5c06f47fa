# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apisix_node_check against a small HTTP server on loopback playing an APISIX node (status API, a health route,
the control API's /v1/schema); the waits between tries are skipped."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

import pytest

from http import server as http_server

from ansible_collections.gatewayops.apisix_ha.plugins.modules import apisix_node_check


class Node(object):
    """What the fake node answers: a list of statuses per path (the last one repeats)."""

    def __init__(self):
        self.answers = {'/status/ready': [200], '/lab/health': [200]}
        self.plugins = ['gatewayops-tag', 'key-auth']
        self.asked = []

    def status(self, path):
        self.asked.append(path)
        queue = self.answers[path]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def node(monkeypatch):
    state = Node()

    class Handler(http_server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == '/v1/schema':
                body = json.dumps({'plugins': dict((p, {}) for p in state.plugins)}).encode()
                status = 200
            else:
                status, body = state.status(self.path), b'ok'
            self.send_response(status)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http_server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.daemon = True
    thread.start()
    state.url = 'http://127.0.0.1:%d' % server.server_address[1]
    monkeypatch.setattr(apisix_node_check.time, 'sleep', lambda seconds: None)
    yield state
    server.shutdown()
    server.server_close()


def check(run_module, node, **args):
    params = dict(status_url=node.url + '/status/ready', health_url=node.url + '/lab/health',
                  control_url=node.url, plugins=['gatewayops-tag'], steady_seconds=5, wait_timeout=2,
                  health_wait_timeout=2)
    params.update(args)
    return run_module(apisix_node_check, params)


def test_a_node_that_serves_passes_every_check(run_module, node):
    result, failed = check(run_module, node)
    assert not failed, result
    assert result['tries'] == 5 and result['changed'] is False
    assert 'gatewayops-tag' in result['loaded']
    assert node.asked.count('/lab/health') == 6  # the first good answer, then 5 tries


def test_waits_until_the_node_is_ready(run_module, node):
    node.answers['/status/ready'] = [503, 503, 200]
    result, failed = check(run_module, node)
    assert not failed, result
    assert node.asked[:3] == ['/status/ready'] * 3


def test_a_node_that_never_gets_ready_fails(run_module, node):
    node.answers['/status/ready'] = [503]
    result, failed = check(run_module, node, wait_timeout=0)
    assert failed
    assert 'APISIX is not ready' in result['msg'] and 'status 503' in result['msg']


def test_a_health_route_that_fails_fails(run_module, node):
    node.answers['/lab/health'] = [500]
    result, failed = check(run_module, node, health_wait_timeout=0)
    assert failed
    assert 'answered status 500, not 200' in result['msg']


def test_a_plugin_that_did_not_load_fails(run_module, node):
    result, failed = check(run_module, node, plugins=['gatewayops-tag', 'my-auth'])
    assert failed
    assert 'does not run the custom plugins my-auth' in result['msg']


def test_one_bad_answer_in_the_steady_window_fails(run_module, node):
    # Good first (old workers), then the new version answers 500 at the third try of the window.
    node.answers['/lab/health'] = [200, 200, 200, 500, 200]
    result, failed = check(run_module, node)
    assert failed
    assert 'at try 3 of 5' in result['msg'] and result['tries'] == 3


def test_without_a_health_route_only_the_status_and_the_plugins(run_module, node):
    result, failed = check(run_module, node, health_url=None)
    assert not failed, result
    assert '/lab/health' not in node.asked and result['tries'] == 0


def test_a_node_that_does_not_answer_fails_with_the_reason(run_module, node):
    result, failed = check(run_module, node, status_url='http://127.0.0.1:1/status/ready', wait_timeout=0)
    assert failed
    assert 'answered nothing' in result['msg']
