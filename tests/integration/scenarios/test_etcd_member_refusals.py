"""etcd_member refuses what would hurt the cluster, says why, and changes nothing."""

import pytest

from conftest import ModuleFailed, wait_for


def member_table(member):
    """(id, name, peer URLs, learner) of every member, as the independent client sees them."""
    return sorted((m.id, m.name, tuple(m.peer_urls)) for m in member.client().members)


@pytest.fixture
def refused(module_runner):
    """refused(member, **args): run etcd_member on a member, expect a failure, return its message."""
    def run(member, **args):
        args.setdefault('endpoints', [member.client_url])
        args = dict(member.module_connection(), **args)
        with pytest.raises(ModuleFailed) as failure:
            module_runner(member.name, 'gatewayops.apisix_ha.etcd_member', **args)
        return failure.value.result.get('msg', '')
    return run


@pytest.fixture
def unchanged(members):
    """Asserts after the test that the member table is what it was before it."""
    before = member_table(members[0])
    yield
    assert member_table(members[0]) == before


def test_unknown_member_name_is_refused(members, unchanged, refused):
    message = refused(members[0], name='etcd-not-a-member', state='promoted')
    assert 'etcd-not-a-member' in message and 'no member of that name' in message, message


def test_malformed_peer_url_is_refused(members, unchanged, refused):
    message = refused(members[0], name='etcd09', peer_urls=['htp//10.250.77.19:2380'], learner=True)
    assert 'htp//10.250.77.19:2380' in message, message


def test_peer_url_of_another_member_is_refused(members, unchanged, refused):
    taken = members[1].env['ETCD_INITIAL_ADVERTISE_PEER_URLS']
    message = refused(members[0], name='etcd09', peer_urls=[taken], learner=True)
    assert taken in message and members[1].name in message, message


def test_removal_that_would_lose_quorum_is_refused(members, unchanged, refused, explain):
    # With one member down, removing a healthy one leaves two voters of which only one answers.
    down, removed, runner = members[2], members[1], members[0]
    down.host.run('systemctl stop etcd')
    try:
        message = refused(runner, name=removed.name, state='absent', endpoints=[runner.client_url, removed.client_url])
        assert 'quorum' in message, message
    finally:
        down.host.run('systemctl start etcd')
        healthy = wait_for(lambda: down.etcdctl('endpoint', 'health').rc == 0, timeout=60)
        assert healthy, explain('%s did not come back' % down.name)
