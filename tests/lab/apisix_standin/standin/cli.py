"""The `apisix` commands and the daemon they start."""

import json
import os
import signal
import sys
import threading
import time
import traceback

from .common import ConfigError, DEFAULT_ADMIN_KEY, ERROR_LOG, GRACEFUL_LIMIT, HOME, LOG_DIR, PID_PATH, RELOAD_STATUS, VERSION, die, log
from .config import load_config
from .etcd import etcd_startup_check
from .plugins import PluginLoadError, PluginRuntime
from .server import Server

USAGE = 'usage: apisix start|stop|quit|reload|test'


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

    for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
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
    print(USAGE)
    return 0 if command == 'help' else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
