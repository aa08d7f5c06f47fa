# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of gatewayops.apisix_ha.deployment_lock (the module documents the options).

The module on the lock's host only sees the lock file; who is asking, and whether an earlier run of this
controller is still alive, is known here. So: the holder is filled in from this controller (the ansible-playbook
process is this worker's parent: workers are forked from it), a lock held by another run is asked for again every
few seconds up to wait_timeout, a lock left by a run of this controller whose process is gone is taken over at once,
and the wait ends with a refusal naming the holder and since when.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import os
import socket
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.validation import check_type_int
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

MODULE = 'gatewayops.apisix_ha.deployment_lock'

display = Display()


def process_started(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), '' when unknown; None when no such
    process."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
    except (IOError, OSError):
        return None if os.path.isdir('/proc/self') else ''
    # The command name (field 2) is in parentheses and may contain spaces: count from its closing one.
    return stat.rsplit(')', 1)[1].split()[19]


def this_run():
    pid = os.getppid()
    return dict(controller=socket.gethostname(), user=getpass.getuser(), pid=pid,
                pid_started=process_started(pid) or '')


def run_is_gone(lock, me, started=process_started):
    """Whether the lock was left by a run of this controller that no longer runs (same PID reused: gone too)."""
    if not lock or lock.get('controller') != me['controller'] or not lock.get('pid'):
        return False
    now = started(int(lock['pid']))
    if now is None:
        return True
    return bool(lock.get('pid_started')) and bool(now) and now != lock['pid_started']


def holder_run(lock, me, started=process_started, now=time.time):
    """Whether the holder of ``lock`` still runs: running, gone, expired, unknown (another controller); None when
    free."""
    if not lock:
        return None
    if now() >= float(lock.get('expires_epoch') or 0):
        return 'expired'
    if run_is_gone(lock, me, started):
        return 'gone'
    return 'running' if lock.get('controller') == me['controller'] else 'unknown'


def waiting_notice(operation, host, path, lock, wait_timeout):
    """The line printed once when the lock is found held: a wait can last minutes with no task output."""
    return ('%s waits up to %d s for the deployment lock %s on %s, held by %s (run by %s@%s, ansible-playbook pid %s, '
            'since %s); it refuses, changing nothing, if the lock is still held then.'
            % (operation, wait_timeout, path, host, lock.get('operation'), lock.get('user'), lock.get('controller'),
               lock.get('pid'), lock.get('since')))


def refusal(operation, host, path, lock, waited):
    return ('Refusing to start %s: the deployment lock %s on %s is held by %s (%s run by %s@%s, ansible-playbook '
            'pid %s, since %s); waited %d s for it. Nothing was changed. It is released when that run ends; if that '
            'run is gone, the lock expires at %s (UTC), or remove %s on %s once you are sure nothing runs.'
            % (operation, path, host, lock.get('operation'), lock.get('operation'), lock.get('user'),
               lock.get('controller'), lock.get('pid'), lock.get('since'), waited,
               time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(lock.get('expires_epoch') or 0))), path, host))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('operation', 'state', 'path', 'wait_timeout', 'wait_sleep', 'expire_after'))

    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        operation = args.get('operation')
        if not operation:
            raise AnsibleActionFail('deployment_lock needs operation (what this run does). Nothing was changed.')
        try:
            wait_timeout = check_type_int(args.get('wait_timeout', 120))
            wait_sleep = check_type_int(args.get('wait_sleep', 3))
        except TypeError as e:
            raise AnsibleActionFail('deployment_lock: wait_timeout and wait_sleep are seconds (%s). Nothing was '
                                    'changed.' % e)
        module_args = dict(args, holder=this_run(), take_over='')
        module_args.setdefault('state', 'held')
        host = self._task.delegate_to or (task_vars or {}).get('inventory_hostname')
        started = time.monotonic()
        taken_over = []
        announced = []
        while True:
            answer = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
            if module_args['state'] == 'query' and not answer.get('failed'):
                answer['holder_run'] = holder_run(answer.get('holder'), module_args['holder'])
                break
            if answer.get('failed') or module_args['state'] == 'released' or answer.get('held') \
                    or self._task.check_mode:
                break
            lock = answer.get('holder') or {}
            if run_is_gone(lock, module_args['holder']) and lock.get('token') not in taken_over:
                taken_over.append(lock.get('token'))
                module_args['take_over'] = lock.get('token')
                continue
            waited = time.monotonic() - started
            path = answer.get('path') or module_args.get('path', '/var/lib/gatewayops/deployment.lock')
            if waited >= wait_timeout:
                answer.update(failed=True, msg=refusal(operation, host, path, lock, waited))
                break
            if lock.get('token') not in announced:
                announced.append(lock.get('token'))
                display.display(waiting_notice(operation, host, path, lock, wait_timeout))
            time.sleep(min(wait_sleep, max(wait_timeout - waited, 0.1)))
        answer['waited_seconds'] = round(time.monotonic() - started, 1)
        result.update(answer)
        return result
