# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allow-lists checked before anything is written: which entries are not an IP address or network."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types


def not_addresses(entries):
    """The entries of ``entries`` that are not an IP address (v4 or v6) or a network in CIDR notation with no host
    bits set (what nginx's `allow` takes), in their order; [] when every entry is one."""
    refused = []
    for entry in entries or []:
        if not isinstance(entry, string_types):
            refused.append(entry)
            continue
        try:
            ipaddress.ip_network(to_text(entry).strip(), strict=True)
        except ValueError:
            refused.append(entry)
    return refused


class FilterModule(object):
    def filters(self):
        return {'not_addresses': not_addresses}
