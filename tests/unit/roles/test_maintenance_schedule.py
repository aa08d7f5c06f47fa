# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled maintenance's files as the etcd_cluster role renders them (templates/etcd-maintenance.*.j2 with the
role's defaults and vars, by a real ansible-playbook on localhost): a config of data only that the program reads - the
member's endpoint first, the TLS files, the user and the path of its credentials, the rule of the `maintenance` entry
point - and a timer on the calendar asked for, whose period goes to the gauges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os

import pytest

from role_play import ROLE, run_role_play

MEMBER = dict(name='etcd01', address='10.0.0.1', client_url='https://10.0.0.1:2379')
ENDPOINTS = ['https://10.0.0.3:2379', 'https://10.0.0.1:2379', 'https://10.0.0.2:2379']
TEMPLATES = ('etcd-maintenance.json.j2', 'etcd-maintenance.service.j2', 'etcd-maintenance.timer.j2')


def render(tmp_path, **settings):
    """-> {template name: text} rendered with the role's defaults and vars and ``settings``."""
    # Task vars: above the role's files, as an inventory's would be.
    tasks = [{'ansible.builtin.template': dict(src=os.path.join(ROLE, 'templates', name), dest='{{ out }}/' + name),
              'vars': settings} for name in TEMPLATES]
    run_role_play(tmp_path, tasks, dict(etcd_cluster_member=MEMBER, etcd_cluster_endpoints=ENDPOINTS,
                                        out=str(tmp_path), etcd_cluster_root_password='never-in-the-config'))
    return dict((name, (tmp_path / name).read_text()) for name in TEMPLATES)


@pytest.fixture(scope='module')
def secure(tmp_path_factory):
    return render(tmp_path_factory.mktemp('secure'))


def test_the_config_is_data_the_program_reads_and_holds_no_password(secure):
    config = json.loads(secure['etcd-maintenance.json.j2'])
    assert 'never-in-the-config' not in secure['etcd-maintenance.json.j2']
    assert config['endpoints'] == ['https://10.0.0.1:2379', 'https://10.0.0.3:2379', 'https://10.0.0.2:2379']
    assert (config['user'], config['credentials_file']) == ('root', '/etc/etcd-maintenance/credentials.json')
    assert (config['ca_cert'], config['client_cert'], config['client_key']) == (
        '/etc/etcd/pki/ca.crt', '/etc/etcd/pki/member.crt', '/etc/etcd/pki/member.key')
    # The rule and waits of the `maintenance` entry point, typed as etcd_defrag takes them.
    assert (config['fragmentation_above'], config['quota_share_above'], config['reclaimable_above']) == (
        0.5, 0.8, 209715200)
    assert config['quota_bytes'] == 4294967296 and config['compact'] is True
    assert config['metrics_textfile_dir'] == '/var/lib/prometheus/node-exporter' and config['period_seconds'] == 3600
    # Every setting the program reads is there.
    path = os.path.join(ROLE, 'files', 'etcd_maintenance.py')
    spec = importlib.util.spec_from_file_location('etcd_maintenance', path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    assert set(program.PARAMETERS) <= set(config)
    assert 'force' not in config and 'recover_nospace' not in config


def test_the_timer_runs_the_program_hourly_by_default(secure):
    assert 'OnCalendar=hourly' in secure['etcd-maintenance.timer.j2'].splitlines()
    assert ('ExecStart=/usr/bin/python3 /usr/local/sbin/etcd-maintenance --config /etc/etcd-maintenance/maintenance.json'
            in secure['etcd-maintenance.service.j2'].splitlines())


def test_plain_without_auth_another_calendar_and_its_period(tmp_path):
    found = render(tmp_path, etcd_cluster_tls=False, etcd_cluster_auth=False,
                   etcd_cluster_maintenance_schedule_calendar='daily', etcd_cluster_metrics_textfile_dir='')
    config = json.loads(found['etcd-maintenance.json.j2'])
    assert config['user'] is None and config['credentials_file'] is None and config['ca_cert'] is None
    assert config['period_seconds'] == 86400 and config['metrics_textfile_dir'] == ''
    assert 'OnCalendar=daily' in found['etcd-maintenance.timer.j2'].splitlines()
