# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""Moving the leadership of an etcd cluster to a chosen member and waiting until the members say so: shared by
etcd_member (state=not_leader) and _etcd_defrag.py (the leader's turn comes after a handoff). Standard library and
relative imports only, as _etcd_defrag.py runs in a host program too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ._actions import ModuleFailure
from ._etcd_client import format_id
from ._etcd_cluster_view import (
    agreed_leader,
    label,
    members_status,
)


def transfer_leadership(client, probe, members, leader, target, timeout, **result):
    """Ask ``leader`` (a member of ``members``) to hand the leadership to ``target``, then read the members'
    statuses through ``probe`` until they agree on a leader other than ``leader``. -> that leader's ID.
    Raises ModuleFailure (changed, with ``result``) when they do not within ``timeout`` seconds."""
    client.move_leader(target['id'])
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        now_leader = agreed_leader(members_status(probe, members))
        if now_leader and now_leader != leader['id']:
            return now_leader
        if time.monotonic() >= deadline:
            raise ModuleFailure(
                'Leadership was handed from %s to %s, but within leader_timeout (%s s) the members still report %s '
                'as leader. Look at the members\' journals (journalctl -u etcd) and run again.'
                % (label(leader), label(target), timeout, format_id(now_leader) if now_leader else 'no one'),
                changed=True, **result)
        time.sleep(0.5)
