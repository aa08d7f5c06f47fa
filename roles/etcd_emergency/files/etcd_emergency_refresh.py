# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refresh the emergency single-node etcd from a verified snapshot of the cluster.

Installed by the etcd_emergency role as /usr/local/sbin/etcd-emergency-refresh, run by
etcd-emergency-refresh.service (python3 <program> --config <file>); the role renders the JSON config, and installs
the collection's snapshot workflow (plugins/module_utils/_etcd_snapshot_*.py) as the package gatewayops_snapshot
in the config's lib_dir.

1. While <state_dir>/failover.json exists (failover.yml switched the clients here), do nothing.
2. Finish what a killed earlier run left (the swap journal): complete it when the new data is in place and
   served, else roll it back; remove staging dirs and temporary snapshots nothing refers to.
3. Take a snapshot from the first answering source endpoint into a private temporary dir (--from-file: use
   that file), verify it (integrity trailer, `snapshot status`, its origin: at least one of its members must be
   one of the config's cluster_members by name and peer URL, unless --allow-foreign-origin) and restore it beside
   the live data dir. A snapshot of another cluster changes nothing: the data served and the kept snapshot stay.
4. Journal the swap, stop etcd, keep the live data as <data_dir>.previous (one generation), rename the restored
   dir in, record it in state.json, start etcd and check it serves the snapshot's revision. On failure the
   previous data is put back, state.json names it again, and etcd is started on it.
5. Record the attempt in state.json; exit 1 on failure.

--begin-failover (the etcd_emergency role's failover_begin, for playbooks/failover.yml): under the same lock, waited
for up to --lock-timeout seconds, with the final snapshot of --from-file restored only when it is newer than what
is served (a failed restore keeps the last good data: the failover goes on), then, if the node serves,
failover.json written - never over an existing one - with the node's own revision (revision_at_switch) and the
cluster revision its data comes from. The last line printed is a JSON document: already_active, marker, refresh
(done, failed or none), state. Exit 1, no marker written, when the node does not serve.

With metrics_textfile_dir set, each refresh (and --begin-failover) then writes its gauges for node_exporter's
textfile collector to <metrics_textfile_dir>/gatewayops-emergency-refresh.prom (atomically, 0644), from state.json:
when the data served was taken from the cluster (0: no data yet), whether the last refresh succeeded, the timer's
period.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime
import fcntl
import json
import os
import sys
import time

DEFAULT_CONFIG = '/etc/etcd-emergency/refresh.json'
# What state.json says about the data served; the swap journal keeps the values of both generations.
SERVED_KEYS = ('revision', 'total_keys', 'snapshot_taken_at', 'snapshot_taken_epoch', 'sha256', 'source_endpoint',
               'source_cluster_id', 'source_members', 'refreshed_at')
METRICS_FILE = 'gatewayops-emergency-refresh.prom'


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


def write_gauges(config, metrics, state):
    """gatewayops-emergency-refresh.prom from ``state`` (state.json's data); nothing without metrics_textfile_dir."""
    directory = config.get('metrics_textfile_dir')
    if not directory:
        return
    gauges = [
        ('gatewayops_emergency_data_timestamp_seconds',
         'Unix time the data the emergency etcd serves was taken from the cluster (0: no data yet).',
         state.get('snapshot_taken_epoch') or 0),
        ('gatewayops_emergency_last_refresh_success', '1 when the last refresh of the emergency etcd succeeded, else 0.',
         state.get('last_error') is None and state.get('snapshot_taken_epoch') is not None),
        ('gatewayops_emergency_refresh_period_seconds', 'Period of the etcd-emergency-refresh timer in seconds.',
         config.get('refresh_period_seconds') or 0),
    ]
    try:
        metrics.write(directory, METRICS_FILE, gauges)
    except OSError as exc:
        log('the gauges were not written to %s: %s' % (os.path.join(directory, METRICS_FILE), exc))


class RefreshError(Exception):
    pass


def log(message):
    print(message)
    sys.stdout.flush()


def utc_iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


class Refresh(object):

    def __init__(self, config, snapfile, workflow, run, ops, sleep=time.sleep, clock=time.monotonic,
                 allow_foreign_origin=False):
        self.config = config
        # The cluster the snapshots must come from (name=peer URL); none configured, the origin is not checked.
        self.cluster_members = snapfile.expected_member_pairs(config.get('cluster_members'))
        self.allow_foreign_origin = allow_foreign_origin
        self.sf = snapfile
        self.wf = workflow
        self.run = run
        self.ops = ops
        self.sleep = sleep
        self.clock = clock
        state_dir = config['state_dir']
        self.state_file = os.path.join(state_dir, 'state.json')
        self.journal_file = os.path.join(state_dir, 'swap.json')
        self.kept_snapshot = os.path.join(state_dir, 'snapshot.db')
        self.data_dir = config['data_dir'].rstrip('/')
        self.parent = os.path.dirname(self.data_dir)
        self.previous = self.data_dir + '.previous'
        self.tools = snapfile.SnapshotTools.find(config['bin_dir'])
        self.flow = workflow.SnapshotWorkflow(self.tools, run, bin_dir=config['bin_dir'],
                                              timeout=config['save_timeout'])
        self.connection = dict(ca_cert=config['ca_cert'] or None, client_cert=config['client_cert'] or None,
                               client_key=config['client_key'] or None, user=config['user'] or None,
                               timeout=config['probe_timeout'])

    # -- the local etcd --------------------------------------------------------------------------

    def systemctl(self, action):
        rc, out, err = self.run(['systemctl', action, self.config['service']], None,
                                self.config['health_timeout'] + 30)
        if rc != 0:
            raise RefreshError('systemctl %s %s failed (rc=%d): %s'
                               % (action, self.config['service'], rc, (err or out).strip()))

    def served(self):
        """(revision, has a leader) of the local etcd, or (None, False) when it does not answer."""
        # The node's own certificate when it serves TLS (config local_*; absent in older configs: plain HTTP).
        local_tls = dict((key, self.config.get('local_' + key) or None)
                         for key in ('ca_cert', 'client_cert', 'client_key'))
        probe = self.flow.etcdctl_probe(dict(local_tls, timeout=self.config['probe_timeout']))
        try:
            status = probe(self.config['local_url'])
        except self.wf.ProbeFailed:
            return None, False
        return status['revision'], bool(status['leader'])

    def wait_serving(self, revision):
        deadline = self.clock() + self.config['health_timeout']
        served = None
        while True:
            served, leader = self.served()
            if leader and served is not None and served >= revision:
                return served
            if self.clock() >= deadline:
                raise RefreshError('etcd did not serve revision %d within %d s (answered: %s)'
                                   % (revision, self.config['health_timeout'], served))
            self.sleep(1)

    # -- state and journal -----------------------------------------------------------------------

    def write_state(self, state):
        self.ops.write_json(self.state_file, state, mode=0o644)

    def swap_of(self, journal):
        return self.wf.DataDirSwap(self.data_dir, self.previous, journal['staging_root'], self.ops,
                                   replaces=journal['replaces'])

    def commit(self, journal):
        """The new generation is served: keep its snapshot, drop the journal, then the staging dirs."""
        snapshot = journal.get('snapshot')
        if snapshot and os.path.lexists(snapshot):
            self.ops.rename(snapshot, self.kept_snapshot)
            self.ops.fsync_dir(os.path.dirname(self.kept_snapshot))
        self.ops.rmtree(self.journal_file)
        self.swap_of(journal).commit()
        if journal.get('snapshot_dir'):
            self.ops.rmtree(journal['snapshot_dir'])

    def roll_back(self, journal, state):
        """The previous generation back in place, named by state.json, served."""
        self.run(['systemctl', 'stop', self.config['service']], None, self.config['health_timeout'] + 30)
        self.swap_of(journal).rollback()
        state.update(journal['old'])
        self.write_state(state)
        self.ops.rmtree(self.journal_file)
        self.ops.rmtree(journal['staging_root'])
        if journal.get('snapshot_dir'):
            self.ops.rmtree(journal['snapshot_dir'])
        if os.path.isdir(os.path.join(self.data_dir, 'member')):
            self.systemctl('start')

    def recover(self, state):
        """Finish a run that was killed: complete its swap when the new data is in place and served, else roll
        it back; then remove what no journal refers to."""
        journal = self.wf.read_json(self.journal_file)
        if journal:
            swap = self.swap_of(journal)
            if swap.new_in_place():
                state.update(journal['new'])
                self.write_state(state)
                try:
                    self.systemctl('start')
                    self.wait_serving(journal['new']['revision'])
                except RefreshError as exc:
                    log('an interrupted refresh left revision %d in place, but it is not served (%s): rolling back'
                        % (journal['new']['revision'], exc))
                    self.roll_back(journal, state)
                else:
                    self.commit(journal)
                    log('completed an interrupted refresh: revision %d is served' % journal['new']['revision'])
            else:
                self.roll_back(journal, state)
                log('rolled back an interrupted refresh: the previous data is served again')
        for leftover in (self.wf.leftovers(self.parent, self.wf.staging_prefix(self.data_dir, 'refresh'))
                         + self.wf.leftovers(self.config['state_dir'], '.snapshot')
                         + self.wf.leftovers(self.config['state_dir'], '.state.json.')
                         + self.wf.leftovers(self.config['state_dir'], '.swap.json.')
                         + self.wf.leftovers(self.config['state_dir'], 'failover.json.new')
                         + self.wf.leftovers(self.config['state_dir'], '.failover.json.new.')):
            self.ops.rmtree(leftover)
            log('removed %s, left by an interrupted refresh' % leftover)
        # What versions before the journal could leave: a second older generation.
        older = self.previous + '.old'
        if os.path.lexists(older):
            if os.path.lexists(self.previous):
                self.ops.rmtree(older)
            else:
                self.ops.rename(older, self.previous)
            log('cleaned up %s, left by an interrupted refresh' % older)

    # -- the refresh -----------------------------------------------------------------------------

    def take(self, snapshot_dir, endpoints):
        self.tools.require_etcdctl(self.config['bin_dir'])
        path = os.path.join(snapshot_dir, 'snapshot.db')
        taken_at = datetime.datetime.now(datetime.timezone.utc)
        password = self.config['password'] or None
        try:
            endpoint, probed = self.flow.save(path, endpoints, self.connection, password=password,
                                              probe=self.flow.etcdctl_probe(self.connection, password),
                                              timeout=self.config['save_timeout'])
        except self.wf.SnapshotStepError as exc:
            raise RefreshError('no source endpoint gave a snapshot: %s' % '; '.join(exc.extra['endpoint_errors']))
        return path, endpoint, probed.get('cluster_id'), taken_at

    def refresh(self, state, endpoints, from_file=None, only_newer=False):
        """-> True when new data is served, False when only_newer found the snapshot not newer than state's."""
        self.tools.require_offline(self.config['bin_dir'])
        snapshot_dir = self.ops.mkdtemp('.snapshot-', self.config['state_dir'])
        staging_root = None
        try:
            if from_file:
                path, endpoint, cluster_id = from_file, 'file://%s' % os.path.abspath(from_file), None
                taken_at = datetime.datetime.fromtimestamp(os.stat(from_file).st_mtime, datetime.timezone.utc)
            else:
                path, endpoint, cluster_id, taken_at = self.take(snapshot_dir, endpoints)
            try:
                info = self.flow.verify(path, expected=self.cluster_members, allow_foreign=self.allow_foreign_origin)
            except self.sf.SnapshotForeignOriginError as exc:
                raise RefreshError('refused the snapshot from %s: %s. Nothing was changed: the node serves its data '
                                   'and keeps its snapshot (--allow-foreign-origin restores it all the same)'
                                   % (endpoint, exc))
            except self.sf.SnapshotError as exc:
                raise RefreshError('the snapshot from %s failed verification, nothing was changed: %s'
                                   % (endpoint, exc))
            log('snapshot from %s verified: revision %d, %d keys, sha256 %s, members %s%s'
                % (endpoint, info['revision'], info['total_keys'], info['sha256'],
                   self.sf.describe_members(info['origin']['members'] or []),
                   '' if self.cluster_members else ' (origin not checked: the config names no cluster_members)'))
            if only_newer and info['revision'] <= (state.get('revision') or 0):
                log('not newer than the revision served (%s): data left as it is' % state.get('revision'))
                return False
            new = dict(revision=info['revision'], total_keys=info['total_keys'], snapshot_taken_at=utc_iso(taken_at),
                       snapshot_taken_epoch=taken_at.timestamp(), sha256=info['sha256'], source_endpoint=endpoint,
                       source_cluster_id=cluster_id, source_members=info['origin']['members'],
                       refreshed_at=utc_iso(datetime.datetime.now(datetime.timezone.utc)))
            kept = os.path.join(snapshot_dir, 'snapshot.db')
            if from_file:
                # A copy under the kept name: the given file stays where it is.
                with open(path, 'rb') as src, open(kept, 'wb') as dst:
                    while True:
                        chunk = src.read(4 * 1024 * 1024)
                        if not chunk:
                            break
                        dst.write(chunk)
            os.chmod(kept, 0o600)

            unchanged = (cluster_id is not None and state.get('source_cluster_id') == cluster_id
                         and state.get('revision') == info['revision'] and self.served()[0] == info['revision'])
            if unchanged:
                log('the node already serves revision %d of that cluster: data left as it is' % info['revision'])
                self.ops.rename(kept, self.kept_snapshot)
                state.update(new)
                return True
            free = self.sf.free_bytes(self.parent)
            if free < 2 * info['size']:
                raise RefreshError('%s has %d bytes free, the restore needs about %d (twice the snapshot)'
                                   % (self.parent, free, 2 * info['size']))
            staging_root = self.ops.mkdtemp(self.wf.staging_prefix(self.data_dir, 'refresh'), self.parent)
            uid, gid = self.owner_ids()
            member = dict(name=self.config['name'], initial_cluster=self.config['initial_cluster'],
                          initial_cluster_token=self.config['token'],
                          initial_advertise_peer_urls=[self.config['peer_url']])
            try:
                self.flow.restore_beside(path, info['revision'], self.data_dir, staging_root, member, uid, gid)
            except self.sf.SnapshotError as exc:
                raise RefreshError('%s; the served data was not touched' % exc)
            # From the journal on, the swap owns both dirs (a failed rollback must leave them for the next run).
            owned, staging_root, snapshot_dir = (staging_root, snapshot_dir), None, None
            self.swap_in(state, new, owned[0], owned[1], kept)
            log('now serving revision %d (%d keys)%s' % (
                info['revision'], info['total_keys'],
                '; previous data kept at %s' % self.previous if os.path.isdir(self.previous) else ''))
            return True
        finally:
            for leftover in (staging_root, snapshot_dir):
                if leftover and os.path.lexists(leftover):
                    self.ops.rmtree(leftover)

    def begin_failover(self, state, failover_file, from_file=None):
        """The node takes the clients (see --begin-failover). -> the document printed for the role."""
        existing = self.wf.read_json(failover_file)
        refresh = 'none'
        if existing is None and from_file:
            try:
                if self.refresh(state, [], from_file, only_newer=True):
                    refresh, state['last_error'] = 'done', None
            except Exception as exc:  # pylint: disable=broad-except
                # The last good data is still better than no etcd at all: record why, go on.
                state['last_error'] = str(exc) or exc.__class__.__name__
                log('the refresh from the final snapshot failed: %s; the last good data stays served' % exc)
                refresh = 'failed'
            self.write_state(state)
        revision, leader = self.served()
        if revision is None or not leader:
            raise RefreshError('the emergency node does not serve: its etcd at %s %s'
                               % (self.config['local_url'], 'has no leader' if revision is not None
                                  else 'does not answer'))
        marker = existing
        if marker is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            marker = dict(switched_at=utc_iso(now), switched_epoch=now.timestamp(), revision_at_switch=revision,
                          cluster_revision_at_switch=state.get('revision') or 0)
            if not self.create_exclusive(failover_file, marker):
                marker = self.wf.read_json(failover_file)
                existing = marker
        return dict(already_active=existing is not None, marker=marker, refresh=refresh,
                    state=dict((key, state.get(key)) for key in SERVED_KEYS + ('last_error',)))

    def create_exclusive(self, path, doc):
        """Write ``doc`` as ``path`` unless it exists (never over it), durably. -> False when it existed."""
        tmp = path + '.new'
        self.ops.write_json(tmp, doc, mode=0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        self.ops.fsync_dir(os.path.dirname(path))
        return True

    def owner_ids(self):
        import grp
        import pwd
        try:
            return pwd.getpwnam(self.config['owner']).pw_uid, grp.getgrnam(self.config['group']).gr_gid
        except KeyError as exc:
            raise RefreshError('unknown owner or group of the data dir: %s' % exc)

    def swap_in(self, state, new, staging_root, snapshot_dir, kept):
        """Journal first; then every step leaves one whole generation in place, named by state.json."""
        journal = dict(staging_root=staging_root, snapshot_dir=snapshot_dir, snapshot=kept,
                       replaces=self.wf.has_content(self.data_dir), new=new,
                       old=dict((key, state.get(key)) for key in SERVED_KEYS))
        self.ops.write_json(self.journal_file, journal)
        try:
            self.systemctl('stop')
            self.swap_of(journal).forward()
            state.update(new)
            self.write_state(state)
            self.systemctl('start')
            self.wait_serving(new['revision'])
        except (RefreshError, OSError) as exc:
            log('the new data was not served (%s); putting the previous data back' % exc)
            self.roll_back(journal, state)
            raise RefreshError('the restored data did not start (%s); the previous data is served again' % exc)
        self.commit(journal)


def take_lock(lock, timeout, sleep, clock):
    """The exclusive lock on the open file ``lock``; waited for without limit when ``timeout`` is 0. -> taken."""
    if not timeout:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return True
    deadline = clock() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if clock() >= deadline:
                return False
            sleep(1)


def main(argv=None, run=None, ops=None, sleep=time.sleep, clock=time.monotonic):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='the JSON config the role renders (%(default)s)')
    parser.add_argument('--from-file', metavar='SNAPSHOT',
                        help='restore this snapshot file (verified first) instead of taking one from the sources')
    parser.add_argument('--endpoints', metavar='URL[,URL...]',
                        help='take the snapshot from these client URLs instead of the configured ones')
    parser.add_argument('--allow-foreign-origin', action='store_true',
                        help='restore a snapshot even when none of its members is one of the cluster_members of the '
                             'config (another cluster\'s data, on purpose)')
    parser.add_argument('--begin-failover', action='store_true',
                        help='failover.yml: restore --from-file when newer, then write failover.json (see above)')
    parser.add_argument('--lock-timeout', type=int, default=0, metavar='SECONDS',
                        help='with --begin-failover, how long to wait for a refresh holding the lock (0: no limit)')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    snapfile, workflow, metrics = load_workflow(config.get('lib_dir'))
    run = run or workflow.run_subprocess
    ops = ops or workflow.FileOps()
    failover_file = os.path.join(config['state_dir'], 'failover.json')

    if os.path.exists(failover_file) and not args.begin_failover:
        log('failover active, not refreshing (%s exists: the node holds writes made since the switch)'
            % failover_file)
        return 0
    if not os.path.isdir(config['state_dir']):
        os.makedirs(config['state_dir'], 0o755)
    with open(os.path.join(config['state_dir'], '.refresh.lock'), 'w') as lock:
        # One refresh at a time (timer and a manual run); failover.yml waits a bounded time.
        if not take_lock(lock, args.lock_timeout if args.begin_failover else 0, sleep, clock):
            log('a refresh still held %s after %d s: failover.json was not written'
                % (lock.name, args.lock_timeout))
            return 1
        refresh = Refresh(config, snapfile, workflow, run, ops, sleep=sleep, clock=clock,
                          allow_foreign_origin=args.allow_foreign_origin)
        state = workflow.read_json(refresh.state_file) or {}
        for key in SERVED_KEYS + ('last_error',):
            state.setdefault(key, None)
        if args.begin_failover:
            try:
                refresh.recover(state)
                doc = refresh.begin_failover(state, failover_file, args.from_file)
            except Exception as exc:  # pylint: disable=broad-except
                log('failover.json was not written: %s' % exc)
                return 1
            write_gauges(config, metrics, state)
            log(json.dumps(doc, sort_keys=True))
            return 0
        if os.path.exists(failover_file):
            log('failover active, not refreshing')
            return 0
        state['last_attempt_at'] = utc_iso(datetime.datetime.now(datetime.timezone.utc))
        endpoints = config['endpoints']
        if args.endpoints:
            endpoints = [url.strip() for url in args.endpoints.split(',') if url.strip()]
        try:
            refresh.recover(state)
            refresh.refresh(state, endpoints, args.from_file)
        except Exception as exc:  # pylint: disable=broad-except
            # Whatever went wrong is recorded: state.json is what operators and failover.yml read.
            state['last_error'] = str(exc) or exc.__class__.__name__
            refresh.write_state(state)
            write_gauges(config, metrics, state)
            log('refresh failed: %s' % exc)
            return 1
        state['last_error'] = None
        refresh.write_state(state)
        write_gauges(config, metrics, state)
    return 0


if __name__ == '__main__':
    # Snapshots and restored data hold every key: private from birth, however the program is started (its unit,
    # failover.yml, an operator).
    os.umask(0o077)
    sys.exit(main())
