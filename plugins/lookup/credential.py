# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: credential
short_description: A secret of the deployment, generated once and kept on the controller
version_added: 0.1.0
author:
  - gatewayops maintainers (@gatewayops)
description:
  - Returns the secret kept in the file named by each term in O(dir) on the controller. When the file does not exist
    yet, a new random secret is written there first, readable by its owner only (mode 0600, in a directory of mode
    0700), so that every later run, and every role and host, gets the same one.
  - This is how the collection's roles default the etcd passwords (C(etcd_cluster_root_password),
    C(etcd_cluster_apisix_password)) when none is given, as kubespray keeps its credentials beside the inventory.
    Keep the directory out of version control, or give the passwords yourself (for example from Ansible Vault).
  - Runs in check mode too; it writes only on the controller, and only the first time.
options:
  _terms:
    description: File names of the secrets in O(dir) (letters, digits, C(.), C(_) and C(-)).
    required: true
  dir:
    description:
      - The directory on the controller that holds the secrets.
      - Default - the variable C(etcd_cluster_credentials_dir) when it is set, else C(.credentials) in the
        directory of the host's inventory (C(inventory_dir)). Hidden, because Ansible reads every other file of an
        inventory directory given with C(-i) as an inventory source, and would take a one-line secret for a host.
    type: path
  length:
    description: Length of a new secret (letters and digits).
    type: int
    default: 32
  want:
    description:
      - V(secret) - the secret, generated the first time.
      - V(path) - only the path of each term in O(dir), nothing read or written (for example the directory where
        the collection generates its CA and certificates, C(etcd-pki)).
    type: str
    choices: [secret, path]
    default: secret
"""

EXAMPLES = r"""
- name: The root password of etcd, generated the first time
  ansible.builtin.debug:
    msg: "{{ lookup('gatewayops.apisix_ha.credential', 'etcd-root') | length }} characters"
"""

RETURN = r"""
_raw:
  description: The secret of each term, without a trailing newline; with O(want=path), the path of each term.
  type: list
  elements: str
"""

import errno
import os
import re
import secrets
import string
import tempfile

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.lookup import LookupBase

_NAME = re.compile(r'^[A-Za-z0-9._-]+$')
_ALPHABET = string.ascii_letters + string.digits


def credentials_dir(variables, explicit=None, template=to_text):
    """Where the secrets live: ``explicit``, else etcd_cluster_credentials_dir (through ``template``: variables
    reach a lookup as they were written), else <inventory_dir>/.credentials."""
    if explicit:
        return os.path.expanduser(explicit)
    variables = variables or {}
    chosen = variables.get('etcd_cluster_credentials_dir')
    if chosen:
        return os.path.expanduser(to_text(template(chosen)))
    if not variables.get('inventory_dir'):
        raise AnsibleLookupError('credential: no directory for the secrets - the host has no inventory_dir; '
                                 'set etcd_cluster_credentials_dir')
    return os.path.join(to_text(variables['inventory_dir']), '.credentials')


def read_or_create(directory, name, length=32):
    """The secret in ``directory``/``name``; a new one written first (0600, directory 0700) when there is none.

    Two runs (or two forks of one run) that create it at once agree: the file is written whole under a temporary
    name and linked into place, which fails for all but the first; the others then read the winner's secret.
    """
    if not _NAME.match(name):
        raise AnsibleLookupError('credential: %r is not a file name (letters, digits, ".", "_", "-")' % name)
    path = os.path.join(directory, name)
    try:
        with open(path, 'rb') as found:
            secret = to_text(found.read()).strip()
    except IOError as err:
        if err.errno != errno.ENOENT:
            raise AnsibleLookupError('credential: cannot read %s: %s' % (path, err))
    else:
        if not secret:
            raise AnsibleLookupError('credential: %s is empty; remove it to get a new secret, or put one in it' % path)
        return secret
    try:
        os.makedirs(directory, mode=0o700)
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise AnsibleLookupError('credential: cannot create %s: %s' % (directory, err))
    secret = ''.join(secrets.choice(_ALPHABET) for _position in range(length))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % name)  # mode 0600
    try:
        with os.fdopen(fd, 'wb') as out:
            out.write(to_bytes(secret + '\n'))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise AnsibleLookupError('credential: cannot write %s: %s' % (path, err))
            return read_or_create(directory, name, length)
    finally:
        os.unlink(tmp)
    return secret


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        directory = credentials_dir(variables, self.get_option('dir'), self._templar.template)
        if self.get_option('want') == 'path':
            return [os.path.join(directory, to_text(term)) for term in terms]
        return [read_or_create(directory, to_text(term), self.get_option('length')) for term in terms]
