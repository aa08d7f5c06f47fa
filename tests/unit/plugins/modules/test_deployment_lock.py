# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""deployment_lock on a real lock file in tmp_path: taken, kept by its run, refused to another, taken over."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import time

from ansible_collections.gatewayops.apisix_ha.plugins.modules import deployment_lock

ME = dict(controller='ops1', user='root', pid=4242, pid_started='1733')
OTHER = dict(controller='ops2', user='alice', pid=77, pid_started='99')


def args(tmp_path, holder=None, operation='replace_member', **more):
    return dict(dict(path=str(tmp_path / 'gatewayops' / 'deployment.lock'), operation=operation,
                     holder=holder or ME), **more)


def lock_file(tmp_path):
    return tmp_path / 'gatewayops' / 'deployment.lock'


def test_a_free_lock_is_taken_privately_and_names_its_holder(run_module, tmp_path):
    res, failed = run_module(deployment_lock, args(tmp_path))
    assert not failed, res
    assert res['held'] is True and res['changed'] is True
    assert res['actions'] == ['take the deployment lock for replace_member']
    written = json.loads(lock_file(tmp_path).read_text())
    assert written == res['holder']
    assert (written['operation'], written['controller'], written['pid'], written['user']) == (
        'replace_member', 'ops1', 4242, 'root')
    assert written['expires_epoch'] - written['since_epoch'] == 7200
    assert stat.S_IMODE(os.stat(str(lock_file(tmp_path))).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / 'gatewayops')).st_mode) == 0o700
    assert [p.name for p in (tmp_path / 'gatewayops').iterdir() if p.name.startswith('.deployment-lock.')] == []


def test_the_same_run_keeps_it_and_the_first_operation_stays_its_holder(run_module, tmp_path):
    run_module(deployment_lock, args(tmp_path, operation='site'))
    before = lock_file(tmp_path).read_text()
    res, failed = run_module(deployment_lock, args(tmp_path, operation='etcd_cluster'))
    assert not failed and res['held'] is True and res['changed'] is False
    assert res['holder']['operation'] == 'site'
    # The imported playbook's release leaves it to the outer one.
    res, failed = run_module(deployment_lock, args(tmp_path, operation='etcd_cluster', state='released'))
    assert not failed and res['changed'] is False and res['held'] is True
    assert lock_file(tmp_path).read_text() == before
    res, failed = run_module(deployment_lock, args(tmp_path, operation='site', state='released'))
    assert not failed and res['changed'] is True and res['holder'] is None
    assert not lock_file(tmp_path).exists()


def test_another_run_gets_the_holder_and_nothing_is_written(run_module, tmp_path):
    run_module(deployment_lock, args(tmp_path))
    before = lock_file(tmp_path).read_text()
    res, failed = run_module(deployment_lock, args(tmp_path, holder=OTHER, operation='site'))
    assert not failed and res['held'] is False and res['changed'] is False
    assert res['holder']['operation'] == 'replace_member' and res['holder']['controller'] == 'ops1'
    # A release by another run leaves the lock too.
    res, failed = run_module(deployment_lock, args(tmp_path, holder=OTHER, operation='replace_member',
                                                   state='released'))
    assert not failed and res['changed'] is False
    assert lock_file(tmp_path).read_text() == before
    # The same PID with another start time is another process: not the holder.
    reused = dict(ME, pid_started='9999')
    res, failed = run_module(deployment_lock, args(tmp_path, holder=reused))
    assert not failed and res['held'] is False
    assert lock_file(tmp_path).read_text() == before


def test_an_expired_lock_or_one_named_by_take_over_is_replaced(run_module, tmp_path, monkeypatch):
    run_module(deployment_lock, args(tmp_path, expire_after=60))
    first = json.loads(lock_file(tmp_path).read_text())
    res, failed = run_module(deployment_lock, args(tmp_path, holder=OTHER, operation='site', take_over='not-it'))
    assert not failed and res['held'] is False
    res, failed = run_module(deployment_lock, args(tmp_path, holder=OTHER, operation='site',
                                                   take_over=first['token']))
    assert not failed and res['held'] is True and res['replaced'] == first
    assert 'over replace_member run by root@ops1' in res['actions'][0] and 'that run is gone' in res['actions'][0]
    second = json.loads(lock_file(tmp_path).read_text())
    assert second['controller'] == 'ops2' and second['token'] != first['token']
    real_time = time.time
    monkeypatch.setattr(deployment_lock.time, 'time', lambda: real_time() + 7201)
    res, failed = run_module(deployment_lock, args(tmp_path, operation='failover'))
    assert not failed and res['held'] is True and 'expired' in res['actions'][0]
    assert json.loads(lock_file(tmp_path).read_text())['operation'] == 'failover'


def test_an_unreadable_lock_is_replaced(run_module, tmp_path):
    lock_file(tmp_path).parent.mkdir()
    lock_file(tmp_path).write_text(u'{half a lo')
    res, failed = run_module(deployment_lock, args(tmp_path))
    assert not failed and res['held'] is True
    assert json.loads(lock_file(tmp_path).read_text())['operation'] == 'replace_member'


def test_check_mode_writes_nothing(run_module, tmp_path):
    res, failed = run_module(deployment_lock, args(tmp_path, _ansible_check_mode=True))
    assert not failed and res['held'] is False and res['changed'] is True
    assert res['actions'] == ['would take the deployment lock for replace_member']
    assert not (tmp_path / 'gatewayops').exists()
    run_module(deployment_lock, args(tmp_path))
    before = lock_file(tmp_path).read_text()
    res, failed = run_module(deployment_lock, args(tmp_path, state='released', _ansible_check_mode=True))
    assert not failed and res['actions'] == ['would release the deployment lock of replace_member']
    assert lock_file(tmp_path).read_text() == before


def test_a_lock_that_cannot_be_written_is_a_clear_failure(run_module, tmp_path):
    (tmp_path / 'gatewayops').write_text(u'a file where the directory should be')
    res, failed = run_module(deployment_lock, args(tmp_path))
    assert failed
    assert res['msg'].startswith('Cannot use the deployment lock %s' % lock_file(tmp_path))
    assert res['msg'].endswith('Nothing was changed.')


def test_query_reads_and_writes_nothing(run_module, tmp_path):
    res, failed = run_module(deployment_lock, args(tmp_path, state='query'))
    assert not failed and res['holder'] is None and res['changed'] is False
    assert not (tmp_path / 'gatewayops').exists()
    run_module(deployment_lock, args(tmp_path, holder=OTHER, operation='site'))
    before = lock_file(tmp_path).read_text()
    res, failed = run_module(deployment_lock, args(tmp_path, state='query'))
    assert not failed and res['held'] is False and res['holder']['operation'] == 'site' and res['changed'] is False
    assert lock_file(tmp_path).read_text() == before
