# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every playbook on an inventory whose groups and hosts are named otherwise than the lab's
(fixtures/inventory/renamed.yml, given its group names with -e as docs/groups-and-tags.md says): each play runs on
the hosts of the right group, the optional pre-production group is left out with no warning, and a run whose groups
or tags are wrong is refused before any host is touched (playbooks/check_run.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PLAYBOOKS = os.path.join(REPO, 'playbooks')
RENAMED = os.path.join(os.path.dirname(__file__), 'fixtures', 'inventory', 'renamed.yml')
LAB = os.path.join(REPO, 'inventory', 'lab', 'hosts.yml')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
GROUP_VARS = ['-e', 'etcd_cluster_group=kv', '-e', 'etcd_emergency_group=kv_standby', '-e', 'gateway_group=edge',
              '-e', 'apisix_group=api_nodes', '-e', 'monitoring_prometheus_group=metrics']

L = {'localhost'}
KV = {'kv-a', 'kv-b', 'kv-c'}
SOLO = {'kv-solo'}
EDGE = {'lb1'}
API = {'api-x', 'api-y'}
STACK = KV | SOLO | EDGE | API
SPARE = KV | {'kv-d'}
NONE = set()
# The hosts of each play, in order (the first play of each is check_run.yml's, on the controller).
EXPECTED = {
    'add_member.yml': [L, SPARE],
    'backup.yml': [L, KV],
    'check_run.yml': [L],
    'etcd_cluster.yml': [L, KV],
    'failback.yml': [L, KV | SOLO, SOLO, EDGE, API, SOLO, EDGE, L],
    'failover.yml': [L, KV | SOLO | EDGE, KV, EDGE, SOLO, EDGE, API, EDGE, L],
    'maintenance.yml': [L, KV],
    'migrate_member.yml': [L, L, SPARE, L],
    'monitoring.yml': [L, L, STACK, {'mon1'}],
    'remove_member.yml': [L, SPARE],
    'replace_member.yml': [L, KV],
    'restore_cluster.yml': [L, KV],
    'rolling_update.yml': [L, STACK, KV, API, API, L],
    'secure_migration.yml': [L, STACK, KV, KV, KV] + [L, STACK, L, KV, SOLO, EDGE, API, L] + [L],
    'site.yml': [L, STACK, L, KV, SOLO, EDGE, API, L],
    'status.yml': [L, L, KV, SOLO, EDGE, API, L],
    # upgrade_prepare makes the groups of the last two at run time
    'upgrade_etcd.yml': [L, L, KV, NONE, NONE, L],
}


def ansible_playbook(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    return subprocess.run([ANSIBLE_PLAYBOOK] + list(args), cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)


def plays(listing):
    """[(play name, set of hosts)] from --list-hosts."""
    found = []
    for line in listing.splitlines():
        play = re.match(r'\s+play #\d+ \(.*\): (.*)\tTAGS', line)
        if play:
            found.append((play.group(1), set()))
        elif found and re.match(r'\s{6}\S+$', line):
            found[-1][1].add(line.strip())
    return found


@pytest.fixture(scope='module')
def listings():
    def list_hosts(name):
        return name, ansible_playbook('-i', RENAMED, os.path.join(PLAYBOOKS, name), '--list-hosts', *GROUP_VARS,
                                      '-e', 'member=kv-d', '-e', 'new_host=kv-d')
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(list_hosts, sorted(EXPECTED)))


def test_every_playbook_is_listed():
    assert sorted(EXPECTED) == sorted(f for f in os.listdir(PLAYBOOKS) if f.endswith('.yml'))


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_each_play_runs_on_its_group_with_no_warning(listings, name):
    run = listings[name]
    assert run.returncode == 0, run.stdout
    assert 'WARNING' not in run.stdout and 'ERROR' not in run.stdout, run.stdout
    assert [hosts for play, hosts in plays(run.stdout)] == EXPECTED[name], run.stdout


def test_the_lab_inventory_without_pre_production_nodes_gives_no_warning():
    run = ansible_playbook('-i', LAB, 'playbooks/site.yml', '--list-hosts')
    assert run.returncode == 0, run.stdout
    assert 'WARNING' not in run.stdout, run.stdout
    assert plays(run.stdout)[-2][1] == {'apisix01', 'apisix02'}


def test_site_lists_its_tags():
    run = ansible_playbook('-i', RENAMED, 'playbooks/site.yml', '--list-tags', *GROUP_VARS)
    assert run.returncode == 0, run.stdout
    for play, tag in [('Deploy the etcd cluster', 'etcd'), ('Deploy the emergency single-node etcd', 'emergency'),
                      ('Deploy the etcd front and the APISIX upstreams on the gateway', 'gateway'),
                      ('Deploy the APISIX nodes', 'apisix')]:
        assert '%s\tTAGS: [%s]' % (play, tag) in run.stdout, run.stdout


def test_groups_the_inventory_lacks_are_refused_naming_them():
    run = ansible_playbook('-i', RENAMED, 'playbooks/site.yml')
    assert run.returncode != 0
    for group, variable in [('etcd', 'etcd_cluster_group'), ('etcd_emergency', 'etcd_emergency_group'),
                            ('gateway', 'gateway_group'), ('apisix', 'apisix_group')]:
        assert "The group '%s' (%s) has no entry in the inventory" % (group, variable) in run.stdout, run.stdout
    assert 'apisix_pre' not in run.stdout
    assert 'PLAY [Gather the facts' not in run.stdout


def test_a_group_variable_in_the_inventory_is_refused(tmp_path):
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(open(RENAMED).read().replace('    kv:\n', '    kv:\n      vars: {etcd_cluster_group: kv}\n'))
    run = ansible_playbook('-i', str(inventory), 'playbooks/backup.yml')
    assert run.returncode != 0
    assert ("etcd_cluster_group is 'kv' in the inventory (kv-a, kv-b, kv-c) but 'etcd' for this run: host patterns "
            "cannot read the inventory's variables. Give it on the command line instead (-e etcd_cluster_group=kv)"
            in run.stdout.replace('\n', ' ')), run.stdout


def test_a_tag_unsafe_alone_is_refused_before_any_host(listings):
    run = ansible_playbook('-i', RENAMED, 'playbooks/failover.yml', '--tags', 'front', *GROUP_VARS)
    assert run.returncode != 0
    assert ('The tag front does not run alone: it needs preflight, emergency in the same run (--tags '
            'front,preflight,emergency)' in run.stdout), run.stdout
    assert 'PLAY [Check the extra vars' not in run.stdout
