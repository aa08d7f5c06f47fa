# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_upstream_reload on a fake /proc in tmp_path: workers that exit (or not) after the reload, ss and systemctl
answered by a fake run_command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

import pytest

from ansible.module_utils import basic

from ansible_collections.gatewayops.apisix_ha.plugins.modules import nginx_upstream_reload as reload_module


def process(proc, pid, title, started=100):
    path = os.path.join(str(proc), str(pid))
    os.makedirs(path)
    with open(os.path.join(path, 'cmdline'), 'wb') as handle:
        handle.write(title.encode() + b'\0')
    with open(os.path.join(path, 'stat'), 'w') as handle:
        # pid (comm) state, then 19 more fields up to the start time (field 22).
        handle.write('%d (nginx: a (b)) S %s %d 0 0\n' % (pid, ' '.join(['1'] * 18), started))


class Host(object):
    """systemctl and ss; ``exit_after`` polls after the reload, the old workers exit (never when None)."""

    def __init__(self, proc, exit_after=0, connections=0):
        self.proc = proc
        self.exit_after = exit_after
        self.connections = connections
        self.calls = []
        self.polls = 0

    def __call__(self, module, argv, **kwargs):
        self.calls.append(argv[1:])
        if argv[1] == 'reload':
            return 0, '', ''
        if os.path.basename(argv[0]) == 'ss':
            self.connections = max(0, self.connections - 1)
            return 0, 'ESTAB 0 0 10.0.0.1:50000 %s\n' % argv[-1] if self.connections else '', ''
        raise AssertionError(argv)


@pytest.fixture
def proc(tmp_path, monkeypatch):
    proc = tmp_path / 'proc'
    proc.mkdir()
    process(proc, 1, 'nginx: master process /usr/sbin/nginx')
    process(proc, 11, 'nginx: worker process')
    process(proc, 12, 'nginx: worker process is shutting down')
    process(proc, 13, 'sshd: root')
    monkeypatch.setattr(reload_module, 'PROC', str(proc))
    monkeypatch.setattr(reload_module, 'POLL_SECONDS', 0.01)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/bin/' + name)
    return proc


def install(monkeypatch, host, proc):
    def sleep(seconds):
        host.polls += 1
        if host.exit_after is not None and host.polls >= host.exit_after:
            for pid in ('11', '12'):
                shutil.rmtree(os.path.join(str(proc), pid), ignore_errors=True)
    monkeypatch.setattr(reload_module.time, 'sleep', sleep)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda module, argv, **kwargs: host(module, argv))


def test_reloads_and_waits_until_the_old_workers_and_the_drained_connections_are_gone(run_module, monkeypatch, proc):
    host = Host(proc, exit_after=2, connections=2)
    install(monkeypatch, host, proc)
    res, failed = run_module(reload_module, dict(wait_servers=['10.0.0.21:9080']))
    assert not failed, res
    assert res['changed'] is True and res['actions'] == ['reload nginx']
    assert res['old_workers'] == [11, 12]
    assert host.calls[0] == ['reload', 'nginx']
    # ss asked only once the old workers were gone, until it listed nothing.
    assert host.calls[1:] == [['-Htn', 'state', 'established', 'dst', '10.0.0.21:9080']] * 2
    assert host.polls == 3


def test_a_new_process_with_an_old_workers_pid_is_not_waited_for(run_module, monkeypatch, proc):
    host = Host(proc, exit_after=None)
    install(monkeypatch, host, proc)
    real_reload = reload_module._systemctl_reload

    def reload_then_reuse(module, systemctl, service):
        real_reload(module, systemctl, service)
        for pid in ('11', '12'):
            shutil.rmtree(os.path.join(str(proc), pid))
            process(proc, int(pid), 'nginx: worker process', started=200)
    monkeypatch.setattr(reload_module, '_systemctl_reload', reload_then_reuse)
    res, failed = run_module(reload_module, {})
    assert not failed and res['seconds_waited'] < 1 and host.polls == 0


def test_old_workers_that_never_exit_fail_clearly_after_the_timeout(run_module, monkeypatch, proc):
    host = Host(proc, exit_after=None)
    install(monkeypatch, host, proc)
    res, failed = run_module(reload_module, dict(wait_timeout=0.05))
    assert failed
    assert res['msg'].startswith('After 0.05 s nginx was reloaded: the new configuration is in force, but the '
                                 'workers of the old configuration (11, 12) have not exited')
    assert res['changed'] is True and res['actions'] == ['reload nginx']


def test_connections_that_never_end_fail_clearly(run_module, monkeypatch, proc):
    host = Host(proc, connections=10 ** 6)
    install(monkeypatch, host, proc)
    res, failed = run_module(reload_module, dict(reload=False, wait_servers=['10.0.0.21:9080'], wait_timeout=0.05))
    assert failed and res['changed'] is False
    assert 'the host still holds connections to 10.0.0.21:9080' in res['msg']
    assert ['reload', 'nginx'] not in host.calls


def test_a_failed_reload_changes_nothing(run_module, monkeypatch, proc):
    monkeypatch.setattr(basic.AnsibleModule, 'run_command',
                        lambda self, argv, **k: (1, '', 'nginx.service is not active, cannot reload.'))
    res, failed = run_module(reload_module, {})
    assert failed and res['changed'] is False
    assert res['msg'] == ('systemctl reload nginx failed (rc=1): nginx.service is not active, cannot reload. '
                          'The running configuration is unchanged.')


def test_check_mode_reloads_nothing_and_waits_for_nothing(run_module, monkeypatch, proc):
    host = Host(proc, exit_after=None, connections=10 ** 6)
    install(monkeypatch, host, proc)
    res, failed = run_module(reload_module, dict(wait_servers=['10.0.0.21:9080'], _ansible_check_mode=True))
    assert not failed and host.calls == [] and res['changed'] is True
    assert res['actions'] == ['would reload nginx'] and res['old_workers'] == [11, 12]
