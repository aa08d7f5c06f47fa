"""The daemon's state: listeners, plugin generations and reloads, the etcd sync, the proxy, shutdown."""

import http.client
import json
import os
import socket
import threading
import time
import traceback

from .api import Apis
from .common import ACCESS_LOG, ConfigError, GRACEFUL_LIMIT, HOP_BY_HOP, POLL_INTERVAL, RELOAD_STATUS, log
from .config import load_config
from .etcd import Etcd, EtcdError
from .httpserver import Listener, Response, error_page
from .plugins import PluginLoadError, PluginRuntime
from .routing import RouteTable, check_route, check_upstream


class UpstreamPool:
    """Keep-alive connections to the upstream nodes."""

    def __init__(self):
        self.idle = {}
        self.lock = threading.Lock()

    def get(self, host, port, scheme):
        key = (scheme, host, port)
        now = time.monotonic()
        with self.lock:
            conns = self.idle.get(key, [])
            while conns:
                conn, since = conns.pop()
                if now - since < 20:
                    return conn, True
                conn.close()
        return None, False

    def put(self, host, port, scheme, conn):
        with self.lock:
            conns = self.idle.setdefault((scheme, host, port), [])
            if len(conns) < 64:
                conns.append((conn, time.monotonic()))
                return
        conn.close()


class Server(Apis):
    def __init__(self, conf):
        self.conf = conf
        self.listeners = {}
        self.quitting = threading.Event()
        self.stopping = False
        self.connections = set()
        self.inflight = 0
        self.count_lock = threading.Lock()
        self.idle_cond = threading.Condition(self.count_lock)
        self.generation = 0
        self.runtime = None
        self.table = RouteTable({}, {})
        self.loaded = False
        self.etcd = Etcd(conf)
        self.etcd_state = None      # (cluster_id, revision)
        self.etcd_snapshot = None
        self.pool = UpstreamPool()
        self.access_lock = threading.Lock()
        self.access_handle = None
        self.reload_lock = threading.Lock()
        self.runtime_lock = threading.Lock()
        self.etcd_down_logged = False

    # ---- connection accounting
    def connection_started(self, connection):
        with self.count_lock:
            self.connections.add(connection)

    def connection_finished(self, connection):
        with self.count_lock:
            self.connections.discard(connection)
            self.idle_cond.notify_all()

    def request_started(self):
        with self.count_lock:
            self.inflight += 1

    def request_finished(self):
        with self.count_lock:
            self.inflight -= 1
            self.idle_cond.notify_all()

    # ---- listeners
    def wanted_listeners(self, conf):
        wanted = {}
        for ip, port in conf['node_listen']:
            wanted[('proxy', ip, port)] = True
        if conf['enable_admin']:
            wanted[('admin',) + conf['admin_listen']] = True
        if conf['enable_control']:
            wanted[('control',) + conf['control']] = True
        if conf['status']:
            wanted[('status',) + conf['status']] = True
        return wanted

    def reconcile_listeners(self, conf):
        wanted = self.wanted_listeners(conf)
        added = []
        try:
            for key in wanted:
                if key not in self.listeners:
                    added.append(Listener(self, *key))
        except OSError as error:
            for listener in added:
                listener.close()
            raise ConfigError('failed to listen: %s' % error)
        for key in list(self.listeners):
            if key not in wanted:
                self.listeners.pop(key).close()
        for listener in added:
            self.listeners[(listener.kind, listener.ip, listener.port)] = listener
            listener.start()

    # ---- plugins and reloads
    def new_runtime(self, conf):
        self.generation += 1
        return PluginRuntime(conf, self.generation)

    def write_reload_status(self, ok, error=None):
        status = {'generation': self.generation, 'ok': ok, 'error': error, 'at': time.time(), 'pid': os.getpid()}
        temporary = RELOAD_STATUS + '.tmp'
        with open(temporary, 'w') as handle:
            json.dump(status, handle)
        os.replace(temporary, RELOAD_STATUS)

    def reload(self):
        """Graceful reload: a new config and a new plugin generation; in-flight requests keep the old one."""
        with self.reload_lock:
            try:
                conf = load_config()
                # APISIX's reload starts new workers, whose etcd clients log in afresh: a token of the etcd of before
                # a failover (which the emergency node holds up to its timeout, then refuses) is not carried over.
                etcd = Etcd(conf)
                runtime = self.new_runtime(conf)
            except (ConfigError, PluginLoadError, OSError) as error:
                log('error', 'reload failed, keeping the running configuration and plugins: %s' % error)
                self.write_reload_status(False, str(error))
                return False, str(error)
            try:
                self.reconcile_listeners(conf)
            except ConfigError as error:
                runtime.close()
                log('error', 'reload failed, keeping the running configuration and plugins: %s' % error)
                self.write_reload_status(False, str(error))
                return False, str(error)
            with self.runtime_lock:
                old = self.runtime
                self.conf = conf
                self.runtime = runtime
            self.etcd = etcd
            self.etcd_state = None
            if old:
                old.retire()
            log('notice', 'configuration reloaded: generation %d, plugins %s' % (
                runtime.generation,
                ', '.join('%s (%s)' % (n, runtime.files[n]['sha256'][:12]) for n in runtime.order) or 'none'))
            self.write_reload_status(True)
            return True, None

    def acquire_runtime(self):
        with self.runtime_lock:
            return self.runtime.acquire()

    # ---- etcd sync
    def sync_loop(self):
        while not self.quitting.is_set():
            try:
                self.sync_once()
                if self.etcd_down_logged:
                    log('notice', 'etcd answers again')
                    self.etcd_down_logged = False
            except EtcdError as error:
                if not self.etcd_down_logged:
                    log('error', 'failed to fetch data from etcd, serving from memory: %s' % error)
                    self.etcd_down_logged = True
            except Exception:
                log('error', 'etcd sync failed: %s' % traceback.format_exc())
            self.quitting.wait(POLL_INTERVAL)

    def sync_once(self):
        etcd = self.etcd
        prefix = etcd.prefix
        header, kvs = etcd.range_prefix(prefix + '/')
        cluster_id, revision = header.get('cluster_id'), int(header.get('revision', 0))
        if self.etcd_state is not None:
            old_cluster, old_revision = self.etcd_state
            if old_cluster != cluster_id:
                log('warn', 'etcd cluster_id changed (%s -> %s): re-listing everything' % (old_cluster, cluster_id))
            elif revision < old_revision:
                log('warn', 'etcd revision went backwards (%d -> %d): re-listing everything' % (old_revision, revision))
        self.etcd_state = (cluster_id, revision)
        snapshot = (prefix, cluster_id, tuple((kv['key'], kv['mod_revision'], kv['value']) for kv in kvs))
        if snapshot == self.etcd_snapshot:
            return
        routes, upstreams = {}, {}
        for kv in kvs:
            rest = kv['key'][len(prefix):]
            if kv['value'] == 'init_dir' or rest.endswith('/'):
                continue
            kind, _slash, item_id = rest.lstrip('/').partition('/')
            if kind not in ('routes', 'upstreams') or not item_id or '/' in item_id:
                continue
            try:
                value = json.loads(kv['value'])
                if not isinstance(value, dict):
                    raise ValueError('not an object')
                check = check_route if kind == 'routes' else check_upstream
                error = check(value)
                if error:
                    raise ValueError(error)
            except ValueError as error:
                log('error', 'failed to check item data of [%s/%s] err: %s' % (prefix, rest.lstrip('/'), error))
                continue
            value.setdefault('id', item_id)
            (routes if kind == 'routes' else upstreams)[item_id] = {'value': value, 'mod_revision': kv['mod_revision'],
                                                                    'create_revision': kv['create_revision']}
        self.table = RouteTable(routes, upstreams)
        self.etcd_snapshot = snapshot
        if not self.loaded:
            log('notice', 'configuration loaded from etcd: %d routes, %d upstreams (cluster %s, revision %d)'
                % (len(routes), len(upstreams), cluster_id, revision))
        self.loaded = True

    # ---- requests
    def dispatch(self, listener, request):
        kind = listener.kind
        if kind == 'proxy':
            return self.proxy(request, listener)
        if kind == 'admin':
            return self.admin(request)
        if kind == 'control':
            return self.control(request)
        return self.status(request)

    def access_log(self, listener, request, response, started):
        if listener.kind != 'proxy':
            return
        line = '%s - - [%s] %s "%s %s %s" %d %d %.3f "%s" "%s" %s %s\n' % (
            request.client, time.strftime('%d/%b/%Y:%H:%M:%S +0000', time.gmtime(started)),
            request.header('host') or '-', request.method, request.target, request.version, response.status,
            len(response.body), time.time() - started, request.header('referer') or '-',
            request.header('user-agent') or '-', response.upstream, response.upstream_status)
        with self.access_lock:
            try:
                if self.access_handle is None:
                    self.access_handle = open(ACCESS_LOG, 'a')
                self.access_handle.write(line)
                self.access_handle.flush()
            except OSError:
                pass

    def proxy(self, request, listener):
        table = self.table
        route_id = table.match(request.path)
        if route_id is None:
            return Response(404, {'error_msg': '404 Route Not Found'})
        item = table.routes[route_id]
        route = item['value']
        runtime = self.acquire_runtime()
        try:
            chain, error = runtime.prepare((route_id, item['mod_revision']), route.get('plugins'))
            if error:
                log('error', 'route %s: %s' % (route_id, error))
                return Response(503, {'error_msg': 'route %s: %s' % (route_id, error)})
            headers = list(request.headers)
            extra_headers = {}
            ctx_state = {}
            lua_request = None
            phases = set()
            for name, _conf in chain:
                phases.update(runtime.info[name].get('phases') or [])
            if chain:
                lua_request = {'method': request.method, 'uri': request.target, 'path': request.path,
                               'query': request.query, 'host': request.header('host'), 'remote_addr': request.client,
                               'server_port': listener.port, 'route_id': route_id, 'headers': dict(headers)}
            if phases & {'rewrite', 'access'}:
                try:
                    reply = runtime.ask({'op': 'access', 'plugins': chain, 'req': lua_request})
                except PluginLoadError as error:
                    log('error', 'Lua runner: %s' % error)
                    return error_page(500)
                if not reply.get('ok'):
                    return error_page(500)
                extra_headers = reply.get('headers') or {}
                ctx_state = reply.get('ctx') or {}
                if reply.get('exit') is not None:
                    response = Response(int(reply['exit']), (reply.get('body') or '').encode(),
                                        content_type='text/plain; charset=utf-8')
                    return self.header_filter(runtime, chain, phases, lua_request, ctx_state, response, extra_headers)
                if reply.get('req_headers') is not None:
                    headers = [(k, v) for k, v in reply['req_headers'].items() if not isinstance(v, (dict, list))]
            balancer = table.balancer(route_id)
            if balancer is None or not balancer.nodes:
                log('error', 'route %s has no upstream nodes' % route_id)
                return error_page(503)
            response = self.forward(request, headers, balancer)
            return self.header_filter(runtime, chain, phases, lua_request, ctx_state, response, extra_headers)
        finally:
            runtime.release()

    def header_filter(self, runtime, chain, phases, lua_request, ctx_state, response, extra_headers):
        if 'header_filter' in phases:
            try:
                reply = runtime.ask({'op': 'header_filter', 'plugins': chain, 'req': lua_request, 'ctx': ctx_state,
                                     'status': response.status, 'headers': dict(response.headers)})
            except PluginLoadError as error:
                log('error', 'Lua runner: %s' % error)
                return error_page(500)
            if not reply.get('ok'):
                return error_page(500)
            extra_headers.update(reply.get('headers') or {})
        self.add_headers(response, extra_headers)
        return response

    @staticmethod
    def add_headers(response, extra):
        for name, value in extra.items():
            response.headers = [(k, v) for k, v in response.headers if k.lower() != name.lower()]
            if value is None or isinstance(value, dict):
                continue
            if isinstance(value, list):
                response.headers.extend((name, str(v)) for v in value)
            else:
                response.headers.append((name, str(value) if not isinstance(value, bool) else str(value).lower()))

    def forward(self, request, headers, balancer):
        out_headers = {}
        host_header = None
        for name, value in headers:
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in ('content-length', 'x-forwarded-for', 'x-real-ip'):
                continue
            if lower == 'host':
                host_header = value
                continue
            out_headers[name] = value
        forwarded = request.header('x-forwarded-for')
        out_headers['X-Real-IP'] = request.client
        out_headers['X-Forwarded-For'] = (forwarded + ', ' if forwarded else '') + request.client
        out_headers.setdefault('X-Forwarded-Proto', 'http')
        body = request.body if (request.body or request.method in ('POST', 'PUT', 'PATCH')) else None
        if body is not None:
            out_headers['Content-Length'] = str(len(body))
        tries = balancer.order()
        if balancer.retries is not None:
            tries = tries[:int(balancer.retries) + 1]
        errors = []
        for host, port, _weight in tries:
            if balancer.pass_host == 'rewrite' and balancer.upstream_host:
                out_headers['Host'] = balancer.upstream_host
            elif balancer.pass_host == 'node':
                out_headers['Host'] = '%s:%d' % (host, port)
            else:
                out_headers['Host'] = host_header or '%s:%d' % (host, port)
            result = self.forward_one(request, out_headers, body, balancer, host, port, errors)
            if result is not None:
                if errors:
                    log('warn', 'upstream for %s %s: tried the next node after: %s'
                        % (request.method, request.path, '; '.join(errors)))
                return result
        log('error', 'upstream failed for %s %s: %s' % (request.method, request.path, '; '.join(errors)))
        response = error_page(504 if errors and all('timed out' in e for e in errors) else 502)
        response.upstream = ', '.join('%s:%d' % (h, p) for h, p, _w in tries)
        response.upstream_status = '502'
        return response

    def forward_one(self, request, out_headers, body, balancer, host, port, errors):
        """Send to one node. None means the request never reached it (try the next node)."""
        for attempt in (0, 1):
            conn, reused = self.pool.get(host, port, balancer.scheme)
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=balancer.connect_timeout)
                try:
                    conn.connect()
                except OSError as error:
                    conn.close()
                    errors.append('%s:%d connect: %s' % (host, port, error))
                    return None
                conn.sock.settimeout(balancer.read_timeout)
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.request(request.method, request.target, body=body, headers=out_headers)
                answer = conn.getresponse()
                data = answer.read()    # for HEAD: b'' and the response is closed, so the connection can be reused
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                conn.close()
                if reused and attempt == 0:
                    continue        # a stale keep-alive connection: the node closed it before reading
                errors.append('%s:%d: %s' % (host, port, error))
                return self.failed(request, host, port, error)
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                errors.append('%s:%d: %s' % (host, port, error))
                return self.failed(request, host, port, error)
            response = Response(answer.status, data, [(k, v) for k, v in answer.getheaders()
                                                      if k.lower() not in HOP_BY_HOP], content_type=None)
            if request.method == 'HEAD':
                length = answer.getheader('content-length')
                response.head_length = int(length) if length and length.isdigit() else 0
            response.upstream = '%s:%d' % (host, port)
            response.upstream_status = str(answer.status)
            if answer.will_close:
                conn.close()
            else:
                self.pool.put(host, port, balancer.scheme, conn)
            return response
        return None

    def failed(self, request, host, port, error):
        log('error', 'upstream %s:%d failed for %s %s after the request was sent: %s'
            % (host, port, request.method, request.path, error))
        response = error_page(504 if 'timed out' in str(error) else 502)
        response.upstream = '%s:%d' % (host, port)
        response.upstream_status = str(response.status)
        return response

    # ---- shutdown
    def close_listeners(self):
        for listener in self.listeners.values():
            listener.close()
        self.listeners = {}

    def graceful_quit(self):
        log('notice', 'gracefully shutting down: no new connections, waiting for %d in-flight requests' % self.inflight)
        self.close_listeners()
        self.quitting.set()
        deadline = time.monotonic() + GRACEFUL_LIMIT
        with self.count_lock:
            while (self.connections or self.inflight) and time.monotonic() < deadline:
                self.idle_cond.wait(0.2)
            left = len(self.connections)
        if left:
            log('warn', 'graceful shutdown: %d connections still open after %ds, closing them' % (left, GRACEFUL_LIMIT))
        log('notice', 'exiting')
