# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_state_info on real files in tmp_path; systemctl answered by a fake run_command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd

from ansible.module_utils import basic

from ansible_collections.gatewayops.apisix_ha.plugins.modules import host_state_info

SHOW_NGINX = 'LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n'
SHOW_MISSING = 'LoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n'


def test_paths_records_and_units_in_one_answer(run_module, monkeypatch, tmp_path):
    state = tmp_path / 'state'
    state.mkdir(mode=0o750)
    os.chmod(str(state), 0o750)
    (state / 'etcd-active').write_text(u'emergency\n')
    os.symlink(str(state), str(tmp_path / 'link'))
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append(argv)
        return 0, SHOW_NGINX if argv[-1] == 'nginx' else SHOW_MISSING, ''
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/bin/' + name)

    res, failed = run_module(host_state_info, dict(
        paths=[str(state), str(tmp_path / 'none'), str(state / 'etcd-active' / 'under-a-file'), str(tmp_path / 'link')],
        records=[str(state / 'etcd-active'), str(state / 'drained.json')],
        units=['nginx', 'gone.service']))
    assert not failed, res
    assert res['changed'] is False
    seen = res['paths'][str(state)]
    assert (seen['exists'], seen['isdir'], seen['islnk'], seen['mode']) == (True, True, False, '0750')
    assert seen['pw_name'] == pwd.getpwuid(os.getuid())[0] and seen['gr_name'] == grp.getgrgid(os.getgid())[0]
    assert res['paths'][str(tmp_path / 'none')] == dict(exists=False)
    assert res['paths'][str(state / 'etcd-active' / 'under-a-file')] == dict(exists=False)
    assert res['paths'][str(tmp_path / 'link')]['islnk'] is True
    assert res['records'] == {str(state / 'etcd-active'): 'emergency\n', str(state / 'drained.json'): None}
    assert res['units'] == {
        'nginx': dict(LoadState='loaded', ActiveState='active', SubState='running', UnitFileState='enabled'),
        'gone.service': dict(LoadState='not-found', ActiveState='inactive', SubState='dead', UnitFileState='')}
    assert calls[0] == ['/bin/systemctl', 'show', '--property=LoadState,ActiveState,SubState,UnitFileState', '--',
                        'nginx']


def test_nothing_asked_nothing_run(run_module, monkeypatch):
    def run_command(self, argv, **kwargs):
        raise AssertionError('nothing to run: %r' % argv)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    res, failed = run_module(host_state_info, {})
    assert not failed and res['paths'] == {} and res['records'] == {} and res['units'] == {}


def test_a_record_that_cannot_be_read_fails_clearly(run_module, tmp_path):
    res, failed = run_module(host_state_info, dict(records=[str(tmp_path)]))
    assert failed and res['msg'].startswith('Cannot read %s: ' % tmp_path) and 'Nothing was changed' in res['msg']
    big = tmp_path / 'big'
    big.write_bytes(b'x' * (host_state_info.RECORD_LIMIT + 1))
    res, failed = run_module(host_state_info, dict(records=[str(big)]))
    assert failed and 'larger than 1048576 bytes' in res['msg'] and res['changed'] is False


def test_a_failing_systemctl_fails_clearly(run_module, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **k: (1, '', 'Failed to connect to bus'))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/bin/' + name)
    res, failed = run_module(host_state_info, dict(units=['nginx']))
    assert failed and res['msg'] == 'systemctl show nginx failed (rc=1): Failed to connect to bus. Nothing was changed.'


IP_ADDR = (
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n'
    '1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever\n'
    '885: eth0@if886    inet 10.250.80.40/24 brd 10.250.80.255 scope global eth0\\       valid_lft forever\n'
    '885: eth0@if886    inet6 fe80::42:aff:fefa:5028/64 scope link \\       valid_lft forever preferred_lft forever\n')


def test_the_hosts_addresses_only_when_asked(run_module, monkeypatch):
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append(argv)
        return 0, IP_ADDR, ''
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/bin/' + name)
    res, failed = run_module(host_state_info, dict(addresses=True))
    assert not failed, res
    assert calls == [['/bin/ip', '-o', 'addr', 'show']]
    assert res['addresses'] == [
        dict(address='127.0.0.1', family='inet', scope='host', interface='lo'),
        dict(address='::1', family='inet6', scope='host', interface='lo'),
        dict(address='10.250.80.40', family='inet', scope='global', interface='eth0'),
        dict(address='fe80::42:aff:fefa:5028', family='inet6', scope='link', interface='eth0')]
    res, failed = run_module(host_state_info, {})
    assert not failed and res['addresses'] == [] and len(calls) == 1


def test_a_failing_ip_fails_clearly(run_module, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **k: (255, '', 'Cannot open netlink socket'))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/bin/' + name)
    res, failed = run_module(host_state_info, dict(addresses=True))
    assert failed and res['msg'] == 'ip -o addr show failed (rc=255): Cannot open netlink socket. Nothing was changed.'
