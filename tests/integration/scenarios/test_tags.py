"""Tags on the deployed stack (docs/groups-and-tags.md): site.yml --tags apisix runs the APISIX nodes' play alone and
changes nothing on a deployed stack; a tag that would run a phase of failover.yml without the one it needs is
refused before any host is touched."""

import re

from conftest import flat, recap_changed, run_playbook


def plays(out):
    """{play name: [task banners]} from a playbook's output."""
    found = {}
    for play, body in re.findall(r'^PLAY \[(.*?)\] \**\n(.*?)(?=^PLAY |\Z)', out, re.M | re.S):
        found[play] = [t for t in re.findall(r'^TASK \[(.*?)\]', body, re.M)
                       if not t.endswith('Validating arguments against arg spec') and ' : Validating arguments' not in t]
    return found


def test_site_with_the_apisix_tag_deploys_only_the_apisix_nodes(ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'site', options=['--tags', 'apisix'])
    assert rc == 0, out[-3000:]
    ran = plays(out)
    assert ran['Deploy the APISIX nodes'], out[-3000:]
    for other in ('Deploy the etcd cluster', 'Deploy the emergency single-node etcd',
                  'Deploy the etcd front and the APISIX upstreams on the gateway'):
        assert ran.get(other, []) == [], (other, ran.get(other))
    assert set(recap_changed(out).values()) == {0}, out[-3000:]


def test_failover_front_alone_is_refused_before_any_host(ansible_runner):
    rc, out = run_playbook(ansible_runner.inventory_file, 'failover', options=['--tags', 'front'])
    assert rc != 0
    assert ('Refused, nothing was changed: The tag front does not run alone: it needs preflight, emergency in the '
            'same run (--tags front,preflight,emergency)') in flat(out), out[-3000:]
    assert 'Check the extra vars and learn the addresses' not in out
