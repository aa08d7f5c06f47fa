# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the playbooks check before anything else (playbooks/check_run.yml): the inventory groups they run on, named
by the group variables of playbooks/vars/groups.yml, and the tags an operator selected; and the host patterns of
their optional groups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# Ansible's own tag selectors (what --tags and --skip-tags take besides a playbook's tags).
EVERY_TAG = ('all', 'tagged')
SPECIAL_TAGS = EVERY_TAG + ('always', 'never', 'untagged')


def host_pattern(names, groups):
    """The host pattern of the groups of ``names`` that the inventory has (``groups``: the magic variable),
    joined with ':'; '!all' (no host) when it has none of them. A group the inventory leaves out then matches no host
    with no "Could not match supplied host pattern" warning: for groups a deployment may lack (pre-production
    nodes)."""
    present = [to_text(name) for name in names or [] if name in (groups or {})]
    return ':'.join(present) or '!all'


def group_problems(group_vars, groups, hostvars, required, hosts=None):
    """Sentences, one per problem, [] when none: a group of ``required`` (names of group variables) that has no
    host, and a group variable set in the inventory to another value than the run's (host patterns are templated
    before any host's variables are read: the playbooks would run on one group and the roles read another).

    ``group_vars``: {variable: group} as the run sees them (playbooks/vars/groups.yml, -e); ``groups``: the magic
    variable; ``hostvars``: the magic variable; ``hosts``: the hosts whose inventory variables count (default every
    host of ``groups['all']``)."""
    if not isinstance(group_vars, dict):
        raise AnsibleFilterError('group_problems: group_vars must be a dict of group variables, got %r' % (group_vars,))
    unknown = [name for name in required or [] if name not in group_vars]
    if unknown:
        raise AnsibleFilterError('group_problems: %s not among the group variables %s'
                                 % (', '.join(unknown), ', '.join(sorted(group_vars))))
    groups = groups or {}
    problems = []
    for name in required or []:
        group = group_vars[name]
        if not groups.get(group):
            problems.append("The group '%s' (%s) has %s: this playbook runs on it. Name the group of your inventory "
                            "with -e %s=GROUP." % (group, name, 'no host' if group in groups
                                                   else 'no entry in the inventory', name))
    for name in sorted(group_vars):
        differing = {}
        for host in hosts if hosts is not None else groups.get('all', []):
            host_vars = hostvars[host]
            if name in host_vars and to_text(host_vars[name]) != to_text(group_vars[name]):
                differing.setdefault(to_text(host_vars[name]), []).append(to_text(host))
        for value, on_hosts in sorted(differing.items()):
            problems.append("%s is '%s' in the inventory (%s) but '%s' for this run: host patterns cannot read the "
                            "inventory's variables. Give it on the command line instead (-e %s=%s) and remove it "
                            "from the inventory." % (name, value, ', '.join(sorted(on_hosts)), group_vars[name],
                                                     name, value))
    return problems


def tag_problems(run_tags, skip_tags, rules):
    """Sentences, one per problem, [] when none, for the --tags (``run_tags``, ansible_run_tags) and --skip-tags
    (``skip_tags``, ansible_skip_tags) of a run of a playbook whose tags are the keys of ``rules``, each mapped to
    the tags that must run with it (a phase that needs what an earlier one found or did). An unknown tag asked for
    is refused too (a typo would run nothing but the checks), and so is any tag asked for on a playbook with none (it
    runs whole). Skipping a tag the playbook does not have skips nothing (Molecule skips its own): no problem."""
    rules = rules or {}
    run_tags = [to_text(tag) for tag in run_tags or ['all']]
    skip_tags = [to_text(tag) for tag in skip_tags or []]
    own = sorted(rules)
    known = 'its tags are %s' % ', '.join(own) if own else 'it has no tags: it runs whole'
    problems = []
    unknown = [tag for tag in run_tags if tag not in rules and tag not in SPECIAL_TAGS]
    if unknown:
        problems.append('%s %s not a tag of this playbook (%s).'
                        % (', '.join(unknown), 'is' if len(unknown) == 1 else 'are', known))
    if not own and set(run_tags) - set(EVERY_TAG) and not unknown:
        problems.append('This playbook has no tags: it runs whole (got --tags %s).' % ','.join(run_tags))
    selected = set(own) if set(run_tags) & set(EVERY_TAG) else set(run_tags) & set(own)
    selected -= set(skip_tags)
    for tag in sorted(selected):
        missing = [need for need in rules[tag] or [] if need not in selected]
        skipped = [need for need in missing if need in skip_tags]
        if skipped:
            problems.append('The tag %s needs %s, which --skip-tags leaves out: run without skipping it.'
                            % (tag, ', '.join(skipped)))
        elif missing:
            problems.append('The tag %s does not run alone: it needs %s in the same run (--tags %s), or no tags at '
                            'all.' % (tag, ', '.join(missing), ','.join([tag] + missing)))
    return problems


class FilterModule(object):
    def filters(self):
        return {'host_pattern': host_pattern, 'group_problems': group_problems, 'tag_problems': tag_problems}
