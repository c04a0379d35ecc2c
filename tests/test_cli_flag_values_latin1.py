"""A flag's value refused on the command line names a Latin-1 path as its bytes, as `report`,
`export` and `runs` print such names, so that the path pasted back names the file; it was shown
as Python's repr ('runs/caf\\udce9/p.csv'), which names no file."""

from __future__ import annotations

import os
import subprocess
import sys

NEURALAB = [sys.executable, "-m", "neuralab"]


def test_predict_output_inside_a_latin1_run_folder_is_named_by_its_bytes(tmp_path):
    run = os.fsencode(tmp_path) + b"/caf\xe9"
    (tmp_path / "recent.csv").write_text("date,temp_max\n2015-12-30,5.6\n2015-12-31,5.6\n")
    done = subprocess.run([*NEURALAB, "forecast", "predict", run, "--csv", "recent.csv", "--output", run + b"/p.csv"],
                          cwd=tmp_path, capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == b"neuralab: error: --output '" + run + b"/p.csv': lies inside the run's folder, whose " \
                         b"files the run's report reads; write the forecast somewhere else\n"


def test_a_value_with_a_newline_is_still_shown_escaped():
    from neuralab.cli._args import flag_for
    from neuralab.errors import ParameterError

    shown = ParameterError("output", "p\n.csv", "lies inside the run's folder").render(flag_for)
    assert shown == "--output $'p\\n.csv': lies inside the run's folder"  # as bash reads it back
