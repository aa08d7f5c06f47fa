"""Routes and upstreams as read from etcd: checks, matching, weighted round robin."""

import random
import threading


def parse_nodes(nodes):
    out = []
    if isinstance(nodes, dict):
        for address, weight in nodes.items():
            host, _colon, port = str(address).rpartition(':')
            if not host:
                host, port = port, '80'
            out.append((host.strip('[]'), int(port), int(weight)))
    elif isinstance(nodes, list):
        for node in nodes:
            out.append((str(node['host']), int(node.get('port', 80)), int(node.get('weight', 1))))
    return [n for n in out if n[2] > 0]


class Balancer:
    """Smooth weighted round robin (nginx's) over an upstream's nodes."""

    def __init__(self, upstream):
        self.nodes = parse_nodes(upstream.get('nodes'))
        self.current = [0] * len(self.nodes)
        self.lock = threading.Lock()
        timeout = upstream.get('timeout') or {}
        self.connect_timeout = float(timeout.get('connect', 60))
        self.read_timeout = float(timeout.get('read', 60))
        self.retries = upstream.get('retries')
        self.scheme = upstream.get('scheme', 'http')
        self.pass_host = upstream.get('pass_host', 'pass')
        self.upstream_host = upstream.get('upstream_host')

    def order(self):
        """All nodes, the one picked by the weights first."""
        if not self.nodes:
            return []
        with self.lock:
            total = 0
            best = 0
            for i, node in enumerate(self.nodes):
                self.current[i] += node[2]
                total += node[2]
                if self.current[i] > self.current[best]:
                    best = i
            self.current[best] -= total
        rest = [n for i, n in enumerate(self.nodes) if i != best]
        random.shuffle(rest)
        return [self.nodes[best]] + rest


class RouteTable:
    def __init__(self, routes, upstreams):
        self.routes = routes          # id -> {'value', 'mod_revision'}
        self.upstreams = upstreams
        self.exact = {}
        self.prefixes = []
        self.balancers = {}
        for route_id, item in sorted(routes.items()):
            route = item['value']
            for uri in route.get('uris') or ([route['uri']] if route.get('uri') else []):
                if uri.endswith('*'):
                    self.prefixes.append((uri[:-1], route_id))
                else:
                    self.exact.setdefault(uri, route_id)
        self.prefixes.sort(key=lambda e: -len(e[0]))

    def match(self, path):
        """The route of ``path``: an exact uri first, then the longest prefix (a uri ending in ``*``)."""
        if path in self.exact:
            return self.exact[path]
        for prefix, route_id in self.prefixes:
            if path.startswith(prefix):
                return route_id
        return None

    def balancer(self, route_id):
        if route_id in self.balancers:
            return self.balancers[route_id]
        route = self.routes[route_id]['value']
        upstream = route.get('upstream')
        if upstream is None and route.get('upstream_id') is not None:
            item = self.upstreams.get(str(route['upstream_id']))
            upstream = item['value'] if item else None
        balancer = Balancer(upstream) if upstream else None
        self.balancers[route_id] = balancer
        return balancer


def check_upstream(value):
    if 'nodes' not in value:
        return 'property "nodes" is required'
    nodes = value['nodes']
    if not isinstance(nodes, (dict, list)):
        return 'property "nodes" must be an object or an array'
    try:
        parse_nodes(nodes)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return 'invalid nodes: %s' % error
    if value.get('type', 'roundrobin') not in ('roundrobin', 'chash', 'ewma', 'least_conn'):
        return 'invalid upstream type %r' % value.get('type')
    return None


def check_route(value):
    uris = value.get('uris') or ([value['uri']] if 'uri' in value else [])
    if not uris:
        return 'property "uri" or "uris" is required'
    if not all(isinstance(u, str) and u.startswith('/') for u in uris):
        return 'uri must be a string starting with /'
    if not any(key in value for key in ('upstream', 'upstream_id', 'plugins', 'service_id', 'plugin_config_id')):
        return 'one of upstream, upstream_id or plugins is required'
    if value.get('upstream') is not None:
        if not isinstance(value['upstream'], dict):
            return 'upstream must be an object'
        return check_upstream(value['upstream'])
    if value.get('plugins') is not None and not isinstance(value['plugins'], dict):
        return 'plugins must be an object'
    return None
