# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The crash tests' killer: in a forked child, every call that changes the disk is a step, and at step N the child
sends itself SIGKILL (nothing after it runs, not even cleanup)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

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


class _Done(Exception):
    pass


def run_module_in_child(main, args, out, prepare):
    """A module's ``main`` run with ``args`` in a forked child, after ``prepare()`` installed the killing there and
    returned the list the steps go to -> (the module's result, the steps), or (None, None) when the child was
    killed. The result travels back through the file ``out``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        result = None
        try:
            def leave(self, **kwargs):
                raise _Done(kwargs)
            basic.AnsibleModule.exit_json = leave
            basic.AnsibleModule.fail_json = lambda self, msg, **kw: leave(self, msg=msg, failed=True, **kw)
            steps = prepare()
            with patch_module_args(args):
                try:
                    main()
                except _Done as exc:
                    result = exc.args[0]
            with open(out, 'w') as handle:
                json.dump(dict(result=result, steps=steps), handle, default=str)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None, None
    assert os.WEXITSTATUS(status) == 0, 'the child failed'
    with open(out) as handle:
        doc = json.load(handle)
    os.unlink(out)
    return doc['result'], doc['steps']
