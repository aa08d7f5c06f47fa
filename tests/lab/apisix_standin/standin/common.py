"""Constants, paths and the error log shared by the stand-in's modules."""

import os
import sys
import threading
import time

VERSION = '3.9.1-standin'

HOME = os.environ.get('APISIX_STANDIN_HOME', '/usr/local/apisix')
CONF_PATH = os.path.join(HOME, 'conf', 'config.yaml')
LOG_DIR = os.path.join(HOME, 'logs')
PID_PATH = os.path.join(LOG_DIR, 'nginx.pid')
ERROR_LOG = os.path.join(LOG_DIR, 'error.log')
ACCESS_LOG = os.path.join(LOG_DIR, 'access.log')
RELOAD_STATUS = os.path.join(LOG_DIR, 'standin-reload.json')
# runner.lua is installed beside the package (README.md)
RUNNER = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), 'runner.lua')
LUAJIT = os.environ.get('APISIX_STANDIN_LUAJIT', 'luajit')
DEFAULT_ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1'
ETCD_DIRS = ('/routes', '/upstreams', '/services', '/plugins', '/ssls', '/consumers', '/global_rules',
             '/plugin_metadata', '/plugin_configs', '/consumer_groups', '/protos', '/stream_routes', '/secrets')
HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'}
RUNNERS_PER_GENERATION = 2
POLL_INTERVAL = float(os.environ.get('APISIX_STANDIN_POLL', '0.5'))
GRACEFUL_LIMIT = 60.0
KEEPALIVE_TIMEOUT = 60.0


class ConfigError(Exception):
    pass


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
