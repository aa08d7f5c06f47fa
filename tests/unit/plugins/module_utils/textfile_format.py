# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A strict reader of node_exporter's textfile format for the tests: every metric has its HELP and TYPE gauge lines
before its samples, one sample per line, a newline at the end; -> {(name, ((label, value), ...)): value}."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

HELP = re.compile(r'^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$')
TYPE = re.compile(r'^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) gauge$')
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? '
                    r'(-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    assert text.endswith('\n'), 'the last line has no newline'
    helped, typed, samples = set(), set(), {}
    for line in text[:-1].split('\n'):
        match = HELP.match(line)
        if match:
            assert match.group(1) not in helped, 'two HELP lines for %s' % match.group(1)
            helped.add(match.group(1))
            continue
        match = TYPE.match(line)
        if match:
            assert match.group(1) in helped, 'TYPE before HELP: %r' % line
            typed.add(match.group(1))
            continue
        match = SAMPLE.match(line)
        assert match, 'not a HELP, TYPE gauge or sample line: %r' % line
        name = match.group(1)
        assert name in typed, 'a sample before its TYPE line: %r' % line
        labels = tuple(sorted(LABEL.findall(match.group(2) or '')))
        assert (name, labels) not in samples, 'a sample twice: %r' % line
        samples[(name, labels)] = float(match.group(3))
    assert helped == typed
    return samples
