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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import fcntl
import json
import os
import sys

DEFAULT_CONFIG = '/etc/etcd-backup/backup.json'
PATTERN = 'etcd-*.db'
TMP_PREFIX = '.etcd-'


def load_workflow(lib_dir):
    """The snapshot workflow: the installed package on a host, the collection's module_utils in tests."""
    if lib_dir and lib_dir not in sys.path:
        sys.path.insert(0, lib_dir)
    try:
        from gatewayops_snapshot import _etcd_snapshot_file as snapfile, _etcd_snapshot_workflow as workflow
    except ImportError:
        from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import (  # noqa: F401
            _etcd_snapshot_file as snapfile, _etcd_snapshot_workflow as workflow)
    return snapfile, workflow


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
    connection = dict(ca_cert=config['ca_cert'], client_cert=config['client_cert'], client_key=config['client_key'],
                      user=config['user'], timeout=10)
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
    return path


def main(argv=None, run=None, ops=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='the JSON config the role renders (%(default)s)')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    sf, wf = load_workflow(config.get('lib_dir'))
    # One backup at a time in the directory (the timer and a manual run): a lock on the directory itself, so the
    # directory holds nothing but snapshots.
    lock = os.open(config['dir'], os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        backup(config, sf, wf, run or wf.run_subprocess, ops or wf.FileOps())
    except (BackupFailed, sf.SnapshotError, OSError) as exc:
        sys.stderr.write('etcd backup FAILED, older backups left as they are: %s\n' % exc)
        return 1
    finally:
        os.close(lock)
    return 0


if __name__ == '__main__':
    sys.exit(main())
