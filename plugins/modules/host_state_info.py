#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_state_info
short_description: Read what a role looks at before it writes - paths, small record files, systemd units - in one call
version_added: 0.1.0
description:
  - The roles read a host's state before deciding what to write. Each C(stat), C(slurp), C(find) or
    C(systemd_service) read is one round trip to the host; this module answers all of a role's reads at once.
  - Paths are looked at without following a last symlink (as C(ansible.builtin.find) does).
  - Records are small text files the roles keep (the side the etcd front serves, the hosts drained); a missing one
    reads as null.
  - Units are described by C(systemctl show); a unit that is not installed has C(LoadState=not-found).
  - With O(addresses), the host's own IP addresses too (C(ip -o addr show)), for an allow-list that must admit the
    host itself whether or not its facts were gathered.
  - Read-only.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.read_only
options:
  paths:
    description: Paths to look at.
    type: list
    elements: path
    default: []
  records:
    description: Text files to read whole (at most 1 MiB each).
    type: list
    elements: path
    default: []
  units:
    description: systemd units to describe.
    type: list
    elements: str
    default: []
  addresses:
    description: List the host's own IP addresses (needs C(ip), from iproute2).
    type: bool
    default: false
seealso:
  - module: ansible.builtin.stat
  - module: ansible.builtin.slurp
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Read the front's records, look for nginx and read its unit
  gatewayops.apisix_ha.host_state_info:
    paths: [/usr/sbin/nginx, /var/lib/gatewayops]
    records: [/var/lib/gatewayops/etcd-active]
    units: [nginx]
  register: seen

- name: Use them
  ansible.builtin.debug:
    msg: >-
      nginx is {{ seen.units.nginx.ActiveState }}; the front serves
      {{ seen.records['/var/lib/gatewayops/etcd-active'] | default('nothing yet', true) | trim }}
"""

RETURN = r"""
paths:
  description:
    - Each path of O(paths). C(exists) false, and nothing else, when it does not exist.
    - Otherwise C(isdir), C(isreg), C(islnk), C(mode) (octal text like C(0755)), C(pw_name), C(gr_name), C(uid),
      C(gid), C(size).
  returned: always
  type: dict
  sample: {"/var/lib/gatewayops": {"exists": true, "isdir": true, "isreg": false, "islnk": false, "mode": "0755",
           "pw_name": "root", "gr_name": "root", "uid": 0, "gid": 0, "size": 4096}}
records:
  description: Each file of O(records), its text, or null when it does not exist.
  returned: always
  type: dict
  sample: {"/var/lib/gatewayops/etcd-active": "cluster\n"}
units:
  description: Each unit of O(units) - C(LoadState), C(ActiveState), C(SubState), C(UnitFileState) as systemd says.
  returned: always
  type: dict
  sample: {"nginx": {"LoadState": "loaded", "ActiveState": "active", "SubState": "running",
                     "UnitFileState": "enabled"}}
addresses:
  description:
    - With O(addresses), each IP address of the host - C(address) (without prefix length), C(family) (V(inet) or
      V(inet6)), C(scope) (V(global), V(link), V(host), as C(ip) says) and C(interface). Empty otherwise.
  returned: always
  type: list
  elements: dict
  sample: [{"address": "127.0.0.1", "family": "inet", "scope": "host", "interface": "lo"},
           {"address": "10.0.0.40", "family": "inet", "scope": "global", "interface": "eth0"}]
"""

import errno
import grp
import os
import pwd
import stat

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import (
    GatewayopsModule, ModuleFailure)

RECORD_LIMIT = 1024 * 1024
UNIT_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'UnitFileState')
# A path that is not there: also a path whose parent is a file.
MISSING = (errno.ENOENT, errno.ENOTDIR)


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def look_at(path):
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno in MISSING:
            return dict(exists=False)
        raise ModuleFailure('Cannot look at %s: %s. Nothing was changed.' % (path, e.strerror))
    return dict(exists=True, isdir=stat.S_ISDIR(st.st_mode), isreg=stat.S_ISREG(st.st_mode),
                islnk=stat.S_ISLNK(st.st_mode), mode='%04o' % stat.S_IMODE(st.st_mode),
                pw_name=_name(pwd.getpwuid, st.st_uid), gr_name=_name(grp.getgrgid, st.st_gid),
                uid=st.st_uid, gid=st.st_gid, size=st.st_size)


def read_record(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read(RECORD_LIMIT + 1)
    except (IOError, OSError) as e:
        if e.errno in MISSING:
            return None
        raise ModuleFailure('Cannot read %s: %s. Nothing was changed.' % (path, e.strerror))
    if len(data) > RECORD_LIMIT:
        raise ModuleFailure('%s is larger than %d bytes: not a record of this collection. Nothing was changed.'
                            % (path, RECORD_LIMIT))
    return data.decode('utf-8', 'replace')


def describe_units(module, names):
    if not names:
        return {}
    systemctl = module.get_bin_path('systemctl', required=True)
    described = {}
    for name in names:
        argv = [systemctl, 'show', '--property=' + ','.join(UNIT_PROPERTIES), '--', name]
        rc, out, err = module.run_command(argv)
        if rc != 0:
            raise ModuleFailure('systemctl show %s failed (rc=%d): %s. Nothing was changed.'
                                % (name, rc, (err or out).strip()))
        values = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
        described[name] = dict((key, values.get(key, '')) for key in UNIT_PROPERTIES)
    return described


def parse_addresses(text):
    """The addresses of ``ip -o addr show`` output: one line per address, ``N: IFACE FAMILY ADDR/LEN ... scope S``."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or words[2] not in ('inet', 'inet6'):
            continue
        scope = words[words.index('scope') + 1] if 'scope' in words[:-1] else ''
        # A veth's name is shown as eth0@if12 by some versions of ip.
        found.append(dict(address=words[3].split('/', 1)[0], family=words[2], scope=scope,
                          interface=words[1].split('@', 1)[0]))
    return found


def list_addresses(module):
    ip = module.get_bin_path('ip', required=True)
    rc, out, err = module.run_command([ip, '-o', 'addr', 'show'])
    if rc != 0:
        raise ModuleFailure('ip -o addr show failed (rc=%d): %s. Nothing was changed.' % (rc, (err or out).strip()))
    return parse_addresses(out)


def read_state(module):
    p = module.params
    module.exit_json(changed=False,
                     paths=dict((path, look_at(path)) for path in p['paths']),
                     records=dict((path, read_record(path)) for path in p['records']),
                     units=describe_units(module, p['units']),
                     addresses=list_addresses(module) if p['addresses'] else [])


def main():
    module = GatewayopsModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', default=[]),
            records=dict(type='list', elements='path', default=[]),
            units=dict(type='list', elements='str', default=[]),
            addresses=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    module.execute(read_state, module)


if __name__ == '__main__':
    main()
