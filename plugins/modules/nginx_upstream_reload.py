#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_upstream_reload
short_description: Reload nginx gracefully and wait until only the new configuration serves
version_added: 0.1.0
description:
  - Notes nginx's worker processes, reloads nginx (C(systemctl reload)), then waits until those workers - the old
    configuration's, which finish their requests first - have exited. C(nginx -s reload) only signals the master;
    until then the old workers still accept connections and send them where the old configuration says (a node
    just drained, the etcd side just left).
  - With O(wait_servers), waits also until the host holds no established TCP connection to any of them (a drained
    APISIX node's requests have finished). With O(reload=false) it only waits for that.
  - Fails when the wait outlasts O(wait_timeout), naming what is left; the new configuration is in force then all
    the same.
  - In check mode nothing is reloaded and nothing waited for.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
    details: Says what it would reload; waits for nothing.
  diff_mode:
    support: none
options:
  reload:
    description: Reload nginx. V(false) only waits for O(wait_servers).
    type: bool
    default: true
  wait_servers:
    description: C(address:port) of upstream servers (an IPv6 address in brackets) the host must hold no established
      connection to any more.
    type: list
    elements: str
    default: []
  wait_timeout:
    description: Seconds to wait for the old workers to exit and the connections to end.
    type: float
    default: 60
  service:
    description: The systemd unit of nginx.
    type: str
    default: nginx
seealso:
  - module: gatewayops.apisix_ha.nginx_upstream_observe
"""

EXAMPLES = r"""
- name: Reload nginx and wait until the drained node's requests have finished
  gatewayops.apisix_ha.nginx_upstream_reload:
    wait_servers: [10.0.0.21:9080]
    wait_timeout: 60
"""

RETURN = r"""
old_workers:
  description: Process IDs of the workers that served the old configuration.
  returned: always
  type: list
  elements: int
  sample: [2041, 2042]
seconds_waited:
  description: Seconds from the reload until the old workers had exited and the connections had ended.
  returned: always
  type: float
  sample: 0.4
msg:
  description: What was done, in words.
  returned: always
  type: str
"""

import os
import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule, ModuleFailure)

PROC = '/proc'
WORKER_TITLE = b'nginx: worker process'
POLL_SECONDS = 0.2


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def worker_identity(pid):
    """(pid, start time) of an nginx worker process, None when ``pid`` is not one (any more)."""
    cmdline = _read(os.path.join(PROC, str(pid), 'cmdline'))
    stat = _read(os.path.join(PROC, str(pid), 'stat'))
    if not cmdline or not stat or not cmdline.startswith(WORKER_TITLE):
        return None
    # The start time (field 22) tells a worker from a later process that got its pid; the command name (field 2)
    # may hold spaces and parentheses, so the fields are counted after its closing one.
    fields = stat[stat.rfind(b')') + 2:].split()
    return int(pid), fields[19] if len(fields) > 19 else b''


def nginx_workers():
    found = []
    for name in os.listdir(PROC):
        if name.isdigit():
            identity = worker_identity(name)
            if identity is not None:
                found.append(identity)
    return sorted(found)


def still_running(workers):
    return [pid for pid, started in workers if worker_identity(pid) == (pid, started)]


def established(module, servers):
    """The servers of ``servers`` this host holds an established TCP connection to."""
    ss = module.get_bin_path('ss', required=True)
    left = []
    for server in servers:
        rc, out, err = module.run_command([ss, '-Htn', 'state', 'established', 'dst', server])
        if rc != 0:
            raise ModuleFailure('ss could not list the connections to %s (rc=%d): %s' % (server, rc, (err or out).strip()))
        if out.strip():
            left.append(server)
    return left


def reload_and_wait(module):
    p = module.params
    workers = nginx_workers() if p['reload'] else []
    if p['reload']:
        systemctl = module.get_bin_path('systemctl', required=True)
        module.recorder.do('reload %s' % p['service'], _systemctl_reload, module, systemctl, p['service'])
    if module.check_mode:
        module.finish(old_workers=[pid for pid, _started in workers], seconds_waited=0.0,
                      msg='would reload %s' % p['service'] if p['reload'] else 'nothing to do in check mode')
    started = time.time()
    while True:
        left = still_running(workers)
        busy = established(module, p['wait_servers']) if not left else p['wait_servers']
        waited = time.time() - started
        if not left and not busy:
            break
        if waited >= p['wait_timeout']:
            raise ModuleFailure(
                'After %g s %s: the new configuration is in force, but %s. Nothing else was changed.' % (
                    p['wait_timeout'], 'nginx was reloaded' if p['reload'] else 'waiting',
                    ('the workers of the old configuration (%s) have not exited: they still serve requests begun '
                     'before the reload (nginx_upstream_worker_shutdown_timeout bounds them)'
                     % ', '.join(str(pid) for pid in left)) if left else
                    'the host still holds connections to %s' % ', '.join(busy)),
                old_workers=[pid for pid, _started in workers], seconds_waited=round(waited, 2))
        time.sleep(POLL_SECONDS)
    module.finish(old_workers=[pid for pid, _started in workers], seconds_waited=round(waited, 2),
                  msg='%s; the old workers exited and the connections ended after %.1f s'
                  % ('reloaded %s' % p['service'] if p['reload'] else 'not reloaded', waited))


def _systemctl_reload(module, systemctl, service):
    rc, out, err = module.run_command([systemctl, 'reload', service])
    if rc != 0:
        raise ModuleFailure('systemctl reload %s failed (rc=%d): %s The running configuration is unchanged.'
                            % (service, rc, (err or out).strip().rstrip('.') + '.'))


def main():
    module = GatewayopsModule(
        argument_spec=dict(
            reload=dict(type='bool', default=True),
            wait_servers=dict(type='list', elements='str', default=[]),
            wait_timeout=dict(type='float', default=60),
            service=dict(type='str', default='nginx'),
        ),
        supports_check_mode=True,
    )
    module.execute(reload_and_wait, module)


if __name__ == '__main__':
    main()
