"""Check mode writes nothing anywhere: every playbook that changes the deployment, run with --check (and --diff, as
an operator previews a change), each succeeding, leaves the etcd revisions, the member list, the files of every host
and the services as they were. Run early, on the healthy stack site.yml built."""

import json
import os

from conftest import Member, lab_client_tls, lab_host, start_playbook

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
PLUGINS = os.path.join(REPO, 'tests', 'lab', 'apisix_standin', 'example_plugins', 'v2', 'apisix', 'plugins')
HOSTS = ('etcd01', 'etcd02', 'etcd03', 'etcd04', 'etcd-single', 'gw01', 'apisix01', 'apisix02')
# Everything the roles write, outside the etcd data dirs (etcd changes those itself as time passes).
WATCHED = ('/etc', '/usr/local', '/usr/bin', '/var/lib/gatewayops', '/var/lib/etcd-emergency', '/var/backups',
           '/var/lib/etcd-backup', '/var/lib/etcd-seed', '/var/lib/etcd-restore', '/var/tmp')
UNITS = ('etcd', 'nginx', 'apisix', 'etcd-backup.timer', 'etcd-emergency-refresh.timer')
# A change each playbook would make, previewed.
RUNS = {
    'site': [],
    'backup': [],
    'replace_member': ['member=etcd03', 'force=true'],
    'add_member': ['member=etcd04'],
    'migrate_member': ['member=etcd03', 'new_host=etcd04'],
    'upgrade_etcd': [],
    'failover': ['force=true'],
    'maintenance': ['force=true'],
    # On the plain stack with plain settings: the plan (nothing to move), no site.yml part in check mode.
    'secure_migration': [],
    'rolling_update': ['source=' + PLUGINS, 'rolling_update_observe_seconds=1',
                       json.dumps({'apisix_node_custom_plugins': ['gatewayops-tag']})],
}


def files(host):
    listing = host.run("find %s -xdev -path '*/logs' -prune -o \\( -type f -o -type d -o -type l \\) "
                       "-printf '%%p %%m %%u %%s %%T@\\n' 2>/dev/null | sort" % ' '.join(WATCHED)).stdout
    return listing.splitlines()


def revision(member):
    found = member.etcdctl('endpoint', 'status', '-w', 'json')
    return json.loads(found.stdout)[0]['Status']['header']['revision'] if found.rc == 0 else None


def lab_state():
    hosts = dict((name, lab_host(name)) for name in HOSTS)
    etcd01, emergency = (Member(name, hosts[name], lab_client_tls()) for name in ('etcd01', 'etcd-single'))
    state = dict((name, files(host)) for name, host in hosts.items())
    state['units'] = dict((name, hosts[name].run('systemctl is-active %s' % ' '.join(UNITS)).stdout.split())
                          for name in HOSTS)
    state['revisions'] = [revision(etcd01), revision(emergency)]
    state['members'] = etcd01.etcdctl('member', 'list').stdout
    return state


def differences(before, after):
    out = []
    for key in before:
        if before[key] != after[key]:
            if isinstance(before[key], list) and key in HOSTS:
                gone, new = sorted(set(before[key]) - set(after[key])), sorted(set(after[key]) - set(before[key]))
                out.append('%s: before %s, after %s' % (key, gone[:10], new[:10]))
            else:
                out.append('%s: %s -> %s' % (key, before[key], after[key]))
    return out


def test_check_mode_changes_nothing(ansible_runner):
    # All at once: check mode takes no deployment lock, and each run only reads.
    before = lab_state()
    runs = dict((playbook, start_playbook(ansible_runner.inventory_file, playbook, *RUNS[playbook],
                                          options=['--check', '--diff'])) for playbook in sorted(RUNS))
    outputs = dict((playbook, (run.communicate()[0], run.returncode)) for playbook, run in runs.items())
    failed = dict((playbook, out[-3000:]) for playbook, (out, rc) in outputs.items() if rc != 0)
    assert not failed, 'failed with --check: %s' % failed
    changed = differences(before, lab_state())
    assert not changed, 'with --check, %s changed: %s' % (', '.join(sorted(RUNS)), changed)
