"""Lab backend: the upstream of the test route (tests only, never shipped).

usage: backend.py [--address 0.0.0.0] [--port 8080] [--log-dir /var/lib/lab-backend]

Answers any request with 200 and JSON {"server": hostname, "method", "path", "request_id": X-Request-Id header}
(HTTP/1.1, keep-alive, one thread per connection). Every POST's X-Request-Id ("-" when absent) is appended to
<log-dir>/posts.log, one line each, before the answer is sent, so tests can count duplicated POSTs.
A `delay=<seconds>` query parameter (at most 30) makes the answer wait: a request that is in flight on purpose.
"""

import argparse
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'lab-backend'
    sys_version = ''

    def setup(self):
        super().setup()
        # headers and body are two writes: without this, Nagle and delayed ACKs add 40 ms on keep-alive connections
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the signature is the base class's
        pass

    def answer(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        parsed = urllib.parse.urlsplit(self.path)
        request_id = self.headers.get('X-Request-Id')
        delay = urllib.parse.parse_qs(parsed.query).get('delay', ['0'])[0]
        try:
            delay = min(max(float(delay), 0.0), 30.0)
        except ValueError:
            delay = 0.0
        if self.command == 'POST':
            self.server.record_post(request_id or '-')
        if delay:
            time.sleep(delay)
        data = json.dumps({'server': self.server.hostname, 'method': self.command, 'path': parsed.path,
                           'request_id': request_id, 'body_bytes': len(body), 'delay': delay}).encode() + b'\n'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address, log_dir):
        super().__init__(address, Handler)
        self.hostname = socket.gethostname()
        os.makedirs(log_dir, exist_ok=True)
        self.posts = open(os.path.join(log_dir, 'posts.log'), 'a')
        self.posts_lock = threading.Lock()

    def record_post(self, request_id):
        with self.posts_lock:
            self.posts.write(request_id + '\n')
            self.posts.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--address', default='0.0.0.0')
    parser.add_argument('--port', type=int, default=8080)
    parser.add_argument('--log-dir', default='/var/lib/lab-backend')
    options = parser.parse_args()
    server = Server((options.address, options.port), options.log_dir)
    server.serve_forever()


if __name__ == '__main__':
    main()
