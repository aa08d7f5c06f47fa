# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore's decision (roles/etcd_cluster/tasks/restore_quorum_decision.yml) from the members' own views, put
together by the entry point quorum_views (tasks/quorum_views_said.yml):
refused when any member sees a quorum or could not tell, saying what each member saw. The task file runs in a real
ansible-playbook on three local hosts, each given the etcd_cluster_info answer its own host would get (the shapes
etcd_cluster_info returns: a view, or a failure with error_type)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
# Where tests/unit/conftest.py links the checkout as the collection (the decision uses its filter quorum_view).
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
VIEWS_SAID = os.path.join(REPO, 'roles', 'etcd_cluster', 'tasks', 'quorum_views_said.yml')
DECISION = os.path.join(REPO, 'roles', 'etcd_cluster', 'tasks', 'restore_quorum_decision.yml')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

QUORUM_REFUSAL = 'Refuse while a quorum of the old cluster runs'
UNSURE_REFUSAL = 'Refuse while a member could not tell whether a quorum runs'


def view(healthy, voting=3, leader='etcd03'):
    """What etcd_cluster_info returns (the keys the decision reads) when a member list was read."""
    return dict(quorum=healthy >= voting // 2 + 1, healthy_voting_members=healthy, voting_members=voting,
                quorum_size=voting // 2 + 1, leader=dict(id='8e9e05c52164694d', name=leader) if leader else {},
                healthy=False, problems=[])


def failure(error_type, msg):
    result = dict(failed=True, msg=msg)
    if error_type:
        result['error_type'] = error_type
    return result


UNREACHABLE = failure('EtcdConnectionError', 'Could not reach any etcd endpoint: POST /v3/cluster/member/list: '
                      'http://10.250.77.11:2379: [Errno 111] Connection refused')
NO_LEADER = failure('EtcdUnavailableError', 'etcd cannot serve the request now (no leader, unhealthy cluster or '
                    'timeout): HTTP 503 Unavailable (14): etcdserver: no leader')
BAD_PASSWORD = failure('EtcdAuthError', 'etcd refused the credentials or the permission (check user, password): '
                       'HTTP 401 Unauthenticated (16): etcdserver: authentication failed, invalid user ID or password')
BAD_TLS = failure('EtcdTLSError', 'TLS connection to etcd failed (check ca_cert, client_cert, client_key, '
                  'validate_certs): https://10.250.77.12:2379: certificate verify failed')
MODULE_BROKE = failure(None, 'missing required arguments: endpoints')


CASES = {
    'first member cut off': {'etcd01': view(healthy=0, leader=None), 'etcd02': view(healthy=2),
                             'etcd03': view(healthy=2)},
    'only etcd03 sees one': {'etcd01': UNREACHABLE, 'etcd02': NO_LEADER, 'etcd03': view(healthy=3, voting=5)},
    'cluster lost': {'etcd01': UNREACHABLE, 'etcd02': NO_LEADER, 'etcd03': view(healthy=1, leader=None)},
    'credentials': {'etcd01': UNREACHABLE, 'etcd02': BAD_PASSWORD, 'etcd03': UNREACHABLE},
    'tls': {'etcd01': UNREACHABLE, 'etcd02': BAD_TLS, 'etcd03': UNREACHABLE},
    'module': {'etcd01': UNREACHABLE, 'etcd02': MODULE_BROKE, 'etcd03': UNREACHABLE},
    'dead machine, quorum elsewhere': {'etcd01': dict(unreachable=True, msg='Failed to connect to the host'),
                                       'etcd02': view(healthy=2), 'etcd03': view(healthy=2)},
    'quorum and could not tell': {'etcd01': BAD_PASSWORD, 'etcd02': view(healthy=3), 'etcd03': view(healthy=3)},
}


def start(directory, views):
    """ansible-playbook running the decision on three local hosts, each given the etcd_cluster_info answer its own
    host would get (views: {host: answer}), started in ``directory``. -> the running process."""
    (directory / 'hosts.yml').write_text(json.dumps({'etcd': {'hosts': dict((h, {}) for h in sorted(views))}}))
    (directory / 'views.json').write_text(json.dumps({'views': views}))
    (directory / 'play.yml').write_text(json.dumps([{
        'hosts': 'etcd', 'gather_facts': False, 'connection': 'local',
        'vars': {'__etcd_cluster_members': "{{ groups['etcd'] }}", 'ansible_python_interpreter': sys.executable},
        'tasks': [{'ansible.builtin.set_fact': {'__etcd_cluster_quorum_view': '{{ views[inventory_hostname] }}'}},
                  {'ansible.builtin.include_tasks': VIEWS_SAID},
                  {'ansible.builtin.include_tasks': DECISION}],
    }]))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(directory / 'tmp'), ANSIBLE_HOME=str(directory / 'home'))
    return subprocess.Popen([ANSIBLE_PLAYBOOK, '-i', 'hosts.yml', 'play.yml', '-e', '@views.json'],
                            cwd=str(directory), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def decided(tmp_path_factory):
    """Every case of CASES decided, each in an ansible-playbook of its own (all at once: a failed run_once task
    ends the play for every host). -> {case: {task name: etcd01's result}}."""
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')
    running = dict((name, start(tmp_path_factory.mktemp('decision'), views)) for name, views in CASES.items())
    outcome = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        assert out.lstrip().startswith('{'), '%s: ansible-playbook gave no result (rc %d): %s %s' % (
            name, process.returncode, out, err)
        tasks = json.loads(out)['plays'][0]['tasks']
        results = dict((t['task']['name'], t['hosts'].get('etcd01', {})) for t in tasks)
        # A refusal fails the play; a decision that lets the restore go on ends it with rc 0.
        assert (process.returncode == 0) == (not any(r.get('failed') for r in results.values())), (name, out)
        outcome[name] = results
    return outcome


def test_a_first_member_cut_off_does_not_hide_the_quorum_the_others_run(decided):
    refusal = decided['first member cut off'][QUORUM_REFUSAL]
    assert refusal['failed']
    assert refusal['msg'].startswith(
        'Refusing to restore: the old cluster still has a quorum (2 of 3 voting members healthy, 2 needed; leader '
        'etcd03), as seen from etcd02, etcd03. Each member\'s own view: etcd01: no quorum (0 of 3 voting members '
        'healthy, 2 needed; leader none); etcd02: a quorum (2 of 3 voting members healthy, 2 needed; leader '
        'etcd03); etcd03: a quorum (2 of 3 voting members healthy, 2 needed; leader etcd03). A restore replaces')
    assert refusal['msg'].endswith('Nothing was changed.')


def test_one_member_seeing_a_quorum_is_enough_and_its_figures_are_quoted(decided):
    msg = decided['only etcd03 sees one'][QUORUM_REFUSAL]['msg']
    assert msg.startswith('Refusing to restore: the old cluster still has a quorum (3 of 5 voting members healthy, '
                          '3 needed; leader etcd03), as seen from etcd03. ')
    views = 'etcd01: no quorum (%s); etcd02: no quorum (%s); etcd03: a quorum' % (UNREACHABLE['msg'], NO_LEADER['msg'])
    assert views in msg


def test_a_lost_cluster_passes_whatever_each_member_could_reach(decided):
    results = decided['cluster lost']
    assert results[QUORUM_REFUSAL]['msg'] == results[UNSURE_REFUSAL]['msg'] == 'All assertions passed', results
    assert not [name for name, result in results.items() if result.get('failed')], results


@pytest.mark.parametrize('case,answer', [('credentials', BAD_PASSWORD), ('tls', BAD_TLS), ('module', MODULE_BROKE)])
def test_a_member_that_could_not_tell_refuses(decided, case, answer):
    results = decided[case]
    assert not results[QUORUM_REFUSAL].get('failed')
    msg = results[UNSURE_REFUSAL]['msg']
    assert results[UNSURE_REFUSAL]['failed']
    assert msg.startswith('Refusing to restore: etcd02 could not tell whether the old cluster still has a quorum')
    assert 'etcd02: could not tell (%s)' % answer['msg'] in msg
    assert msg.endswith('Nothing was changed.')


def test_a_quorum_seen_is_reported_before_a_member_that_could_not_tell(decided):
    results = decided['quorum and could not tell']
    assert 'as seen from etcd02, etcd03.' in results[QUORUM_REFUSAL]['msg']
    assert UNSURE_REFUSAL not in results


def test_an_unreachable_host_gives_no_view_and_the_others_still_count(decided):
    results = decided['dead machine, quorum elsewhere']
    msg = results[QUORUM_REFUSAL]['msg']
    assert 'as seen from etcd02, etcd03.' in msg
    assert "Each member's own view: etcd01: no view (the host is unreachable); etcd02: a quorum" in msg
