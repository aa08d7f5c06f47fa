# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus alert rules the collection ships (roles/monitoring/files/gatewayops-etcd.rules.yml):
`promtool check rules`, `promtool test rules` on tests/unit/prometheus/*.test.yml, and what every alert must have
(each one firing and silent in those tests, a severity, a summary, a description, a runbook section in
docs/monitoring.md, metric names that page documents).

promtool comes from tests/lab/install-promtool.sh (bootstrap.sh runs it; tests/lab/env.sh puts it on PATH). Under
CI (CI=true) a missing promtool fails the tests that need it; elsewhere they are skipped, saying how to get it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
RULES = os.path.join(REPO, 'roles', 'monitoring', 'files', 'gatewayops-etcd.rules.yml')
TESTS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), 'prometheus', '*.test.yml')))
DOC = os.path.join(REPO, 'docs', 'monitoring.md')
SEVERITIES = ('warning', 'critical')


def promtool():
    found = shutil.which('promtool') or shutil.which(os.path.join(REPO, '.build', 'tools', 'bin', 'promtool'))
    if found:
        return found
    why = ('promtool not found (on PATH or in .build/tools/bin): the alert rules cannot be checked. Install it with '
           'tests/lab/install-promtool.sh (tests/lab/bootstrap.sh runs it), then source tests/lab/env.sh.')
    if os.environ.get('CI', '').lower() == 'true':
        pytest.fail(why)
    pytest.skip(why)


def run(*args):
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            cwd=REPO, check=False)
    return result.returncode, result.stdout


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def alerts():
    return [rule for group in load(RULES)['groups'] for rule in group['rules'] if 'alert' in rule]


def test_promtool_check_rules():
    rc, out = run(promtool(), 'check', 'rules', RULES)
    assert rc == 0, out
    assert 'SUCCESS: %d rules found' % len(alerts()) in out, out


def test_promtool_test_rules():
    assert TESTS, 'no rule tests in tests/unit/prometheus'
    rc, out = run(promtool(), 'test', 'rules', *TESTS)
    assert rc == 0, out
    assert 'FAILED' not in out, out


def test_promtool_test_rules_notices_a_wrong_expectation(tmp_path):
    """The tests above could pass by testing nothing: a copy of one test case that expects the wrong severity fails."""
    assert TESTS
    source = load(TESTS[0])
    case = next(t for t in source['tests'] for a in t['alert_rule_test'] if a.get('exp_alerts'))
    check = next(a for a in case['alert_rule_test'] if a.get('exp_alerts'))
    check['exp_alerts'][0]['exp_labels']['severity'] = 'none'
    broken = dict(source, tests=[dict(case, alert_rule_test=[check])],
                  rule_files=[os.path.relpath(RULES, str(tmp_path))])
    path = tmp_path / 'broken.test.yml'
    path.write_text(yaml.safe_dump(broken))
    rc, out = run(promtool(), 'test', 'rules', str(path))
    assert rc != 0, out
    assert 'FAILED' in out and check['alertname'] in out, out


def expectations():
    """(alertname, severity) -> the ways the tests check it: 'fires' (an expected alert of that severity) and
    'silent' (an evaluation expecting no alert of that name)."""
    seen = {}
    for path in TESTS:
        for case in load(path)['tests']:
            for check in case['alert_rule_test']:
                name = check['alertname']
                expected = check.get('exp_alerts') or []
                if not expected:
                    for severity in SEVERITIES:
                        seen.setdefault((name, severity), set()).add('silent')
                for alert in expected:
                    seen.setdefault((name, alert['exp_labels'].get('severity')), set()).add('fires')
    return seen


@pytest.mark.parametrize('alert', alerts(), ids=lambda a: '%s-%s' % (a['alert'], a['labels']['severity']))
def test_every_alert_fires_and_stays_silent_in_the_tests(alert):
    severity = alert['labels']['severity']
    got = expectations().get((alert['alert'], severity), set())
    assert got == {'fires', 'silent'}, '%s (%s): tested %s' % (alert['alert'], severity, sorted(got) or 'never')


@pytest.mark.parametrize('alert', alerts(), ids=lambda a: '%s-%s' % (a['alert'], a['labels']['severity']))
def test_every_alert_tells_what_to_do(alert):
    assert alert['labels']['severity'] in SEVERITIES
    annotations = alert['annotations']
    assert annotations['summary'].strip()
    # The description names what to run or read: a playbook, a command or a file.
    assert re.search(r'\.yml|ansible-playbook|systemctl|journalctl', annotations['description']), annotations
    with open(DOC) as f:
        headings = [line.lstrip('#').strip().lower() for line in f if line.startswith('#')]
    anchor = annotations['runbook'].split('#', 1)
    assert anchor[0] == 'docs/monitoring.md'
    assert anchor[1] == alert['alert'].lower() and anchor[1] in headings, \
        'docs/monitoring.md has no section "### %s"' % alert['alert']


def test_metric_names_are_documented():
    """Every metric the rules read is one of the documented ones (docs/monitoring.md, "The metrics"): the names the
    programs and roles write, and etcd's own."""
    with open(DOC) as f:
        doc = f.read()
    used = set()
    for alert in alerts():
        used.update(re.findall(r'\b((?:gatewayops|etcd)_[a-z_]+)\b', alert['expr']))
    used.discard('etcd_emergency')  # a job name, not a metric
    assert used
    missing = sorted(name for name in used if not re.search(r'`%s[`{]' % re.escape(name), doc))
    assert not missing, 'not documented in docs/monitoring.md: %s' % ', '.join(missing)
