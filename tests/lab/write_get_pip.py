"""Write the stand-in for the get-pip.py that ansible-test downloads (see tests/sanity.sh).

argv[1] is the output of `pip config list`; its settings become the pip.conf of every venv the stand-in
bootstraps, so those venvs reach the same package index with the same CA bundle as this shell.
"""
import os
import pathlib
import re
import sys

import ansible_test

requirements_py = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
pip_version = re.search(r"pip='([0-9.]+)'", requirements_py.read_text()).group(1)

settings = {}
for line in sys.argv[1].splitlines():
    match = re.match(r"^(?:global|:env:)\.([a-z-]+)='(.*)'$", line)
    if match:
        settings[match.group(1)] = match.group(2)
pip_conf = '[global]\n' + ''.join('%s = %s\n' % item for item in sorted(settings.items()))

# ensurepip runs in a child: in-process it would point PIP_CONFIG_FILE at /dev/null for the pip install after it.
STAND_IN = '''# Stand-in for get-pip.py, written by tests/lab/write_get_pip.py.
import os
import subprocess
import sys

with open(os.path.join(sys.prefix, 'pip.conf'), 'w') as conf:
    conf.write(%r)
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
''' % pip_conf

target = pathlib.Path(os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % pip_version.replace('.', '_')))
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(STAND_IN)
