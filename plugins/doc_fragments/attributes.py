# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What check_mode and diff_mode mean; each module states its own `support` (and may say more).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
"""

    # Every module of the action group group/gatewayops.apisix_ha.etcd (meta/runtime.yml).
    ETCD_ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/gatewayops.apisix_ha.etcd) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - gatewayops.apisix_ha.etcd
"""

    # Used together with the standard fragment by modules that only read.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    details:
      - This module only reads; it has nothing to diff.
"""
