# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_upstream_observe on real log files in tmp_path, in the JSON format of nginx_upstream's nginx.conf.j2."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import threading
import time

import pytest

from ansible_collections.gatewayops.apisix_ha.plugins.modules import nginx_upstream_observe

NODE = '10.250.79.21:9080'
OTHER = '10.250.79.22:9080'
TEMPLATE = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'nginx_upstream', 'templates',
                        'nginx.conf.j2')


def entry(at, addr, status=200, upstream_status=None):
    return json.dumps({'msec': round(at, 3), 'remote_addr': '10.250.79.1', 'request': 'GET /lab/load/1 HTTP/1.1',
                       'status': status, 'upstream_addr': addr,
                       'upstream_status': upstream_status or str(status), 'request_time': 0.002}) + '\n'


def write(path, *lines):
    with open(str(path), 'a') as f:
        f.write(''.join(lines))


@pytest.fixture
def log(tmp_path):
    return tmp_path / 'apisix-access.json.log'


def observe(run_module, log, **args):
    params = dict(path=[str(log)], servers=[NODE], name='apisix01')
    params.update(args)
    return run_module(nginx_upstream_observe, params)


def test_the_template_logs_the_fields_the_module_reads():
    with open(TEMPLATE) as f:
        template = f.read()
    fmt = re.search(r"log_format gatewayops_json escape=json (.*?);", template, re.S).group(1)
    for field in ('"msec":$msec', '"status":$status', '"upstream_addr":"$upstream_addr"',
                  '"upstream_status":"$upstream_status"'):
        assert field in fmt
    assert '-access.json.log gatewayops_json' in template


def test_counts_the_requests_of_the_node_and_its_errors_since_it_came_back(run_module, log):
    now = time.time()
    write(log,
          entry(now - 300, NODE, 500),             # before the window: not counted
          entry(now - 2, NODE),
          entry(now - 1.5, OTHER),                 # another node
          entry(now - 1.2, NODE, 502, '502'),      # the node failed it
          entry(now - 1, NODE + ', ' + OTHER, 200, '502, 200'),  # failed on the node, retried on the other
          entry(now - 0.8, OTHER + ', ' + NODE, 200, '502, 200'),  # failed on the other, served by the node
          entry(now - 0.5, NODE, 404))             # a 4xx is not the node's error
    result, failed = observe(run_module, log, since=now - 3)
    assert not failed, result
    assert (result['requests'], result['errors']) == (5, 2)
    assert result['msg'].startswith('apisix01: 5 requests, 2 errors in ')
    assert result['changed'] is False


def test_matches_the_address_exactly(run_module, log):
    now = time.time()
    write(log, entry(now - 1, '10.250.79.211:9080', 500), entry(now - 1, '10.250.79.2:9080', 500),
          entry(now - 1, '10.250.79.21:90800', 500), entry(now - 1, NODE))
    result, failed = observe(run_module, log, since=now - 2, max_error_rate=0)
    assert not failed, result
    assert (result['requests'], result['errors']) == (1, 0)


def test_fails_above_the_error_rate_and_says_so(run_module, log):
    now = time.time()
    write(log, *([entry(now - 1, NODE)] * 98 + [entry(now - 1, NODE, 500)] * 2))
    result, failed = observe(run_module, log, since=now - 2, max_error_rate=0.01)
    assert failed
    assert result['requests'] == 100 and result['errors'] == 2
    assert 'apisix01 answered 2 of its 100 requests with an error' in result['msg']
    assert '(more than 1 %)' in result['msg']

    result, failed = observe(run_module, log, since=now - 2, max_error_rate=0.02)
    assert not failed, result


def test_no_traffic_passes(run_module, log):
    write(log, entry(time.time() - 100, NODE, 500))
    result, failed = observe(run_module, log, max_error_rate=0.01)
    assert not failed, result
    assert (result['requests'], result['errors']) == (0, 0)


def test_counts_what_arrives_while_it_waits_and_survives_a_rotation(run_module, log):
    now = time.time()
    write(log, entry(now - 0.5, NODE))

    def traffic():
        time.sleep(0.3)
        write(log, entry(time.time(), NODE, 500))
        os.rename(str(log), str(log) + '.1')      # logrotate, then nginx reopens its logs
        write(log, entry(time.time(), NODE), entry(time.time(), NODE, 503))

    writer = threading.Thread(target=traffic)
    writer.start()
    result, failed = observe(run_module, log, since=now - 1, wait_seconds=1.5)
    writer.join()
    assert not failed, result
    assert (result['requests'], result['errors']) == (4, 2)


def test_reads_the_rotated_file_for_the_start_of_the_window(run_module, log):
    now = time.time()
    write(str(log) + '.1', entry(now - 400, NODE, 500), entry(now - 2, NODE, 500))
    write(log, entry(now - 1, NODE))
    result, failed = observe(run_module, log, since=now - 3)
    assert not failed, result
    assert (result['requests'], result['errors']) == (2, 1)


def test_a_long_log_is_read_back_only_to_the_window(run_module, log, monkeypatch):
    monkeypatch.setattr(nginx_upstream_observe, '_BLOCK', 128)
    now = time.time()
    write(log, *[entry(now - 1000 + i, NODE, 500) for i in range(500)])
    write(log, 'not json\n', entry(now - 1, NODE), entry(now - 0.5, NODE))
    result, failed = observe(run_module, log, since=now - 2)
    assert not failed, result
    assert (result['requests'], result['errors'], result['unparsed']) == (2, 0, 1)


def test_a_since_ahead_of_the_clock_starts_the_window_now(run_module, log):
    now = time.time()
    write(log, entry(now - 1, NODE, 500))
    result, failed = observe(run_module, log, since=now + 3600)
    assert not failed, result
    assert result['since'] <= time.time() and result['requests'] == 0


def test_refuses_when_no_log_exists(run_module, tmp_path):
    result, failed = observe(run_module, tmp_path / 'missing.json.log')
    assert failed
    assert 'None of the access logs exists' in result['msg']
