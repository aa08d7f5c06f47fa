"""The admin API (routes), the control API and the status API."""

import ipaddress
import json
import time

from .common import log
from .etcd import EtcdError
from .httpserver import Response, error_page
from .plugins import PluginLoadError
from .routing import check_route


class Apis:
    """The admin, control and status APIs (a base of Server)."""

    # ---- admin API
    def admin_allowed(self, request):
        if not self.conf['allow_admin']:
            return True
        try:
            address = ipaddress.ip_address(request.client)
        except ValueError:
            return False
        return any(address in network for network in self.conf['allow_admin'])

    def admin_role(self, request):
        if not self.conf['admin_key_required']:
            return 'admin'
        key = request.header('x-api-key')
        if not key:
            return None
        for entry in self.conf['admin_keys']:
            if entry['key'] and entry['key'] == key:
                return entry['role']
        return None

    def admin(self, request):
        if not self.admin_allowed(request):
            return error_page(403)
        role = self.admin_role(request)
        if role is None:
            return Response(401, {'error_msg': 'failed to check token'})
        parts = [p for p in request.path.split('/') if p]
        if parts[:2] != ['apisix', 'admin'] or len(parts) < 3:
            return Response(404, {'error_msg': 'not found'})
        resource = parts[2]
        if resource != 'routes':
            return Response(404, {'error_msg': 'not found'})
        item_id = parts[3] if len(parts) > 3 else None
        if len(parts) > 4:
            return Response(404, {'error_msg': 'not found'})
        try:
            return self.admin_resource(request, resource, item_id)
        except EtcdError as error:
            log('error', 'admin API: etcd: %s' % error)
            return Response(503, {'error_msg': 'etcd: %s' % error})

    def admin_resource(self, request, resource, item_id):
        etcd = self.etcd
        base = etcd.prefix + '/' + resource
        method = request.method
        if method == 'GET':
            if item_id is None:
                _header, kvs = etcd.range_prefix(base + '/')
                items = [self.admin_item(kv) for kv in kvs if kv['value'] != 'init_dir' and not kv['key'].endswith('/')]
                return Response(200, {'total': len(items), 'list': items})
            kv = etcd.get(base + '/' + item_id)
            if kv is None:
                return Response(404, {'message': 'Key not found'})
            return Response(200, self.admin_item(kv))
        if method == 'DELETE':
            if item_id is None:
                return Response(400, {'error_msg': 'missing %s id' % resource[:-1]})
            if not etcd.delete(base + '/' + item_id):
                return Response(404, {'message': 'Key not found'})
            return Response(200, {'key': base + '/' + item_id, 'deleted': '1'})
        if method != 'PUT':
            return Response(405, {'error_msg': 'not supported method'})
        try:
            value = json.loads(request.body or b'null')
        except ValueError as error:
            return Response(400, {'error_msg': 'invalid request body: %s' % error})
        if not isinstance(value, dict):
            return Response(400, {'error_msg': 'invalid request body: not an object'})
        if item_id is None:
            item_id = value.get('id')
            if item_id is None:
                return Response(400, {'error_msg': 'missing %s id' % resource[:-1]})
        item_id = str(item_id)
        if value.get('id') is not None and str(value['id']) != item_id:
            return Response(400, {'error_msg': 'wrong %s id' % resource[:-1]})
        error = check_route(value)
        if error:
            return Response(400, {'error_msg': 'invalid configuration: %s' % error})
        runtime = self.acquire_runtime()
        try:
            _chain, error = runtime.check_plugins(value.get('plugins'))
        except PluginLoadError as err:
            error = str(err)
        finally:
            runtime.release()
        if error:
            return Response(400, {'error_msg': error})
        key = base + '/' + item_id
        now = int(time.time())
        old = etcd.get(key)
        value['id'] = item_id
        value['update_time'] = now
        value['create_time'] = now
        if old:
            try:
                value['create_time'] = json.loads(old['value']).get('create_time', now)
            except (ValueError, AttributeError):
                pass
        etcd.put(key, json.dumps(value))
        return Response(200 if old else 201, {'key': key, 'value': value})

    @staticmethod
    def admin_item(kv):
        try:
            value = json.loads(kv['value'])
        except ValueError:
            value = kv['value']
        return {'key': kv['key'], 'value': value, 'createdIndex': kv['create_revision'],
                'modifiedIndex': kv['mod_revision']}

    # ---- control and status APIs
    def control(self, request):
        path = request.path.rstrip('/')
        if path == '/v1/schema' and request.method == 'GET':
            return Response(200, {'main': MAIN_SCHEMA, 'plugins': self.runtime.schema(), 'stream_plugins': {}})
        if path == '/v1/standin/plugins' and request.method == 'GET':
            runtime = self.runtime
            return Response(200, {name: dict(runtime.files[name]) for name in runtime.order})
        return Response(404, {'error_msg': 'not found'})

    def status(self, request):
        path = request.path.rstrip('/')
        if path == '/status':
            return Response(200, {'status': 'ok'})
        if path == '/status/ready':
            if self.loaded:
                return Response(200, {'status': 'ok'})
            return Response(503, {'status': 'error', 'error': 'worker id: 0 has not received configuration'})
        return Response(404, {'error_msg': 'not found'})


MAIN_SCHEMA = {
    'route': {'type': 'object', 'properties': {'uri': {'type': 'string'}, 'uris': {'type': 'array'},
                                               'methods': {'type': 'array'}, 'upstream': {'type': 'object'},
                                               'upstream_id': {}, 'plugins': {'type': 'object'}}},
    'upstream': {'type': 'object', 'properties': {'type': {'type': 'string'}, 'nodes': {}},
                 'required': ['nodes']},
}
