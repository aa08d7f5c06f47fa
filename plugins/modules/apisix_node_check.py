#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apisix_node_check
short_description: Check that an APISIX node serves - ready, its health route, its custom plugins loaded, steadily
version_added: 0.1.0
description:
  - Asked on the node itself, in this order, the first failure ending the module with its reason
  - waits up to O(wait_timeout) seconds until O(status_url) (the status API's C(/status/ready)) answers 200;
  - when O(health_url) is set, waits up to O(health_wait_timeout) seconds until it answers O(health_status);
  - when O(control_url) is set, reads C(<control_url>/v1/schema) and checks that every plugin of O(plugins) is
    listed there (loaded);
  - for O(steady_seconds), asks O(health_url) once a second; every answer must be O(health_status). A graceful
    reload is asynchronous - old workers answer for a while - so one good answer does not prove the new version.
  - Read-only.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; it asks the node in check mode too.
  diff_mode:
    support: none
options:
  status_url:
    description: The status API's readiness URL.
    type: str
    default: http://127.0.0.1:7085/status/ready
  wait_timeout:
    description: Seconds to wait until O(status_url) answers 200.
    type: int
    default: 60
  health_url:
    description: A URL a route of the node serves (its health route). Unset - none.
    type: str
  health_status:
    description: The status O(health_url) must answer.
    type: int
    default: 200
  health_wait_timeout:
    description: Seconds to wait until O(health_url) first answers O(health_status).
    type: int
    default: 10
  control_url:
    description: The control API (C(http://127.0.0.1:9090)). Unset - the plugins are not checked.
    type: str
  plugins:
    description: Plugins that must be listed by the control API's C(/v1/schema).
    type: list
    elements: str
    default: []
  steady_seconds:
    description: Seconds during which O(health_url) must answer O(health_status) on every try (one a second).
    type: int
    default: 0
  timeout:
    description: Seconds for one request.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Check the node after a reload
  gatewayops.apisix_ha.apisix_node_check:
    health_url: http://127.0.0.1:9080/lab/health
    control_url: http://127.0.0.1:9090
    plugins: [gatewayops-tag]
    steady_seconds: 10
"""

RETURN = r"""
tries:
  description: Requests made to the health route during O(steady_seconds), every one good.
  returned: always
  type: int
  sample: 10
loaded:
  description: The plugins the control API lists (when O(control_url) is set).
  returned: when O(control_url) is set
  type: list
  elements: str
"""

import json
import time

from urllib.error import HTTPError

from ansible.module_utils.urls import open_url

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule, ModuleFailure, describe_exception)


def ask(url, timeout):
    """GET url -> (status, body); status 0 and the reason when it could not be asked."""
    try:
        response = open_url(url, method='GET', timeout=timeout, validate_certs=False)
        return response.getcode(), response.read()
    except HTTPError as e:
        return e.code, b''
    except Exception as e:  # pylint: disable=broad-except
        return 0, describe_exception(e)


def answer_text(status, body):
    """What an answer was, after "answered"."""
    return 'nothing (%s)' % body if status == 0 else 'status %d' % status


def wait_for(url, status, seconds, timeout):
    """Ask url until it answers `status` or `seconds` have passed; the last (status, body)."""
    deadline = time.time() + seconds
    while True:
        got = ask(url, timeout)
        if got[0] == status or time.time() >= deadline:
            return got
        time.sleep(1)


def check(module):
    p = module.params
    got = wait_for(p['status_url'], 200, p['wait_timeout'], p['timeout'])
    if got[0] != 200:
        raise ModuleFailure('APISIX is not ready: %s answered %s after %d s.' % (
            p['status_url'], answer_text(*got), p['wait_timeout']))
    result = dict(changed=False, tries=0)
    if p['health_url']:
        got = wait_for(p['health_url'], p['health_status'], p['health_wait_timeout'], p['timeout'])
        if got[0] != p['health_status']:
            raise ModuleFailure('The health route %s answered %s, not %d (for %d s).' % (
                p['health_url'], answer_text(*got), p['health_status'], p['health_wait_timeout']))
    if p['control_url']:
        url = p['control_url'].rstrip('/') + '/v1/schema'
        status, body = ask(url, p['timeout'])
        try:
            loaded = sorted(json.loads(body)['plugins']) if status == 200 else None
        except (ValueError, KeyError, TypeError):
            loaded = None
        if loaded is None:
            raise ModuleFailure('The control API %s answered %s, not the plugins the node runs.' % (
                url, answer_text(status, body)))
        missing = [name for name in p['plugins'] if name not in loaded]
        if missing:
            raise ModuleFailure('The node does not run the custom plugins %s (control API /v1/schema): they failed '
                                'to load; see logs/error.log in its APISIX home.' % ', '.join(missing))
        result['loaded'] = loaded
    if p['health_url']:
        for n in range(p['steady_seconds']):
            if n:
                time.sleep(1)
            got = ask(p['health_url'], p['timeout'])
            result['tries'] = n + 1
            if got[0] != p['health_status']:
                raise ModuleFailure('The health route %s answered %s, not %d, at try %d of %d (once a second).' % (
                    p['health_url'], answer_text(*got), p['health_status'], n + 1, p['steady_seconds']), **result)
    module.exit_json(**result)


def main():
    module = GatewayopsModule(
        argument_spec=dict(
            status_url=dict(type='str', default='http://127.0.0.1:7085/status/ready'),
            wait_timeout=dict(type='int', default=60),
            health_url=dict(type='str'),
            health_status=dict(type='int', default=200),
            health_wait_timeout=dict(type='int', default=10),
            control_url=dict(type='str'),
            plugins=dict(type='list', elements='str', default=[]),
            steady_seconds=dict(type='int', default=0),
            timeout=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    module.execute(check, module)


if __name__ == '__main__':
    main()
