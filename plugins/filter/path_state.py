# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' find-then-write: what a `find` (or host_state_info) saw, by path, and whether it differs from what a
task would write. One definition for every role, so "up to date" means the same everywhere."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes


def by_path(found):
    """A `find` result (or a list of its file entries) -> {path: entry}."""
    files = found.get('files', []) if isinstance(found, dict) else (found or [])
    return dict((entry['path'], entry) for entry in files)


def differs_from(seen, want):
    """True when ``seen`` (a find / host_state_info entry, {} or None when nothing is there) is not what ``want``
    ({mode, owner, group} and either content or state=directory) describes: the task must write."""
    if not isinstance(want, dict) or not all(key in want for key in ('mode', 'owner', 'group')):
        raise AnsibleFilterError('differs_from: the wanted state needs mode, owner and group, got %r' % (want,))
    seen = seen or {}
    if seen.get('exists') is False:
        return True
    if want.get('state') == 'directory':
        if not seen.get('isdir'):
            return True
    elif 'content' in want:
        if seen.get('checksum') != hashlib.sha1(to_bytes(want['content'])).hexdigest():
            return True
    else:
        raise AnsibleFilterError('differs_from: the wanted state needs content or state=directory, got %r' % (want,))
    return [seen.get('mode'), seen.get('pw_name'), seen.get('gr_name')] != [want['mode'], want['owner'], want['group']]


class FilterModule(object):
    def filters(self):
        return {'by_path': by_path, 'differs_from': differs_from}
