"""config.yaml: the keys the stand-in honours (README.md), read as APISIX 3 reads them."""

import ipaddress
import os
import urllib.parse

import yaml

from .common import CONF_PATH, ConfigError, DEFAULT_ADMIN_KEY


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


def _existing_file(path, what):
    if not isinstance(path, str) or not path:
        raise ConfigError('%s must be a file path' % what)
    # As APISIX's CLI: a relative path is taken from the working directory (APISIX's home).
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError("%s: certificate path %s doesn't exist" % (what, path))
    return path


def _etcd_tls(tls, ssl_section):
    """deployment.etcd.tls and apisix.ssl.ssl_trusted_certificate, as apisix/core/etcd.lua reads them for https
    hosts: verify (default true), cert and key (the client certificate), sni (else the URL's host); the CA is
    apisix.ssl.ssl_trusted_certificate ("system" or absent: the system's CAs)."""
    tls = {} if tls is None else tls
    ssl_section = {} if ssl_section is None else ssl_section
    if not isinstance(tls, dict):
        raise ConfigError('deployment.etcd.tls must be a mapping')
    if not isinstance(ssl_section, dict):
        raise ConfigError('apisix.ssl must be a mapping')
    out = {'verify': tls.get('verify', True) is not False, 'cert': None, 'key': None, 'sni': None, 'ca': None}
    if tls.get('cert') is not None:
        out['cert'] = _existing_file(tls['cert'], 'deployment.etcd.tls.cert')
        if tls.get('key') is None:
            raise ConfigError('deployment.etcd.tls.key is required with deployment.etcd.tls.cert')
        out['key'] = _existing_file(tls['key'], 'deployment.etcd.tls.key')
    elif tls.get('key') is not None:
        raise ConfigError('deployment.etcd.tls.cert is required with deployment.etcd.tls.key')
    if tls.get('sni') is not None:
        if not isinstance(tls['sni'], str) or not tls['sni']:
            raise ConfigError('deployment.etcd.tls.sni must be a host name')
        out['sni'] = tls['sni']
    trusted = ssl_section.get('ssl_trusted_certificate', 'system')
    if trusted != 'system':
        out['ca'] = _existing_file(trusted, 'apisix.ssl.ssl_trusted_certificate')
    return out


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
    conf['etcd_tls'] = _etcd_tls(etcd.get('tls'), apisix.get('ssl'))
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
