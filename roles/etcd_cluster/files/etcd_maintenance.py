# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd scheduled maintenance (etcd-maintenance.service, started by etcd-maintenance.timer).

Installed by the etcd_cluster role (entry point `maintenance_schedule`, docs/maintenance.md) as
/usr/local/sbin/etcd-maintenance (python3 <program> --config <file>) on one member; the role renders the JSON config
(data only: endpoints, TLS files, the user, the path of the credentials file, the rule) and installs the collection's
etcd client and defragmentation (plugins/module_utils/_etcd_defrag.py and what it imports, standard library only) as
the package gatewayops_etcd in the config's lib_dir.

Runs the etcd_defrag module's own logic by rule: it refuses, changing nothing, a cluster that is not healthy or has an
alarm raised; when the rule picks a member, compacts, then defragments the members picked one at a time, followers
first, the leader last after a handoff, with a health gate after each. Never force, never a NOSPACE recovery: those
are an operator's decision (playbooks/maintenance.yml -e force=true / -e nospace=true).

With metrics_textfile_dir set, every run (also one that finds nothing to do, or fails) then writes its gauges for
node_exporter's textfile collector to <metrics_textfile_dir>/gatewayops-etcd-maintenance.prom: the time and result
of this run, the time of the last successful one, the timer's period, each member's database size and size in use,
and gatewayops_etcd_alarm{member,alarm} 1 for each alarm etcd reports active (none when the cluster cannot be read),
so the alarm alerts are as fresh as this timer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys
import time

DEFAULT_CONFIG = '/etc/etcd-maintenance/maintenance.json'
METRICS_FILE = 'gatewayops-etcd-maintenance.prom'
# The options of etcd_defrag the config carries (the rule and the waits); force and recover_nospace are never on.
PARAMETERS = ('compact', 'fragmentation_above', 'quota_share_above', 'reclaimable_above', 'quota_bytes', 'pause',
              'wait_timeout', 'defrag_timeout', 'health_timeout', 'leader_timeout', 'timeout')
# Also written by the backup program when this one does not run on its host: one help text for the one metric.
ALARM_HELP = 'etcd alarm active on a member (1), as etcdctl alarm list reports it.'


def load_library(lib_dir):
    """(the recorder's module, the client, the defragmentation, the textfile writer): the installed package on a
    host, the collection's module_utils in tests."""
    if lib_dir and lib_dir not in sys.path:
        sys.path.insert(0, lib_dir)
    try:
        from gatewayops_etcd import (_actions as actions, _etcd_client as client, _etcd_defrag as defrag,
                                     _textfile_metrics as metrics)
    except ImportError:
        from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import (  # noqa: F401
            _actions as actions, _etcd_client as client, _etcd_defrag as defrag, _textfile_metrics as metrics)
    return actions, client, defrag, metrics


def read_password(config):
    """The password of the config's user, from its credentials file (JSON {"password": ...}, root's only)."""
    if not config.get('credentials_file'):
        return None
    with open(config['credentials_file']) as handle:
        return json.load(handle).get('password')


def client_factory(config, lib):
    password = read_password(config)

    def make_client(timeout=None):
        return lib.EtcdClient(config['endpoints'], timeout=timeout or config['timeout'], ca_cert=config.get('ca_cert'),
                              client_cert=config.get('client_cert'), client_key=config.get('client_key'),
                              user=config.get('user'), password=password)
    return make_client


def report(result):
    """The run, for the journal."""
    for member in result['members']:
        sizes = '%d bytes (%d in use) before, %d (%d in use) after' % (
            member['before']['db_size'], member['before']['db_size_in_use'], member['after']['db_size'],
            member['after']['db_size_in_use'])
        what = 'defragmented in %s s (%s)' % (member['seconds'], member['reason']) if member['defragmented'] \
            else 'left as it was'
        print('%s%s: %s; %s' % (member['name'], ' (the leader)' if member['was_leader'] else '', sizes, what))
    if result['order']:
        print('defragmented %s; compacted to revision %s; leader %s before, %s after'
              % (', '.join(result['order']), result['compacted_revision'] or 'none (no compaction)',
                 result['previous_leader'], result['leader']))
    else:
        print('nothing to do: every member is within the rule')


def write_gauges(config, metrics, succeeded, view, started):
    """gatewayops-etcd-maintenance.prom: this run, and what ``view`` (the cluster read after it; None when it could not
    be read) says of the members' sizes and the alarms."""
    directory = config.get('metrics_textfile_dir')
    if not directory:
        return
    path = os.path.join(directory, METRICS_FILE)
    last_success = started if succeeded else metrics.read_values(path).get(
        'gatewayops_etcd_maintenance_last_success_timestamp_seconds', 0)
    gauges = [
        ('gatewayops_etcd_maintenance_last_run_timestamp_seconds', 'Unix time of the last scheduled etcd maintenance '
         'run.', started),
        ('gatewayops_etcd_maintenance_last_run_success', '1 when the last scheduled etcd maintenance run succeeded '
         '(also when it had nothing to do), else 0.', succeeded),
        ('gatewayops_etcd_maintenance_last_success_timestamp_seconds', 'Unix time of the last successful scheduled '
         'etcd maintenance run (0: none yet).', last_success),
        ('gatewayops_etcd_maintenance_period_seconds', 'Period of the etcd-maintenance timer in seconds.',
         config.get('period_seconds') or 0),
    ]
    if view is not None:
        members = [m for m in view['members'] if m['status']]
        gauges.append(('gatewayops_etcd_db_size_bytes', 'Size of the etcd database file of a member, in bytes.',
                       [(dict(member=m['name']), m['status']['db_size']) for m in members]))
        gauges.append(('gatewayops_etcd_db_size_in_use_bytes', 'Bytes of the etcd database of a member in use (the '
                       'rest is free pages a defragmentation gives back).',
                       [(dict(member=m['name']), m['status']['db_size_in_use']) for m in members]))
        if view['alarms']:
            gauges.append(('gatewayops_etcd_alarm', ALARM_HELP,
                           [(dict(member=a['member_name'] or a['member_id'], alarm=a['alarm']), 1)
                            for a in view['alarms']]))
    try:
        metrics.write(directory, METRICS_FILE, gauges)
    except OSError as exc:
        sys.stderr.write('etcd maintenance: the gauges were not written to %s: %s\n' % (path, exc))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='the JSON config the role renders (%(default)s)')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    actions, lib, defrag, metrics = load_library(config.get('lib_dir'))
    started = time.time()
    params = dict((name, config[name]) for name in PARAMETERS)
    params.update(force=False, recover_nospace=False)
    recorder = actions.ActionRecorder(check_mode=False)
    succeeded = False
    runner = view = None
    try:
        make_client = client_factory(config, lib)
        runner = defrag.Defragmentation(make_client(), make_client, recorder, params)
        report(runner.run())
        succeeded = True
    except (actions.ModuleFailure, lib.EtcdError, OSError, ValueError) as exc:
        sys.stderr.write('etcd maintenance FAILED (done: %s): %s\n' % (recorder.done_text(), exc))
    if runner is not None:
        try:
            view = runner.view()
        except lib.EtcdError as exc:
            sys.stderr.write('etcd maintenance: the cluster could not be read for the gauges: %s\n' % exc)
    if view is not None and view['alarms']:
        print('alarms raised: %s' % ', '.join('%s@%s' % (a['alarm'], a['member_name'] or a['member_id'])
                                              for a in view['alarms']))
    write_gauges(config, metrics, succeeded, view, started)
    return 0 if succeeded else 1


if __name__ == '__main__':
    sys.exit(main())
