"""The custom Lua plugins, loaded and run by runner.lua in luajit processes, one set per generation."""

import hashlib
import json
import os
import subprocess
import threading

from .common import ERROR_LOG, LOG_DIR, LUAJIT, RUNNER, RUNNERS_PER_GENERATION, log
from .config import find_plugin_file


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
