# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_textfile_metrics.py: gauges in node_exporter's textfile format, replaced atomically."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from textfile_format import parse

from ansible_collections.gatewayops.apisix_ha.plugins.module_utils import _textfile_metrics as tm


def test_render_gives_help_type_and_one_sample_per_line():
    text = tm.render([
        ('a_seconds', 'When.', 1700000000.5),
        ('b_total', 'Flag.', True),
        ('c', 'Labelled "quoted"\nhelp.', [({'path': '/etc/x "y"\\z', 'alarm': 'NOSPACE'}, 1), ({'path': '/b'}, 0)]),
    ])
    assert text.splitlines()[:3] == ['# HELP a_seconds When.', '# TYPE a_seconds gauge', 'a_seconds 1700000000.5']
    assert 'b_total 1' in text.splitlines()
    assert 'c{alarm="NOSPACE",path="/etc/x \\"y\\"\\\\z"} 1' in text.splitlines()
    assert '# HELP c Labelled "quoted"\\nhelp.' in text.splitlines()
    samples = parse(text)
    assert samples[('c', (('path', '/b'),))] == 0
    assert len(samples) == 4


@pytest.mark.parametrize('value,text', [
    (0, '0'), (12, '12'), (False, '0'), (86400.0, '86400'), (0.25, '0.25'), (float('nan'), 'NaN'),
    (float('inf'), '+Inf'),
])
def test_values(value, text):
    assert tm.format_value(value) == text


@pytest.mark.parametrize('gauge', [('bad-name', 'x', 1), ('ok', 'x', [({'bad-label': 'v'}, 1)])])
def test_bad_names_are_refused(gauge):
    with pytest.raises(ValueError):
        tm.render([gauge])


def test_write_replaces_the_file_atomically_0644_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tm.write(str(tmp_path), 'gatewayops-x.prom', [('x', 'X.', 1)])
    assert path == str(tmp_path / 'gatewayops-x.prom')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    inode = os.stat(path).st_ino
    # A rename over the old file: a reader holding the old one never sees a half-written new one.
    tm.write(str(tmp_path), 'gatewayops-x.prom', [('x', 'X.', 2)])
    assert os.stat(path).st_ino != inode
    assert parse(open(path).read()) == {('x', ()): 2}
    assert os.listdir(str(tmp_path)) == ['gatewayops-x.prom']
    # Killed while writing: the old file stays whole, and the temporary file is never named *.prom (the collector
    # reads only those).
    seen = []
    real_rename = os.rename

    def failing_rename(src, dst):
        seen.append(src)
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'rename', failing_rename)
    with pytest.raises(OSError):
        tm.write(str(tmp_path), 'gatewayops-x.prom', [('x', 'X.', 3)])
    monkeypatch.setattr(os, 'rename', real_rename)
    assert seen and not seen[0].endswith('.prom') and os.path.dirname(seen[0]) == str(tmp_path)
    assert parse(open(path).read()) == {('x', ()): 2}
    assert os.listdir(str(tmp_path)) == ['gatewayops-x.prom']


def test_read_values_reads_unlabelled_samples(tmp_path):
    path = tm.write(str(tmp_path), 'g.prom', [('a', 'A.', 5), ('b', 'B.', [({'l': 'v'}, 1)])])
    assert tm.read_values(path) == {'a': 5.0}
    assert tm.read_values(str(tmp_path / 'missing.prom')) == {}
