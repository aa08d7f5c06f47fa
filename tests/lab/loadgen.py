"""Steady GET and POST traffic through the gateway, every request recorded (lab only, never shipped).

usage: python3 loadgen.py --url http://GW:80/lab/ --log FILE --stop-file FILE [--rate 30] [--max-seconds 900]

Alternates GET and POST at --rate requests per second (spread over a few threads) until the stop file appears or
--max-seconds pass. Each POST carries a unique X-Request-Id, so that the lab backend's log tells whether one was
applied twice. One JSON line per request in --log: {"at", "method", "id", "status", "tag", "error"}; status is
null when no HTTP answer came back (connection refused, reset, timeout). Bounded in time and count: it stops by
itself.
"""

import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid


def one_request(url, method, request_id):
    data = json.dumps({'id': request_id}).encode() if method == 'POST' else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={'X-Request-Id': request_id, 'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status, answer.headers.get('X-Gatewayops-Tag'), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get('X-Gatewayops-Tag'), None
    except OSError as exc:
        return None, None, str(exc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--url', required=True)
    parser.add_argument('--log', required=True)
    parser.add_argument('--stop-file', required=True)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--max-seconds', type=float, default=900.0)
    options = parser.parse_args()

    lock = threading.Lock()
    started = time.monotonic()
    sequence = [0]
    log = open(options.log, 'a', buffering=1)

    def worker():
        interval = options.threads / options.rate
        next_at = time.monotonic()
        while not os.path.exists(options.stop_file) and time.monotonic() - started < options.max_seconds:
            with lock:
                sequence[0] += 1
                n = sequence[0]
            method = 'POST' if n % 2 else 'GET'
            request_id = '%s-%d' % (uuid.uuid4().hex[:12], n)
            status, tag, error = one_request(options.url + str(n), method, request_id)
            entry = dict(at=time.time(), method=method, id=request_id, status=status, tag=tag, error=error)
            with lock:
                log.write(json.dumps(entry) + '\n')
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=worker, daemon=True) for _thread in range(options.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()


if __name__ == '__main__':
    main()
