#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_snapshot
short_description: Save, verify and restore etcd v3 snapshot files
version_added: 0.1.0
description:
  - Checks, takes and restores etcd v3 snapshot files on the managed host, with C(etcdutl) (etcd 3.5+) or,
    when it is not installed, C(etcdctl) (etcd 3.4, run with E(ETCDCTL_API=3)).
  - Every file is checked the way C(snapshot restore) checks it before it is used or kept. A file written
    by C(snapshot save) ends with a 32-byte sha256 of everything before it, so its size is 32 bytes past a
    512-byte boundary. Missing, empty, truncated (no trailer), corrupted (hash mismatch) and foreign (no
    bbolt meta page) files are refused with a message saying which.
  - O(state=verified) checks O(path) and reads its revision and key count with C(snapshot status -w json).
  - Every snapshot verified or saved is described by its origin (RV(origin)) - the cluster membership its database
    records (member names and peer URLs, read from the file itself) and, for O(state=saved), the cluster ID of the
    endpoint it was taken from. With O(expected_members), O(state=verified) and O(state=restored) refuse a
    snapshot of another cluster, changing nothing.
  - O(state=restored) verifies O(path), restores it into a new private directory beside O(data_dir) (same
    filesystem), proves the result (layout and revision), and only then renames it into place. An
    O(data_dir) that already holds a member (C(member/) exists) is left alone unless O(force=true), which
    moves the old directory aside to C(<data_dir>.replaced-<UTC timestamp>); that copy is kept, never
    deleted. So seeding a member from a snapshot happens once, and re-running a play does not reset it.
  - A restore killed at any step (the host lost, SIGKILL) leaves O(data_dir) as it was or wholly restored; only
    between the two renames of a replacement is it absent for a moment, the old directory whole under its kept
    name. The next run puts back what such a run left (from the journal it keeps in its staging directory), removes
    its staging directories, then restores as usual.
  - O(state=saved) takes a snapshot from the first of O(endpoints) that answers with C(etcdctl snapshot save),
    into a private temporary directory beside O(path), verifies it and renames it to O(path). Each endpoint is
    asked once for its status (its database size) before the save; one that does not answer is skipped. A half-written
    or corrupt file never appears under O(path). An existing O(path) is kept unless O(force=true).
  - Before saving, the free space of the directory of O(path) must exceed the database size the endpoint reports
    in its maintenance status plus O(free_space_margin_mb); otherwise nothing is taken.
  - With O(keep_newest) and/or O(keep_days), older snapshots of the directory of O(path) whose names match
    O(retention_pattern) are removed, but only after the new snapshot was saved, verified and renamed into place;
    a failed save never removes anything, and the new file is never removed. In check mode the removals are only
    planned (RV(removed), RV(actions)).
  - An empty O(path) is refused for every state.
  - E(ETCDCTL_*) and E(ETCDUTL_*) variables of the managed host's environment are ignored (removed before
    the tools run), so they cannot redirect or break the commands.
author:
  - gatewayops maintainers (@gatewayops)
extends_documentation_fragment:
  - gatewayops.apisix_ha.etcd
  - gatewayops.apisix_ha.attributes
  - gatewayops.apisix_ha.attributes.etcd_action_group
attributes:
  check_mode:
    support: full
    description:
      - Files are verified (reading only, C(snapshot status) included) and what would be done is reported in
        RV(actions); nothing is written, no snapshot is taken.
  diff_mode:
    support: full
    description:
      - For O(state=restored) and O(state=saved), a summary of O(data_dir) or O(path) before and after.
  platform:
    support: full
    platforms: posix
    description:
      - Runs on the host that holds the snapshot file or data directory, with etcdutl/etcdctl installed there.
options:
  state:
    description:
      - V(verified) checks O(path) and reports what it holds. Never changes anything.
      - V(restored) makes O(data_dir) a data directory restored from O(path), unless it is already initialised.
      - V(saved) takes a snapshot from O(endpoints) to O(path).
    type: str
    choices: [verified, restored, saved]
    default: verified
  path:
    description:
      - The snapshot file on the managed host. Read for V(verified) and V(restored), written for V(saved)
        (its directory must exist).
    type: path
    required: true
  data_dir:
    description:
      - Data directory of the member to restore into (etcd C(--data-dir)). Its parent must be writable, it
        must not be a mount point (the restored directory is renamed into place from beside it).
      - Required for O(state=restored).
    type: path
  name:
    description:
      - Member name (etcd C(--name)); must be one of the names in O(initial_cluster).
      - Required for O(state=restored).
    type: str
  initial_cluster:
    description:
      - The cluster the restored member will start in, as etcd C(--initial-cluster)
        (C(name1=https://peer1:2380,name2=https://peer2:2380,...)). Every member must be restored from the same
        snapshot with the same O(initial_cluster) and O(initial_cluster_token).
      - Required for O(state=restored).
    type: str
  initial_cluster_token:
    description:
      - etcd C(--initial-cluster-token) of the restored cluster.
      - Required for O(state=restored).
    type: str
  initial_advertise_peer_urls:
    description:
      - This member's peer URLs (etcd C(--initial-advertise-peer-urls)); they must be the URLs O(initial_cluster)
        lists for O(name).
      - Required for O(state=restored).
    type: list
    elements: str
  owner:
    description:
      - User (name or uid) that owns the result. For O(state=restored) the whole restored tree is changed
        (C(chown -R)) before it is renamed into place; for O(state=saved) the snapshot file.
      - Not applied to an O(data_dir) or O(path) left unchanged.
    type: str
  group:
    description:
      - Group (name or gid) of the result, as for O(owner).
    type: str
  force:
    description:
      - For O(state=restored), replace an O(data_dir) that is already initialised (or holds anything else);
        the old directory is renamed to C(<data_dir>.replaced-<UTC timestamp>) and kept, and only after the
        new data was restored and checked.
      - Stop the etcd member that uses O(data_dir) first; the module does not check whether it is running.
      - For O(state=saved), replace an existing O(path) with a new snapshot.
    type: bool
    default: false
  read_status:
    description:
      - For O(state=verified), also read the snapshot's revision and key count with C(etcdutl snapshot status)
        (or C(etcdctl) on etcd 3.4).
      - V(false) checks only what needs no etcd tool (the bbolt header and the sha256 integrity trailer), for a
        host without etcd such as an Ansible controller; RV(revision), RV(total_keys), RV(total_size),
        RV(hash) and RV(tool) are then not returned.
      - O(state=restored) always reads the status, before and after restoring.
    type: bool
    default: true
  bin_dir:
    description:
      - Directory holding C(etcdutl) and/or C(etcdctl). When set, only this directory is searched.
      - When not set, E(PATH) and then C(/usr/local/bin), C(/usr/bin), C(/usr/local/sbin), C(/usr/sbin) and
        C(/opt/etcd/bin) are searched. C(etcdutl) is preferred for status and restore; C(etcdctl) is always
        used for saving.
    type: path
  keep_newest:
    description:
      - For O(state=saved), keep the N newest snapshots (by modification time) matching O(retention_pattern),
        the new one included.
      - With O(keep_days) too, a file is kept when either rule keeps it.
    type: int
  keep_days:
    description:
      - For O(state=saved), keep the snapshots matching O(retention_pattern) modified less than N days ago.
      - With O(keep_newest) too, a file is kept when either rule keeps it.
    type: int
  retention_pattern:
    description:
      - Glob of the file names (in the directory of O(path), no C(/)) that retention may remove, for example
        V(etcd-*.db). It must match the name of O(path), so that only the series the task writes is pruned.
        Files whose name starts with a dot (saves in progress), links and directories are never touched.
      - Required with O(keep_newest) or O(keep_days).
    type: str
  create_directory:
    description:
      - For O(state=saved), create the directory of O(path) (and its missing parents) with mode C(0700) when it
        does not exist. Without it a missing directory is an error.
    type: bool
    default: false
  expected_members:
    description:
      - The members of the cluster the snapshot is meant for, each a dict with C(name) and C(peer_urls) (a list) or
        C(peer_url), or a string C(name=peer URL) as in etcd C(--initial-cluster) (a whole initial cluster, comma
        separated, is read too).
      - For O(state=verified) and O(state=restored), at least one member recorded in the snapshot must have the
        name and a peer URL of one of them; otherwise the snapshot is refused as one of another cluster, and nothing
        is changed. One is enough, so a snapshot taken before a member moved to another address still passes, while
        one of a throw-away etcd (member C(default) at C(http://localhost:2380)) or of another deployment (other
        addresses) does not.
      - Not set, the origin is read and returned (RV(origin)) but not checked. Not used by O(state=saved).
    type: list
    elements: raw
  allow_foreign_origin:
    description:
      - Use a snapshot that O(expected_members) refuses all the same, to restore another deployment's data on
        purpose. RV(origin) still says whose members the snapshot holds (RV(origin.matched) is empty).
    type: bool
    default: false
  free_space_margin_mb:
    description:
      - For O(state=saved), MiB that must remain free in the directory of O(path) beyond the endpoint's database
        size (C(dbSize) of its maintenance status), checked before the snapshot is taken.
    type: int
    default: 64
  probe:
    description:
      - For O(state=saved), how each endpoint is asked for its database size and cluster ID before the save.
      - V(json_gateway) asks its maintenance status on the JSON gateway, as the other modules do.
      - V(etcdctl) asks with C(etcdctl endpoint status), over gRPC like the save. Needed with a client certificate
        whose common name is an etcd user, the way to take a snapshot with authentication on when no member has
        a leader (etcd logs O(user) in through raft only); etcd's JSON gateway answers HTTP 400 to such certificates.
    type: str
    choices: [json_gateway, etcdctl]
    default: json_gateway
notes:
  - O(endpoints), O(ca_cert), O(client_cert), O(client_key), O(validate_certs), O(user), O(password) and
    O(timeout) are only used by O(state=saved), by C(etcdctl snapshot save) and, for the database size, by the
    probe (O(probe)). O(timeout) becomes C(etcdctl --dial-timeout); the save itself
    is not time-limited. O(password) is passed to C(etcdctl) in the environment (E(ETCDCTL_PASSWORD)), never on
    its command line.
  - The C(hash) returned is the bbolt content hash printed by C(snapshot status), not the file's sha256.
  - Saved snapshot files get mode C(0600); a restored O(data_dir) gets mode C(0700).
seealso:
  - name: etcd disaster recovery
    description: Restoring a cluster from a snapshot.
    link: https://etcd.io/docs/v3.5/op-guide/recovery/
"""

EXAMPLES = r"""
- name: Check a snapshot before it is copied anywhere
  gatewayops.apisix_ha.etcd_snapshot:
    state: verified
    path: /var/backups/etcd/apisix-20260301.db
  register: snap

- name: Show what it holds
  ansible.builtin.debug:
    msg: "revision {{ snap.revision }}, {{ snap.total_keys }} keys, sha256 {{ snap.sha256 }}"

- name: Take a snapshot from the first member that answers
  gatewayops.apisix_ha.etcd_snapshot:
    state: saved
    path: "/var/backups/etcd/apisix-{{ ansible_date_time.iso8601_basic_short }}.db"
    endpoints:
      - https://10.250.77.11:2379
      - https://10.250.77.12:2379
      - https://10.250.77.13:2379
    ca_cert: /etc/etcd/pki/ca.crt
    client_cert: /etc/etcd/pki/client.crt
    client_key: /etc/etcd/pki/client.key
    owner: etcd
    group: etcd

- name: Nightly-style backup - keep a week of snapshots, and at least the 3 newest
  gatewayops.apisix_ha.etcd_snapshot:
    state: saved
    path: "/var/backups/etcd/etcd-{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}.db"
    endpoints:
      - http://10.250.77.11:2379
    retention_pattern: etcd-*.db
    keep_days: 7
    keep_newest: 3
  register: backup

- name: Show what retention removed
  ansible.builtin.debug:
    var: backup.removed

- name: Refuse a snapshot that does not come from this cluster (no member with one of these names and peer URLs)
  gatewayops.apisix_ha.etcd_snapshot:
    state: verified
    path: /var/backups/etcd/apisix-20260301.db
    expected_members:
      - etcd01=http://10.250.77.11:2380
      - etcd02=http://10.250.77.12:2380
      - name: etcd03
        peer_urls:
          - http://10.250.77.13:2380

- name: Seed a member's data dir from a snapshot, once (later runs report ok)
  gatewayops.apisix_ha.etcd_snapshot:
    state: restored
    path: /var/lib/etcd-seed/seed.db
    data_dir: /var/lib/etcd/default
    name: etcd01
    initial_cluster: etcd01=https://10.250.77.11:2380,etcd02=https://10.250.77.12:2380,etcd03=https://10.250.77.13:2380
    initial_cluster_token: apisix-etcd-restored-20260301
    initial_advertise_peer_urls:
      - https://10.250.77.11:2380
    owner: etcd
    group: etcd

- name: Disaster recovery - replace the data dir (the old one is kept as <data_dir>.replaced-<timestamp>)
  gatewayops.apisix_ha.etcd_snapshot:
    state: restored
    path: /var/lib/etcd-seed/seed.db
    data_dir: /var/lib/etcd/default
    name: etcd01
    initial_cluster: etcd01=https://10.250.77.11:2380,etcd02=https://10.250.77.12:2380,etcd03=https://10.250.77.13:2380
    initial_cluster_token: apisix-etcd-restored-20260301
    initial_advertise_peer_urls:
      - https://10.250.77.11:2380
    owner: etcd
    group: etcd
    force: true
  check_mode: true
  diff: true
"""

RETURN = r"""
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: restored /var/lib/etcd-seed/seed.db (revision 7, 10 keys) into /var/lib/etcd/default for member etcd01
actions:
  description:
    - What was done, or in check mode what would be done, in order.
    - "Commands run are listed as C(ran: <command line>) (the password never appears; it is not on the command line)."
  returned: always
  type: list
  elements: str
  sample:
    - verified the sha256 integrity trailer of /var/lib/etcd-seed/seed.db
    - "ran: /usr/bin/etcdutl snapshot status /var/lib/etcd-seed/seed.db -w json"
    - "ran: /usr/bin/etcdutl snapshot restore /var/lib/etcd-seed/seed.db --data-dir /var/lib/etcd/.default.restore-x1/default --name etcd01 ..."
    - checked the restored data (member/snap/db, WAL, revision 7)
    - renamed /var/lib/etcd/.default.restore-x1/default to /var/lib/etcd/default
snapshot_path:
  description: The snapshot file (O(path)).
  returned: always
  type: str
  sample: /var/lib/etcd-seed/seed.db
integrity_ok:
  description: The file passed the integrity checks (failures are reported with C(failed), RV(integrity_error)).
  returned: when a file was verified
  type: bool
  sample: true
integrity_error:
  description:
    - On failure only, why the file was refused; one of V(missing), V(empty), V(truncated), V(hash_mismatch),
      V(foreign), V(layout) (the bbolt pages do not hold together).
  returned: failure
  type: str
  sample: hash_mismatch
error:
  description:
    - On failure only, for refusals other than the file's integrity; V(foreign_origin) when the snapshot comes
      from another cluster than O(expected_members).
  returned: failure
  type: str
  sample: foreign_origin
origin:
  description:
    - Where the snapshot comes from.
  returned: when a file was verified, and when a snapshot of another cluster was refused
  type: dict
  contains:
    members:
      description:
        - The cluster membership recorded in the snapshot's database (bucket C(members)), sorted by name; a member
          added but never started has an empty name. Null when it cannot be read (RV(origin.error) says why).
      type: list
      elements: dict
      sample:
        - id: 8e9e05c52164694d
          name: etcd01
          peer_urls:
            - http://10.250.77.11:2380
    matched:
      description:
        - The names of O(expected_members) found among RV(origin.members) (by name and peer URL). Only with
          O(expected_members); empty when O(allow_foreign_origin=true) let a snapshot of another cluster through.
      type: list
      elements: str
      returned: with O(expected_members)
      sample: [etcd01, etcd02, etcd03]
    cluster_id:
      description: The cluster ID (16 hex digits) the endpoint reported when the snapshot was taken.
      type: str
      returned: O(state=saved), when a snapshot was taken
      sample: 4c4191ac5e8a1a1f
    endpoint:
      description: The endpoint the snapshot was taken from.
      type: str
      returned: O(state=saved), when a snapshot was taken
      sample: http://10.250.77.11:2379
    error:
      description: Why the membership could not be read (RV(origin.members) is then null).
      type: str
      returned: when the membership cannot be read
      sample: "/var/backups/etcd/x.db holds no etcd membership (no bucket \"members\")"
sha256:
  description: sha256 of the whole snapshot file (what C(sha256sum) prints).
  returned: when a file was verified
  type: str
  sample: 723a61b45ef576e78fb2cc0e93745c8b71811b03f5a1c9f451cd606c67aa488b
size:
  description: Size of the snapshot file in bytes (database plus the 32-byte trailer).
  returned: when a file was verified
  type: int
  sample: 20512
revision:
  description: The store revision the snapshot was taken at.
  returned: when a file was verified, unless O(read_status=false)
  type: int
  sample: 7
total_keys:
  description: Keys in the snapshot's database (all buckets, as C(snapshot status) counts them).
  returned: when a file was verified, unless O(read_status=false)
  type: int
  sample: 10
total_size:
  description: Size of the bbolt database inside the file, in bytes.
  returned: when a file was verified, unless O(read_status=false)
  type: int
  sample: 20480
hash:
  description: bbolt content hash (crc32) from C(snapshot status).
  returned: when a file was verified, unless O(read_status=false)
  type: int
  sample: 938499975
tool:
  description: Path of the etcdutl or etcdctl that read (and for V(restored), restored) the snapshot.
  returned: when a file was verified, unless O(read_status=false)
  type: str
  sample: /usr/bin/etcdutl
data_dir:
  description: The data directory.
  returned: O(state=restored)
  type: str
  sample: /var/lib/etcd/default
data_dir_state:
  description:
    - What O(data_dir) was before the task; one of V(absent), V(empty), V(initialised), V(not_empty).
  returned: O(state=restored)
  type: str
  sample: absent
replaced_dir:
  description: Where the previous O(data_dir) was moved (or, in check mode, would be moved) with O(force=true).
  returned: O(state=restored), when an existing data dir was replaced
  type: str
  sample: /var/lib/etcd/default.replaced-20260301T101500Z
endpoint:
  description: The endpoint the snapshot was taken from.
  returned: O(state=saved), when a snapshot was taken
  type: str
  sample: https://10.250.77.11:2379
removed:
  description:
    - Older snapshots retention removed (in check mode, would remove), newest first.
  returned: O(state=saved), with O(keep_newest) or O(keep_days), when a snapshot was (or would be) taken
  type: list
  elements: str
  sample:
    - /var/backups/etcd/etcd-20260220T041000Z.db
db_size:
  description: Database size (bytes) the endpoint reported before the save, used for the free-space check.
  returned: O(state=saved), when the free space was checked
  type: int
  sample: 20480
free_bytes:
  description: Free bytes in the directory of O(path) before the save.
  returned: O(state=saved), when the free space was checked
  type: int
  sample: 10737418240
"""

import fnmatch
import grp
import os
import pwd
import shlex

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_client import EtcdError, format_id
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_module import EtcdModule
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._module_base import ModuleFailure
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_snapshot_file import (
    DATA_DIR_ABSENT,
    DATA_DIR_INITIALISED,
    DATA_DIR_NOT_A_DIR,
    DATA_DIR_OTHER,
    MIB,
    SnapshotArgumentError,
    SnapshotError,
    SnapshotForeignOriginError,
    SnapshotIntegrityError,
    SnapshotSpaceError,
    SnapshotTools,
    check_free_space,
    check_member_arguments,
    check_snapshot,
    data_dir_state,
    expected_member_pairs,
    plan_retention,
    publish,
    remove_files,
    replaced_dir_name,
    tool_environ_drop,
)
from ansible_collections.gatewayops.apisix_ha.plugins.module_utils._etcd_snapshot_workflow import (
    DataDirSwap,
    FileOps,
    ProbeFailed,
    SnapshotStepError,
    SnapshotWorkflow,
    leftovers,
    read_json,
    staging_prefix,
)

# Written in the staging dir before the swap: what a killed run's next run reads to put the data dir back.
SWAP_JOURNAL = 'swap.json'


class EtcdSnapshot(object):
    """The three states over the collection's snapshot workflow; every action goes to the module's recorder."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.recorder = module.recorder
        self.changed = False
        # Not 'path': AnsibleModule would add the file's stat (state, owner, size...) over the module's keys.
        self.result = dict(snapshot_path=self.params['path'])
        self.tools = SnapshotTools.find(self.params['bin_dir'])
        self.flow = SnapshotWorkflow(self.tools, self.run, log=self.note, bin_dir=self.params['bin_dir'])
        self.ops = FileOps()

    # -- helpers ---------------------------------------------------------------------------------

    def note(self, text):
        """Record what was read or checked (not a change; check mode runs it too)."""
        self.recorder.actions.append(text)

    def act(self, plan, done, func=None, *args):
        """A change: ``done`` once run, ``would <plan>`` in check mode (then func is not called)."""
        if not self.check_mode:
            self.changed = True
        return self.recorder.do(plan if self.check_mode else done, func, *args)

    def run(self, argv, environ_update=None, timeout=None):
        self.note('ran: %s' % ' '.join(shlex.quote(a) for a in argv))
        return self.module.run_command(argv, environ_update=environ_update or {})

    def fail(self, msg, **extra):
        result = dict(self.result)
        result.update(extra)
        result['changed'] = self.changed
        return ModuleFailure(msg, **result)

    def failure(self, exc, suffix=''):
        """The ModuleFailure for an exception of the snapshot layer."""
        if isinstance(exc, SnapshotIntegrityError):
            return self.fail(to_native(exc) + suffix, integrity_ok=False, integrity_error=exc.reason)
        if isinstance(exc, SnapshotForeignOriginError):
            return self.fail('%s. Refused, nothing was changed; allow_foreign_origin: true uses it all the same (to '
                             'restore another deployment on purpose)' % to_native(exc), error=exc.reason,
                             origin=dict(members=exc.members))
        if isinstance(exc, SnapshotStepError):
            return self.fail(to_native(exc) + suffix, **exc.extra)
        if isinstance(exc, SnapshotError):
            return self.fail(to_native(exc) + suffix, error=exc.reason)
        return self.fail('%s failed: %s%s' % (self.params['state'], to_native(exc), suffix))

    def resolve_owner(self):
        uid = gid = -1
        owner, group = self.params['owner'], self.params['group']
        if owner:
            try:
                uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
            except KeyError:
                raise self.fail('owner %r does not exist on this host' % owner)
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise self.fail('group %r does not exist on this host' % group)
        return uid, gid

    def owner_text(self):
        return '%s:%s' % (self.params['owner'] or '-', self.params['group'] or '-')

    def verify(self, path, read_status=True, check_origin=False):
        """The workflow's verify; with ``check_origin``, against expected_members (when given)."""
        expected = None
        if check_origin and self.params['expected_members']:
            try:
                expected = expected_member_pairs(self.params['expected_members'])
            except SnapshotArgumentError as exc:
                raise self.fail('expected_members: %s. Nothing was changed.' % to_native(exc))
        info = self.flow.verify(path, read_status, expected, self.params['allow_foreign_origin'])
        self.result.update(info)
        return info

    def finish(self, msg, before=None, after=None):
        self.module.finish(before=before, after=after, changed=self.changed, msg=msg, **self.result)

    # -- states ----------------------------------------------------------------------------------

    def state_verified(self):
        path = self.params['path']
        info = self.verify(path, self.params['read_status'], check_origin=True)
        if 'revision' in info:
            msg = 'snapshot %s is intact: revision %d, %d keys, sha256 %s' % (
                path, info['revision'], info['total_keys'], info['sha256'])
        else:
            msg = 'snapshot %s is intact (integrity trailer checked): sha256 %s' % (path, info['sha256'])
        self.finish(msg)

    def recover(self, data_dir):
        """Undo what a restore killed half-way left beside ``data_dir`` (from its journal, whatever step it reached)
        and remove its staging dirs, so that the run starts from the data dir as it was before that restore."""
        for root in leftovers(os.path.dirname(data_dir) or '.', staging_prefix(data_dir, 'restore')):
            if self.check_mode:
                self.act('would put back what the killed restore left in %s' % root, None)
                continue
            journal = read_json(os.path.join(root, SWAP_JOURNAL))
            if journal and journal.get('data_dir') == data_dir:
                keep_as = journal.get('keep_as')
                DataDirSwap(data_dir, keep_as, root, self.ops, replaces=bool(keep_as)).rollback()
                self.act(None, 'put %s back as it was before a restore that was killed half-way%s' % (
                    data_dir, (' (from %s)' % keep_as) if keep_as else ''))
            self.ops.rmtree(root)
            self.act(None, 'removed %s, left by a restore that was killed' % root)

    def state_restored(self):
        p = self.params
        path, data_dir = p['path'], p['data_dir'].rstrip(os.sep) or p['data_dir']
        self.result['data_dir'] = data_dir
        try:
            check_member_arguments(p['name'], p['initial_cluster'], p['initial_advertise_peer_urls'])
        except SnapshotArgumentError as exc:
            raise self.fail(to_native(exc))
        uid, gid = self.resolve_owner()

        # The file first: nothing is written for a file that would not restore, or is another cluster's.
        info = self.verify(path, check_origin=True)
        self.recover(data_dir)
        before_state = data_dir_state(data_dir)
        self.result['data_dir_state'] = before_state
        if before_state == DATA_DIR_NOT_A_DIR:
            raise self.fail('data_dir %s exists and is not a directory' % data_dir)
        if before_state != DATA_DIR_ABSENT and os.path.ismount(data_dir):
            raise self.fail('data_dir %s is a mount point; the restored data is renamed into place from beside it, '
                            'so use a directory below the mount point' % data_dir)
        before = dict(data_dir=data_dir, state=before_state)
        if before_state == DATA_DIR_INITIALISED and not p['force']:
            self.note('left %s alone: it already holds an etcd member (force: true replaces it)' % data_dir)
            return self.finish('data_dir %s is already initialised (holds member/); not restored from %s'
                               % (data_dir, path), before, before)
        if before_state == DATA_DIR_OTHER and not p['force']:
            raise self.fail('data_dir %s is not empty and holds no etcd member (no member/ directory); refusing to '
                            'restore over it. Empty it, or use force: true to move it aside' % data_dir)

        replacing = before_state in (DATA_DIR_INITIALISED, DATA_DIR_OTHER)
        parent = os.path.dirname(data_dir) or '.'
        after = dict(data_dir=data_dir, state=DATA_DIR_INITIALISED, restored_from=path, sha256=info['sha256'],
                     revision=info['revision'], member=p['name'], initial_cluster=p['initial_cluster'],
                     initial_cluster_token=p['initial_cluster_token'])
        aside = replaced_dir_name(data_dir) if replacing else None
        if aside:
            self.result['replaced_dir'] = after['previous_data_dir_kept_at'] = aside
        msg = 'restored %s (revision %d, %d keys) into %s for member %s%s' % (
            path, info['revision'], info['total_keys'], data_dir, p['name'],
            (', previous data dir kept at %s' % aside) if aside else '')

        if self.check_mode:
            self.changed = True
            if not os.path.isdir(parent):
                self.act('create %s' % parent, None)
            self.act('restore %s into a new directory beside %s (in %s) for member %s'
                     % (path, data_dir, parent, p['name']), None)
            self.act('check the restored data (member/snap/db, WAL, revision %d)' % info['revision'], None)
            if uid != -1 or gid != -1:
                self.act('change ownership of the restored tree to %s' % self.owner_text(), None)
            if aside:
                self.act('move %s aside to %s (kept)' % (data_dir, aside), None)
            self.act('rename the restored directory to %s' % data_dir, None)
            return self.finish('would ' + msg, before, after)

        if not os.path.isdir(parent):
            self.act(None, 'created %s' % parent, os.makedirs, parent)
        staging_root = self.ops.mkdtemp(staging_prefix(data_dir, 'restore'), parent)
        try:
            member = dict(name=p['name'], initial_cluster=p['initial_cluster'],
                          initial_cluster_token=p['initial_cluster_token'],
                          initial_advertise_peer_urls=p['initial_advertise_peer_urls'])
            try:
                staged = self.flow.restore_beside(path, info['revision'], data_dir, staging_root, member, uid, gid)
            except (SnapshotError, OSError) as exc:
                raise self.failure(exc, '; %s was not touched' % data_dir)
            if uid != -1 or gid != -1:
                self.note('changed ownership of %s (recursively) to %s' % (staged, self.owner_text()))
            swap = DataDirSwap(data_dir, aside, staging_root, self.ops, replaces=bool(aside))
            # The journal a killed run leaves: the next run puts back what it finds from it (recover()).
            self.ops.write_json(os.path.join(staging_root, SWAP_JOURNAL), dict(data_dir=data_dir, keep_as=aside))
            try:
                swap.forward()
            except OSError as exc:
                swap.rollback()
                raise self.fail('restore failed: could not put the restored data in place (%s); %s was put back'
                                % (to_native(exc), data_dir))
            # Done: from here a killed run leaves the new data in place (its next run only removes the staging dir).
            self.ops.rmtree(os.path.join(staging_root, SWAP_JOURNAL))
            if aside:
                self.act(None, 'moved %s aside to %s (kept)' % (data_dir, aside))
            self.act(None, 'renamed %s to %s' % (staged, data_dir))
        finally:
            self.ops.rmtree(staging_root)
        self.finish(msg, before, after)

    def state_saved(self):
        p = self.params
        path = p['path']
        dest_dir = os.path.dirname(path) or '.'
        base = os.path.basename(path)
        if not base or os.path.isdir(path):
            raise self.fail('path %s names a directory; give the snapshot file name' % path)
        missing_dir = not os.path.isdir(dest_dir)
        if missing_dir and not p['create_directory']:
            raise self.fail('the directory of %s does not exist (%s); create_directory=true creates it'
                            % (path, dest_dir))
        self.check_retention_options(base)
        uid, gid = self.resolve_owner()
        self.tools.require_etcdctl(p['bin_dir'])
        self.tools.require_offline(p['bin_dir'])

        if missing_dir:
            self.act('create the directory %s (mode 0700)' % dest_dir, 'created the directory %s (mode 0700)'
                     % dest_dir, os.makedirs, dest_dir, 0o700)
        exists = os.path.lexists(path)
        before = dict(path=path, state='present' if exists else 'absent')
        if exists and not p['force']:
            # Keep it; report what it is (and refuse to call a damaged file a good backup).
            info = self.verify(path)
            before.update(sha256=info['sha256'], revision=info['revision'])
            self.note('left %s alone: it exists (force: true replaces it)' % path)
            return self.finish('snapshot %s already exists (revision %d); not replaced' % (path, info['revision']),
                               before, before)
        if exists:
            try:
                before.update(sha256=check_snapshot(path)['sha256'])
            except SnapshotError as exc:
                before.update(problem=to_native(exc))

        endpoints = ', '.join(p['endpoints'])
        if self.check_mode:
            self.changed = True
            self.preview_space(nearest_directory(dest_dir))
            self.act('take a snapshot with %s snapshot save from the first answering endpoint of %s into a private '
                     'temporary directory in %s' % (self.tools.etcdctl, endpoints, dest_dir), None)
            self.act('verify the temporary file (integrity trailer, snapshot status)', None)
            if uid != -1 or gid != -1:
                self.act('change ownership of it to %s' % self.owner_text(), None)
            self.act('rename it to %s%s' % (path, ' (replacing the existing file)' if exists else ''), None)
            removed = self.apply_retention(path, dest_dir)
            return self.finish('would save a snapshot from %s to %s%s' % (
                endpoints, path, (' and remove %d older snapshots' % len(removed)) if removed else ''),
                before, dict(path=path, state='present', snapshot='new, from %s' % endpoints, removed=removed))

        work = self.ops.mkdtemp('.%s.' % base, dest_dir)
        tmp = os.path.join(work, base)
        try:
            try:
                endpoint, probed = self.flow.save(tmp, p['endpoints'], self.etcdctl_connection(),
                                                  password=p['password'] if p['user'] else None,
                                                  probe=self.probe, space_check=self.check_space)
            except SnapshotStepError as exc:
                raise self.failure(exc)
            self.result['endpoint'] = endpoint
            try:
                info = self.verify(tmp)
            except SnapshotError as exc:
                failure = self.failure(exc)
                failure.msg = 'the snapshot taken from %s failed verification, %s was not written: %s' % (
                    endpoint, path, failure.msg)
                raise failure
            info['origin'].update(cluster_id=probed.get('cluster_id'), endpoint=endpoint)
            if uid != -1 or gid != -1:
                self.act(None, 'changed ownership of %s to %s' % (tmp, self.owner_text()), os.lchown, tmp, uid, gid)
            self.act(None, 'renamed %s to %s' % (tmp, path), publish, tmp, path)
        finally:
            self.ops.rmtree(work)
        # Only now, with the new snapshot verified and in place, may older ones go.
        removed = self.apply_retention(path, dest_dir)
        self.finish('saved a snapshot from %s (cluster %s) to %s: revision %d, %d keys, sha256 %s%s' % (
            endpoint, info['origin']['cluster_id'], path, info['revision'], info['total_keys'], info['sha256'],
            ('; removed %d older snapshots' % len(removed)) if removed else ''),
            before, dict(path=path, state='present', sha256=info['sha256'], revision=info['revision'],
                         endpoint=endpoint, removed=removed))

    # -- saved: the probe, free space and retention ------------------------------------------------

    def probe(self, endpoint):
        """The one question asked before a save: the database size and the cluster ID in the endpoint's
        maintenance status, on the JSON gateway or with etcdctl (option probe)."""
        p = self.params
        if p['probe'] == 'etcdctl':
            status = self.flow.etcdctl_probe(self.etcdctl_connection(), p['password'] if p['user'] else None)(endpoint)
            return dict(db_size=status['db_size'], cluster_id=format_id(status['cluster_id']))
        try:
            status = self.module.make_client(endpoints=[endpoint]).status(endpoint)
            return dict(db_size=status['db_size'], cluster_id=format_id(status['header']['cluster_id']))
        except EtcdError as exc:
            raise ProbeFailed(to_native(exc), 'maintenance status failed')

    def etcdctl_connection(self):
        p = self.params
        return dict(ca_cert=p['ca_cert'], client_cert=p['client_cert'], client_key=p['client_key'],
                    validate_certs=p['validate_certs'], user=p['user'], timeout=p['timeout'])

    def check_space(self, directory, probed, endpoint):
        db_size = probed['db_size']
        margin = self.params['free_space_margin_mb'] * MIB
        try:
            free, needed = check_free_space(directory, db_size, margin)
        except SnapshotSpaceError as exc:
            raise self.fail('%s, read from the status of %s. Refusing to take a snapshot. Nothing was changed.'
                            % (to_native(exc), endpoint), db_size=db_size, error=exc.reason)
        self.result.update(db_size=db_size, free_bytes=free)
        self.note('checked free space in %s: %d MiB free, more than the %d MiB needed (database of %s: %d bytes, '
                  'margin %d MiB)' % (directory, free // MIB, -(-needed // MIB), endpoint, db_size,
                                      self.params['free_space_margin_mb']))

    def preview_space(self, directory):
        """Check mode: the free-space check against the first endpoint whose status answers (read only)."""
        errors = []
        for endpoint in self.params['endpoints']:
            try:
                probed = self.probe(endpoint)
            except ProbeFailed as exc:
                errors.append('%s: %s' % (endpoint, exc))
                continue
            return self.check_space(directory, probed, endpoint)
        self.act('check the free space in %s against the database size (no endpoint answered now: %s)'
                 % (directory, '; '.join(errors)), None)

    def check_retention_options(self, base):
        """Bad retention settings are refused before anything is taken or removed."""
        p = self.params
        if p['keep_newest'] is None and p['keep_days'] is None:
            return
        pattern = p['retention_pattern']
        problems = []
        if p['keep_newest'] is not None and p['keep_newest'] < 1:
            problems.append('keep_newest must be 1 or more (the new snapshot is one of them)')
        if p['keep_days'] is not None and p['keep_days'] < 1:
            problems.append('keep_days must be 1 or more')
        if not pattern or os.sep in pattern:
            problems.append('retention_pattern must be a file name glob without %r, such as etcd-*.db' % os.sep)
        elif not fnmatch.fnmatchcase(base, pattern):
            problems.append('retention_pattern %r does not match the new snapshot %r: it would prune other files '
                            'than the series this task writes' % (pattern, base))
        if problems:
            raise self.fail('%s. Nothing was changed.' % '; '.join(problems))

    def apply_retention(self, path, dest_dir):
        """Remove (check mode: plan) the older snapshots retention does not keep; -> their paths."""
        p = self.params
        if p['keep_newest'] is None and p['keep_days'] is None:
            return []
        _kept, removed = plan_retention(dest_dir, p['retention_pattern'], keep_newest=p['keep_newest'],
                                        keep_days=p['keep_days'], keep=[path])
        rules = ' or '.join(rule for rule in (
            ('one of the %d newest' % p['keep_newest']) if p['keep_newest'] else '',
            ('younger than %d days' % p['keep_days']) if p['keep_days'] else '') if rule)
        why = '(retention keeps files matching %s that are %s)' % (p['retention_pattern'], rules)
        self.result['removed'] = removed
        if self.check_mode:
            for old in removed:
                self.act('remove %s %s' % (old, why), None)
            return removed
        done, errors = remove_files(removed)
        self.result['removed'] = done
        for old in done:
            self.act(None, 'removed %s %s' % (old, why))
        if errors:
            raise self.fail('saved %s, but retention could not remove: %s' % (path, '; '.join(errors)))
        return done

    def run_state(self):
        if not (self.params['path'] or '').strip():
            raise self.fail('path is empty: name the snapshot file. Nothing was changed.')
        try:
            getattr(self, 'state_%s' % self.params['state'])()
        except (SnapshotError, OSError, IOError) as exc:
            raise self.failure(exc)


def nearest_directory(path):
    """``path``, or its nearest ancestor that exists (check mode's free-space check of a directory to create)."""
    while path and not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path or '.'


def main():
    argument_spec = dict(
        state=dict(type='str', default='verified', choices=['verified', 'restored', 'saved']),
        path=dict(type='path', required=True),
        data_dir=dict(type='path'),
        name=dict(type='str'),
        initial_cluster=dict(type='str'),
        initial_cluster_token=dict(type='str', no_log=False),
        initial_advertise_peer_urls=dict(type='list', elements='str'),
        owner=dict(type='str'),
        group=dict(type='str'),
        force=dict(type='bool', default=False),
        read_status=dict(type='bool', default=True),
        bin_dir=dict(type='path'),
        keep_newest=dict(type='int'),
        keep_days=dict(type='int'),
        retention_pattern=dict(type='str'),
        free_space_margin_mb=dict(type='int', default=64),
        probe=dict(type='str', default='json_gateway', choices=['json_gateway', 'etcdctl']),
        create_directory=dict(type='bool', default=False),
        expected_members=dict(type='list', elements='raw'),
        allow_foreign_origin=dict(type='bool', default=False),
    )
    module = EtcdModule(
        argument_spec=argument_spec,
        required_if=[
            ('state', 'restored', ('data_dir', 'name', 'initial_cluster', 'initial_cluster_token',
                                   'initial_advertise_peer_urls')),
        ],
        required_by=dict(keep_newest='retention_pattern', keep_days='retention_pattern'),
        supports_check_mode=True,
    )
    for name in tool_environ_drop():
        os.environ.pop(name, None)
    module.execute(EtcdSnapshot(module).run_state)


if __name__ == '__main__':
    main()
