# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""The one failure exception and the one recorder of actions (see _module_base.py, which gives them to the modules).

Standard library only, and no import from the collection: the logic the modules share with the roles' host programs
(_etcd_defrag.py, run by etcd_maintenance.py on hosts without Ansible) raises and records with them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleFailure(Exception):
    """A refusal or a failure, with the message the operator reads and extra result keys.

    ``changed`` is left to the recorder (what was done before the failure) unless given."""

    def __init__(self, msg, **result):
        super(ModuleFailure, self).__init__(msg)
        self.msg = msg
        self.result = result


class ActionRecorder(object):
    """Runs and records the actions of one module run; in check mode, records what would be done."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.actions = []

    def do(self, description, func=None, *args, **kwargs):
        """Record ``description`` (imperative); unless in check mode, call ``func(*args, **kwargs)`` first and
        return its result. A failing ``func`` records nothing: the exception goes on to the caller."""
        if self.check_mode:
            self.actions.append('would %s' % description)
            return None
        result = func(*args, **kwargs) if func is not None else None
        self.actions.append(description)
        return result

    @property
    def changed(self):
        return bool(self.actions)

    def done_text(self):
        """The actions so far as one sentence, for failure messages ("nothing" when none)."""
        return '; '.join(self.actions) or 'nothing'
