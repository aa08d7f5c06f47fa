# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gatewayops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Internal to gatewayops.apisix_ha (hence the leading underscore): not a public API; it may change in any
# release without notice. Other collections must not import it.
"""Gauges for node_exporter's textfile collector (docs/monitoring.md).

Standard library only; host programs install this file beside them (package gatewayops_snapshot) and import it, as
they do _file_tx.py.

- render(): the text exposition format of gauges - a HELP and a TYPE line per metric, then one sample per line.
- write(): replace ``<directory>/<name>`` atomically (a temporary file in the same directory, whose name does not
  end in .prom so the collector never reads it half written, then a rename), mode 0644.
- read_values(): the unlabelled samples of a file written earlier (what a failed run keeps from the last good one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

from ._file_tx import write_bytes_atomic

METRIC_NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL_NAME = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)(?:\s+-?[0-9]+)?\s*$')


def _escape_label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _escape_help(text):
    return str(text).replace('\\', '\\\\').replace('\n', '\\n')


def format_value(value):
    """A sample value as the format writes it (booleans as 1 and 0)."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    if value == int(value) and abs(value) < 2 ** 53:
        return str(int(value))
    return repr(value)


def render(gauges):
    """``gauges``: (name, help, samples), samples either one value or a list of (labels dict, value)."""
    lines = []
    for name, help_text, samples in gauges:
        if not METRIC_NAME.match(name):
            raise ValueError('not a metric name: %r' % name)
        if not isinstance(samples, (list, tuple)):
            samples = [({}, samples)]
        lines.append('# HELP %s %s' % (name, _escape_help(help_text)))
        lines.append('# TYPE %s gauge' % name)
        for labels, value in samples:
            for label in labels:
                if not LABEL_NAME.match(label):
                    raise ValueError('not a label name: %r' % label)
            text = ','.join('%s="%s"' % (label, _escape_label(labels[label])) for label in sorted(labels))
            lines.append('%s%s %s' % (name, '{%s}' % text if text else '', format_value(value)))
    return '\n'.join(lines) + '\n'


def write(directory, name, gauges, mode=0o644):
    """Replace ``directory/name`` with ``gauges`` atomically. -> the path written."""
    path = os.path.join(directory, name)
    write_bytes_atomic(render(gauges).encode('utf-8'), path, mode, tmp_prefix='.%s.' % name)
    return path


def read_values(path):
    """{name: value} of the unlabelled samples in ``path``; {} when it does not exist or cannot be read."""
    values = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError, UnicodeDecodeError):
        return values
    for line in lines:
        match = SAMPLE.match(line)
        if match:
            try:
                values[match.group(1)] = float(match.group(2))
            except ValueError:
                continue
    return values
