"""Lab writer: keeps putting numbered keys into etcd and records every acknowledged put.

usage: python3 tests/lab/writer.py --endpoints http://A:2379,http://B:2379 --log FILE [--prefix P]
                                   [--interval S] [--max-seconds S] [--retry-seconds S] [--stop-file F]
                                   [--cacert F --cert F --key F] [--user U --password-file F]

Each put goes to the first endpoint that answers (the v3 JSON gateway, standard library only). A put that
fails is retried, on the next endpoint, for up to --retry-seconds; only then is it recorded as failed. The log
is JSON lines: {"key", "value", "acked": true, "endpoint", "at", "attempts"} or {"key", "acked": false,
"error", "at"}. It stops after --max-seconds, or when --stop-file exists, and then writes a summary line
{"summary": {...}}. Tests read the log to check that every acknowledged key survived.
With https endpoints it verifies them with --cacert and shows --cert/--key (the front passes TLS through to whichever
member or emergency node serves, so host names are not checked); with --user it logs in on each endpoint (etcd's
simple tokens live in the member's memory: a token refused after a restart or a switch is renewed once).
"""

import argparse
import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request


class Connection(object):
    """How to reach etcd: the TLS context (None for http) and the login (None: anonymous)."""

    def __init__(self, cacert=None, cert=None, key=None, user=None, password=None):
        self.context = None
        if cacert:
            self.context = ssl.create_default_context(cafile=cacert)
            self.context.check_hostname = False
            if cert:
                self.context.load_cert_chain(cert, key)
        self.user, self.password = user, password
        self.tokens = {}

    def call(self, endpoint, path, payload, timeout, token=None):
        headers = {'Content-Type': 'application/json'}
        if token:
            headers['Authorization'] = token
        request = urllib.request.Request(endpoint.rstrip('/') + path, data=json.dumps(payload).encode(),
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.context) as answer:
            return json.loads(answer.read())

    def token(self, endpoint, timeout):
        if self.user and endpoint not in self.tokens:
            reply = self.call(endpoint, '/v3/auth/authenticate', {'name': self.user, 'password': self.password},
                              timeout)
            self.tokens[endpoint] = reply['token']
        return self.tokens.get(endpoint)

    def request(self, endpoint, path, payload, timeout):
        """POST payload to endpoint's path, logged in when a user is set; -> the answer.

        A token is renewed once when etcd refuses it, or when the request times out with it: etcd holds a request
        whose simple token names a raft index it has not applied until the request's deadline, and an endpoint that
        now reaches another etcd (the front after a failover) has not applied the old one's."""
        try:
            return self.call(endpoint, path, payload, timeout, self.token(endpoint, timeout))
        except urllib.error.HTTPError as error:
            said = error.read().decode(errors='replace')
            if not self.user or 'token' not in said:
                raise RuntimeError('HTTP %d: %s' % (error.code, said))
        except (TimeoutError, urllib.error.URLError):
            if not self.tokens.get(endpoint):
                raise
        self.tokens.pop(endpoint, None)
        return self.call(endpoint, path, payload, timeout, self.token(endpoint, timeout))

    def put(self, endpoint, key, value, timeout):
        body = {'key': base64.b64encode(key.encode()).decode(), 'value': base64.b64encode(value.encode()).decode()}
        reply = self.request(endpoint, '/v3/kv/put', body, timeout)
        if 'header' not in reply:
            raise RuntimeError('unexpected answer: %s' % reply)
        return reply


def put_with_retries(connection, endpoints, key, value, retry_seconds, timeout):
    deadline = time.monotonic() + retry_seconds
    attempts, errors = 0, []
    while True:
        for endpoint in endpoints:
            attempts += 1
            try:
                connection.put(endpoint, key, value, timeout)
                return endpoint, attempts, errors
            except (urllib.error.URLError, OSError, ValueError, KeyError, RuntimeError) as error:
                errors.append('%s: %s' % (endpoint, error))
        if time.monotonic() > deadline:
            raise RuntimeError('; '.join(errors[-len(endpoints):]))
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--endpoints', required=True)
    parser.add_argument('--log', required=True)
    parser.add_argument('--prefix', default='/gatewayops-writer/')
    parser.add_argument('--interval', type=float, default=0.05)
    parser.add_argument('--max-seconds', type=float, default=900)
    parser.add_argument('--retry-seconds', type=float, default=15)
    parser.add_argument('--timeout', type=float, default=3)
    parser.add_argument('--stop-file')
    parser.add_argument('--cacert')
    parser.add_argument('--cert')
    parser.add_argument('--key')
    parser.add_argument('--user')
    parser.add_argument('--password-file')
    options = parser.parse_args()
    endpoints = [e for e in options.endpoints.split(',') if e]
    password = None
    if options.password_file:
        with open(options.password_file) as secret:
            password = secret.read().strip()
    connection = Connection(options.cacert, options.cert, options.key, options.user, password)

    started = time.monotonic()
    acked = failed = retried = 0
    with open(options.log, 'a') as log:
        number = 0
        while time.monotonic() - started < options.max_seconds:
            if options.stop_file and os.path.exists(options.stop_file):
                break
            number += 1
            key = '%s%08d' % (options.prefix, number)
            value = 'value-%d' % number
            try:
                endpoint, attempts, _errors = put_with_retries(connection, endpoints, key, value,
                                                               options.retry_seconds, options.timeout)
                acked += 1
                retried += attempts > 1
                entry = dict(key=key, value=value, acked=True, endpoint=endpoint, at=time.time(), attempts=attempts)
            except RuntimeError as error:
                failed += 1
                entry = dict(key=key, acked=False, error=str(error), at=time.time())
            log.write(json.dumps(entry) + '\n')
            log.flush()
            time.sleep(options.interval)
        log.write(json.dumps({'summary': dict(acked=acked, failed=failed, retried=retried,
                                              seconds=round(time.monotonic() - started, 1))}) + '\n')


if __name__ == '__main__':
    main()
