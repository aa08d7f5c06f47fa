# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options every etcd module shares (plugins/module_utils/_etcd_module.py).
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - Client URLs of etcd members, tried in order; the next one is used when one does not answer.
      - The modules speak the v3 JSON gateway that every etcd 3.4+ serves on its client port.
    type: list
    elements: str
    default: ['http://127.0.0.1:2379']
  timeout:
    description:
      - Seconds to wait for one answer from one endpoint.
    type: float
    default: 10
  ca_cert:
    description:
      - CA certificate (PEM) that signed the members' client certificates, for C(https) endpoints.
    type: path
  client_cert:
    description:
      - Client certificate (PEM), when the cluster asks for client certificate authentication.
    type: path
  client_key:
    description:
      - Private key of O(client_cert).
    type: path
  validate_certs:
    description:
      - Whether to check the members' certificates. Leave it on outside throwaway labs.
    type: bool
    default: true
  user:
    description:
      - etcd user name, when authentication is enabled.
    type: str
  password:
    description:
      - Password of O(user).
    type: str
"""
