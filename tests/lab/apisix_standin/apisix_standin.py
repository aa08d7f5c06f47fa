"""The lab's stand-in for the Apache APISIX binary (tests only, never shipped).

usage: apisix start|stop|quit|reload|test|restart|version (/usr/bin/apisix runs this file with /usr/bin/python3)

Reads /usr/local/apisix/conf/config.yaml like APISIX 3 does (the keys README.md lists), loads routes and upstreams
from etcd through its v3 JSON gateway, proxies HTTP by them, runs the custom Lua plugins in a luajit helper and
serves the admin, control and status APIs. Standard library and PyYAML only.
"""

import base64
import hashlib
import http.client
import ipaddress
import json
import os
import random
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

import yaml

VERSION = '3.9.1-standin'
HOME = os.environ.get('APISIX_STANDIN_HOME', '/usr/local/apisix')
CONF_PATH = os.path.join(HOME, 'conf', 'config.yaml')
LOG_DIR = os.path.join(HOME, 'logs')
PID_PATH = os.path.join(LOG_DIR, 'nginx.pid')
ERROR_LOG = os.path.join(LOG_DIR, 'error.log')
ACCESS_LOG = os.path.join(LOG_DIR, 'access.log')
RELOAD_STATUS = os.path.join(LOG_DIR, 'standin-reload.json')
RUNNER = os.path.join(os.path.dirname(os.path.realpath(__file__)), 'runner.lua')
LUAJIT = os.environ.get('APISIX_STANDIN_LUAJIT', 'luajit')
DEFAULT_ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1'
ETCD_DIRS = ('/routes', '/upstreams', '/services', '/plugins', '/ssls', '/consumers', '/global_rules',
             '/plugin_metadata', '/plugin_configs', '/consumer_groups', '/protos', '/stream_routes', '/secrets')
HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'}
METHODS = {'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'}
RUNNERS_PER_GENERATION = 2
POLL_INTERVAL = float(os.environ.get('APISIX_STANDIN_POLL', '0.5'))
GRACEFUL_LIMIT = 60.0
KEEPALIVE_TIMEOUT = 60.0


class ConfigError(Exception):
    pass


# --------------------------------------------------------------------------------------------------- logging

_log_lock = threading.Lock()


def log(level, message):
    line = '%s [%s] %d: %s\n' % (time.strftime('%Y/%m/%d %H:%M:%S'), level, os.getpid(), message)
    with _log_lock:
        try:
            os.makedirs(LOG_DIR, exist_ok=True)
            with open(ERROR_LOG, 'a') as handle:
                handle.write(line)
        except OSError:
            sys.stderr.write(line)


def die(message):
    """CLI failure: the reason on stderr and in error.log, exit 1."""
    log('emerg', message)
    sys.stderr.write(message.rstrip('\n') + '\n')
    sys.exit(1)


# --------------------------------------------------------------------------------------------------- config

def _listen_list(value, default_port, what):
    if value is None:
        value = default_port
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError('%s must be a port or a list of ports' % what)
    out = []
    for item in value:
        ip = '0.0.0.0'
        if isinstance(item, dict):
            ip = str(item.get('ip', ip))
            item = item.get('port')
        try:
            port = int(item)
        except (TypeError, ValueError):
            raise ConfigError('%s: invalid port %r' % (what, item))
        if not 0 < port < 65536:
            raise ConfigError('%s: invalid port %r' % (what, item))
        out.append((ip, port))
    return out


def _ip_port(section, default_ip, default_port, what):
    section = section or {}
    if not isinstance(section, dict):
        raise ConfigError('%s must be a mapping with ip and port' % what)
    ip = str(section.get('ip', default_ip))
    try:
        port = int(section.get('port', default_port))
        ipaddress.ip_address(ip)
    except (TypeError, ValueError):
        raise ConfigError('%s: invalid ip/port %r' % (what, section))
    if not 0 < port < 65536:
        raise ConfigError('%s: invalid port %r' % (what, port))
    return ip, port


def load_config(path=CONF_PATH):
    """Read and validate config.yaml; returns a normalised dict or raises ConfigError."""
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError('failed to read local yaml config of apisix: %s' % error)
    except yaml.YAMLError as error:
        raise ConfigError('failed to parse yaml config %s: %s' % (path, error))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError('%s: the top level must be a mapping' % path)
    apisix = raw.get('apisix') or {}
    deployment = raw.get('deployment') or {}
    if not isinstance(apisix, dict) or not isinstance(deployment, dict):
        raise ConfigError('apisix and deployment must be mappings')
    conf = {'raw': raw}
    conf['node_listen'] = _listen_list(apisix.get('node_listen'), 9080, 'apisix.node_listen')
    conf['enable_admin'] = apisix.get('enable_admin', True) is not False
    conf['enable_control'] = apisix.get('enable_control', True) is not False
    conf['control'] = _ip_port(apisix.get('control'), '127.0.0.1', 9090, 'apisix.control')
    status = apisix.get('status', {})
    conf['status'] = None if status is False else _ip_port(status, '127.0.0.1', 7085, 'apisix.status')
    extra = apisix.get('extra_lua_path') or ''
    if not isinstance(extra, str):
        raise ConfigError('apisix.extra_lua_path must be a string')
    conf['extra_lua_path'] = extra
    plugins = raw.get('plugins')
    if plugins is None:
        plugins = []
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise ConfigError('plugins must be a list of plugin names')
    if len(set(plugins)) != len(plugins):
        raise ConfigError('plugins: a plugin is listed twice')
    conf['plugins'] = plugins

    role = deployment.get('role', 'traditional')
    if role != 'traditional':
        raise ConfigError('deployment.role %r is not supported by the lab stand-in (only traditional)' % role)
    provider = (deployment.get('role_traditional') or {}).get('config_provider', 'etcd')
    if provider != 'etcd':
        raise ConfigError('deployment.role_traditional.config_provider %r is not supported (only etcd)' % provider)

    admin = deployment.get('admin') or {}
    if not isinstance(admin, dict):
        raise ConfigError('deployment.admin must be a mapping')
    conf['admin_listen'] = _ip_port(admin.get('admin_listen'), '0.0.0.0', 9180, 'deployment.admin.admin_listen')
    if 'allow_admin' in admin:
        allow = admin.get('allow_admin') or []
    else:
        allow = ['127.0.0.0/24']
    if not isinstance(allow, list):
        raise ConfigError('deployment.admin.allow_admin must be a list of CIDRs')
    networks = []
    for cidr in allow:
        try:
            networks.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            raise ConfigError('deployment.admin.allow_admin: invalid CIDR %r' % cidr)
    conf['allow_admin'] = networks
    conf['admin_key_required'] = admin.get('admin_key_required', True) is not False
    keys = admin.get('admin_key')
    if keys is None:
        keys = [{'name': 'admin', 'key': DEFAULT_ADMIN_KEY, 'role': 'admin'}]
    if not isinstance(keys, list):
        raise ConfigError('deployment.admin.admin_key must be a list of {name, key, role}')
    conf['admin_keys'] = []
    for entry in keys:
        if not isinstance(entry, dict):
            raise ConfigError('deployment.admin.admin_key: every entry must be a mapping {name, key, role}')
        role = entry.get('role', 'admin')
        if role not in ('admin', 'viewer'):
            raise ConfigError('deployment.admin.admin_key: role must be admin or viewer, not %r' % role)
        key = entry.get('key')
        key = '' if key is None or isinstance(key, (dict, list)) else str(key)
        conf['admin_keys'].append({'name': str(entry.get('name', '')), 'key': key, 'role': role})
    conf['enable_admin_ui'] = bool(admin.get('enable_admin_ui', False))
    if conf['enable_admin'] and conf['admin_key_required']:
        only_local = len(allow) == 1 and str(allow[0]) == '127.0.0.0/24'
        if not only_local and not conf['admin_keys']:
            raise ConfigError('ERROR: missing valid Admin API token. Please modify "admin_key" in conf/config.yaml .')

    etcd = deployment.get('etcd') or {}
    if not isinstance(etcd, dict):
        raise ConfigError('deployment.etcd must be a mapping')
    hosts = etcd.get('host', ['http://127.0.0.1:2379'])
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError('deployment.etcd.host must be a non-empty list of URLs')
    for host in hosts:
        parsed = urllib.parse.urlsplit(str(host))
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ConfigError('malformed etcd endpoint: %s' % host)
    conf['etcd_hosts'] = [str(h).rstrip('/') for h in hosts]
    prefix = str(etcd.get('prefix', '/apisix'))
    if not prefix.startswith('/'):
        raise ConfigError('deployment.etcd.prefix must start with /')
    conf['etcd_prefix'] = prefix.rstrip('/') or '/apisix'
    try:
        conf['etcd_timeout'] = float(etcd.get('timeout', 30))
        conf['etcd_startup_retry'] = int(etcd.get('startup_retry', 2))
    except (TypeError, ValueError):
        raise ConfigError('deployment.etcd.timeout and startup_retry must be numbers')
    user, password = etcd.get('user'), etcd.get('password')
    conf['etcd_user'] = None if user is None else str(user)
    conf['etcd_password'] = None if password is None else str(password)
    tls = etcd.get('tls') or {}
    if not isinstance(tls, dict):
        raise ConfigError('deployment.etcd.tls must be a mapping')
    trusted = (apisix.get('ssl') or {}).get('ssl_trusted_certificate')
    conf['etcd_tls'] = {'cert': tls.get('cert'), 'key': tls.get('key'), 'verify': tls.get('verify', True) is not False,
                        'ca': trusted}
    for item in ('cert', 'key', 'ca'):
        path_ = conf['etcd_tls'][item]
        if path_ and path_ != 'system' and not os.path.exists(str(path_)):
            raise ConfigError('certificate path %s does not exist' % path_)

    seen = {}
    for kind, addresses in (('node_listen', conf['node_listen']),
                            ('admin_listen', [conf['admin_listen']] if conf['enable_admin'] else []),
                            ('control', [conf['control']] if conf['enable_control'] else []),
                            ('status', [conf['status']] if conf['status'] else [])):
        for _ip, port in addresses:
            if port in seen:
                raise ConfigError('port %d is used by both %s and %s' % (port, seen[port], kind))
            seen[port] = kind
    return conf


def find_plugin_file(extra_lua_path, name):
    for pattern in extra_lua_path.split(';'):
        if '?' not in pattern:
            continue
        candidate = pattern.replace('?', 'apisix/plugins/' + name.replace('.', '/'))
        if os.path.isfile(candidate):
            return candidate
    return None


# --------------------------------------------------------------------------------------------------- etcd

class EtcdError(Exception):
    pass


class Etcd:
    """Client of the etcd v3 JSON gateway: one host at a time, the next one when it fails."""

    def __init__(self, conf):
        self.hosts = list(conf['etcd_hosts'])
        self.prefix = conf['etcd_prefix']
        self.timeout = conf['etcd_timeout']
        self.user, self.password = conf['etcd_user'], conf['etcd_password']
        self.tls = conf['etcd_tls']
        self.current = 0
        self.token = None
        self.lock = threading.Lock()
        self._ssl = None

    def same_settings(self, conf):
        return (self.hosts == conf['etcd_hosts'] and self.prefix == conf['etcd_prefix'] and
                self.user == conf['etcd_user'] and self.password == conf['etcd_password'] and
                self.tls == conf['etcd_tls'] and self.timeout == conf['etcd_timeout'])

    def ssl_context(self):
        if self._ssl is None:
            context = ssl.create_default_context()
            ca = self.tls.get('ca')
            if ca and ca != 'system':
                context.load_verify_locations(cafile=ca)
            if not self.tls.get('verify', True):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.tls.get('cert') and self.tls.get('key'):
                context.load_cert_chain(self.tls['cert'], self.tls['key'])
            self._ssl = context
        return self._ssl

    def raw_request(self, host, method, path, body=None, headers=None, timeout=None):
        parsed = urllib.parse.urlsplit(host)
        timeout = self.timeout if timeout is None else timeout
        if parsed.scheme == 'https':
            conn = http.client.HTTPSConnection(parsed.hostname, parsed.port or 2379, timeout=timeout,
                                               context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 2379, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            all_headers = {'Content-Type': 'application/json'}
            all_headers.update(headers or {})
            conn.request(method, path, body=data, headers=all_headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def authenticate(self, host):
        status, data = self.raw_request(host, 'POST', '/v3/auth/authenticate',
                                        {'name': self.user, 'password': self.password})
        try:
            reply = json.loads(data)
        except ValueError:
            reply = {}
        if status != 200 or 'token' not in reply:
            raise EtcdError('etcd authentication as %r failed on %s: %s' % (self.user, host, data[:200]))
        return reply['token']

    def call(self, path, body, timeout=None):
        """POST body to the first host that answers; returns the decoded reply."""
        errors = []
        for attempt in range(len(self.hosts)):
            index = (self.current + attempt) % len(self.hosts)
            host = self.hosts[index]
            try:
                reply = self._call_host(host, path, body, timeout)
                self.current = index
                return reply
            except (OSError, http.client.HTTPException, EtcdError, ValueError) as error:
                errors.append('%s: %s' % (host, error))
                with self.lock:
                    self.token = None
        raise EtcdError('; '.join(errors))

    def _call_host(self, host, path, body, timeout):
        for retry in (0, 1):
            headers = {}
            if self.user and self.password:
                with self.lock:
                    token = self.token
                if token is None:
                    token = self.authenticate(host)
                    with self.lock:
                        self.token = token
                headers['Authorization'] = token
            status, data = self.raw_request(host, 'POST', path, body, headers, timeout)
            try:
                reply = json.loads(data) if data else {}
            except ValueError:
                raise EtcdError('HTTP %d, not JSON: %r' % (status, data[:200]))
            if status == 200:
                return reply
            message = reply.get('error') or reply.get('message') or data[:200]
            if retry == 0 and self.user and ('token' in str(message) or status == 401):
                with self.lock:
                    self.token = None
                continue
            raise EtcdError('HTTP %d: %s' % (status, message))
        raise EtcdError('authentication keeps failing')

    @staticmethod
    def b64(text):
        return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()

    def range_prefix(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self.call('/v3/kv/range', {'key': self.b64(prefix), 'range_end': self.b64(end)})
        kvs = []
        for kv in reply.get('kvs', []):
            kvs.append({'key': base64.b64decode(kv['key']).decode(),
                        'value': base64.b64decode(kv.get('value', '')).decode(errors='replace'),
                        'create_revision': int(kv.get('create_revision', 0)),
                        'mod_revision': int(kv.get('mod_revision', 0))})
        return reply.get('header', {}), kvs

    def get(self, key):
        reply = self.call('/v3/kv/range', {'key': self.b64(key)})
        for kv in reply.get('kvs', []):
            return {'key': key, 'value': base64.b64decode(kv.get('value', '')).decode(errors='replace'),
                    'create_revision': int(kv.get('create_revision', 0)),
                    'mod_revision': int(kv.get('mod_revision', 0))}
        return None

    def put(self, key, value):
        return self.call('/v3/kv/put', {'key': self.b64(key), 'value': self.b64(value), 'prev_kv': True})

    def delete(self, key):
        reply = self.call('/v3/kv/deleterange', {'key': self.b64(key)})
        return int(reply.get('deleted', 0))


def etcd_startup_check(conf):
    """What `apisix start` does before anything else: the etcd hosts' health and the init_dir writes."""
    client = Etcd(conf)
    healthy = []
    for host in conf['etcd_hosts']:
        answer, error = None, None
        for retry in range(max(conf['etcd_startup_retry'], 1)):
            try:
                status, data = client.raw_request(host, 'GET', '/version', timeout=3)
                answer = json.loads(data)
                break
            except (OSError, http.client.HTTPException, ValueError) as err:
                error = err
                print("Warning! Request etcd endpoint '%s/version' error, %s, retry time=%d" % (host, err, retry + 1))
        if answer is None:
            log('warn', "request etcd endpoint '%s/version' error, %s" % (host, error))
            sys.stderr.write("request etcd endpoint '%s/version' error, %s\n" % (host, error))
            continue
        cluster_version = str(answer.get('etcdcluster', ''))
        if not cluster_version:
            die('got malformed version message: "%s" from etcd "%s/version"' % (answer, host))
        parts = [int(p) for p in cluster_version.split('.')[:2] if p.isdigit()]
        if parts < [3, 4]:
            die('etcd cluster version %s is less than the required version 3.4.0, please upgrade your etcd cluster'
                % cluster_version)
        healthy.append(host)
    if not healthy:
        die('all etcd nodes are unavailable')
    if len(healthy) * 100.0 / len(conf['etcd_hosts']) <= 50:
        die('the etcd cluster needs at least 50%% and above healthy nodes (%d of %d answer: %s)'
            % (len(healthy), len(conf['etcd_hosts']), ', '.join(healthy)))
    errors = []
    for host in healthy:
        client.hosts = [host]
        client.token = None
        try:
            for name in ETCD_DIRS:
                client.put(conf['etcd_prefix'] + name + '/', 'init_dir')
            return
        except EtcdError as error:
            errors.append(str(error))
    die('none of the configured etcd works well: %s' % '; '.join(errors))


# --------------------------------------------------------------------------------------------------- plugins

class PluginLoadError(Exception):
    pass


class Runner:
    """One luajit process running runner.lua."""

    def __init__(self, lua_path, plugin_files):
        self.lock = threading.Lock()
        self.lua_path = lua_path
        self.plugin_files = plugin_files
        self.proc = None
        self.infos = None
        self.start()

    def start(self):
        stderr = open(ERROR_LOG, 'a') if os.path.isdir(LOG_DIR) else None
        try:
            self.proc = subprocess.Popen([LUAJIT, RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, close_fds=True, bufsize=0, cwd='/')
        except OSError as error:
            raise PluginLoadError('cannot start the Lua runner (%s %s): %s' % (LUAJIT, RUNNER, error))
        finally:
            if stderr:
                stderr.close()
        self.rfile = self.proc.stdout
        reply = self._ask({'op': 'load', 'lua_path': self.lua_path, 'plugins': self.plugin_files})
        if not reply.get('ok'):
            self.close()
            raise PluginLoadError(reply.get('error', 'failed to load the plugins'))
        self.infos = reply.get('plugins') or []

    def _ask(self, message):
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b'\n')
            line = self.rfile.readline()
        except (OSError, ValueError) as error:
            raise PluginLoadError('the Lua runner died: %s' % error)
        if not line:
            raise PluginLoadError('the Lua runner exited (status %s)' % self.proc.poll())
        return json.loads(line)

    def ask(self, message):
        with self.lock:
            if self.proc.poll() is not None:
                log('error', 'the Lua runner exited with %s; restarting it' % self.proc.returncode)
                self.start()
            return self._ask(message)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PluginRuntime:
    """One generation of loaded plugins: its runners, plugin metadata and the routes' checked plugin confs."""

    def __init__(self, conf, generation):
        self.generation = generation
        self.enabled = list(conf['plugins'])
        self.lua_path = conf['extra_lua_path']
        self.files = {}       # name -> {'path', 'sha256'}
        self.info = {}        # name -> info from the runner
        self.builtin = []     # enabled names not found on extra_lua_path
        self.prepared = {}    # (route id, mod_revision) -> (chain, error)
        self.lock = threading.Lock()
        self.refs = 0
        self.retired = False
        self.runners = []
        self.next_runner = 0
        sources = []
        for name in self.enabled:
            path = find_plugin_file(self.lua_path, name) if self.lua_path else None
            if path is None:
                self.builtin.append(name)
                continue
            with open(path, 'rb') as handle:
                data = handle.read()
            self.files[name] = {'path': path, 'sha256': hashlib.sha256(data).hexdigest()}
            sources.append({'name': name, 'path': path, 'source': data.decode('utf-8', errors='replace')})
        try:
            for _runner in range(RUNNERS_PER_GENERATION if sources else 0):
                self.runners.append(Runner(self.lua_path, sources))
        except PluginLoadError:
            self.close()
            raise
        if self.runners:
            for item in self.runners[0].infos:
                self.info[item['name']] = item
        self.order = sorted(self.info, key=lambda n: -self.info[n]['priority'])

    def runner(self):
        with self.lock:
            runner = self.runners[self.next_runner % len(self.runners)]
            self.next_runner += 1
        return runner

    def ask(self, message):
        return self.runner().ask(message)

    def acquire(self):
        with self.lock:
            self.refs += 1
        return self

    def release(self):
        with self.lock:
            self.refs -= 1
            done = self.retired and self.refs == 0
        if done:
            self.close()

    def retire(self):
        with self.lock:
            self.retired = True
            done = self.refs == 0
        if done:
            self.close()

    def close(self):
        for runner in self.runners:
            runner.close()
        self.runners = []

    def check_plugins(self, plugins):
        """Check a route's plugins: returns (chain [[name, conf]] by priority, None) or (None, error)."""
        chain = []
        if plugins is None:
            return chain, None
        if not isinstance(plugins, dict):
            return None, 'plugins must be an object'
        for name, conf in plugins.items():
            if name not in self.enabled:
                return None, 'unknown plugin [%s]' % name
            if not isinstance(conf, dict):
                return None, 'failed to check the configuration of plugin %s err: wrong type: expected object' % name
            if name in self.info:
                reply = self.ask({'op': 'check_schema', 'name': name, 'conf': conf})
                if not reply.get('ok'):
                    return None, reply.get('error')
                chain.append([name, reply.get('conf', conf)])
        chain.sort(key=lambda item: -self.info[item[0]]['priority'])
        return chain, None

    def prepare(self, route_key, plugins):
        with self.lock:
            cached = self.prepared.get(route_key)
        if cached is None:
            try:
                cached = self.check_plugins(plugins)
            except PluginLoadError as error:
                return None, str(error)
            with self.lock:
                self.prepared[route_key] = cached
        return cached

    def schema(self):
        plugins = {}
        for name in self.builtin:
            plugins[name] = {'priority': 0, 'version': 0.1, 'schema': {'type': 'object'}, 'standin_builtin': True}
        for name in self.order:
            info = self.info[name]
            plugins[name] = {'priority': info['priority'], 'version': info['version'], 'schema': info['schema']}
        return plugins


# --------------------------------------------------------------------------------------------------- routing

def parse_nodes(nodes):
    out = []
    if isinstance(nodes, dict):
        for address, weight in nodes.items():
            host, _colon, port = str(address).rpartition(':')
            if not host:
                host, port = port, '80'
            out.append((host.strip('[]'), int(port), int(weight)))
    elif isinstance(nodes, list):
        for node in nodes:
            out.append((str(node['host']), int(node.get('port', 80)), int(node.get('weight', 1))))
    return [n for n in out if n[2] > 0]


class Balancer:
    """Smooth weighted round robin (nginx's) over an upstream's nodes."""

    def __init__(self, upstream):
        self.nodes = parse_nodes(upstream.get('nodes'))
        self.current = [0] * len(self.nodes)
        self.lock = threading.Lock()
        timeout = upstream.get('timeout') or {}
        self.connect_timeout = float(timeout.get('connect', 60))
        self.read_timeout = float(timeout.get('read', 60))
        self.retries = upstream.get('retries')
        self.scheme = upstream.get('scheme', 'http')
        self.pass_host = upstream.get('pass_host', 'pass')
        self.upstream_host = upstream.get('upstream_host')

    def order(self):
        """All nodes, the one picked by the weights first."""
        if not self.nodes:
            return []
        with self.lock:
            total = 0
            best = 0
            for i, node in enumerate(self.nodes):
                self.current[i] += node[2]
                total += node[2]
                if self.current[i] > self.current[best]:
                    best = i
            self.current[best] -= total
        rest = [n for i, n in enumerate(self.nodes) if i != best]
        random.shuffle(rest)
        return [self.nodes[best]] + rest


def host_matches(pattern, host):
    pattern = str(pattern).lower()
    if pattern.startswith('*.'):
        return host.endswith(pattern[1:])
    return host == pattern


class RouteTable:
    def __init__(self, routes, upstreams):
        self.routes = routes          # id -> {'value', 'mod_revision'}
        self.upstreams = upstreams
        self.exact = {}
        self.prefixes = []
        self.balancers = {}
        for route_id, item in routes.items():
            route = item['value']
            uris = route.get('uris') or ([route['uri']] if route.get('uri') else [])
            for uri in uris:
                entry = (int(route.get('priority', 0)), route_id)
                if uri.endswith('*'):
                    self.prefixes.append((len(uri) - 1, uri[:-1]) + entry)
                else:
                    self.exact.setdefault(uri, []).append(entry)
        self.prefixes.sort(key=lambda e: (-e[0], -e[2]))
        for entries in self.exact.values():
            entries.sort(key=lambda e: -e[0])

    def match(self, path, method, host=None):
        candidates = [route_id for _p, route_id in self.exact.get(path, [])]
        candidates += [e[3] for e in self.prefixes if path.startswith(e[1])]
        host = (host or '').rsplit(':', 1)[0].lower() if host and not host.endswith(']') else (host or '').lower()
        for route_id in candidates:
            route = self.routes[route_id]['value']
            if route.get('status', 1) == 0:
                continue
            methods = route.get('methods')
            if methods and method not in methods:
                continue
            hosts = route.get('hosts') or ([route['host']] if route.get('host') else [])
            if hosts and not any(host_matches(pattern, host) for pattern in hosts):
                continue
            return route_id
        return None

    def balancer(self, route_id):
        if route_id in self.balancers:
            return self.balancers[route_id]
        route = self.routes[route_id]['value']
        upstream = route.get('upstream')
        if upstream is None and route.get('upstream_id') is not None:
            item = self.upstreams.get(str(route['upstream_id']))
            upstream = item['value'] if item else None
        balancer = Balancer(upstream) if upstream else None
        self.balancers[route_id] = balancer
        return balancer


# --------------------------------------------------------------------------------------------------- HTTP

class Request:
    def __init__(self, method, target, version, headers, body, client):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers            # list of (name, value)
        self.body = body
        self.client = client
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path or '/'
        self.query = parsed.query

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Response:
    def __init__(self, status, body=b'', headers=None, content_type='application/json'):
        self.status = status
        if isinstance(body, (dict, list)):
            body = (json.dumps(body) + '\n').encode()
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        self.headers = list(headers or [])
        if content_type and not any(k.lower() == 'content-type' for k, _value in self.headers):
            self.headers.append(('Content-Type', content_type))
        self.upstream = '-'
        self.upstream_status = '-'
        self.head_length = None


def error_page(status):
    reason = http.client.responses.get(status, 'Error')
    return Response(status, '<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n'
                    '<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n' % (status, reason, status, reason),
                    content_type='text/html; charset=utf-8')


class BadRequest(Exception):
    pass


class Connection:
    """One client connection: HTTP/1.1 with keep-alive, handled on its own thread."""

    def __init__(self, server, sock, address, listener):
        self.server = server
        self.sock = sock
        self.address = address
        self.listener = listener
        self.buffer = bytearray()

    def recv_more(self, deadline):
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise socket.timeout('client timed out')
            ready, _writable, _failed = select.select([self.sock], [], [], min(wait, 0.5))
            if ready:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError('client closed the connection')
                self.buffer += data
                return

    def wait_for_head(self):
        """Wait for a request head; returns False when the connection should be closed instead."""
        idle_since = time.monotonic()
        while b'\r\n\r\n' not in self.buffer:
            if not self.buffer:
                # a request already waiting is served even while quitting; an idle connection is closed then
                quitting = self.server.quitting.is_set()
                ready, _writable, _failed = select.select([self.sock], [], [], 0 if quitting else 0.25)
                if not ready:
                    if quitting or time.monotonic() - idle_since > KEEPALIVE_TIMEOUT:
                        return False
                    continue
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.buffer += data
            else:
                if len(self.buffer) > 65536:
                    raise BadRequest('request head too large')
                self.recv_more(time.monotonic() + 60)
        return True

    def read_request(self):
        end = self.buffer.index(b'\r\n\r\n')
        head = bytes(self.buffer[:end]).decode('latin-1')
        del self.buffer[:end + 4]
        lines = head.split('\r\n')
        parts = lines[0].split(' ')
        if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
            raise BadRequest('bad request line %r' % lines[0][:100])
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(':')
            if not sep or not name.strip():
                raise BadRequest('bad header line')
            headers.append((name.strip(), value.strip()))
        request = Request(parts[0], parts[1], parts[2], headers, b'', self.address[0])
        deadline = time.monotonic() + 60
        if (request.header('transfer-encoding') or '').lower().endswith('chunked'):
            request.body = self.read_chunked(deadline)
        else:
            length = request.header('content-length')
            if length:
                try:
                    length = int(length)
                except ValueError:
                    raise BadRequest('bad content-length')
                while len(self.buffer) < length:
                    self.recv_more(deadline)
                request.body = bytes(self.buffer[:length])
                del self.buffer[:length]
        return request

    def read_line(self, deadline):
        while b'\r\n' not in self.buffer:
            self.recv_more(deadline)
        end = self.buffer.index(b'\r\n')
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def read_chunked(self, deadline):
        body = bytearray()
        while True:
            size_line = self.read_line(deadline).split(b';')[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest('bad chunk size')
            if size == 0:
                while self.read_line(deadline):
                    pass
                return bytes(body)
            while len(self.buffer) < size + 2:
                self.recv_more(deadline)
            body += self.buffer[:size]
            del self.buffer[:size + 2]

    def send(self, request, response, keep_alive):
        reason = http.client.responses.get(response.status, 'Unknown')
        lines = ['HTTP/1.1 %d %s' % (response.status, reason)]
        names = set()
        for name, value in response.headers:
            if name.lower() in HOP_BY_HOP or name.lower() in ('content-length', 'server', 'date'):
                continue
            lines.append('%s: %s' % (name, value))
            names.add(name.lower())
        length = len(response.body) if response.head_length is None else response.head_length
        lines.append('Content-Length: %d' % length)
        lines.append('Date: %s' % time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime()))
        lines.append('Server: APISIX/%s' % VERSION)
        lines.append('Connection: %s' % ('keep-alive' if keep_alive else 'close'))
        data = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
        if request is None or request.method != 'HEAD':
            data += response.body
        self.sock.sendall(data)

    def run(self):
        self.server.connection_started(self)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                if not self.wait_for_head():
                    break
                started = time.time()
                try:
                    request = self.read_request()
                except BadRequest as error:
                    self.send(None, error_page(400), False)
                    log('info', 'bad request from %s: %s' % (self.address[0], error))
                    break
                self.server.request_started()
                try:
                    try:
                        response = self.server.dispatch(self.listener, request)
                    except Exception:  # a bug must not take the connection thread down silently
                        log('error', 'unexpected error: %s' % traceback.format_exc())
                        response = error_page(500)
                    connection = (request.header('connection') or '').lower()
                    if request.version == 'HTTP/1.0':
                        keep_alive = 'keep-alive' in connection
                    else:
                        keep_alive = 'close' not in connection
                    keep_alive = keep_alive and not self.server.quitting.is_set()
                    self.send(request, response, keep_alive)
                    self.server.access_log(self.listener, request, response, started)
                finally:
                    self.server.request_finished()
                if not keep_alive:
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.server.connection_finished(self)


class Listener:
    def __init__(self, server, kind, ip, port):
        self.server = server
        self.kind = kind
        self.ip, self.port = ip, port
        family = socket.AF_INET6 if ':' in ip else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(1024)
        self.closed = False
        self.thread = threading.Thread(target=self.accept_loop, name='listen-%s-%d' % (kind, port), daemon=True)

    def start(self):
        self.thread.start()

    def accept_loop(self):
        while not self.closed:
            try:
                ready, _writable, _failed = select.select([self.sock], [], [], 0.5)
                if not ready:
                    continue
                sock, address = self.sock.accept()
            except (OSError, ValueError):
                if self.closed:
                    return
                time.sleep(0.05)
                continue
            connection = Connection(self.server, sock, address, self)
            threading.Thread(target=connection.run, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------- server

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


class Server:
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
        self.plugins_key_revision = None
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

    def reload(self, plugins_only=False):
        """Graceful reload: a new config and a new plugin generation; in-flight requests keep the old one."""
        with self.reload_lock:
            try:
                conf = load_config()
                if plugins_only:
                    merged = dict(self.conf)
                    merged['plugins'] = conf['plugins']
                    merged['extra_lua_path'] = conf['extra_lua_path']
                    conf = merged
                runtime = self.new_runtime(conf)
            except (ConfigError, PluginLoadError, OSError) as error:
                log('error', 'reload failed, keeping the running configuration and plugins: %s' % error)
                self.write_reload_status(False, str(error))
                return False, str(error)
            if not plugins_only:
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
            if not self.etcd.same_settings(conf):
                self.etcd = Etcd(conf)
                self.etcd_state = None
            if old:
                old.retire()
            log('notice', '%s: generation %d, plugins %s' % (
                'plugins reloaded' if plugins_only else 'configuration reloaded', runtime.generation,
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
        plugins_revision = None
        for kv in kvs:
            rest = kv['key'][len(prefix):]
            if kv['value'] == 'init_dir' or rest.endswith('/'):
                continue
            if rest == '/plugins':
                plugins_revision = kv['mod_revision']
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
        if self.plugins_key_revision is not None and plugins_revision != self.plugins_key_revision and plugins_revision:
            log('notice', 'plugin reload requested through etcd %s/plugins' % prefix)
            threading.Thread(target=self.reload, kwargs={'plugins_only': True}, daemon=True).start()
        self.plugins_key_revision = plugins_revision or 0

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

    def reopen_logs(self):
        with self.access_lock:
            if self.access_handle:
                self.access_handle.close()
                self.access_handle = None

    def proxy(self, request, listener):
        table = self.table
        route_id = table.match(request.path, request.method, request.header('host'))
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
                if balancer.scheme == 'https':
                    conn = http.client.HTTPSConnection(host, port, timeout=balancer.connect_timeout,
                                                       context=ssl._create_unverified_context())
                else:
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

    # ---- admin API
    def admin_allowed(self, request):
        if not self.conf['allow_admin']:
            return True
        try:
            address = ipaddress.ip_address(request.client)
        except ValueError:
            return False
        return any(address in network for network in self.conf['allow_admin'])

    def admin_role(self, request):
        if not self.conf['admin_key_required']:
            return 'admin'
        key = request.header('x-api-key')
        if key is None:
            key = urllib.parse.parse_qs(request.query).get('api_key', [None])[0]
        if not key:
            return None
        for entry in self.conf['admin_keys']:
            if entry['key'] and entry['key'] == key:
                return entry['role']
        return None

    def admin(self, request):
        if not self.admin_allowed(request):
            return error_page(403)
        role = self.admin_role(request)
        if role is None:
            return Response(401, {'error_msg': 'failed to check token'})
        if role == 'viewer' and request.method != 'GET':
            return Response(401, {'error_msg': 'invalid method for role viewer'})
        parts = [p for p in request.path.split('/') if p]
        if parts[:2] != ['apisix', 'admin'] or len(parts) < 3:
            return Response(404, {'error_msg': 'not found'})
        resource = parts[2]
        if resource == 'plugins':
            if parts[3:] == ['reload'] and request.method == 'PUT':
                try:
                    reply = self.etcd.put(self.etcd.prefix + '/plugins',
                                          json.dumps([{'name': name} for name in self.conf['plugins']]))
                    self.plugins_key_revision = int(reply.get('header', {}).get('revision', 0))
                except EtcdError as error:
                    log('warn', 'plugins reload: failed to write %s/plugins: %s' % (self.etcd.prefix, error))
                ok, error = self.reload(plugins_only=True)
                if not ok:
                    return Response(500, {'error_msg': error})
                return Response(200, 'done', content_type='text/plain')
            if parts[3:] == ['list'] and request.method == 'GET':
                return Response(200, self.conf['plugins'])
            return Response(404, {'error_msg': 'not found'})
        if resource not in ('routes', 'upstreams'):
            return Response(404, {'error_msg': 'not found'})
        item_id = parts[3] if len(parts) > 3 else None
        if len(parts) > 4:
            return Response(404, {'error_msg': 'not found'})
        try:
            return self.admin_resource(request, resource, item_id)
        except EtcdError as error:
            log('error', 'admin API: etcd: %s' % error)
            return Response(503, {'error_msg': 'etcd: %s' % error})

    def admin_resource(self, request, resource, item_id):
        etcd = self.etcd
        base = etcd.prefix + '/' + resource
        method = request.method
        if method == 'GET':
            if item_id is None:
                _header, kvs = etcd.range_prefix(base + '/')
                items = [self.admin_item(kv) for kv in kvs if kv['value'] != 'init_dir' and not kv['key'].endswith('/')]
                return Response(200, {'total': len(items), 'list': items})
            kv = etcd.get(base + '/' + item_id)
            if kv is None:
                return Response(404, {'message': 'Key not found'})
            return Response(200, self.admin_item(kv))
        if method == 'DELETE':
            if item_id is None:
                return Response(400, {'error_msg': 'missing %s id' % resource[:-1]})
            if resource == 'upstreams':
                _header, kvs = etcd.range_prefix(etcd.prefix + '/routes/')
                for kv in kvs:
                    try:
                        if str(json.loads(kv['value']).get('upstream_id')) == item_id:
                            return Response(400, {'error_msg': 'can not delete this upstream, route [%s] is still '
                                                  'using it now' % kv['key'].rsplit('/', 1)[-1]})
                    except (ValueError, AttributeError):
                        continue
            if not etcd.delete(base + '/' + item_id):
                return Response(404, {'message': 'Key not found'})
            return Response(200, {'key': base + '/' + item_id, 'deleted': '1'})
        if method not in ('PUT', 'POST'):
            return Response(405, {'error_msg': 'not supported method'})
        try:
            value = json.loads(request.body or b'null')
        except ValueError as error:
            return Response(400, {'error_msg': 'invalid request body: %s' % error})
        if not isinstance(value, dict):
            return Response(400, {'error_msg': 'invalid request body: not an object'})
        if method == 'POST':
            if item_id is not None:
                return Response(405, {'error_msg': 'not supported method'})
            item_id = '%020d' % (time.time_ns() // 1000)
        elif item_id is None:
            item_id = value.get('id')
            if item_id is None:
                return Response(400, {'error_msg': 'missing %s id' % resource[:-1]})
        item_id = str(item_id)
        if value.get('id') is not None and str(value['id']) != item_id:
            return Response(400, {'error_msg': 'wrong %s id' % resource[:-1]})
        error = (check_route if resource == 'routes' else check_upstream)(value)
        if error:
            return Response(400, {'error_msg': 'invalid configuration: %s' % error})
        if resource == 'routes':
            if value.get('upstream_id') is not None and etcd.get(etcd.prefix + '/upstreams/%s' % value['upstream_id']) is None:
                return Response(400, {'error_msg': 'failed to fetch upstream info by upstream id [%s], response '
                                      'code: 404' % value['upstream_id']})
            runtime = self.acquire_runtime()
            try:
                _chain, error = runtime.check_plugins(value.get('plugins'))
            except PluginLoadError as err:
                error = str(err)
            finally:
                runtime.release()
            if error:
                return Response(400, {'error_msg': error})
        key = base + '/' + item_id
        now = int(time.time())
        old = etcd.get(key)
        value['id'] = item_id
        value['update_time'] = now
        value['create_time'] = now
        if old:
            try:
                value['create_time'] = json.loads(old['value']).get('create_time', now)
            except (ValueError, AttributeError):
                pass
        etcd.put(key, json.dumps(value))
        return Response(200 if old else 201, {'key': key, 'value': value})

    @staticmethod
    def admin_item(kv):
        try:
            value = json.loads(kv['value'])
        except ValueError:
            value = kv['value']
        return {'key': kv['key'], 'value': value, 'createdIndex': kv['create_revision'],
                'modifiedIndex': kv['mod_revision']}

    # ---- control and status APIs
    def control(self, request):
        path = request.path.rstrip('/')
        if path == '/v1/schema' and request.method == 'GET':
            return Response(200, {'main': MAIN_SCHEMA, 'plugins': self.runtime.schema(), 'stream_plugins': {}})
        if path == '/v1/healthcheck' and request.method == 'GET':
            return Response(200, [])
        if path == '/v1/plugins/reload' and request.method == 'PUT':
            ok, error = self.reload(plugins_only=True)
            if not ok:
                return Response(500, {'error_msg': error})
            return Response(200, 'done', content_type='text/plain')
        if path == '/v1/standin/plugins' and request.method == 'GET':
            runtime = self.runtime
            return Response(200, {name: dict(runtime.files[name]) for name in runtime.order})
        if path == '/v1/routes' and request.method == 'GET':
            return Response(200, [dict(item['value'], id=rid) for rid, item in self.table.routes.items()])
        return Response(404, {'error_msg': 'not found'})

    def status(self, request):
        path = request.path.rstrip('/')
        if path == '/status':
            return Response(200, {'status': 'ok'})
        if path == '/status/ready':
            if self.loaded:
                return Response(200, {'status': 'ok'})
            return Response(503, {'status': 'error', 'error': 'worker id: 0 has not received configuration'})
        return Response(404, {'error_msg': 'not found'})

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


MAIN_SCHEMA = {
    'route': {'type': 'object', 'properties': {'uri': {'type': 'string'}, 'uris': {'type': 'array'},
                                               'methods': {'type': 'array'}, 'upstream': {'type': 'object'},
                                               'upstream_id': {}, 'plugins': {'type': 'object'}}},
    'upstream': {'type': 'object', 'properties': {'type': {'type': 'string'}, 'nodes': {}},
                 'required': ['nodes']},
}


def check_upstream(value):
    if 'nodes' not in value:
        return 'property "nodes" is required'
    nodes = value['nodes']
    if not isinstance(nodes, (dict, list)):
        return 'property "nodes" must be an object or an array'
    try:
        parse_nodes(nodes)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return 'invalid nodes: %s' % error
    if value.get('type', 'roundrobin') not in ('roundrobin', 'chash', 'ewma', 'least_conn'):
        return 'invalid upstream type %r' % value.get('type')
    return None


def check_route(value):
    uris = value.get('uris') or ([value['uri']] if 'uri' in value else [])
    if not uris:
        return 'property "uri" or "uris" is required'
    if not all(isinstance(u, str) and u.startswith('/') for u in uris):
        return 'uri must be a string starting with /'
    methods = value.get('methods')
    if methods is not None and (not isinstance(methods, list) or not set(methods) <= METHODS):
        return 'invalid methods %r' % (methods,)
    if not any(key in value for key in ('upstream', 'upstream_id', 'plugins', 'service_id', 'plugin_config_id')):
        return 'one of upstream, upstream_id or plugins is required'
    if value.get('upstream') is not None:
        if not isinstance(value['upstream'], dict):
            return 'upstream must be an object'
        return check_upstream(value['upstream'])
    if value.get('plugins') is not None and not isinstance(value['plugins'], dict):
        return 'plugins must be an object'
    return None


# --------------------------------------------------------------------------------------------------- daemon

def read_pid():
    try:
        with open(PID_PATH) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def daemon_main(conf, report_fd):
    """In the daemon: listen, load plugins, write the pid file, tell the CLI, serve until told to stop."""
    server = Server(conf)
    pending = []
    wake = threading.Event()

    def on_signal(signum, _frame):
        pending.append(signum)
        wake.set()

    for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        server.runtime = server.new_runtime(conf)
        server.reconcile_listeners(conf)
        with open(PID_PATH + '.tmp', 'w') as handle:
            handle.write('%d\n' % os.getpid())
        os.replace(PID_PATH + '.tmp', PID_PATH)
        server.write_reload_status(True)
    except (ConfigError, PluginLoadError, OSError) as error:
        log('emerg', 'start failed: %s' % error)
        os.write(report_fd, ('ERROR %s' % error).encode())
        os.close(report_fd)
        os._exit(1)
    try:
        server.sync_once()
    except Exception as error:  # the sync thread keeps trying; ready stays 503 until then
        log('warn', 'first load from etcd failed, will retry: %s' % error)
    threading.Thread(target=server.sync_loop, name='etcd-sync', daemon=True).start()
    log('notice', 'APISIX stand-in %s started, pid %d, listening on %s' % (
        VERSION, os.getpid(), ', '.join('%s %s:%d' % k for k in server.listeners)))
    os.write(report_fd, b'OK')
    os.close(report_fd)

    while True:
        wake.wait(1)
        wake.clear()
        while pending:
            signum = pending.pop(0)
            if signum == signal.SIGHUP:
                log('notice', 'signal HUP received: reloading')
                server.reload()
            elif signum == signal.SIGUSR1:
                server.reopen_logs()
            elif signum == signal.SIGQUIT:
                server.graceful_quit()
                finish(server)
            elif signum in (signal.SIGTERM, signal.SIGINT):
                log('notice', 'signal %d received: fast shutdown' % signum)
                server.close_listeners()
                finish(server)


def finish(server):
    try:
        if read_pid() == os.getpid():
            os.unlink(PID_PATH)
    except OSError:
        pass
    if server.runtime:
        server.runtime.close()
    os._exit(0)


def cmd_start():
    os.makedirs(LOG_DIR, exist_ok=True)
    pid = read_pid()
    if pid:
        print('the old APISIX is still running, the new one will not start')
        return 0
    try:
        conf = load_config()
    except ConfigError as error:
        die(str(error))
    for warning in config_warnings(conf):
        log('warn', warning)
        sys.stderr.write(warning + '\n')
    etcd_startup_check(conf)
    try:
        PluginRuntime(conf, 0).close()
    except (PluginLoadError, OSError) as error:
        die('failed to load the plugins: %s' % error)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.close(write_fd)
        chunks = []
        while True:
            data = os.read(read_fd, 4096)
            if not data:
                break
            chunks.append(data)
        answer = b''.join(chunks).decode(errors='replace')
        if answer == 'OK':
            return 0
        die('APISIX failed to start: %s' % (answer[6:] if answer.startswith('ERROR ') else 'the daemon died'))
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir(HOME)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    errors = os.open(ERROR_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(errors, 2)
    try:
        daemon_main(conf, write_fd)
    except Exception:
        log('emerg', 'the daemon crashed: %s' % traceback.format_exc())
        os._exit(1)
    return 0


def config_warnings(conf):
    warnings = []
    for entry in conf['admin_keys']:
        if entry['key'] == DEFAULT_ADMIN_KEY:
            warnings.append('WARNING: using fixed Admin API token has security risk. '
                            'Please modify "admin_key" in conf/config.yaml .')
    return warnings


def wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def cmd_signal(signum, wait_seconds, what):
    pid = read_pid()
    if not pid:
        print('APISIX is not running (no live process in %s)' % PID_PATH)
        return 0
    os.kill(pid, signum)
    if not wait_gone(pid, wait_seconds):
        die('APISIX (pid %d) did not %s within %ds' % (pid, what, wait_seconds))
    return 0


def read_reload_status():
    try:
        with open(RELOAD_STATUS) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def cmd_reload():
    pid = read_pid()
    if not pid:
        die('failed to reload: APISIX is not running (no live process in %s)' % PID_PATH)
    try:
        conf = load_config()
    except ConfigError as error:
        die('reload refused, the running configuration is kept: %s' % error)
    try:
        PluginRuntime(conf, 0).close()
    except (PluginLoadError, OSError) as error:
        die('reload refused, the running plugins are kept: %s' % error)
    before = read_reload_status().get('generation')
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = read_reload_status()
        if status.get('generation') != before or (not status.get('ok') and status.get('at', 0) > time.time() - 1):
            if status.get('ok'):
                return 0
            die('reload failed, the running configuration is kept: %s' % status.get('error'))
        time.sleep(0.1)
    die('reload: no answer from APISIX (pid %d) within 60s' % pid)


def cmd_test():
    try:
        conf = load_config()
    except ConfigError as error:
        sys.stderr.write('%s\nconfiguration test failed\n' % error)
        return 1
    for warning in config_warnings(conf):
        sys.stderr.write(warning + '\n')
    try:
        runtime = PluginRuntime(conf, 0)
    except (PluginLoadError, OSError) as error:
        sys.stderr.write('failed to load the plugins: %s\nconfiguration test failed\n' % error)
        return 1
    names = ', '.join(runtime.order) or 'none'
    runtime.close()
    print('custom plugins loaded: %s' % names)
    print('configuration test is successful')
    return 0


def main(argv):
    command = argv[1] if len(argv) > 1 else 'help'
    if command == 'start':
        return cmd_start()
    if command == 'stop':
        return cmd_signal(signal.SIGTERM, 30, 'stop')
    if command == 'quit':
        return cmd_signal(signal.SIGQUIT, GRACEFUL_LIMIT + 15, 'quit')
    if command == 'reload':
        return cmd_reload()
    if command == 'test':
        return cmd_test()
    if command == 'restart':
        cmd_signal(signal.SIGQUIT, GRACEFUL_LIMIT + 15, 'quit')
        return cmd_start()
    if command == 'version':
        print(VERSION)
        return 0
    print(__doc__.strip())
    return 0 if command == 'help' else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
