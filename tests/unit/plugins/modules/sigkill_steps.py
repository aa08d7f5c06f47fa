# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The crash tests' killer: in a forked child, every call that changes the disk is a step, and at step N the child
sends itself SIGKILL (nothing after it runs, not even cleanup)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _file_tx

STEPS = ('rename', 'replace', 'link', 'symlink', 'mkdir', 'rmdir', 'unlink', 'remove', 'chmod', 'fchmod', 'chown',
         'fchown', 'lchown', 'fsync')


def install_killer(at, steps):
    """In the child: every call that changes the disk is a step; at step ``at`` the process is SIGKILLed."""
    def step(what):
        if at is not None and len(steps) == at:
            os.kill(os.getpid(), signal.SIGKILL)
        steps.append(what)

    def wrap(owner, name, only=None):
        real = getattr(owner, name, None)
        if real is None:
            return

        def call(*args, **kwargs):
            if only is None or only(*args, **kwargs):
                step('%s %s' % (name, os.path.basename(str(args[0])) if args else ''))
            return real(*args, **kwargs)
        setattr(owner, name, call)
    for name in STEPS:
        wrap(os, name)
    wrap(os, 'open', only=lambda path, flags, *a, **k: bool(flags & os.O_CREAT))
    wrap(_file_tx, 'exchange')
