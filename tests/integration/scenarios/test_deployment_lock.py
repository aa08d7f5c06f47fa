"""The deployment lock (role deployment_lock) as a second operator meets it: a lock left by a run that died on this
controller is taken over at once, another controller's live lock refuses the run naming its holder (nothing
changed), an expired one is taken over, and check mode takes nothing. The lock held during a real operation is
tested in test_replace_member.py (site.yml started during a replace)."""

import json
import re
import shlex
import socket
import subprocess
import time

import pytest

from conftest import lab_host, run_playbook

LOCK = '/var/lib/gatewayops/deployment.lock'


def backups(host):
    return sorted(host.run('ls /var/backups/etcd').stdout.split())


def plant(holder, **changes):
    """Write a lock on the gateway as a run described by HOLDER would have left it."""
    now = time.time()
    lock = dict(dict(token='planted', operation='replace_member', user='alice', pid=4242, pid_started='',
                     since='2026-12-07T01:00:00Z', since_epoch=now, expires_epoch=now + 7200), **holder)
    lock.update(changes)
    gw = lab_host('gw01')
    done = gw.run('mkdir -p -m 0700 /var/lib/gatewayops && printf %%s %s > %s && chmod 0600 %s'
                  % (shlex.quote(json.dumps(lock)), LOCK, LOCK))
    assert done.rc == 0, done.stderr
    return lock


def read_lock():
    found = lab_host('gw01').run('cat %s' % LOCK)
    return json.loads(found.stdout) if found.rc == 0 else None


@pytest.fixture
def backup_host(etcd_hosts):
    yield etcd_hosts['etcd01']
    lab_host('gw01').run('rm -f %s' % LOCK)


def test_a_lock_left_by_a_run_of_this_controller_that_died_is_taken_over(ansible_runner, backup_host):
    dead = subprocess.Popen(['true'])
    dead.wait()
    plant(dict(controller=socket.gethostname(), pid=dead.pid))
    before = backups(backup_host)
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', 'deployment_lock_wait_timeout=30')
    assert rc == 0, out[-3000:]
    assert len(backups(backup_host)) >= len(before) and backups(backup_host) != before
    assert read_lock() is None


def test_another_controllers_lock_refuses_the_run_naming_it_and_nothing_changes(ansible_runner, backup_host):
    planted = plant(dict(controller='ops-laptop'))
    before = backups(backup_host)
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', 'deployment_lock_wait_timeout=4')
    assert rc != 0
    # Said before the wait, so that an operator knows why the run seems to stand still.
    assert ('backup waits up to 4 s for the deployment lock %s on gw01, held by replace_member (run by '
            'alice@ops-laptop, ansible-playbook pid 4242, since 2026-12-07T01:00:00Z)' % LOCK) in out, out[-3000:]
    # The seconds actually waited: the timeout, or more on a loaded machine (the last look ends past it).
    said = re.search(r'Refusing to start backup: the deployment lock %s on gw01 is held by replace_member '
                     r'\(replace_member run by alice@ops-laptop, ansible-playbook pid 4242, since 2026-12-07T01:00:00Z\); '
                     r'waited (\d+) s' % re.escape(LOCK), out)
    assert said and int(said.group(1)) >= 4, out[-3000:]
    assert 'Nothing was changed.' in out
    assert backups(backup_host) == before
    assert read_lock() == planted


def test_check_mode_takes_nothing_and_does_not_wait(ansible_runner, backup_host):
    planted = plant(dict(controller='ops-laptop'))
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', 'deployment_lock_wait_timeout=600',
                           options=['--check'])
    assert rc == 0, out[-3000:]
    assert read_lock() == planted
    lab_host('gw01').run('rm -f %s' % LOCK)
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', options=['--check'])
    assert rc == 0, out[-3000:]
    assert read_lock() is None


def test_an_expired_lock_is_taken_over(ansible_runner, backup_host):
    plant(dict(controller='ops-laptop'), expires_epoch=time.time() - 1)
    rc, out = run_playbook(ansible_runner.inventory_file, 'backup', 'deployment_lock_wait_timeout=4')
    assert rc == 0, out[-3000:]
    assert read_lock() is None
