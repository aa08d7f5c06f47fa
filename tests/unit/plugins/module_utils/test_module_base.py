# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base every module of the collection builds on: one failure path, the action recorder
(check mode words "would ..."), diff only in diff mode, state dispatch, and EtcdModule's wording of etcd errors."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    ActionRecorder,
    GatewayopsModule,
    ModuleFailure,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import (
    EtcdAuthError,
    EtcdConnectionError,
)


class Exit(Exception):
    pass


@pytest.fixture
def ended(monkeypatch):
    """Makes exit_json/fail_json raise Exit((failed, result))."""
    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)


def make(args, cls=GatewayopsModule, **spec):
    argument_spec = dict(state=dict(type='str', default='present', choices=['present', 'absent']))
    argument_spec.update(spec)
    with patch_module_args(args):
        return cls(argument_spec=argument_spec, supports_check_mode=True)


def outcome(call):
    with pytest.raises(Exit) as info:
        call()
    return info.value.args


def test_recorder_runs_and_records_outside_check_mode():
    calls = []
    rec = ActionRecorder(check_mode=False)
    assert rec.do('remove member etcd03', calls.append, 'etcd03') is None
    assert calls == ['etcd03']
    assert rec.actions == ['remove member etcd03']
    assert rec.changed


def test_recorder_in_check_mode_says_would_and_runs_nothing():
    calls = []
    rec = ActionRecorder(check_mode=True)
    rec.do('remove member etcd03', calls.append, 'etcd03')
    assert calls == []
    assert rec.actions == ['would remove member etcd03']
    assert rec.changed


def test_recorder_records_nothing_for_a_failing_action():
    rec = ActionRecorder(check_mode=False)

    def boom():
        raise OSError('disk full')
    with pytest.raises(OSError):
        rec.do('write the file', boom)
    assert rec.actions == []
    assert rec.done_text() == 'nothing'


def test_failure_ends_the_module_with_what_was_done_before(ended):
    module = make({})

    def logic():
        module.recorder.do('add role apisix', lambda: None)
        raise ModuleFailure('Refused: user apisix has no password.', refused='apisix')
    failed, result = outcome(lambda: module.execute(logic))
    assert failed
    assert result['msg'] == 'Refused: user apisix has no password.'
    assert result['actions'] == ['add role apisix']
    assert result['changed'] is True
    assert result['refused'] == 'apisix'


def test_a_refusal_before_any_action_changes_nothing(ended):
    module = make({})

    def logic():
        raise ModuleFailure('Refused, nothing was changed.')
    failed, result = outcome(lambda: module.execute(logic))
    assert failed and result['changed'] is False and result['actions'] == []


def test_an_unknown_exception_is_not_swallowed(ended):
    module = make({})

    def logic():
        raise KeyError('bug')
    with pytest.raises(KeyError):
        module.execute(logic)


def test_dispatch_calls_the_handler_of_the_state(ended):
    module = make({'state': 'absent'})
    assert module.dispatch(dict(present=lambda: 'p', absent=lambda: 'a')) == 'a'


@pytest.mark.parametrize('diff', [True, False])
def test_finish_adds_the_diff_only_in_diff_mode(ended, diff):
    module = make({'_ansible_diff': diff})
    module.recorder.do('put /apisix/routes/1', lambda: None)
    failed, result = outcome(lambda: module.finish(before={'a': 1}, after={'a': 2}, revision=7))
    assert not failed
    assert result['changed'] is True and result['actions'] == ['put /apisix/routes/1'] and result['revision'] == 7
    assert ('diff' in result) is diff


def test_etcd_module_requires_user_and_password_together(ended):
    failed, result = outcome(lambda: make({'user': 'root'}, cls=EtcdModule))
    assert failed
    assert 'user' in result['msg'] and 'password' in result['msg']


@pytest.mark.parametrize('exc, wording', [
    (EtcdConnectionError('refused', attempts=[('http://10.0.0.1:2379', 'connection refused'),
                                              ('http://10.0.0.2:2379', 'timed out')]),
     'Could not reach any etcd endpoint'),
    (EtcdAuthError('denied', attempts=[('http://10.0.0.1:2379', 'permission denied')]),
     'etcd refused the credentials or the permission'),
])
def test_etcd_errors_name_every_endpoint_tried(ended, exc, wording):
    module = make({}, cls=EtcdModule)

    def logic():
        raise exc
    failed, result = outcome(lambda: module.run(logic))
    assert failed
    assert result['msg'].startswith(wording)
    assert [a['endpoint'] for a in result['attempts']] == [attempt[0] for attempt in exc.attempts]
    assert result['changed'] is False
