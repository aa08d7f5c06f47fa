"""The runbook's plain mode (molecule/plain): asked for by name, it is what it says - plain HTTP on every member and
through the front, anonymous clients served - and every run says so."""

import json
import urllib.request

from conftest import AUTH, TLS, lab_host, run_playbook


def test_the_scenario_asks_for_the_plain_mode():
    assert not AUTH and not TLS, 'molecule/plain runs with molecule/plain-vars.yml'


def test_every_url_is_plain_http_and_no_client_certificate_is_asked(members):
    for member in members:
        assert member.client_url.startswith('http://'), member.env
        assert member.env['ETCD_INITIAL_ADVERTISE_PEER_URLS'].startswith('http://'), member.env
        assert member.env.get('ETCD_CLIENT_CERT_AUTH', 'false') == 'false', member.env


def test_anonymous_clients_are_served_on_a_member_and_through_the_front(members):
    client = members[0].client(user=None)
    client.put('/apisix/plain-mode-test', 'anyone')
    assert client.get('/apisix/plain-mode-test')[0] == b'anyone'
    front = lab_host('gw01').interface('eth0').addresses[0]
    with urllib.request.urlopen('http://%s:2379/version' % front, timeout=5) as answer:
        assert 'etcdcluster' in json.loads(answer.read())


def test_the_apisix_nodes_reach_etcd_over_http_without_a_login():
    for name in ('apisix01', 'apisix02'):
        config = lab_host(name).file('/usr/local/apisix/conf/config.yaml').content_string
        assert 'http://' in config and 'https://' not in config and 'user:' not in config, name


def test_every_run_says_what_the_plain_mode_exposes(ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'etcd_cluster', options=['--check'])
    assert rc == 0, out[-3000:]
    said = ' '.join(out.split())
    assert 'Plain mode asked for by name (etcd_cluster_auth: false, etcd_cluster_tls: false)' in said, out[-3000:]
    assert 'reads and writes every key' in said and 'crosses the network in clear' in said
