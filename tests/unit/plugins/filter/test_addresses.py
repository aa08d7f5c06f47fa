# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""not_addresses: an allow-list entry nginx would not take as an address or network is named."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gatewayops.apisix_ha.plugins.filter.addresses import not_addresses


def test_addresses_and_networks_pass():
    assert not_addresses(['127.0.0.1', '::1', '10.250.77.0/24', 'fd00::/8', '192.0.2.7/32', '2001:db8::1']) == []
    assert not_addresses([]) == [] and not_addresses(None) == []


def test_anything_else_is_named_in_order():
    entries = ['10.0.0.1', 'gw01', '10.0.0.5/24', '300.1.1.1', '10.0.0.0/33', '', 'all', 42, None, '[::1]']
    assert not_addresses(entries) == ['gw01', '10.0.0.5/24', '300.1.1.1', '10.0.0.0/33', '', 'all', 42, None, '[::1]']
