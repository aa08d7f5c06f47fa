#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deployment_lock
short_description: One lock per deployment, held by one playbook run at a time
version_added: 0.1.0
description:
  - Serialises the playbooks that change a deployment (site, the member operations, upgrade, restore, failover,
    failback, rolling update). The lock is a small JSON file on one host of the deployment (the role
    C(gatewayops.apisix_ha.deployment_lock) puts it on the gateway, which outlives the loss of the cluster).
  - It names its holder - the operation, the controller, the user, the C(ansible-playbook) process and when it was
    taken - so that a refused run can say who holds it and since when.
  - V(held) takes the lock when it is free, when this run already holds it (a playbook importing another - the first
    operation keeps it), when it has expired (O(expire_after) after it was taken), or when O(take_over) names its
    token. Otherwise nothing is written and C(held) is false, with the holder returned.
  - V(released) removes the lock when this run holds it for O(operation); anything else is left as it is.
  - The action plugin of the same name fills O(holder) from the controller, waits a bounded time for a holder, takes
    over at once the lock of a run of the same controller whose process is gone, and refuses with the holder's name
    when the wait ends (O(wait_timeout)).
  - Reads and writes are serialised on the host by an exclusive C(flock) on a guard file beside the lock; the lock is
    written to a private temporary file and renamed into place (0600, in a 0700 directory).
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode writes nothing; it says whether the lock would be taken or is held by another run.
  diff_mode:
    support: none
options:
  operation:
    description: What the run does (V(site), V(replace_member), ...); the lock names it for a refused run.
    type: str
    required: true
  state:
    description:
      - V(held) takes the lock (see above), V(released) gives it back, V(query) only reads it (status.yml) - the
        action plugin then says in RV(holder_run) whether its holder still runs.
    type: str
    choices: [held, released, query]
    default: held
  path:
    description: The lock file. Its directory is created (0700) when missing.
    type: path
    default: /var/lib/gatewayops/deployment.lock
  wait_timeout:
    description:
      - Seconds the action plugin waits for a lock held by another run before it refuses, nothing changed.
    type: int
    default: 120
  wait_sleep:
    description: Seconds between two asks while waiting.
    type: int
    default: 3
  expire_after:
    description: Seconds after which a lock is free for anyone, its holder presumed dead.
    type: int
    default: 7200
  holder:
    description:
      - Who asks - filled in by the action plugin; do not set it. C(controller), C(pid) and C(pid_started)
        identify one run of C(ansible-playbook).
    type: dict
    required: true
    suboptions:
      controller:
        description: The controller's host name.
        type: str
        required: true
      user:
        description: The user running C(ansible-playbook).
        type: str
        required: true
      pid:
        description: The process ID of C(ansible-playbook) on the controller.
        type: int
        required: true
      pid_started:
        description: When that process started (C(/proc/PID/stat), field 22), to tell a reused PID apart.
        type: str
        default: ""
  take_over:
    description:
      - The token of a lock to replace although it has not expired - set by the action plugin when the holder is a
        run of the same controller whose process is gone.
    type: str
    default: ""
"""

EXAMPLES = r"""
# Through the role, as the collection's playbooks do:
- name: Take the deployment lock
  ansible.builtin.include_role:
    name: gatewayops.apisix_ha.deployment_lock
  vars:
    deployment_lock_operation: replace_member

# The module itself (the action plugin fills in the holder and waits):
- name: Take the lock on the gateway, waiting up to 2 minutes for another run
  gatewayops.apisix_ha.deployment_lock:
    operation: replace_member
    wait_timeout: 120
  delegate_to: gw01
  run_once: true
"""

RETURN = r"""
held:
  description: Whether the run asking holds the lock after this call.
  returned: always
  type: bool
  sample: true
holder:
  description: The lock as it is after this call (null when free) - C(token), C(operation), C(controller), C(user),
    C(pid), C(pid_started), C(since) (UTC, ISO 8601), C(since_epoch), C(expires_epoch).
  returned: always
  type: dict
  sample: {"token": "0b6f3c1e9a7d4e21", "operation": "replace_member", "controller": "ops1", "user": "root",
           "pid": 4242, "pid_started": "1733", "since": "2026-12-07T01:20:00Z", "since_epoch": 1796606400.0,
           "expires_epoch": 1796613600.0}
holder_run:
  description:
    - With O(state=query), whether the holder's run still goes on, as the action plugin can tell - C(running) (a live
      process of this controller), C(gone) (its process on this controller has ended - the next run takes the lock
      over), C(expired) (past its expiry), C(unknown) (another controller's run, not expired); null when free.
  returned: with O(state=query)
  type: str
  sample: gone
replaced:
  description: The lock this call replaced (expired, or named by O(take_over)), else null.
  returned: always
  type: dict
  sample: null
actions:
  description: What was done (in check mode, what would be).
  returned: always
  type: list
  elements: str
  sample: ["take the deployment lock for replace_member"]
"""

import binascii
import datetime
import errno
import fcntl
import json
import os
import time

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._file_tx import write_bytes_atomic
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule, ModuleFailure)

IDENTITY = ('controller', 'pid', 'pid_started')


def same_run(lock, holder):
    return lock is not None and all(lock.get(key) == holder.get(key) for key in IDENTITY)


def describe(lock):
    return ('%(operation)s run by %(user)s@%(controller)s (ansible-playbook pid %(pid)s) since %(since)s'
            % dict(lock, since=lock.get('since', '?')))


class DeploymentLock(object):

    def __init__(self, module):
        self.module = module
        self.path = module.params['path']
        # Who asks: this run of ansible-playbook (the action plugin's holder) and what it does.
        self.holder = dict(module.params['holder'], operation=module.params['operation'])

    def read(self):
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (IOError, OSError) as e:
            if e.errno == errno.ENOENT:
                return None
            raise ModuleFailure('Cannot read the deployment lock %s: %s. Nothing was changed.' % (self.path, e.strerror))
        except ValueError:
            # A lock nobody can read protects nothing: treated as expired, and replaced.
            return dict(token='unreadable', operation='(unreadable lock file)', controller='?', user='?', pid=0,
                        since='?', expires_epoch=0)

    def write(self, lock):
        write_bytes_atomic(json.dumps(lock, sort_keys=True).encode('utf-8'), self.path, 0o600,
                           tmp_prefix='.deployment-lock.')

    def guarded(self, func):
        """func() with the guard held: one reader-writer of the lock at a time on this host."""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            # Nothing to guard yet, and nothing to create for a run that writes nothing.
            if self.module.check_mode or self.module.params['state'] == 'query':
                return func()
            os.makedirs(directory, 0o700)
        guard = os.open(self.path + '.guard', os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            return func()
        finally:
            os.close(guard)

    def run(self, func):
        try:
            return self.guarded(func)
        except (IOError, OSError) as e:
            raise ModuleFailure('Cannot use the deployment lock %s: %s. %s.'
                                % (self.path, e, 'Nothing was changed' if not self.module.recorder.changed
                                   else 'Done before: ' + self.module.recorder.done_text()))

    def new_lock(self):
        now = time.time()
        lock = dict(self.holder, token=binascii.hexlify(os.urandom(8)).decode('ascii'),
                    since=datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                    since_epoch=now, expires_epoch=now + self.module.params['expire_after'])
        return lock

    def hold(self):
        recorder = self.module.recorder
        operation = self.holder['operation']
        lock = self.read()
        if same_run(lock, self.holder):
            return dict(held=True, holder=lock, replaced=None)
        replaced = None
        if lock is not None:
            expired = time.time() >= float(lock.get('expires_epoch') or 0)
            named = bool(self.module.params['take_over']) and lock.get('token') == self.module.params['take_over']
            if not (expired or named):
                return dict(held=False, holder=lock, replaced=None)
            replaced = lock
        new = self.new_lock()
        what = 'take the deployment lock for %s' % operation
        if replaced is not None:
            what += ' over %s (%s)' % (describe(replaced), 'expired' if expired else 'that run is gone')
        recorder.do(what, self.write, new)
        return dict(held=not self.module.check_mode, holder=lock if self.module.check_mode else new,
                    replaced=replaced)

    def query(self):
        lock = self.read()
        return dict(held=same_run(lock, self.holder), holder=lock, replaced=None)

    def release(self):
        lock = self.read()
        if same_run(lock, self.holder) and lock.get('operation') == self.holder['operation']:
            self.module.recorder.do('release the deployment lock of %s' % lock['operation'], os.unlink, self.path)
            return dict(held=False, holder=None if not self.module.check_mode else lock, replaced=None)
        return dict(held=same_run(lock, self.holder), holder=lock, replaced=None)


def main():
    module = GatewayopsModule(
        argument_spec=dict(
            operation=dict(type='str', required=True),
            state=dict(type='str', choices=['held', 'released', 'query'], default='held'),
            path=dict(type='path', default='/var/lib/gatewayops/deployment.lock'),
            wait_timeout=dict(type='int', default=120),
            wait_sleep=dict(type='int', default=3),
            expire_after=dict(type='int', default=7200),
            holder=dict(type='dict', required=True, options=dict(
                controller=dict(type='str', required=True),
                user=dict(type='str', required=True),
                pid=dict(type='int', required=True),
                pid_started=dict(type='str', default=''),
            )),
            take_over=dict(type='str', default='', no_log=False),
        ),
        supports_check_mode=True,
    )
    lock = DeploymentLock(module)
    handler = dict(held=lock.hold, released=lock.release, query=lock.query)[module.params['state']]
    result = module.execute(lock.run, handler)
    module.finish(**result)


if __name__ == '__main__':
    main()
