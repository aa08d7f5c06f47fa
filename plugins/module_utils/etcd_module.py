# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared layer of the etcd modules: the common argument spec (documented by the doc fragment
gatewayops.apisix_ha.etcd) and the module base class."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


# Keep in step with plugins/doc_fragments/etcd.py.
ETCD_COMMON_ARGUMENT_SPEC = dict(
    endpoints=dict(type='list', elements='str', default=['http://127.0.0.1:2379']),
    timeout=dict(type='float', default=10),
    ca_cert=dict(type='path'),
    client_cert=dict(type='path'),
    client_key=dict(type='path', no_log=False),
    validate_certs=dict(type='bool', default=True),
    user=dict(type='str'),
    password=dict(type='str', no_log=True),
)
