#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_upstream_observe
short_description: Count one upstream server's requests and errors in nginx's JSON access logs over a time window
version_added: 0.1.0
description:
  - Reads the JSON access logs the role nginx_upstream writes for the APISIX upstreams (one object per line with
    C(msec), C(status), C(upstream_addr) and C(upstream_status)) and counts the requests that one of O(servers)
    took part in, and among them the errors, from O(since) until O(wait_seconds) after the module started.
  - A request counts for a server when one of its attempts (C(upstream_addr) lists every node tried, in order)
    is exactly one of O(servers) (C(10.0.0.1:9080) never matches C(10.0.0.11:9080)). It is an error when that
    attempt got a 5xx, or when the client got a 5xx.
  - Survives a log rotation inside the window - the file opened at the start is read to its end, and a new file
    at the same path is read from its beginning; entries logged between O(since) and the start are also looked
    for in the rotated file C(<path>.1).
  - With O(max_error_rate), fails when the errors exceed that share of the requests.
  - Read-only.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; it waits and counts in check mode too.
  diff_mode:
    support: none
options:
  path:
    description: The JSON access logs to read.
    type: list
    elements: path
    required: true
  servers:
    description: The server's C(address:port) in the upstreams (an IPv6 address in brackets, as nginx logs it).
    type: list
    elements: str
    required: true
  since:
    description:
      - Epoch seconds (fractions allowed); entries logged at or after it are counted.
      - Default - when the module starts. A value ahead of the gateway's clock (set on a controller whose clock is
        ahead) is taken as the start.
    type: float
  wait_seconds:
    description: Observe this long after the module started, then count.
    type: float
    default: 0
  max_error_rate:
    description: Fail when C(errors > requests * max_error_rate). Unset - never fail on the count.
    type: float
  name:
    description: The server's name in the messages (the inventory name of the node).
    type: str
    default: the server
seealso:
  - module: gatewayops.apisix_ha.apisix_plugin_sync
"""

EXAMPLES = r"""
- name: Observe apisix01 for 60 s since it came back, at most 1 % errors
  gatewayops.apisix_ha.nginx_upstream_observe:
    path: [/var/log/nginx/apisix-access.json.log]
    servers: [10.0.0.21:9080]
    since: "{{ undrained_at }}"
    wait_seconds: 60
    max_error_rate: 0.01
    name: apisix01
"""

RETURN = r"""
requests:
  description: Requests the server took part in during the window.
  returned: always
  type: int
  sample: 412
errors:
  description: Those of them that failed on it (its attempt or the answer to the client was a 5xx).
  returned: always
  type: int
  sample: 0
since:
  description: Start of the window (epoch seconds).
  returned: always
  type: float
until:
  description: End of the window (epoch seconds).
  returned: always
  type: float
unparsed:
  description: Lines in the window that were not JSON objects of that format (skipped).
  returned: always
  type: int
msg:
  description: The count, in words.
  returned: always
  type: str
  sample: "apisix01: 412 requests, 0 errors in 60 s"
"""

import json
import os
import re
import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule, ModuleFailure)

# nginx lists the attempts of one request with ", " and the internal redirects with " : ".
_ATTEMPTS = re.compile(r', | : ')
_BLOCK = 65536
# Entries are logged when a request ends, by several workers: reading back stops this long before `since`.
_LATE = 5.0


def parse(line):
    """A log line -> dict, or None when it is not one of ours."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get('msec'), (int, float)):
        return None
    return entry


def classify(entry, servers):
    """None when the request never reached one of `servers`, else True when it failed there."""
    addrs = _ATTEMPTS.split(str(entry.get('upstream_addr') or ''))
    statuses = _ATTEMPTS.split(str(entry.get('upstream_status') or ''))
    hit = False
    for i, addr in enumerate(addrs):
        if addr in servers:
            hit = True
            status = statuses[i] if i < len(statuses) else ''
            if status.startswith('5'):
                return True
    if not hit:
        return None
    return str(entry.get('status', '')).startswith('5')


def lines_backward(f, end):
    """The complete lines of f before offset `end`, last first."""
    pos, rest = end, b''
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        f.seek(pos)
        chunk = f.read(size) + rest
        parts = chunk.split(b'\n')
        rest = parts[0]
        for line in reversed(parts[1:]):
            if line:
                yield line
    if rest:
        yield rest


def lines_forward(f, start):
    f.seek(start)
    for line in f:
        if line.endswith(b'\n'):
            yield line


class LogWindow(object):
    """One access log, opened at the start of the window so that a rotation inside it loses nothing."""

    def __init__(self, path):
        self.path = path
        self.file, self.inode, self.start = None, None, 0
        try:
            self.file = open(path, 'rb')
            st = os.fstat(self.file.fileno())
            self.inode, self.start = st.st_ino, st.st_size
        except (IOError, OSError):
            self.file = None

    def before(self, since):
        """Lines logged from `since` until the start, newest first; when the file opened holds nothing older, the
        rotated file <path>.1 is read back too (a rotation between `since` and the start)."""
        if self.file is not None:
            for line in self._back_to(self.file, self.start, since):
                if line is None:
                    return
                yield line
        try:
            rotated = open(self.path + '.1', 'rb')
        except (IOError, OSError):
            return
        with rotated:
            if os.fstat(rotated.fileno()).st_ino == self.inode:
                return
            for line in self._back_to(rotated, os.fstat(rotated.fileno()).st_size, since):
                if line is None:
                    return
                yield line

    @staticmethod
    def _back_to(f, end, since):
        """Lines back from `end`; None once a line older than `since` (less the lateness allowed) is met."""
        for line in lines_backward(f, end):
            entry = parse(line)
            if entry is not None and entry['msec'] < since - _LATE:
                yield None
                return
            yield line

    def after(self):
        """Lines logged since the start: the rest of the file opened then, and a new file at the path."""
        if self.file is not None:
            yield from lines_forward(self.file, self.start)
        try:
            st = os.stat(self.path)
        except OSError:
            return
        if self.file is None or st.st_ino != self.inode:
            with open(self.path, 'rb') as f:
                yield from lines_forward(f, 0)

    def close(self):
        if self.file is not None:
            self.file.close()


class Observation(object):
    def __init__(self, servers, since, until):
        self.servers, self.since, self.until = set(servers), since, until
        self.requests = self.errors = self.unparsed = 0

    def add(self, lines):
        for line in lines:
            entry = parse(line)
            if entry is None:
                self.unparsed += 1
                continue
            if not self.since <= entry['msec'] <= self.until:
                continue
            failed = classify(entry, self.servers)
            if failed is not None:
                self.requests += 1
                self.errors += int(failed)


def observe(module):
    p = module.params
    started = time.time()
    # A `since` ahead of this host's clock (taken on a controller whose clock is ahead) starts the window now.
    since = min(p['since'], started) if p['since'] is not None else started
    logs = [LogWindow(path) for path in p['path']]
    try:
        if not any(log.file is not None for log in logs):
            raise ModuleFailure('None of the access logs exists: %s. Is it the gateway, and does its nginx.conf '
                                'come from the role nginx_upstream?' % ', '.join(p['path']))
        # What was logged before the start is read now: a rotation during the wait would move it.
        earlier = [line for log in logs for line in log.before(since)]
        time.sleep(max(0.0, started + p['wait_seconds'] - time.time()))
        until = time.time()
        seen = Observation(p['servers'], since, until)
        seen.add(earlier)
        for log in logs:
            seen.add(log.after())
    finally:
        for log in logs:
            log.close()
    seconds = '%g' % round(until - since)
    result = dict(requests=seen.requests, errors=seen.errors, since=since, until=until, unparsed=seen.unparsed,
                  changed=False)
    rate = p['max_error_rate']
    if rate is not None and seen.errors > seen.requests * rate:
        raise ModuleFailure('%s answered %d of its %d requests with an error in %s s (more than %g %%).' % (
            p['name'], seen.errors, seen.requests, seconds, rate * 100), **result)
    module.exit_json(msg='%s: %d requests, %d errors in %s s' % (p['name'], seen.requests, seen.errors, seconds),
                     **result)


def main():
    module = GatewayopsModule(
        argument_spec=dict(
            path=dict(type='list', elements='path', required=True),
            servers=dict(type='list', elements='str', required=True),
            since=dict(type='float'),
            wait_seconds=dict(type='float', default=0),
            max_error_rate=dict(type='float'),
            name=dict(type='str', default='the server'),
        ),
        supports_check_mode=True,
    )
    module.execute(observe, module)


if __name__ == '__main__':
    main()
