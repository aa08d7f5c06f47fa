# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd.conf's corruption check flags (roles/etcd_cluster: templates/etcd.conf.j2, vars/main.yml) for the etcd
version a member runs, and the upgrade's block for a member moved to 3.5: the same lines the template writes,
so that site.yml after upgrade_etcd.yml changes nothing. Rendered by a real ansible-playbook on localhost with the
role's own defaults, vars and template; the upgrade's task is taken from tasks/upgrade_install.yml itself."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import yaml

from role_play import ROLE, run_role_play

MEMBER = dict(name='etcd01', address='10.0.0.1', peer_url='http://10.0.0.1:2380', client_url='http://10.0.0.1:2379',
              local_client_url='http://127.0.0.1:2379')


def upgrade_task(name, settings):
    """upgrade_install.yml's task that writes the flags, as it stands, on the local file NAME."""
    with open(os.path.join(ROLE, 'tasks', 'upgrade_install.yml')) as f:
        tasks = yaml.safe_load(f)
    found = [t for t in tasks if t.get('name') == 'Write the corruption check flags of the new version']
    assert len(found) == 1
    task = dict(found[0])
    task['ansible.builtin.blockinfile'] = dict(task['ansible.builtin.blockinfile'], path='{{ out }}/%s' % name)
    task['vars'] = dict(task['vars'], etcd_cluster_upgrade=dict(target='3.5.16'), **settings)
    return task


# The role's defaults, and every check switched off.
VARIANTS = dict(on={}, off=dict(etcd_cluster_corrupt_check_time='', etcd_cluster_compact_hash_check=False))


def render(tmp_path):
    """-> {variant: {name: text}}: etcd.conf rendered for 3.4.23 (34) and 3.5.16 (35), and the 3.4 one after the
    upgrade's task (upgraded), with the settings of each of VARIANTS."""
    template = os.path.join(ROLE, 'templates', 'etcd.conf.j2')
    tasks = []
    for variant, settings in VARIANTS.items():
        for name, version in (('34', '3.4.23'), ('35', '3.5.16')):
            tasks.append({'ansible.builtin.template': dict(src=template, dest='{{ out }}/%s-%s' % (variant, name)),
                          'vars': dict(settings, __etcd_cluster_installed_version=version)})
        tasks.append({'ansible.builtin.copy': dict(src='{{ out }}/%s-34' % variant,
                                                   dest='{{ out }}/%s-upgraded' % variant)})
        tasks.append(upgrade_task('%s-upgraded' % variant, settings))
    run_role_play(tmp_path, tasks, dict(etcd_cluster_member=MEMBER, etcd_cluster_tls=False, out=str(tmp_path),
                                        __etcd_cluster_conf_initial_cluster='x',
                                        __etcd_cluster_conf_initial_state='new'))
    return dict((variant, dict((name, (tmp_path / ('%s-%s' % (variant, name))).read_text())
                               for name in ('34', '35', 'upgraded'))) for variant in VARIANTS)


def flags(text):
    return [line for line in text.splitlines() if 'CORRUPT' in line or 'HASH_CHECK' in line]


def test_each_version_gets_the_flags_it_knows_and_the_upgrade_writes_the_same(tmp_path):
    confs = render(tmp_path)
    conf = confs['on']
    assert flags(conf['34']) == ['ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK="true"',
                                 'ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME="2h"']
    assert flags(conf['35']) == ['ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK="true"',
                                 'ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME="2h"',
                                 'ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED="true"',
                                 'ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_TIME="1m"']
    # a member upgraded to 3.5 holds what site.yml would write for it: nothing to change, no restart
    assert conf['upgraded'] == conf['35']
    # switched off: the initial check only, whatever the version
    off = confs['off']
    assert flags(off['35']) == ['ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK="true"']
    assert 'periodic corruption checks' not in off['35']
    assert off['upgraded'] == off['35'] == off['34']
