# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as its users get it: `ansible-galaxy collection build`, then `ansible-galaxy collection install
--no-deps` into an empty path (Galaxy is out of reach here: the dependencies come from the `ansible` package of the
Python running the tests), then every playbook syntax-checked by its FQCN from a directory that knows nothing of the
checkout. What the tarball carries: the collection and its users' pages, no file naming one it leaves out, the
dependencies the roles and plugins call declared in galaxy.yml and met by the installed versions.

The tools are those next to the running Python: the main venv (the newest ansible-core supported) and tests/run's
core-oldest stage (the oldest)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile

import pytest

from ansible.galaxy.dependency_resolution.versioning import meets_requirements

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)
NAME = 'gatewayops.apisix_ha'
# The checkout's part that is for contributors, not users: never in the tarball.
CONTRIBUTORS_ONLY = ('tests/', 'molecule/', 'inventory/', '.build/', '.venv/', 'CONTRIBUTING.md', 'docs/lab.md',
                     'docs/development.md', 'changelogs/fragments/', 'requirements.txt', 'ansible.cfg')


def run(args, **kwargs):
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, **kwargs)
    assert done.returncode == 0, '%s\n%s' % (' '.join(args), done.stdout)
    return done.stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The tarball built from the checkout, installed alone into an empty path; env: what a user's shell has (no
    setting of the checkout's), with that path and the `ansible` package's collections."""
    work = tmp_path_factory.mktemp('galaxy')
    dist, collections, elsewhere = work / 'dist', work / 'collections', work / 'elsewhere'
    elsewhere.mkdir()
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env['ANSIBLE_COLLECTIONS_PATH'] = '%s:%s' % (collections, sysconfig.get_paths()['purelib'])
    built = run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(dist), REPO],
                cwd=str(elsewhere), env=env)
    tarball, = dist.iterdir()
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--no-deps', '-p', str(collections),
         str(tarball)], cwd=str(elsewhere), env=env)
    with tarfile.open(str(tarball)) as archive:
        members = set(m.name for m in archive.getmembers())
        manifest = json.load(archive.extractfile('MANIFEST.json'))
    root = collections / 'ansible_collections' / 'gatewayops' / 'apisix_ha'
    return dict(built=built, members=members, manifest=manifest, root=root, env=env, cwd=str(elsewhere))


def test_the_installed_copy_is_the_one_ansible_finds(installed):
    listed = json.loads(run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', NAME, '--format', 'json'],
                            cwd=installed['cwd'], env=installed['env']))
    assert [path for path, found in listed.items() if NAME in found] == [str(installed['root'].parent.parent)]


def test_the_tarball_carries_the_collection_and_its_licence(installed):
    members = installed['members']
    for wanted in ('LICENSE', 'README.md', 'meta/runtime.yml', 'playbooks/site.yml', 'docs/backup.md',
                   'changelogs/changelog.yaml', 'docs/docsite/links.yml'):
        assert wanted in members
    assert not [m for m in members if m.startswith(CONTRIBUTORS_ONLY) or m in CONTRIBUTORS_ONLY]
    info = installed['manifest']['collection_info']
    assert info['license'] == ['GPL-3.0-or-later']
    for link in ('repository', 'documentation', 'homepage', 'issues'):
        assert info[link].startswith('https://github.com/gatewayops/apisix_ha'), link


def collections_called(root):
    """namespace.name of every collection the shipped roles, playbooks and plugins call: task keys (modules,
    actions), lookup()/query() and filters written by FQCN."""
    called = set()
    fqcn = r'([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*'
    patterns = (re.compile(r'^\s*(?:- )?%s:\s*$' % fqcn, re.M), re.compile(r'(?:lookup|query)\(\s*[\'"]%s' % fqcn),
                re.compile(r'\|\s*%s' % fqcn))
    for top in ('roles', 'playbooks', 'plugins'):
        for folder, _dirs, files in os.walk(str(root / top)):
            for name in files:
                if name.endswith(('.yml', '.yaml', '.j2', '.py')):
                    with open(os.path.join(folder, name)) as handle:
                        text = handle.read()
                    for pattern in patterns:
                        called.update(pattern.findall(text))
    return called - {'ansible.builtin', NAME}


def test_every_collection_called_is_a_dependency_the_environment_meets(installed):
    declared = installed['manifest']['collection_info']['dependencies']
    called = collections_called(installed['root'])
    assert 'community.crypto' in called  # the scan sees the TLS tasks
    assert called <= set(declared), 'called but not in galaxy.yml dependencies: %s' % (called - set(declared))
    listed = json.loads(run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', '--format', 'json'],
                            cwd=installed['cwd'], env=installed['env']))
    versions = dict((name, info['version']) for found in listed.values() for name, info in found.items())
    for name, wanted in declared.items():
        assert name in versions, '%s is not installed' % name
        assert meets_requirements(versions[name], wanted), '%s %s is not %s' % (name, versions[name], wanted)


def test_every_playbook_syntax_checks_by_its_name_from_an_unrelated_directory(installed):
    playbooks = sorted(m[len('playbooks/'):-len('.yml')] for m in installed['members']
                       if re.match(r'playbooks/[^/]+\.yml$', m))
    assert 'site' in playbooks and len(playbooks) > 10
    out = run([os.path.join(BIN, 'ansible-playbook'), '--syntax-check'] + ['%s.%s' % (NAME, p) for p in playbooks],
              cwd=installed['cwd'], env=installed['env'])
    assert 'ERROR' not in out and 'requires_ansible' not in out, out


def checkout_files():
    listed = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, stdout=subprocess.PIPE, check=True).stdout
    return [f for f in listed.decode().split('\0') if f]


# A path written in a file: words joined by slashes, or a file name with an extension; not part of a URL.
PATH_WORD = re.compile(r'(?<![\w./:-])(?:[\w.*-]+/)*[\w*-]+(?:\.[\w*-]+)*/?')
MD_LINK = re.compile(r'\]\(([^)#\s]+)')
URL_LINK = re.compile(r'\[[^\]]*\]\(\w+://[^)]*\)')


def test_no_shipped_file_names_one_the_tarball_leaves_out(installed):
    """The pages and code a user gets never send them to the checkout's tests/, lab or contributor pages (a link
    to the repository is fine)."""
    members = installed['members']
    shipped = set(members) | set(os.path.dirname(m) for m in members)
    left_out = set()
    for path in checkout_files():
        if path not in members:
            left_out.add(path)
            parts = path.split('/')
            for depth in range(1, len(parts)):
                folder = '/'.join(parts[:depth])
                if folder not in shipped:
                    left_out.add(folder)
    found = []
    for member in sorted(members):
        if member in ('FILES.json', 'MANIFEST.json', 'LICENSE') or not (installed['root'] / member).is_file():
            continue
        try:
            text = (installed['root'] / member).read_text()
        except UnicodeDecodeError:
            continue
        text = URL_LINK.sub('', text)  # a link to the repository is fine
        # a bare word (inventory, tests) is a word, not a path
        words = set(w.rstrip('/.') for w in PATH_WORD.findall(text) if re.search(r'\w[/.]\w|/$', w))
        if member.endswith('.md'):
            here = os.path.dirname(member)
            words.update(os.path.normpath(os.path.join(here, link)) for link in MD_LINK.findall(text)
                         if '://' not in link)
        found.extend('%s: %s' % (member, word) for word in sorted(words & left_out))
    assert not found, 'shipped files name what the tarball leaves out:\n' + '\n'.join(found)
