"""`neuralab serve`'s --host read as the system reads it (a short form is the address it stands
for; any loopback address answers at the URL printed), and a --runs that is a file refused at
the start."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from neuralab.web import security

SERVE = [sys.executable, "-m", "neuralab", "serve", "--port", "0"]


@pytest.mark.parametrize("short, address", [("0", "0.0.0.0"), ("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
                                            ("127.0.0.2", "127.0.0.2"), ("[::1]", "::1"), ("lab-pc.local", "lab-pc.local"),
                                            ("0::0", "::"), ("::0", "::"), ("0:0:0:0:0:0:0:0", "::"),
                                            ("[0:0:0:0:0:0:0:1]", "::1"), ("fd00:0::2", "fd00::2")])
def test_a_short_form_is_the_address_it_stands_for(short, address):
    assert security.listen_address(short) == address


def test_the_host_names_answered_follow_the_address_listened_on():
    allowed = security.allowed_hosts
    assert allowed("0") == allowed("0.0.0.0")  # every interface: the machine's own names too
    assert allowed("0::0") == allowed("::0") == allowed("0:0:0:0:0:0:0:0") == allowed("::")
    assert allowed("127.1") == allowed("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert allowed("127.0.0.2") == {"localhost", "127.0.0.1", "::1", "127.0.0.2"}


def serve(*flags: str, cwd):
    """A `neuralab serve` process and the first line it prints (the URL), with its stderr so far."""
    proc = subprocess.Popen([*SERVE, *flags], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NEURALAB_RUNS": str(cwd / "runs")})
    line = proc.stdout.readline()
    return proc, line


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("host, url_host, warned", [("127.0.0.2", "127.0.0.2", False), ("127.1", "127.0.0.1", False)])
def test_a_loopback_host_answers_at_the_url_printed_without_a_warning(tmp_path, host, url_host, warned):
    (tmp_path / "runs").mkdir()
    proc, line = serve("--host", host, "--runs", "runs", cwd=tmp_path)
    try:
        assert line.startswith(f"neuralab web app on http://{url_host}:"), line
        url = line.split()[4]
        assert get(url + "/") == 200 and get(url + "/conv") == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert ("reachable from other machines" in err) is warned, err


def test_runs_given_as_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "sales.csv").write_text("date,sales\n2024-01-01,12\n2024-02-01,15\n")
    try:
        done = subprocess.run([*SERVE, "--runs", "sales.csv"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("neuralab serve started on a --runs that is a file")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("neuralab: error: --runs sales.csv: is a file, not a folder; give the folder the runs "
                           "are in\n")


def test_a_runs_folder_not_made_yet_is_named_quoted_in_the_command_to_fill_it(tmp_path):
    proc, line = serve("--runs", "my runs", cwd=tmp_path)
    try:
        assert line.startswith("neuralab web app on http://127.0.0.1:"), line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "no folder my runs yet" in err and "`neuralab train --out 'my runs/NAME'`" in err, err


def test_a_runs_folder_named_with_a_leading_dash_is_given_as_a_path_in_the_command_to_fill_it(tmp_path):
    proc, line = serve("--runs=-new", cwd=tmp_path)
    try:
        assert line.startswith("neuralab web app on http://127.0.0.1:"), line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "`neuralab train --out ./-new/NAME`" in err, err


def test_runs_given_as_a_run_is_refused_naming_the_folder_that_holds_it(tmp_path):
    """A run's own folder given as --runs, by mistake, served an empty list and a hint that
    trained elsewhere."""
    from test_web_app import fake_classifier_run

    fake_classifier_run(tmp_path / "runs" / "lenet", "mlp")
    try:
        done = subprocess.run([*SERVE, "--runs", "runs/lenet"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("neuralab serve started on a --runs that is a run")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"neuralab: error: --runs runs/lenet: is a run, not the folder runs are in; give the "
                           f"folder that holds it, --runs {tmp_path / 'runs'}\n")


def test_a_project_folder_with_its_own_config_json_serves_the_runs_below_it(tmp_path):
    """A config.json naming no run's kind is the project's own, not a run's: --runs . was refused
    as a run, and the runs below it were not listed (the walk stopped at any config.json)."""
    import json

    from test_web_app import fake_classifier_run

    (tmp_path / "config.json").write_text(json.dumps({"name": "my-project", "version": "1.0.0"}))
    fake_classifier_run(tmp_path / "experiments" / "lenet", "lenet5")
    fake_classifier_run(tmp_path / "experiments" / "group" / "mlp", "mlp")
    (tmp_path / "experiments" / "group" / "config.json").write_text(json.dumps({"owner": "lab"}))
    proc, line = serve("--runs", ".", cwd=tmp_path)
    try:
        assert line.startswith("neuralab web app on http://127.0.0.1:"), line
        with urllib.request.urlopen(line.split()[4] + "/api/runs", timeout=20) as r:
            listed = {row["id"]: row["status"] for row in json.load(r)["runs"]}
        assert get(line.split()[4] + "/api/run?run=experiments/group") == 404  # the group's, not a run's
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert listed == {"experiments/lenet": "finished", "experiments/group/mlp": "finished"}


def test_runs_of_a_project_folder_with_its_own_config_json_lists_the_runs_below_it(tmp_path, capsys):
    """`neuralab runs PROJECT` took the project's config.json for a run's, and showed one damaged row."""
    import json

    from neuralab.cli import main
    from test_web_app import fake_classifier_run

    (tmp_path / "config.json").write_text(json.dumps({"name": "my-project", "version": "1.0.0"}))
    fake_classifier_run(tmp_path / "experiments" / "lenet", "lenet5")
    fake_classifier_run(tmp_path / "experiments" / "group" / "mlp", "mlp")
    (tmp_path / "experiments" / "group" / "config.json").write_text(json.dumps({"owner": "lab"}))
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "experiments/lenet" in out and "experiments/group/mlp" in out and "damaged" not in out, out
