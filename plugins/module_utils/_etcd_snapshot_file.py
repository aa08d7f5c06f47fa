# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""etcd snapshot files: integrity checks, origin (the membership inside), etcdutl/etcdctl invocation.

Runs on the managed hosts: standard library only (and _file_tx, installed beside it).

A file written by ``etcdctl snapshot save`` is a bbolt database followed by a 32-byte sha256 of
everything before it. bbolt files are whole pages (4096 bytes on the usual hosts, always a multiple
of 512), so a saved snapshot's size is 32 bytes past a 512-byte boundary. ``snapshot restore``
(etcdctl 3.4, etcdutl 3.5+) uses exactly that test to decide whether a hash trailer is present, and
refuses a file without one unless ``--skip-hash-check`` is given. :func:`check_snapshot` does the same
checks before any tool runs, plus a look at the bbolt meta page so a foreign file is called foreign.

A snapshot also says where it comes from: etcd's backend keeps the cluster membership in its bucket ``members``
(key: member ID in hex, value: the member as JSON, with name and peerURLs; etcd 3.4 and 3.5 alike).
:func:`read_members` reads it with a small bbolt reader, and :func:`check_origin` refuses a snapshot none of
whose members is one of the cluster it is meant for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import datetime
import fnmatch
import hashlib
import json
import os
import stat
import struct
import time

from ._file_tx import fsync_dir


SHA256_SIZE = 32
TRAILER_ALIGNMENT = 512
BOLT_MAGIC = 0xED0CDAED
BOLT_META_PAGE_FLAG = 0x04
# bbolt page header: id (u64), flags (u16), count (u16), overflow (u32); the meta struct follows:
# magic (u32), version (u32), pageSize (u32), ...
BOLT_PAGE_HEADER_SIZE = 16
BOLT_FALLBACK_PAGE_SIZES = (4096, 16384, 65536)
READ_CHUNK = 4 * 1024 * 1024

# Directories searched (after $PATH) for etcdutl/etcdctl when no bin_dir is given.
DEFAULT_TOOL_DIRS = ('/usr/local/bin', '/usr/bin', '/usr/local/sbin', '/usr/sbin', '/opt/etcd/bin')

# Environment variables etcdctl/etcdutl would read as flags. etcdctl refuses to run when one of them
# and the matching command-line flag are both set, so callers drop them (see tool_environ_drop()).
TOOL_ENV_PREFIXES = ('ETCDCTL_', 'ETCDUTL_')


# ---------------------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------------------

class SnapshotError(Exception):
    """Base class of every problem this module reports. ``reason`` is a short machine-readable code."""

    reason = 'error'

    def __init__(self, message, path=None):
        super(SnapshotError, self).__init__(message)
        self.message = message
        self.path = path

    def __str__(self):
        return self.message


class SnapshotIntegrityError(SnapshotError):
    """The file is not a usable snapshot (missing, empty, truncated, corrupted, foreign)."""

    reason = 'integrity'


class SnapshotMissingError(SnapshotIntegrityError):
    reason = 'missing'


class SnapshotEmptyError(SnapshotIntegrityError):
    reason = 'empty'


class SnapshotForeignError(SnapshotIntegrityError):
    """Not a bbolt database (no meta page magic), or not a regular file at all."""

    reason = 'foreign'


class SnapshotTruncatedError(SnapshotIntegrityError):
    """A bbolt file without the sha256 trailer ``snapshot save`` appends."""

    reason = 'truncated'


class SnapshotHashMismatchError(SnapshotIntegrityError):
    """The sha256 trailer does not match the content."""

    reason = 'hash_mismatch'

    def __init__(self, message, path=None, expected=None, actual=None):
        super(SnapshotHashMismatchError, self).__init__(message, path=path)
        self.expected = expected
        self.actual = actual


class SnapshotLayoutError(SnapshotIntegrityError):
    """The bbolt pages do not hold together (bad meta checksums, a page out of range, a loop, no members)."""

    reason = 'layout'


class SnapshotForeignOriginError(SnapshotError):
    """An intact snapshot of another cluster: none of its members is an expected one (name and peer URL)."""

    reason = 'foreign_origin'

    def __init__(self, message, path=None, members=None):
        super(SnapshotForeignOriginError, self).__init__(message, path=path)
        self.members = members


class SnapshotToolError(SnapshotError):
    """Problems with etcdutl/etcdctl rather than with the file."""

    reason = 'tool'


class SnapshotToolNotFoundError(SnapshotToolError):
    reason = 'tool_not_found'


class SnapshotStatusParseError(SnapshotToolError):
    reason = 'status_unparseable'


class SnapshotSpaceError(SnapshotError):
    """Not enough free disk space for a new snapshot."""

    reason = 'no_space'


class SnapshotArgumentError(SnapshotError):
    """Inconsistent restore parameters (member name not in initial_cluster, ...)."""

    reason = 'arguments'


# ---------------------------------------------------------------------------------------------------
# File checks
# ---------------------------------------------------------------------------------------------------

def _read_at(fh, offset, length):
    fh.seek(offset)
    return fh.read(length)


def _meta_at(fh, offset, size):
    """The bbolt meta page at ``offset`` as a dict, or None when there is none."""
    if offset + BOLT_PAGE_HEADER_SIZE + 12 > size:
        return None
    raw = _read_at(fh, offset, BOLT_PAGE_HEADER_SIZE + 12)
    if len(raw) < BOLT_PAGE_HEADER_SIZE + 12:
        return None
    # bbolt writes in host byte order; etcd hosts are little-endian, but accept both.
    for order in ('<', '>'):
        pgid, flags, _count, _overflow = struct.unpack_from(order + 'QHHI', raw, 0)
        magic, version, page_size = struct.unpack_from(order + 'III', raw, BOLT_PAGE_HEADER_SIZE)
        if magic == BOLT_MAGIC and flags & BOLT_META_PAGE_FLAG:
            return dict(page_id=pgid, version=version, page_size=page_size,
                        byte_order='little' if order == '<' else 'big')
    return None


def _valid_page_size(value):
    return 512 <= value <= 1024 * 1024 and value % 512 == 0


def read_bolt_meta(fh, size):
    """Find a bbolt meta page the way bbolt does: page 0, else page 1 at a plausible page size.

    Returns a dict (page_id, version, page_size, byte_order) or None for a foreign file.
    """
    meta = _meta_at(fh, 0, size)
    if meta is not None:
        return meta
    candidates = []
    try:
        candidates.append(os.sysconf('SC_PAGE_SIZE'))
    except (AttributeError, ValueError, OSError):
        pass
    candidates.extend(BOLT_FALLBACK_PAGE_SIZES)
    for page_size in candidates:
        if not _valid_page_size(page_size):
            continue
        meta = _meta_at(fh, page_size, size)
        if meta is not None and meta['page_size'] == page_size:
            return meta
    return None


def _hashes(fh, size):
    """sha256 of the content before the trailer, sha256 of the whole file, and the trailer bytes: one read of the
    file, and each byte hashed once (the whole-file hash continues a copy of the content hash)."""
    content_len = size - SHA256_SIZE
    content = hashlib.sha256()
    fh.seek(0)
    remaining = content_len
    while remaining > 0:
        chunk = fh.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        content.update(chunk)
    whole = content.copy()
    trailer = fh.read(SHA256_SIZE)
    whole.update(trailer)
    # Anything past the expected size (file grew while reading) still belongs to the whole-file hash.
    while True:
        chunk = fh.read(READ_CHUNK)
        if not chunk:
            break
        whole.update(chunk)
    return content.digest(), whole.hexdigest(), trailer


def _hex(data):
    return binascii.hexlify(data).decode('ascii')


def file_sha256(path):
    """Hex sha256 of the whole file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        while True:
            chunk = fh.read(READ_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def check_snapshot(path):
    """Check ``path`` the way ``snapshot restore`` does, before anything is restored from it.

    Returns a dict: path, size, sha256 (of the whole file, what ``sha256sum`` prints),
    content_sha256 (the trailer value, which matched), bolt_page_size, bolt_version.

    Raises SnapshotMissingError, SnapshotEmptyError, SnapshotForeignError, SnapshotTruncatedError or
    SnapshotHashMismatchError, each with a message naming the file and what is wrong.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            raise SnapshotMissingError('snapshot %s is a dangling symlink (%s)' % (path, exc.strerror), path)
        raise SnapshotMissingError('snapshot %s does not exist or cannot be read (%s)'
                                   % (path, exc.strerror or exc), path)
    if stat.S_ISDIR(st.st_mode):
        raise SnapshotForeignError('snapshot %s is a directory, not a snapshot file' % path, path)
    if not stat.S_ISREG(st.st_mode):
        raise SnapshotForeignError('snapshot %s is not a regular file' % path, path)
    size = st.st_size
    if size == 0:
        raise SnapshotEmptyError('snapshot %s is empty (0 bytes): an interrupted or failed save?' % path, path)

    try:
        fh = open(path, 'rb')
    except (IOError, OSError) as exc:
        raise SnapshotMissingError('snapshot %s cannot be opened (%s)' % (path, exc.strerror or exc), path)
    with fh:
        meta = read_bolt_meta(fh, size)
        if meta is None:
            head = _read_at(fh, 0, 16)
            raise SnapshotForeignError(
                'snapshot %s is not an etcd snapshot: no bbolt meta page (magic 0x%08X) found '
                '(size %d bytes, starts with %r)' % (path, BOLT_MAGIC, size, head.decode('latin-1')), path)

        remainder = size % TRAILER_ALIGNMENT
        if remainder != SHA256_SIZE:
            raise SnapshotTruncatedError(
                'snapshot %s has no sha256 integrity trailer: its size %d is %d bytes past a %d-byte '
                'boundary, a file written by "snapshot save" is %d past one. The file is truncated '
                '(incomplete copy or save) or is a raw db copied out of a data dir'
                % (path, size, remainder, TRAILER_ALIGNMENT, SHA256_SIZE), path)

        content_digest, whole_hex, trailer = _hashes(fh, size)

    if content_digest != trailer:
        raise SnapshotHashMismatchError(
            'snapshot %s failed its sha256 integrity check (hash mismatch): the trailer says %s but the content hashes to '
            '%s. The file is corrupted or was modified after it was saved'
            % (path, _hex(trailer), _hex(content_digest)),
            path, expected=_hex(trailer), actual=_hex(content_digest))

    return dict(
        path=path,
        size=size,
        sha256=whole_hex,
        content_sha256=_hex(trailer),
        bolt_page_size=meta['page_size'],
        bolt_version=meta['version'],
    )


# ---------------------------------------------------------------------------------------------------
# Origin: the membership a snapshot holds
# ---------------------------------------------------------------------------------------------------

# bbolt (page.go, bucket.go, db.go): page flags; a leaf element's flag for a sub-bucket; branch and leaf elements
# of 16 bytes right after the page header, each pointing (pos) at its key relative to itself.
BOLT_BRANCH_PAGE_FLAG = 0x01
BOLT_LEAF_PAGE_FLAG = 0x02
BOLT_BUCKET_LEAF_FLAG = 0x01
BOLT_ELEMENT_SIZE = 16
# A bucket's value starts with its header: root page id (0: the bucket is inline, its page follows), sequence.
BOLT_BUCKET_HEADER_SIZE = 16
# meta: magic, version, pageSize, flags (u32), root bucket header (2 x u64), freelist, pgid, txid, checksum (u64);
# the checksum is FNV-1a 64 of the 56 bytes before it.
BOLT_META_FORMAT = 'IIIIQQQQQQ'
BOLT_META_CHECKSUMMED = 56
BOLT_VERSION = 2
# A B+tree over a few GB is a handful of levels deep; more is a loop in a damaged file.
BOLT_MAX_DEPTH = 32
ETCD_MEMBERS_BUCKET = b'members'


def _fnv1a_64(data):
    value = 0xcbf29ce484222325
    for byte in bytearray(data):
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return value


class BoltReader(object):
    """Reads buckets of a bbolt file the way bbolt does: the valid meta page with the highest txid gives the root
    bucket; branch pages lead to leaf pages; a page may run on over ``overflow`` more pages; a small bucket lives
    inline in its parent's value. Read-only, page by page (a snapshot may be large; the members are a few keys)."""

    def __init__(self, fh, size, path=None):
        self.fh = fh
        self.path = path
        meta = read_bolt_meta(fh, size)
        if meta is None:
            raise SnapshotForeignError('%s is not a bbolt database (no meta page)' % path, path)
        self.order = '<' if meta['byte_order'] == 'little' else '>'
        self.page_size = meta['page_size']
        # A saved snapshot ends with its sha256 trailer, never part of a page.
        self.size = size - size % self.page_size
        metas = [m for m in (self._meta(0), self._meta(1)) if m is not None]
        if not metas:
            raise SnapshotLayoutError('%s has no valid bbolt meta page (magic, version or checksum wrong)' % path,
                                      path)
        current = max(metas, key=lambda m: m['txid'])
        self.root = current['root']
        self.high_water = current['pgid']

    def _layout_error(self, what):
        return SnapshotLayoutError('%s: unreadable bbolt layout (%s)' % (self.path, what), self.path)

    def _meta(self, pgid):
        raw = _read_at(self.fh, pgid * self.page_size, BOLT_PAGE_HEADER_SIZE + struct.calcsize(BOLT_META_FORMAT))
        if len(raw) < BOLT_PAGE_HEADER_SIZE + struct.calcsize(BOLT_META_FORMAT):
            return None
        flags = struct.unpack_from(self.order + 'H', raw, 8)[0]
        (magic, version, _page_size, _flags, root, _sequence, _freelist, high_water, txid,
         checksum) = struct.unpack_from(self.order + BOLT_META_FORMAT, raw, BOLT_PAGE_HEADER_SIZE)
        body = raw[BOLT_PAGE_HEADER_SIZE:BOLT_PAGE_HEADER_SIZE + BOLT_META_CHECKSUMMED]
        if not flags & BOLT_META_PAGE_FLAG or magic != BOLT_MAGIC or version != BOLT_VERSION \
                or checksum != _fnv1a_64(body):
            return None
        return dict(root=root, pgid=high_water, txid=txid)

    def _page(self, pgid):
        """The bytes of page ``pgid`` and its overflow pages."""
        if not 2 <= pgid < self.high_water or (pgid + 1) * self.page_size > self.size:
            raise self._layout_error('page %d is outside the file' % pgid)
        head = _read_at(self.fh, pgid * self.page_size, BOLT_PAGE_HEADER_SIZE)
        overflow = struct.unpack_from(self.order + 'I', head, 12)[0]
        length = (1 + overflow) * self.page_size
        if pgid * self.page_size + length > self.size:
            raise self._layout_error('page %d runs past the end of the file' % pgid)
        return _read_at(self.fh, pgid * self.page_size, length)

    def _elements(self, buf, base, depth, out):
        """Append (key, value, is_bucket) of the page at ``buf[base:]`` to ``out``, in key order."""
        if depth > BOLT_MAX_DEPTH:
            raise self._layout_error('more than %d levels of branch pages' % BOLT_MAX_DEPTH)
        flags, count = struct.unpack_from(self.order + 'HH', buf, base + 8)
        if base + BOLT_PAGE_HEADER_SIZE + count * BOLT_ELEMENT_SIZE > len(buf):
            raise self._layout_error('a page of %d elements does not fit its %d bytes' % (count, len(buf) - base))
        for index in range(count):
            at = base + BOLT_PAGE_HEADER_SIZE + index * BOLT_ELEMENT_SIZE
            if flags & BOLT_BRANCH_PAGE_FLAG:
                child = struct.unpack_from(self.order + 'Q', buf, at + 8)[0]
                self._elements(self._page(child), 0, depth + 1, out)
            elif flags & BOLT_LEAF_PAGE_FLAG:
                element_flags, pos, key_size, value_size = struct.unpack_from(self.order + 'IIII', buf, at)
                end = at + pos + key_size + value_size
                if end > len(buf):
                    raise self._layout_error('an element runs past its page')
                out.append((bytes(buf[at + pos:at + pos + key_size]), bytes(buf[at + pos + key_size:end]),
                            bool(element_flags & BOLT_BUCKET_LEAF_FLAG)))
            else:
                raise self._layout_error('a page with flags 0x%02x where a branch or leaf page belongs' % flags)
        return out

    def items(self, bucket=None):
        """[(key, value, is_bucket)] of the root bucket, or of the sub-bucket whose value is ``bucket``."""
        if bucket is None:
            return self._elements(self._page(self.root), 0, 0, [])
        if len(bucket) < BOLT_BUCKET_HEADER_SIZE:
            raise self._layout_error('a bucket value of %d bytes' % len(bucket))
        root = struct.unpack_from(self.order + 'Q', bucket, 0)[0]
        if root == 0:
            return self._elements(bucket, BOLT_BUCKET_HEADER_SIZE, 0, [])
        return self._elements(self._page(root), 0, 0, [])

    def bucket(self, name, parent=None):
        """The value (header) of the sub-bucket ``name`` of the root bucket (or of ``parent``), or None."""
        for key, value, is_bucket in self.items(parent):
            if is_bucket and key == name:
                return value
        return None


def read_members(path):
    """The membership recorded in a snapshot (or a member's db): [{id (16 hex digits), name, peer_urls}], sorted by
    name. A member added but never started has an empty name. Raises SnapshotLayoutError when there is none."""
    try:
        fh = open(path, 'rb')
    except (IOError, OSError) as exc:
        raise SnapshotMissingError('snapshot %s cannot be opened (%s)' % (path, exc.strerror or exc), path)
    with fh:
        try:
            reader = BoltReader(fh, os.fstat(fh.fileno()).st_size, path)
            bucket = reader.bucket(ETCD_MEMBERS_BUCKET)
            entries = reader.items(bucket) if bucket is not None else None
        except struct.error:
            raise SnapshotLayoutError('%s: unreadable bbolt layout (a page shorter than its header)' % path, path)
        if entries is None:
            raise SnapshotLayoutError('%s holds no etcd membership (no bucket "members")' % path, path)
        members = []
        for key, value, is_bucket in entries:
            if is_bucket:
                continue
            try:
                doc = json.loads(value.decode('utf-8'))
                member_id = int(doc['id']) if 'id' in doc else int(key.decode('ascii'), 16)
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                raise SnapshotLayoutError('%s: member %r of the bucket "members" is not readable' % (path, key), path)
            members.append(dict(id='%016x' % member_id, name=doc.get('name') or '',
                                peer_urls=sorted(doc.get('peerURLs') or [])))
    return sorted(members, key=lambda m: (m['name'], m['id']))


def _url_key(url):
    return url.strip().rstrip('/').lower()


def expected_member_pairs(expected):
    """[(name, peer URL)] from ``expected``: a list of {name, peer_urls (list) or peer_url} and/or "name=peerURL"
    strings (a string may be a whole etcd initial-cluster, comma separated)."""
    pairs = []
    for item in expected or ():
        if isinstance(item, dict):
            name = (item.get('name') or '').strip()
            urls = item.get('peer_urls') or ([item['peer_url']] if item.get('peer_url') else [])
            if isinstance(urls, str):
                urls = urls.split(',')
            if not name or not [u for u in urls if u.strip()]:
                raise SnapshotArgumentError('expected member %r needs a name and a peer URL' % (item,))
            pairs.extend((name, url.strip()) for url in urls if url.strip())
        else:
            pairs.extend(parse_initial_cluster(item))
    return pairs


def describe_members(members):
    """``etcd01 (http://10.0.0.1:2380), ...`` for messages; ``members`` as read_members() returns them."""
    return ', '.join('%s (%s)' % (m['name'] or '(unstarted)', ', '.join(m['peer_urls']) or 'no peer URL')
                     for m in members) or 'none'


def check_origin(path, members, expected):
    """Refuse a snapshot of another cluster: at least one of ``members`` (read_members()) must have the name and a
    peer URL of one of ``expected`` (expected_member_pairs()). Name and URL together: a snapshot taken before one
    member moved (migrate_member) still matches by the others, a throw-away etcd (default, http://localhost:2380)
    or another deployment (other addresses) does not. -> the names that match; SnapshotForeignOriginError."""
    wanted = set((name, _url_key(url)) for name, url in expected)
    matched = sorted(set(m['name'] for m in members for url in m['peer_urls'] if (m['name'], _url_key(url)) in wanted))
    if not matched:
        by_name = {}
        for name, url in expected:
            by_name.setdefault(name, []).append(url)
        raise SnapshotForeignOriginError(
            'snapshot %s comes from another cluster: its members are %s; none has the name and peer URL of an '
            'expected member (%s)' % (path, describe_members(members), ', '.join(
                '%s (%s)' % (name, ', '.join(urls)) for name, urls in sorted(by_name.items()))), path, members)
    return matched


# ---------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------

def _is_executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_executable(name, dirs):
    for directory in dirs:
        if not directory:
            continue
        candidate = os.path.join(directory, name)
        if _is_executable(candidate):
            return candidate
    return None


def tool_search_dirs(bin_dir=None, path_env=None):
    """Directories searched for etcdutl/etcdctl: only ``bin_dir`` when given, else $PATH + defaults."""
    if bin_dir:
        return [bin_dir]
    if path_env is None:
        path_env = os.environ.get('PATH', '')
    dirs = [d for d in path_env.split(os.pathsep) if d]
    for d in DEFAULT_TOOL_DIRS:
        if d not in dirs:
            dirs.append(d)
    return dirs


def tool_environ_drop(environ=None):
    """Names of ETCDCTL_*/ETCDUTL_* variables to remove before running the tools."""
    if environ is None:
        environ = os.environ
    return sorted(k for k in environ if k.startswith(TOOL_ENV_PREFIXES))


def _seconds(value):
    value = float(value)
    if value == int(value):
        return '%ds' % int(value)
    return '%dms' % int(round(value * 1000))


class SnapshotTools(object):
    """etcdutl (3.5+) for offline work, falling back to etcdctl (3.4, ETCDCTL_API=3); etcdctl for save."""

    def __init__(self, etcdutl=None, etcdctl=None):
        self.etcdutl = etcdutl
        self.etcdctl = etcdctl

    @classmethod
    def find(cls, bin_dir=None, path_env=None):
        dirs = tool_search_dirs(bin_dir, path_env)
        return cls(etcdutl=find_executable('etcdutl', dirs), etcdctl=find_executable('etcdctl', dirs))

    def _where(self, bin_dir):
        return ('in %s' % bin_dir) if bin_dir else 'on PATH or in %s' % ', '.join(DEFAULT_TOOL_DIRS)

    @property
    def offline_tool(self):
        """Path of the tool used for ``snapshot status`` and ``snapshot restore``."""
        return self.etcdutl or self.etcdctl

    @property
    def offline_kind(self):
        if self.etcdutl:
            return 'etcdutl'
        if self.etcdctl:
            return 'etcdctl'
        return None

    def require_offline(self, bin_dir=None):
        if not self.offline_tool:
            raise SnapshotToolNotFoundError(
                'neither etcdutl (etcd 3.5+) nor etcdctl (etcd 3.4) found %s' % self._where(bin_dir))
        return self.offline_tool

    def require_etcdctl(self, bin_dir=None):
        if not self.etcdctl:
            raise SnapshotToolNotFoundError('etcdctl not found %s; it is needed to save a snapshot'
                                            % self._where(bin_dir))
        return self.etcdctl

    def offline_environ(self):
        """Environment additions for status/restore."""
        return {} if self.etcdutl else {'ETCDCTL_API': '3'}

    def status_argv(self, path):
        return [self.require_offline(), 'snapshot', 'status', path, '-w', 'json']

    def restore_argv(self, path, data_dir, name, initial_cluster, initial_cluster_token,
                     initial_advertise_peer_urls):
        if isinstance(initial_advertise_peer_urls, (list, tuple)):
            initial_advertise_peer_urls = ','.join(initial_advertise_peer_urls)
        return [
            self.require_offline(), 'snapshot', 'restore', path,
            '--data-dir', data_dir,
            '--name', name,
            '--initial-cluster', initial_cluster,
            '--initial-cluster-token', initial_cluster_token,
            '--initial-advertise-peer-urls', initial_advertise_peer_urls,
        ]

    def _connection_argv(self, endpoint, ca_cert=None, client_cert=None, client_key=None,
                         validate_certs=True, user=None, timeout=None):
        argv = [self.require_etcdctl(), '--endpoints=%s' % endpoint]
        if timeout:
            argv.append('--dial-timeout=%s' % _seconds(timeout))
        if ca_cert:
            argv.append('--cacert=%s' % ca_cert)
        if client_cert:
            argv.append('--cert=%s' % client_cert)
        if client_key:
            argv.append('--key=%s' % client_key)
        if not validate_certs:
            argv.append('--insecure-skip-tls-verify')
        if user:
            argv.extend(['--user', user])
        return argv

    def probe_argv(self, endpoint, timeout=None, **connection):
        """``etcdctl endpoint status`` against one endpoint: does it answer? (``snapshot save`` itself has no
        time limit and waits forever for an endpoint that does not answer.) Status works without quorum,
        like a snapshot does."""
        argv = self._connection_argv(endpoint, timeout=timeout, **connection)
        if timeout:
            argv.append('--command-timeout=%s' % _seconds(timeout))
        argv.extend(['endpoint', 'status', '-w', 'json'])
        return argv

    def query_argv(self, endpoint, command, timeout=None, **connection):
        """``etcdctl <command...> -w json`` against one endpoint (the backup's alarm and member lists)."""
        argv = self._connection_argv(endpoint, timeout=timeout, **connection)
        if timeout:
            argv.append('--command-timeout=%s' % _seconds(timeout))
        argv.extend(list(command) + ['-w', 'json'])
        return argv

    def save_argv(self, path, endpoint, **connection):
        """``etcdctl snapshot save`` against one endpoint. Connection keywords: ca_cert, client_cert,
        client_key, validate_certs, user, timeout. The password goes in the environment
        (ETCDCTL_PASSWORD, see save_environ()), never on the command line."""
        argv = self._connection_argv(endpoint, **connection)
        argv.extend(['snapshot', 'save', path])
        return argv

    @staticmethod
    def save_environ(password=None):
        env = {'ETCDCTL_API': '3'}
        if password is not None:
            env['ETCDCTL_PASSWORD'] = password
        return env


def parse_status(output):
    """Parse ``snapshot status -w json`` output: {hash, revision, total_keys, total_size}.

    The tools may print log or deprecation lines around the JSON; the last JSON object line wins.
    """
    doc = None
    for line in (output or '').splitlines():
        line = line.strip()
        if not line.startswith('{'):
            continue
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict) and 'revision' in candidate:
            doc = candidate
    if doc is None:
        raise SnapshotStatusParseError('no JSON status in the output of "snapshot status": %r'
                                       % (output or '')[:500])
    try:
        result = dict(
            hash=int(doc.get('hash', 0)),
            revision=int(doc['revision']),
            total_keys=int(doc.get('totalKey', 0)),
            total_size=int(doc.get('totalSize', 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotStatusParseError('unexpected "snapshot status" JSON %r: %s' % (doc, exc))
    if 'version' in doc:
        result['version'] = doc['version']
    return result


# ---------------------------------------------------------------------------------------------------
# Restore helpers
# ---------------------------------------------------------------------------------------------------

def parse_initial_cluster(initial_cluster):
    """``a=http://h1:2380,b=http://h2:2380`` -> [('a', 'http://h1:2380'), ('b', 'http://h2:2380')]."""
    pairs = []
    for item in (initial_cluster or '').split(','):
        item = item.strip()
        if not item:
            continue
        if '=' not in item:
            raise SnapshotArgumentError('initial_cluster entry %r is not name=peer-url' % item)
        name, url = item.split('=', 1)
        name, url = name.strip(), url.strip()
        if not name or not url:
            raise SnapshotArgumentError('initial_cluster entry %r is not name=peer-url' % item)
        pairs.append((name, url))
    if not pairs:
        raise SnapshotArgumentError('initial_cluster is empty')
    return pairs


def check_member_arguments(name, initial_cluster, initial_advertise_peer_urls):
    """Fail early on what ``snapshot restore`` would reject: the member must be in initial_cluster with
    exactly its advertised peer URLs."""
    if isinstance(initial_advertise_peer_urls, str):
        initial_advertise_peer_urls = initial_advertise_peer_urls.split(',')
    advertised = sorted(u.strip() for u in initial_advertise_peer_urls if u and u.strip())
    if not advertised:
        raise SnapshotArgumentError('initial_advertise_peer_urls is empty')
    pairs = parse_initial_cluster(initial_cluster)
    listed = sorted(url for member, url in pairs if member == name)
    if not listed:
        raise SnapshotArgumentError('member %r is not in initial_cluster %r' % (name, initial_cluster))
    if listed != advertised:
        raise SnapshotArgumentError(
            'initial_cluster lists %s for member %r but initial_advertise_peer_urls is %s; they must match'
            % (','.join(listed), name, ','.join(advertised)))
    return pairs


DATA_DIR_ABSENT = 'absent'
DATA_DIR_EMPTY = 'empty'
DATA_DIR_INITIALISED = 'initialised'
DATA_DIR_OTHER = 'not_empty'
DATA_DIR_NOT_A_DIR = 'not_a_directory'


def data_dir_state(data_dir):
    """absent, empty, initialised (holds member/), not_empty (holds something else), not_a_directory."""
    if not os.path.lexists(data_dir):
        return DATA_DIR_ABSENT
    if not os.path.isdir(data_dir):
        return DATA_DIR_NOT_A_DIR
    if os.path.isdir(os.path.join(data_dir, 'member')):
        return DATA_DIR_INITIALISED
    if os.listdir(data_dir):
        return DATA_DIR_OTHER
    return DATA_DIR_EMPTY


def restored_layout_ok(data_dir):
    """What a successful restore leaves: member/snap/db and at least one member/wal/*.wal.
    Returns a list of problems (empty when fine)."""
    problems = []
    db = os.path.join(data_dir, 'member', 'snap', 'db')
    wal = os.path.join(data_dir, 'member', 'wal')
    if not os.path.isfile(db) or os.path.getsize(db) == 0:
        problems.append('%s missing or empty' % db)
    if not os.path.isdir(wal) or not [f for f in os.listdir(wal) if f.endswith('.wal')]:
        problems.append('no WAL file in %s' % wal)
    return problems


def utc_stamp(now=None):
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y%m%dT%H%M%SZ')


def replaced_dir_name(data_dir, now=None, exists=os.path.lexists):
    """``<data_dir>.replaced-<UTC timestamp>``, with -1, -2... appended if that name is taken."""
    base = '%s.replaced-%s' % (data_dir.rstrip(os.sep) or data_dir, utc_stamp(now))
    candidate = base
    n = 0
    while exists(candidate):
        n += 1
        candidate = '%s-%d' % (base, n)
    return candidate


# ---------------------------------------------------------------------------------------------------
# Saving and retention (the etcd_snapshot module and the etcd_cluster role's backup script share these)
# ---------------------------------------------------------------------------------------------------

MIB = 1024 * 1024


def publish(tmp, path):
    """Give a verified temporary snapshot mode 0600 and rename it to ``path``, durably."""
    os.chmod(tmp, 0o600)
    with open(tmp, 'rb') as fh:
        os.fsync(fh.fileno())
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path) or '.')


def free_bytes(directory):
    """Bytes an unprivileged writer may still use in the filesystem of ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def check_free_space(directory, db_size, margin_bytes):
    """A snapshot is about as big as the member's database: refuse unless ``directory`` has more than
    ``db_size + margin_bytes`` free. -> (free, needed); raises SnapshotSpaceError when short."""
    free, needed = free_bytes(directory), int(db_size) + int(margin_bytes)
    if free <= needed:
        raise SnapshotSpaceError(
            'not enough free space in %s for a snapshot: %d MiB free, %d MiB needed (the database is %d MiB, '
            'plus a margin of %d MiB)' % (directory, free // MIB, -(-needed // MIB), -(-int(db_size) // MIB),
                                          int(margin_bytes) // MIB), directory)
    return free, needed


def parse_endpoint_db_size(output):
    """dbSize from ``etcdctl endpoint status -w json`` (a list with one entry per endpoint)."""
    try:
        doc = json.loads((output or '').strip().splitlines()[-1])
        return int(doc[0]['Status']['dbSize'])
    except (ValueError, IndexError, KeyError, TypeError):
        raise SnapshotStatusParseError('no dbSize in the output of "endpoint status": %r' % (output or '')[:500])


def plan_retention(directory, pattern, keep_newest=None, keep_days=None, keep=(), now=None):
    """Which snapshot files of ``directory`` retention removes. -> (kept, removed), paths, newest first.

    Candidates are the regular files (no links, no directories) whose name matches the glob ``pattern`` and does
    not start with a dot (a save in progress writes a dot-file). ``keep``, the snapshot just taken, is always
    kept and counts among the newest even when it does not exist yet (check mode). A file is kept when either
    rule keeps it: one of the ``keep_newest`` newest (modification time), or younger than ``keep_days`` days. With
    neither rule set nothing is removed.
    """
    if not keep_newest and not keep_days:
        return [], []
    now = time.time() if now is None else now
    keep_paths = set(os.path.abspath(p) for p in keep)
    entries = []
    for name in os.listdir(directory):
        full = os.path.join(directory, name)
        if name.startswith('.') or not fnmatch.fnmatchcase(name, pattern) or os.path.abspath(full) in keep_paths:
            continue
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            entries.append((st.st_mtime, name, full))
    entries.sort(reverse=True)
    slots = max(0, int(keep_newest) - len(keep_paths)) if keep_newest else 0
    kept, removed = [], []
    for index, (mtime, _name, full) in enumerate(entries):
        young = bool(keep_days) and now - mtime < float(keep_days) * 86400
        (kept if index < slots or young else removed).append(full)
    return kept, removed


def remove_files(paths):
    """Unlink ``paths``. -> (removed, errors) where errors are 'path: reason' strings."""
    removed, errors = [], []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except OSError as exc:
            errors.append('%s: %s' % (path, exc.strerror or exc))
    return removed, errors
