# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of deployment_lock: who is asking, whether a holder's run is gone, the refusal."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import subprocess

from ansible_collections.gatewayops.apisix_ha.plugins.action import deployment_lock as action


def test_this_run_is_the_parent_process_with_its_start_time():
    me = action.this_run()
    assert me['pid'] == os.getppid() and me['controller'] == socket.gethostname()
    assert me['pid_started'] == action.process_started(os.getppid()) != ''


def test_a_run_of_this_controller_whose_process_ended_is_gone():
    me = action.this_run()
    child = subprocess.Popen(['sleep', '30'])
    try:
        alive = dict(controller=me['controller'], pid=child.pid, pid_started=action.process_started(child.pid))
        assert action.run_is_gone(alive, me) is False
        # The same PID started at another time: another process, the holder is gone.
        assert action.run_is_gone(dict(alive, pid_started='1'), me) is True
    finally:
        child.kill()
        child.wait()
    assert action.run_is_gone(alive, me) is True
    # Another controller's run is never judged from here: it waits for the expiry.
    assert action.run_is_gone(dict(alive, controller='elsewhere'), me) is False
    assert action.run_is_gone(None, me) is False


def test_the_refusal_names_the_holder_and_says_nothing_changed():
    lock = dict(operation='replace_member', user='alice', controller='ops2', pid=77, since='2026-12-07T01:20:00Z',
                expires_epoch=1796613600)
    msg = action.refusal('site', 'gw01', '/var/lib/gatewayops/deployment.lock', lock, 5.2)
    assert msg.startswith('Refusing to start site: the deployment lock /var/lib/gatewayops/deployment.lock on gw01 '
                          'is held by replace_member')
    assert 'alice@ops2' in msg and 'since 2026-12-07T01:20:00Z' in msg and 'waited 5 s' in msg
    assert 'Nothing was changed.' in msg


def test_the_holder_run_says_whether_it_still_goes_on():
    me = action.this_run()
    now = 1000.0
    lock = dict(controller=me['controller'], pid=os.getpid(), pid_started=action.process_started(os.getpid()),
                expires_epoch=now + 60)
    assert action.holder_run(None, me) is None
    assert action.holder_run(lock, me, now=lambda: now) == 'running'
    assert action.holder_run(dict(lock, pid_started='1'), me, now=lambda: now) == 'gone'
    assert action.holder_run(dict(lock, controller='elsewhere'), me, now=lambda: now) == 'unknown'
    assert action.holder_run(lock, me, now=lambda: now + 61) == 'expired'


def test_a_wait_for_the_lock_says_for_whom_and_how_long():
    lock = dict(operation='failover', user='ops', controller='ctl1', pid=4242, since='2026-12-08T00:10:00Z')
    assert action.waiting_notice('site', 'gw01', '/var/lib/gatewayops/deployment.lock', lock, 120) == (
        'site waits up to 120 s for the deployment lock /var/lib/gatewayops/deployment.lock on gw01, held by failover '
        '(run by ops@ctl1, ansible-playbook pid 4242, since 2026-12-08T00:10:00Z); it refuses, changing nothing, if '
        'the lock is still held then.')
