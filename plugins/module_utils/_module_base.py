# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The base of every module of the collection (the etcd ones through _etcd_module, and apisix_plugin_sync).

- ModuleFailure is the one failure exception: module logic raises it anywhere; GatewayopsModule.execute()
  catches it in one place and ends the module with fail_json, adding what was done before the failure.
- ActionRecorder is the one recorder of actions: each change is described once, in the imperative
  ("remove member etcd03"); in check mode it is not run and is reported as "would remove member etcd03"
  (the shape of community.postgresql's exec_sql(dont_exec=...)).
- GatewayopsModule.finish() adds `changed`, `actions` and, only when the module runs with --diff, `diff`.
- GatewayopsModule.dispatch() calls the handler of the module's `state`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

# The failure exception and the recorder live in _actions.py (standard library only), so that the logic shared with
# the roles' host programs raises and records with them too; every module imports them from here.
from ._actions import ActionRecorder, ModuleFailure  # noqa: F401


class GatewayopsModule(AnsibleModule):
    """AnsibleModule with the collection's recorder, one failure path and state dispatch."""

    def __init__(self, *args, **kwargs):
        super(GatewayopsModule, self).__init__(*args, **kwargs)
        self.recorder = ActionRecorder(self.check_mode)

    def fail(self, msg, **result):
        """End the module now: refusals and failures say why, and what was (or was not) changed."""
        result.setdefault('changed', self.recorder.changed)
        result.setdefault('actions', list(self.recorder.actions))
        self.fail_json(msg=msg, **result)

    def failure_result(self, exc):
        """Extra result keys for an exception other than ModuleFailure; subclasses map their own."""
        return None

    def execute(self, func, *args, **kwargs):
        """Run the module's logic: a ModuleFailure (or an exception failure_result() knows) ends it with
        fail_json naming what was done before; the return value is func's."""
        try:
            return func(*args, **kwargs)
        except ModuleFailure as e:
            self.fail(e.msg, **e.result)
        except Exception as e:  # pylint: disable=broad-except
            mapped = self.failure_result(e)
            if mapped is None:
                raise
            msg = mapped.pop('msg')
            mapped.setdefault('exception', traceback.format_exc())
            self.fail(msg, **mapped)

    def dispatch(self, handlers, option='state'):
        """Call the handler of the module's ``option`` value (the choices are the argument spec's)."""
        return self.execute(handlers[self.params[option]])

    def finish(self, before=None, after=None, **result):
        """exit_json with `changed` and `actions` from the recorder (unless given) and, in diff mode only, a diff
        of ``before`` and ``after``."""
        result.setdefault('changed', self.recorder.changed)
        result.setdefault('actions', list(self.recorder.actions))
        if self._diff and (before is not None or after is not None):
            result['diff'] = dict(before=before, after=after)
        self.exit_json(**result)


def describe_exception(exc):
    """The text of an exception, for messages."""
    return to_native(exc)
