# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd scheduled backup (etcd-backup.service, started by etcd-backup.timer).

Installed by the etcd_cluster role as /usr/local/sbin/etcd-backup (python3 <program> --config <file>); the role
renders the JSON config and installs the collection's snapshot workflow (plugins/module_utils/_etcd_snapshot_*.py)
as the package gatewayops_snapshot in the config's lib_dir.

Saves a snapshot from the first endpoint that answers into a private temporary dir of the backup directory,
verifies it (sha256 integrity trailer and `snapshot status`), renames it to etcd-<UTC stamp>.db (its origin - the
cluster ID the endpoint reported, the members the file holds - goes to the journal), and only then
removes the older etcd-*.db files the retention does not keep. A failed backup exits non-zero and removes nothing;
what a killed run left (temporary dirs) is removed by the next one.

With metrics_textfile_dir set, each run then writes its gauges for node_exporter's textfile collector to
<metrics_textfile_dir>/gatewayops-etcd-backup.prom (atomically, 0644): the time and revision of the last verified
snapshot (a failed run keeps those of the file it replaces; 0 before any), whether this run succeeded, the timer's
period, and gatewayops_etcd_alarm{member,alarm} 1 for each alarm etcd reports active (`etcdctl alarm list`; none
when no endpoint answers it; none either while the config of the scheduled maintenance, maintenance_config, exists:
etcd_maintenance.py writes them on this host then, at each of its more frequent runs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import fcntl
import json
import os
import sys
import time

DEFAULT_CONFIG = '/etc/etcd-backup/backup.json'
PATTERN = 'etcd-*.db'
TMP_PREFIX = '.etcd-'
METRICS_FILE = 'gatewayops-etcd-backup.prom'
# etcd's AlarmType (etcdserverpb), as `etcdctl alarm list -w json` prints it.
ALARM_NAMES = {1: 'NOSPACE', 2: 'CORRUPT'}


def load_workflow(lib_dir):
    """The snapshot workflow and the textfile writer (_textfile_metrics.py): the installed package on a host, the
    collection's module_utils in tests."""
    if lib_dir and lib_dir not in sys.path:
        sys.path.insert(0, lib_dir)
    try:
        from gatewayops_snapshot import (_etcd_snapshot_file as snapfile, _etcd_snapshot_workflow as workflow,
                                         _textfile_metrics as metrics)
    except ImportError:
        from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import (  # noqa: F401
            _etcd_snapshot_file as snapfile, _etcd_snapshot_workflow as workflow, _textfile_metrics as metrics)
    return snapfile, workflow, metrics


class BackupFailed(Exception):
    pass


def backup(config, sf, wf, run, ops):
    directory = config['dir']
    for leftover in wf.leftovers(directory, TMP_PREFIX):
        ops.rmtree(leftover)
        print('removed %s, left by an interrupted backup' % leftover)
    tools = sf.SnapshotTools.find(config['bin_dir'])
    tools.require_etcdctl(config['bin_dir'])
    tools.require_offline(config['bin_dir'])
    flow = wf.SnapshotWorkflow(tools, run, bin_dir=config['bin_dir'])
    connection = connection_of(config)
    margin = config['free_space_margin_mb'] * sf.MIB

    def space_check(target, probed, endpoint):
        sf.check_free_space(target, probed['db_size'], margin)

    path = os.path.join(directory, 'etcd-%s.db' % sf.utc_stamp())
    work = ops.mkdtemp(TMP_PREFIX, directory)
    tmp = os.path.join(work, os.path.basename(path))
    try:
        endpoint, probed = flow.save(tmp, config['endpoints'], connection, password=config['password'],
                                     probe=flow.etcdctl_probe(connection, config['password']),
                                     space_check=space_check)
        info = flow.verify(tmp)
        sf.publish(tmp, path)
    finally:
        ops.rmtree(work)
    # The origin, in the journal: the cluster the endpoint answered for and the members the file holds.
    cluster_id = probed.get('cluster_id')
    print('saved %s from %s (cluster %s, members %s): revision %d, %d keys, %d bytes, sha256 %s'
          % (path, endpoint, '%016x' % cluster_id if cluster_id is not None else 'unknown',
             sf.describe_members(info['origin']['members'] or []),
             info['revision'], info['total_keys'], info['size'], info['sha256']))
    _kept, old = sf.plan_retention(directory, PATTERN, keep_newest=config['keep_newest'],
                                   keep_days=config['keep_days'], keep=[path])
    removed, errors = sf.remove_files(old)
    for gone in removed:
        print('removed %s (older than %d days and not one of the %d newest)'
              % (gone, config['keep_days'], config['keep_newest']))
    if errors:
        raise BackupFailed('the snapshot was saved, but retention could not remove: %s' % '; '.join(errors))
    return dict(path=path, revision=info['revision'], at=time.time())


def connection_of(config):
    return dict(ca_cert=config['ca_cert'], client_cert=config['client_cert'], client_key=config['client_key'],
                user=config['user'], timeout=10)


def active_alarms(config, sf, wf, run):
    """[(member name, alarm)] etcd reports active, from the first endpoint that answers `alarm list` and `member
    list`; None when none does."""
    tools = sf.SnapshotTools.find(config['bin_dir'])
    env = tools.save_environ(config['password'])
    connection = connection_of(config)
    for endpoint in config['endpoints']:
        answers = []
        for command in (['alarm', 'list'], ['member', 'list']):
            rc, out, err = run(tools.query_argv(endpoint, command, **connection), env, 30)
            try:
                answers.append(json.loads((out or '').strip().splitlines()[-1]) if rc == 0 else None)
            except (ValueError, IndexError):
                answers.append(None)
            if not isinstance(answers[-1], dict):
                break
        if len(answers) < 2 or not isinstance(answers[-1], dict):
            continue
        names = dict((member.get('ID'), member.get('name') or '%x' % member.get('ID', 0))
                     for member in answers[1].get('members') or [])
        return sorted((names.get(alarm.get('memberID')) or '%x' % (alarm.get('memberID') or 0),
                       ALARM_NAMES.get(alarm.get('alarm'), str(alarm.get('alarm'))))
                      for alarm in answers[0].get('alarms') or [])
    return None


def maintenance_writes_alarms(config):
    """Whether the scheduled maintenance is installed on this host: it writes gatewayops_etcd_alarm then."""
    return bool(config.get('maintenance_config')) and os.path.exists(config['maintenance_config'])


def write_gauges(config, metrics, done, alarms):
    """gatewayops-etcd-backup.prom: this run (``done``: its result, None when it failed) and the alarms."""
    directory = config.get('metrics_textfile_dir')
    if not directory:
        return
    path = os.path.join(directory, METRICS_FILE)
    if done is None:
        before = metrics.read_values(path)
        last_at = before.get('gatewayops_etcd_backup_last_success_timestamp_seconds', 0)
        last_revision = before.get('gatewayops_etcd_backup_last_revision', 0)
    else:
        last_at, last_revision = done['at'], done['revision']
    gauges = [
        ('gatewayops_etcd_backup_last_success_timestamp_seconds',
         'Unix time of the last verified scheduled etcd snapshot (0: none yet).', last_at),
        ('gatewayops_etcd_backup_last_revision', 'etcd revision of the last verified scheduled snapshot.',
         last_revision),
        ('gatewayops_etcd_backup_last_run_success', '1 when the last backup run succeeded, else 0.',
         done is not None),
        ('gatewayops_etcd_backup_period_seconds', 'Period of the etcd-backup timer in seconds.',
         config.get('period_seconds') or 0),
    ]
    if alarms:
        gauges.append(('gatewayops_etcd_alarm', 'etcd alarm active on a member (1), as etcdctl alarm list reports it.',
                       [(dict(member=member, alarm=alarm), 1) for member, alarm in alarms]))
    try:
        metrics.write(directory, METRICS_FILE, gauges)
    except OSError as exc:
        sys.stderr.write('etcd backup: the gauges were not written to %s: %s\n' % (path, exc))


def main(argv=None, run=None, ops=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='the JSON config the role renders (%(default)s)')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    sf, wf, metrics = load_workflow(config.get('lib_dir'))
    # One backup at a time in the directory (the timer and a manual run): a lock on the directory itself, so the
    # directory holds nothing but snapshots.
    lock = os.open(config['dir'], os.O_RDONLY)
    run = run or wf.run_subprocess
    done = None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = backup(config, sf, wf, run, ops or wf.FileOps())
        except (BackupFailed, sf.SnapshotError, OSError) as exc:
            sys.stderr.write('etcd backup FAILED, older backups left as they are: %s\n' % exc)
        if config.get('metrics_textfile_dir'):
            try:
                alarms = [] if maintenance_writes_alarms(config) else active_alarms(config, sf, wf, run)
            except (sf.SnapshotError, OSError) as exc:
                alarms = None
                sys.stderr.write('etcd backup: no alarm list: %s\n' % exc)
            if alarms is None:
                sys.stderr.write('etcd backup: no endpoint answered alarm list; no gatewayops_etcd_alarm written\n')
            write_gauges(config, metrics, done, alarms)
    finally:
        os.close(lock)
    return 0 if done is not None else 1


if __name__ == '__main__':
    sys.exit(main())
