# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificates of roles/etcd_cluster/tasks/tls_issue.yml, issued by a real ansible-playbook on the controller
(community.crypto): a certificate whose names change (the front's name added to a member's) is issued again from
the same CA, with the same key; the CA is never replaced; a run with nothing new changes no file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

x509 = pytest.importorskip('cryptography.x509')

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
TLS_ISSUE = os.path.join(REPO, 'roles', 'etcd_cluster', 'tasks', 'tls_issue.yml')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def issue(directory, dns_names, extra=()):
    """tls_issue.yml for one member certificate (etcd01), and the items of ``extra``, in directory/pki."""
    (directory / 'play.yml').write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
        'vars': {'ansible_python_interpreter': sys.executable, 'etcd_cluster_tls_local_dir': str(directory / 'pki'),
                 'etcd_cluster_tls_valid_days': 30, 'etcd_cluster_initial_cluster_token': 'unit',
                 'etcd_cluster_tls_issue': [{'name': 'etcd01', 'dns_names': dns_names,
                                             'ip_addresses': ['10.0.0.1']}] + list(extra)},
        'tasks': [{'ansible.builtin.include_tasks': TLS_ISSUE}],
    }]))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(directory / 'tmp'), ANSIBLE_HOME=str(directory / 'home'),
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    done = subprocess.run([ANSIBLE_PLAYBOOK, 'play.yml'], cwd=str(directory), env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict((name, (directory / 'pki' / name).read_bytes())
                for name in ['ca.crt', 'ca.key', 'etcd01.crt', 'etcd01.key'] + [i['name'] + '.crt' for i in extra])


def dns_names(pem):
    cert = x509.load_pem_x509_certificate(pem)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_a_member_certificate_gains_the_front_name_from_the_same_ca(tmp_path):
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')
    before = issue(tmp_path, ['etcd01'])
    assert 'etcd-front' not in dns_names(before['etcd01.crt'])
    after = issue(tmp_path, ['etcd01', 'etcd-front'])
    assert after['ca.crt'] == before['ca.crt'] and after['ca.key'] == before['ca.key'], 'the CA was replaced'
    assert after['etcd01.key'] == before['etcd01.key']
    assert after['etcd01.crt'] != before['etcd01.crt']
    assert sorted(dns_names(after['etcd01.crt'])) == ['etcd-front', 'etcd01', 'localhost']
    ca = x509.load_pem_x509_certificate(after['ca.crt'])
    x509.load_pem_x509_certificate(after['etcd01.crt']).verify_directly_issued_by(ca)
    assert issue(tmp_path, ['etcd01', 'etcd-front']) == after, 'a run with nothing new changed a file'


TLS_GENERATE = os.path.join(REPO, 'roles', 'etcd_cluster', 'tasks', 'tls_generate.yml')


def test_a_member_moving_to_a_new_host_gets_one_certificate_for_both_addresses(tmp_path):
    # member_migrate (copy): etcd03 moves to etcd04, which is not in the group yet and carries the member's name.
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')
    hosts = {'etcd01': ('etcd01', '10.0.0.1'), 'etcd02': ('etcd02', '10.0.0.2'), 'etcd03': ('etcd03', '10.0.0.3'),
             'etcd04': ('etcd03', '10.0.0.4')}
    (tmp_path / 'hosts.yml').write_text(json.dumps({'all': {'hosts': dict(
        (h, {'etcd_cluster_member': {'name': name, 'address': address}}) for h, (name, address) in hosts.items())}}))
    (tmp_path / 'play.yml').write_text(json.dumps([{
        'hosts': 'etcd04', 'gather_facts': False, 'connection': 'local',
        'vars': {'ansible_python_interpreter': sys.executable, 'etcd_cluster_tls_local_dir': str(tmp_path / 'pki'),
                 'etcd_cluster_tls_valid_days': 30, 'etcd_cluster_initial_cluster_token': 'unit',
                 'etcd_cluster_tls_front_name': 'etcd-front', 'etcd_cluster_migrate_new_host': 'etcd04',
                 '__etcd_cluster_members': ['etcd01', 'etcd02', 'etcd03']},
        'tasks': [{'ansible.builtin.include_tasks': TLS_GENERATE}],
    }]))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_HOME=str(tmp_path / 'home'))
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'hosts.yml', 'play.yml'], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pem = (tmp_path / 'pki' / 'etcd03.crt').read_bytes()
    names = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(str(ip) for ip in names.get_values_for_type(x509.IPAddress)) == ['10.0.0.3', '10.0.0.4',
                                                                                   '127.0.0.1']
    assert {'etcd03', 'etcd04', 'etcd-front'} <= set(names.get_values_for_type(x509.DNSName))
    assert sorted(p.name for p in (tmp_path / 'pki').glob('*.crt')) == ['ca.crt', 'client.crt', 'etcd01.crt',
                                                                        'etcd02.crt', 'etcd03.crt']


def test_only_a_user_certificate_carries_a_common_name(tmp_path):
    # etcd takes a client certificate's common name as the user (no login: the emergency node's final snapshot
    # from members without a leader); every other certificate has none (etcd's JSON gateway refuses those).
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')
    user_item = {'name': 'etcd-single-user', 'label': 'etcd-root-client', 'server': False, 'common_name': 'root'}
    files = issue(tmp_path, ['etcd01'], extra=[user_item])
    user = x509.load_pem_x509_certificate(files['etcd-single-user.crt'])
    assert [a.value for a in user.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)] == ['root']
    usage = user.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    member = x509.load_pem_x509_certificate(files['etcd01.crt'])
    assert member.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME) == []


def test_a_removed_certificate_is_issued_again_from_the_same_ca(tmp_path):
    # docs/monitoring.md's answer to an expiring generated certificate: remove its .crt and run site.yml.
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.skip('ansible-playbook not installed')
    before = issue(tmp_path, ['etcd01', 'etcd-front'])
    (tmp_path / 'pki' / 'etcd01.crt').unlink()
    after = issue(tmp_path, ['etcd01', 'etcd-front'])
    assert after['ca.crt'] == before['ca.crt'] and after['ca.key'] == before['ca.key'], 'the CA was replaced'
    assert after['etcd01.key'] == before['etcd01.key']
    old = x509.load_pem_x509_certificate(before['etcd01.crt'])
    new = x509.load_pem_x509_certificate(after['etcd01.crt'])
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc >= old.not_valid_after_utc
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(after['ca.crt']))
