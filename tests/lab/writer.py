"""Lab writer: keeps putting numbered keys into etcd and records every acknowledged put.

usage: python3 tests/lab/writer.py --endpoints http://A:2379,http://B:2379 --log FILE [--prefix P]
                                   [--interval S] [--max-seconds S] [--retry-seconds S] [--stop-file F]

Each put goes to the first endpoint that answers (the v3 JSON gateway, standard library only). A put that
fails is retried, on the next endpoint, for up to --retry-seconds; only then is it recorded as failed. The log
is JSON lines: {"key", "value", "acked": true, "endpoint", "at", "attempts"} or {"key", "acked": false,
"error", "at"}. It stops after --max-seconds, or when --stop-file exists, and then writes a summary line
{"summary": {...}}. Tests read the log to check that every acknowledged key survived.
"""

import argparse
import base64
import json
import os
import time
import urllib.error
import urllib.request


def put(endpoint, key, value, timeout):
    body = json.dumps({'key': base64.b64encode(key.encode()).decode(),
                       'value': base64.b64encode(value.encode()).decode()}).encode()
    request = urllib.request.Request(endpoint.rstrip('/') + '/v3/kv/put', data=body,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        reply = json.loads(answer.read())
    if 'header' not in reply:
        raise RuntimeError('unexpected answer: %s' % reply)
    return reply


def put_with_retries(endpoints, key, value, retry_seconds, timeout):
    deadline = time.monotonic() + retry_seconds
    attempts, errors = 0, []
    while True:
        for endpoint in endpoints:
            attempts += 1
            try:
                put(endpoint, key, value, timeout)
                return endpoint, attempts, errors
            except (urllib.error.URLError, OSError, ValueError, RuntimeError) as error:
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
    options = parser.parse_args()
    endpoints = [e for e in options.endpoints.split(',') if e]

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
                endpoint, attempts, _errors = put_with_retries(endpoints, key, value, options.retry_seconds,
                                                               options.timeout)
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
