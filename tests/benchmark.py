"""Benchmark command: times the collection's playbooks on fresh lab containers and prints JSON.

usage: python3 tests/benchmark.py [--distro bookworm|trixie] [--keep]

Figures: wall time of playbooks/site.yml on fresh containers, wall time of the idempotent re-run, their ratio,
and how many tasks the re-run changed (0 expected). Timings are reported, never asserted.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*argv, env):
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-6000:])
        raise SystemExit('%s failed with exit code %d' % (' '.join(argv), result.returncode))
    return elapsed, result.stdout


def changed_tasks(output):
    return sum(int(n) for n in re.findall(r'\bchanged=(\d+)', output))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--distro', default=os.environ.get('LAB_DISTRO', 'bookworm'), choices=['bookworm', 'trixie'])
    parser.add_argument('--keep', action='store_true', help='leave the lab running afterwards')
    options = parser.parse_args()

    subprocess.run([os.path.join(REPO, 'tests/lab/bootstrap.sh')], check=True, stdout=sys.stderr,
                   env=dict(os.environ, LAB_DISTROS=options.distro))
    env = dict(os.environ, LAB_DISTRO=options.distro)
    env.update(json.loads(subprocess.check_output(
        ['bash', '-c', 'source tests/lab/env.sh && python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'],
        cwd=REPO, env=env)))

    run('ansible-playbook', 'tests/lab/destroy.yml', env=env)
    run('ansible-playbook', 'tests/lab/create.yml', env=env)
    try:
        fresh = run('ansible-playbook', 'playbooks/site.yml', env=env)[0]
        rerun, rerun_output = run('ansible-playbook', 'playbooks/site.yml', env=env)
    finally:
        if not options.keep:
            run('ansible-playbook', 'tests/lab/destroy.yml', env=env)

    print(json.dumps({
        'distro': options.distro,
        'site_yml_fresh_seconds': round(fresh, 2),
        'site_yml_rerun_seconds': round(rerun, 2),
        'rerun_to_fresh_ratio': round(rerun / fresh, 3),
        'rerun_changed_tasks': changed_tasks(rerun_output),
    }, indent=2))


if __name__ == '__main__':
    main()
