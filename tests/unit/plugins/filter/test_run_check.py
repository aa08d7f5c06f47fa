# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks every playbook runs first (playbooks/check_run.yml) and the host patterns of optional groups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.gatewayops.apisix_ha.plugins.filter.run_check import group_problems, host_pattern, \
    tag_problems

GROUPS = {'all': ['kv-a', 'lb1'], 'ungrouped': [], 'kv': ['kv-a'], 'edge': ['lb1'], 'empty': []}
RUN = {'etcd_cluster_group': 'kv', 'gateway_group': 'edge', 'apisix_pre_group': 'apisix_pre'}
FAILOVER = {'preflight': [], 'emergency': ['preflight'], 'front': ['preflight', 'emergency'], 'apisix': []}


def test_host_pattern_keeps_the_groups_the_inventory_has():
    assert host_pattern(['kv', 'apisix_pre', 'edge'], GROUPS) == 'kv:edge'


def test_host_pattern_of_no_group_matches_no_host():
    assert host_pattern(['apisix_pre'], GROUPS) == '!all'


def test_no_problem_when_the_required_groups_have_hosts():
    assert group_problems(RUN, GROUPS, {'kv-a': {}, 'lb1': {}}, ['etcd_cluster_group', 'gateway_group']) == []


def test_a_required_group_missing_or_empty_is_named_with_its_variable():
    problems = group_problems(dict(RUN, gateway_group='empty', etcd_cluster_group='etcd'), GROUPS,
                              {'kv-a': {}, 'lb1': {}}, ['etcd_cluster_group', 'gateway_group'])
    assert problems == [
        "The group 'etcd' (etcd_cluster_group) has no entry in the inventory: this playbook runs on it. Name the "
        "group of your inventory with -e etcd_cluster_group=GROUP.",
        "The group 'empty' (gateway_group) has no host: this playbook runs on it. Name the group of your inventory "
        "with -e gateway_group=GROUP."]


def test_an_optional_group_may_be_missing():
    assert group_problems(RUN, GROUPS, {'kv-a': {}, 'lb1': {}}, ['etcd_cluster_group']) == []


def test_a_group_variable_set_in_the_inventory_to_another_group_is_refused():
    hostvars = {'kv-a': {'etcd_cluster_group': 'kv'}, 'lb1': {'gateway_group': 'lbs'}}
    assert group_problems(RUN, GROUPS, hostvars, []) == [
        "gateway_group is 'lbs' in the inventory (lb1) but 'edge' for this run: host patterns cannot read the "
        "inventory's variables. Give it on the command line instead (-e gateway_group=lbs) and remove it from the "
        "inventory."]


def test_an_unknown_group_variable_is_a_mistake_of_the_playbook():
    with pytest.raises(AnsibleFilterError, match='apisix_group not among the group variables'):
        group_problems(RUN, GROUPS, {}, ['apisix_group'])


@pytest.mark.parametrize('run_tags, skip_tags', [
    (['all'], []), (['apisix'], []), (['preflight', 'emergency'], []), (['all'], ['apisix']), (['tagged'], []),
])
def test_safe_selections_pass(run_tags, skip_tags):
    assert tag_problems(run_tags, skip_tags, FAILOVER) == []


def test_a_tag_that_needs_another_is_refused_alone():
    assert tag_problems(['front'], [], FAILOVER) == [
        'The tag front does not run alone: it needs preflight, emergency in the same run (--tags '
        'front,preflight,emergency), or no tags at all.']


def test_skipping_a_phase_another_needs_is_refused():
    assert tag_problems(['all'], ['preflight'], FAILOVER) == [
        'The tag emergency needs preflight, which --skip-tags leaves out: run without skipping it.',
        'The tag front needs preflight, which --skip-tags leaves out: run without skipping it.']


def test_an_unknown_tag_is_refused_naming_the_tags():
    assert tag_problems(['apisx'], [], FAILOVER) == [
        'apisx is not a tag of this playbook (its tags are apisix, emergency, front, preflight).']


def test_a_playbook_without_tags_runs_whole():
    assert tag_problems(['all'], [], {}) == []
    assert tag_problems(['etcd'], [], {}) == ['etcd is not a tag of this playbook (it has no tags: it runs whole).']
    assert tag_problems(['untagged'], [], {}) == ['This playbook has no tags: it runs whole (got --tags untagged).']


def test_skipping_tags_the_playbook_does_not_have_skips_nothing():
    # Molecule's converge: --skip-tags molecule-notest,notest
    assert tag_problems(['all'], ['molecule-notest', 'notest'], FAILOVER) == []
    assert tag_problems(['all'], ['molecule-notest', 'notest'], {}) == []
