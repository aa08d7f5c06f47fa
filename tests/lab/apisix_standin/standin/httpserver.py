"""A small HTTP/1.1 server: requests, responses, keep-alive connections, listeners."""

import http.client
import json
import select
import socket
import threading
import time
import traceback
import urllib.parse

from .common import HOP_BY_HOP, KEEPALIVE_TIMEOUT, VERSION, log


class Request:
    def __init__(self, method, target, version, headers, body, client):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers            # list of (name, value)
        self.body = body
        self.client = client
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path or '/'
        self.query = parsed.query

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Response:
    def __init__(self, status, body=b'', headers=None, content_type='application/json'):
        self.status = status
        if isinstance(body, (dict, list)):
            body = (json.dumps(body) + '\n').encode()
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        self.headers = list(headers or [])
        if content_type and not any(k.lower() == 'content-type' for k, _value in self.headers):
            self.headers.append(('Content-Type', content_type))
        self.upstream = '-'
        self.upstream_status = '-'
        self.head_length = None


def error_page(status):
    reason = http.client.responses.get(status, 'Error')
    return Response(status, '<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n'
                    '<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n' % (status, reason, status, reason),
                    content_type='text/html; charset=utf-8')


class BadRequest(Exception):
    pass


class Connection:
    """One client connection: HTTP/1.1 with keep-alive, handled on its own thread."""

    def __init__(self, server, sock, address, listener):
        self.server = server
        self.sock = sock
        self.address = address
        self.listener = listener
        self.buffer = bytearray()

    def recv_more(self, deadline):
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise socket.timeout('client timed out')
            ready, _writable, _failed = select.select([self.sock], [], [], min(wait, 0.5))
            if ready:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError('client closed the connection')
                self.buffer += data
                return

    def wait_for_head(self):
        """Wait for a request head; returns False when the connection should be closed instead."""
        idle_since = time.monotonic()
        while b'\r\n\r\n' not in self.buffer:
            if not self.buffer:
                # a request already waiting is served even while quitting; an idle connection is closed then
                quitting = self.server.quitting.is_set()
                ready, _writable, _failed = select.select([self.sock], [], [], 0 if quitting else 0.25)
                if not ready:
                    if quitting or time.monotonic() - idle_since > KEEPALIVE_TIMEOUT:
                        return False
                    continue
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.buffer += data
            else:
                if len(self.buffer) > 65536:
                    raise BadRequest('request head too large')
                self.recv_more(time.monotonic() + 60)
        return True

    def read_request(self):
        end = self.buffer.index(b'\r\n\r\n')
        head = bytes(self.buffer[:end]).decode('latin-1')
        del self.buffer[:end + 4]
        lines = head.split('\r\n')
        parts = lines[0].split(' ')
        if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
            raise BadRequest('bad request line %r' % lines[0][:100])
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(':')
            if not sep or not name.strip():
                raise BadRequest('bad header line')
            headers.append((name.strip(), value.strip()))
        request = Request(parts[0], parts[1], parts[2], headers, b'', self.address[0])
        deadline = time.monotonic() + 60
        if (request.header('transfer-encoding') or '').lower().endswith('chunked'):
            request.body = self.read_chunked(deadline)
        else:
            length = request.header('content-length')
            if length:
                try:
                    length = int(length)
                except ValueError:
                    raise BadRequest('bad content-length')
                while len(self.buffer) < length:
                    self.recv_more(deadline)
                request.body = bytes(self.buffer[:length])
                del self.buffer[:length]
        return request

    def read_line(self, deadline):
        while b'\r\n' not in self.buffer:
            self.recv_more(deadline)
        end = self.buffer.index(b'\r\n')
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def read_chunked(self, deadline):
        body = bytearray()
        while True:
            size_line = self.read_line(deadline).split(b';')[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest('bad chunk size')
            if size == 0:
                while self.read_line(deadline):
                    pass
                return bytes(body)
            while len(self.buffer) < size + 2:
                self.recv_more(deadline)
            body += self.buffer[:size]
            del self.buffer[:size + 2]

    def send(self, request, response, keep_alive):
        reason = http.client.responses.get(response.status, 'Unknown')
        lines = ['HTTP/1.1 %d %s' % (response.status, reason)]
        names = set()
        for name, value in response.headers:
            if name.lower() in HOP_BY_HOP or name.lower() in ('content-length', 'server', 'date'):
                continue
            lines.append('%s: %s' % (name, value))
            names.add(name.lower())
        length = len(response.body) if response.head_length is None else response.head_length
        lines.append('Content-Length: %d' % length)
        lines.append('Date: %s' % time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime()))
        lines.append('Server: APISIX/%s' % VERSION)
        lines.append('Connection: %s' % ('keep-alive' if keep_alive else 'close'))
        data = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
        if request is None or request.method != 'HEAD':
            data += response.body
        self.sock.sendall(data)

    def run(self):
        self.server.connection_started(self)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                if not self.wait_for_head():
                    break
                started = time.time()
                try:
                    request = self.read_request()
                except BadRequest as error:
                    self.send(None, error_page(400), False)
                    log('info', 'bad request from %s: %s' % (self.address[0], error))
                    break
                self.server.request_started()
                try:
                    try:
                        response = self.server.dispatch(self.listener, request)
                    except Exception:  # a bug must not take the connection thread down silently
                        log('error', 'unexpected error: %s' % traceback.format_exc())
                        response = error_page(500)
                    connection = (request.header('connection') or '').lower()
                    if request.version == 'HTTP/1.0':
                        keep_alive = 'keep-alive' in connection
                    else:
                        keep_alive = 'close' not in connection
                    keep_alive = keep_alive and not self.server.quitting.is_set()
                    self.send(request, response, keep_alive)
                    self.server.access_log(self.listener, request, response, started)
                finally:
                    self.server.request_finished()
                if not keep_alive:
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.server.connection_finished(self)


class Listener:
    def __init__(self, server, kind, ip, port):
        self.server = server
        self.kind = kind
        self.ip, self.port = ip, port
        family = socket.AF_INET6 if ':' in ip else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(1024)
        self.closed = False
        self.thread = threading.Thread(target=self.accept_loop, name='listen-%s-%d' % (kind, port), daemon=True)

    def start(self):
        self.thread.start()

    def accept_loop(self):
        while not self.closed:
            try:
                ready, _writable, _failed = select.select([self.sock], [], [], 0.5)
                if not ready:
                    continue
                sock, address = self.sock.accept()
            except (OSError, ValueError):
                if self.closed:
                    return
                time.sleep(0.05)
                continue
            connection = Connection(self.server, sock, address, self)
            threading.Thread(target=connection.run, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
