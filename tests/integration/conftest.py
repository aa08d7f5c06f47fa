"""Shared fixtures of the lab tests that Molecule's testinfra verifier runs.

Two independent views of the lab are used: testinfra (files, units, etcdctl inside the members) and the
`etcd3` gRPC client from the controller. Neither goes through the collection's own modules, except in tests
that are about those modules.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid

import pytest
import testinfra.utils.ansible_runner
import yaml

# The etcd3 client imports only with the pure-Python protobuf under protobuf 4+ (test harness only).
os.environ.setdefault('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION', 'python')
import etcd3  # noqa: E402  pylint: disable=wrong-import-position

ENV_FILE = '/etc/etcd/etcd.conf'
APISIX_CONFIG = '/usr/local/apisix/conf/config.yaml'
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB_SLOT = int(os.environ.get('LAB_SLOT') or 0)
# What the roles generated for this lab on the controller (inventory/lab/hosts.yml: etcd_cluster_credentials_dir,
# beside the inventory). Molecule links the lab's inventory into the scenario's own directory, which is then the
# inventory_dir the roles wrote to.
LAB_INVENTORY_DIR = (os.path.dirname(os.environ['MOLECULE_INVENTORY_FILE']) if os.environ.get('MOLECULE_INVENTORY_FILE')
                     else os.path.join(REPO, 'inventory', 'lab'))
LAB_CREDENTIALS = os.path.join(LAB_INVENTORY_DIR, '.credentials', 'lab%d' % LAB_SLOT)


def scenario_setting(name, default):
    """A setting of the scenario's vars file (GATEWAYOPS_TEST_EXTRA_VARS, as an operator's group_vars), else the
    roles' default."""
    path = os.environ.get('GATEWAYOPS_TEST_EXTRA_VARS')
    if not path:
        return default
    with open(path) as settings:
        return (yaml.safe_load(settings) or {}).get(name, default)


def lab_credential(name):
    """A secret the roles generated for this lab (lookup gatewayops.apisix_ha.credential), or None."""
    try:
        with open(os.path.join(LAB_CREDENTIALS, name)) as kept:
            return kept.read().strip()
    except IOError:
        return None


# etcd's root and APISIX users: authentication is on by default, with the passwords the roles generated unless
# the scenario gives them (molecule.yml verifier env); a plain-mode scenario logs in as nobody.
AUTH = bool(scenario_setting('etcd_cluster_auth', True))
ROOT_PASSWORD = os.environ.get('ETCD_TEST_ROOT_PASSWORD') or (lab_credential('etcd-root') if AUTH else None)
APISIX_PASSWORD = os.environ.get('ETCD_TEST_APISIX_PASSWORD') or (lab_credential('etcd-apisix') if AUTH else None)
ROOT_USER = 'root' if ROOT_PASSWORD else None
# Client and peer TLS: on by default; the URLs the tests build follow it.
TLS = bool(scenario_setting('etcd_cluster_tls', True))
SCHEME = 'https' if TLS else 'http'


def client_url(address, port=2379):
    """The URL of an etcd client port (a member's, the emergency node's, the gateway's front) in the lab's scheme."""
    return '%s://%s:%d' % (SCHEME, address, port)


def lab_client_tls():
    """Client certificate for TLS labs: named by the scenario (molecule.yml verifier env), else the one the roles
    generated for the lab (etcd_cluster's tls_generate: etcd-pki/client.*)."""
    pki = os.path.join(LAB_CREDENTIALS, 'etcd-pki')
    return dict(ca=os.environ.get('ETCD_TEST_CA') or os.path.join(pki, 'ca.crt'),
                cert=os.environ.get('ETCD_TEST_CERT') or os.path.join(pki, 'client.crt'),
                key=os.environ.get('ETCD_TEST_KEY') or os.path.join(pki, 'client.key'))


def writer_options():
    """tests/lab/writer.py's options for the lab's TLS and login (none in the plain mode)."""
    options = []
    if TLS:
        tls = lab_client_tls()
        options += ['--cacert', tls['ca'], '--cert', tls['cert'], '--key', tls['key']]
    if ROOT_USER:
        options += ['--user', ROOT_USER, '--password-file', os.path.join(LAB_CREDENTIALS, 'etcd-root')]
    return options


WRITER = os.path.join(REPO, 'tests', 'lab', 'writer.py')


class LabWriter(object):
    """tests/lab/writer.py in the background, writing to ``endpoints`` (its log at ``log``), with the lab's TLS and
    login unless ``secure`` is false. A context manager: stopped at the end of the with-block, or earlier by stop()
    (its stop file, then up to 60 s for it to write its summary; killed after that)."""

    def __init__(self, endpoints, log, *options, secure=True):
        self.log, self.stop_file = str(log), str(log) + '.stop'
        self.process = subprocess.Popen([sys.executable, WRITER, '--endpoints', ','.join(endpoints), '--log', self.log,
                                         '--stop-file', self.stop_file] + list(options)
                                        + (writer_options() if secure else []))

    def stop(self):
        if self.process.poll() is None:
            open(self.stop_file, 'w').close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def lab_connection():
    """A JSON-gateway connection (tests/lab/writer.py's) with the lab's TLS and login, as root."""
    sys.path.insert(0, os.path.join(REPO, 'tests', 'lab'))
    try:
        import writer  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    tls = lab_client_tls() if TLS else dict(ca=None, cert=None, key=None)
    return writer.Connection(tls['ca'], tls['cert'], tls['key'], ROOT_USER, ROOT_PASSWORD)


def _inventory(config):
    return config.getoption('ansible_inventory') or os.environ['MOLECULE_INVENTORY_FILE']


@pytest.fixture(scope='session')
def ansible_runner(request):
    return testinfra.utils.ansible_runner.AnsibleRunner(_inventory(request.config))


@pytest.fixture(scope='session')
def etcd_names(ansible_runner):
    """Inventory names of the cluster members, which are also their etcd member names."""
    return sorted(ansible_runner.get_hosts('etcd'))


def container_name(inventory_name):
    """The lab container of an inventory host (inventory/lab/hosts.yml: LAB_SLOT N > 0 adds "-sN")."""
    return inventory_name + ('-s%d' % LAB_SLOT if LAB_SLOT else '')


def lab_host(inventory_name):
    """testinfra's view of a lab host, by the docker backend: testinfra's ansible backend would take the
    inventory's ansible_host without templating it."""
    return testinfra.get_host('docker://' + container_name(inventory_name))


@pytest.fixture(scope='session')
def etcd_hosts(etcd_names):
    return {name: lab_host(name) for name in etcd_names}


def read_env_file(host):
    """The ETCD_* settings the role wrote on a member, as a dict."""
    settings = {}
    for line in host.file(ENV_FILE).content_string.splitlines():
        line = line.strip()
        if line and not line.startswith('#') and '=' in line:
            key, value = line.split('=', 1)
            settings[key] = value.strip().strip('"')
    return settings


class Member(object):
    """One deployed member: its settings, an etcd3 client to it, and etcdctl inside it."""

    def __init__(self, name, host, tls):
        self.name = name
        self.host = host
        self.env = read_env_file(host)
        self.client_url = self.env['ETCD_ADVERTISE_CLIENT_URLS'].split(',')[0]
        self.address = self.client_url.split('://', 1)[1].rsplit(':', 1)[0]
        self.port = int(self.client_url.rsplit(':', 1)[1])
        self.tls = tls

    def client(self, user=ROOT_USER, password=ROOT_PASSWORD):
        """An etcd3 client to the member; as root when the scenario switched authentication on."""
        kwargs = dict(host=self.address, port=self.port, timeout=10)
        if self.client_url.startswith('https'):
            kwargs.update(ca_cert=self.tls['ca'], cert_cert=self.tls['cert'], cert_key=self.tls['key'])
        if user:
            kwargs.update(user=user, password=password)
        client = etcd3.client(**kwargs)
        if user and not self.client_url.startswith('https'):
            # gRPC refuses call credentials on a plain channel; the client sends the same token as metadata too.
            client.call_credentials = None
        return client

    def module_connection(self):
        """The connection options of the collection's etcd modules run on this member: its own certificate (which
        carries clientAuth) and root's login, as the roles' module defaults give them."""
        options = {}
        if self.client_url.startswith('https'):
            options.update(ca_cert=self.env['ETCD_TRUSTED_CA_FILE'], client_cert=self.env['ETCD_CERT_FILE'],
                           client_key=self.env['ETCD_KEY_FILE'])
        if ROOT_USER:
            options.update(user=ROOT_USER, password=ROOT_PASSWORD)
        return options

    def etcdctl(self, *args):
        """Run etcdctl on the member against its own client URL; returns the command result."""
        tls = []
        if self.client_url.startswith('https'):
            tls = ['--cacert', self.env['ETCD_TRUSTED_CA_FILE'], '--cert', self.env['ETCD_CERT_FILE'],
                   '--key', self.env['ETCD_KEY_FILE']]
        auth = ['--user', shlex.quote('%s:%s' % (ROOT_USER, ROOT_PASSWORD))] if ROOT_USER else []
        cmd = ['ETCDCTL_API=3', 'etcdctl', '--endpoints', self.client_url] + tls + auth
        return self.host.run(' '.join(cmd + list(args)))

    def journal(self, lines=60):
        return self.host.run('journalctl -u etcd --no-pager -n %d' % lines).stdout


class ModuleFailed(Exception):
    """A module run by run_module failed; .result is its result."""

    def __init__(self, result):
        super(ModuleFailed, self).__init__(result.get('msg', result))
        self.result = result


def run_module(inventory, host, module, args):
    """Run a module on one lab host for real and return its result; raise ModuleFailed when it fails.

    testinfra's host.ansible() cannot be used for this: under ansible-core 2.19 the result it reads back has
    no `failed` key, so a failing module looks like a success to it.
    """
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json')
    done = subprocess.run(['ansible', '-i', inventory, host, '-m', module, '-a', json.dumps(args)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    try:
        result = json.loads(done.stdout)['plays'][0]['tasks'][0]['hosts'][host]
    except (ValueError, KeyError, IndexError):
        raise AssertionError('ansible gave no result (rc %d): %s %s' % (done.returncode, done.stdout, done.stderr))
    if result.get('failed') or result.get('unreachable'):
        raise ModuleFailed(result)
    return result


@pytest.fixture(scope='session')
def module_runner(ansible_runner):
    """run(host, module, **args): a collection module run on a lab host (see run_module)."""
    def run(host, module, **args):
        return run_module(ansible_runner.inventory_file, host, module, args)
    return run


@pytest.fixture(scope='session')
def client_tls():
    return lab_client_tls()


@pytest.fixture(scope='session')
def members(etcd_hosts, client_tls):
    return [Member(name, host, client_tls) for name, host in sorted(etcd_hosts.items())]


@pytest.fixture(scope='module')
def emergency(client_tls):
    """The emergency node (etcd_emergency), as a Member."""
    return Member('etcd-single', lab_host('etcd-single'), client_tls)


def read_writer_log(path):
    """The log of tests/lab/writer.py -> (acked {key: value}, failed entries, summary dict or None)."""
    acked, failed, summary = {}, [], None
    with open(path) as log:
        for line in log:
            entry = json.loads(line)
            if 'summary' in entry:
                summary = entry['summary']
            elif entry.get('acked'):
                acked[entry['key']] = entry['value']
            else:
                failed.append(entry)
    return acked, failed, summary


def wait_for(check, timeout=30.0, interval=0.5):
    """Call check() until it returns a true value or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def start_playbook(inventory, playbook, *extra, options=()):
    """ansible-playbook on the lab, started: PLAYBOOK is a path, or NAME for the collection's
    gatewayops.apisix_ha.NAME; each EXTRA is one -e (after the scenario's GATEWAYOPS_TEST_EXTRA_VARS file, when
    set); OPTIONS go on the command line as they are. -> the Popen (its
    own session, so that a test can kill the run as a whole), output without colours on stdout."""
    if not playbook.endswith('.yml'):
        playbook = 'gatewayops.apisix_ha.' + playbook
    cmd = ['ansible-playbook', '-i', inventory, playbook] + list(options)
    # A scenario's own settings, as an operator keeps them in group_vars (molecule.yml verifier env).
    if os.environ.get('GATEWAYOPS_TEST_EXTRA_VARS'):
        cmd += ['-e', '@' + os.environ['GATEWAYOPS_TEST_EXTRA_VARS']]
    for e in extra:
        cmd += ['-e', e]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1'))


def recap_changed(out):
    """{host: tasks changed} from the PLAY RECAP of a playbook's output."""
    return dict((host, int(n)) for host, n in re.findall(r'^([\w.-]+)\s+: ok=\d+\s+changed=(\d+)', out, re.M))


def flat(text):
    """The output with every run of white space made one space: the YAML callback wraps long messages."""
    return ' '.join(text.split())


def run_playbook(inventory, playbook, *extra, options=()):
    """start_playbook, waited for. -> (returncode, output). With the secure default, run as an operator who debugs
    would run it (-vvv --diff), and what it printed must show none of the lab's secrets (printed_secrets)."""
    if AUTH:
        options = list(options) + [o for o in ('-vvv', '--diff') if o not in options]
    run = start_playbook(inventory, playbook, *extra, options=options)
    out = run.communicate()[0]
    shown = printed_secrets(out)
    assert not shown, '%s printed %s:\n%s' % (playbook, ', '.join(shown), out[-3000:])
    return run.returncode, out


# --- secrets, never printed -----------------------------------------------------------------------------------

# A consumer's key under /apisix (where APISIX keeps consumer credentials), written at the start of a secure
# scenario's session.
SECRET_KEY = '/apisix/consumers/gatewayops-never-printed'
SECRET_VALUE = 'gatewayops-secret-%s' % uuid.uuid4().hex
_secrets = {}


@pytest.fixture(scope='session', autouse=True)
def secret_under_apisix(members):
    """With the secure default, one value under /apisix that no playbook may print, written as the apisix user."""
    if AUTH and APISIX_PASSWORD:
        consumer = {'username': 'gatewayops-never-printed', 'plugins': {'key-auth': {'key': SECRET_VALUE}}}
        members[0].client(user='apisix', password=APISIX_PASSWORD).put(SECRET_KEY, json.dumps(consumer))
        _secrets['value under /apisix'] = SECRET_VALUE


def printed_secrets(out):
    """The names of the lab's secrets found in ``out``: etcd's passwords, a line of each private key the roles
    generated, the APISIX admin key, the value under /apisix. -> [] in the plain mode."""
    if not AUTH:
        return []
    if 'root password' not in _secrets:
        _secrets.update({'root password': ROOT_PASSWORD, 'apisix password': APISIX_PASSWORD})
        pki = os.path.join(LAB_CREDENTIALS, 'etcd-pki')
        for name in sorted(os.listdir(pki)) if os.path.isdir(pki) else []:
            if name.endswith('.key'):
                with open(os.path.join(pki, name)) as key:
                    body = [line for line in key.read().splitlines() if '-----' not in line]
                _secrets['private key ' + name] = body[0]
    config = lab_host('apisix01').file(APISIX_CONFIG)
    found = dict(_secrets)
    if config.exists:
        keys = (yaml.safe_load(config.content_string).get('deployment') or {}).get('admin', {}).get('admin_key', [])
        found.update(('admin key ' + k.get('name', ''), k['key']) for k in keys if k.get('key'))
    return sorted(name for name, secret in found.items() if secret and secret in out)


@pytest.fixture(scope='session')
def explain(members):
    """A failure message helper that appends every member's recent journal."""
    def _explain(message):
        return message + '\n' + '\n'.join('--- journal of %s ---\n%s' % (m.name, m.journal()) for m in members)
    return _explain


def assert_equal_hashes(members, explain):
    """Every member's hashkv at one revision (the first member's current one) is the same."""
    status = json.loads(members[0].etcdctl('endpoint', 'status', '-w', 'json').stdout)
    revision = status[0]['Status']['header']['revision']
    hashes = {}
    for member in members:
        result = member.etcdctl('endpoint', 'hashkv', '--rev=%d' % revision, '-w', 'json')
        assert result.rc == 0, explain(result.stderr)
        hashes[member.name] = json.loads(result.stdout)[0]['HashKV']['hash']
    assert len(set(hashes.values())) == 1, explain('hashkv differs at revision %d: %s' % (revision, hashes))


# --- the APISIX nodes ----------------------------------------------------------------------------------------

def curl(on, *args):
    """curl on a lab host -> (status code or 0, body)."""
    done = on.run('curl -s -m 10 -o /tmp/curl.out -w %%{http_code} %s; cat /tmp/curl.out' % ' '.join(
        shlex.quote(a) for a in args))
    code, body = done.stdout[:3], done.stdout[3:]
    return (int(code) if code.isdigit() else 0), body


def admin_key():
    """The deployment's admin key, from apisix01's config.yaml."""
    config = yaml.safe_load(lab_host('apisix01').file(APISIX_CONFIG).content_string)
    return config['deployment']['admin']['admin_key'][0]['key']


def admin(node, method, path, body=None, key=None):
    """The admin API of a node, asked on the node itself (inside allow_admin)."""
    args = ['-X', method, 'http://127.0.0.1:9180/apisix/admin/' + path, '-H', 'X-API-KEY: ' + (key or admin_key())]
    if body is not None:
        args += ['-H', 'Content-Type: application/json', '-d', json.dumps(body)]
    return curl(lab_host(node), *args)
