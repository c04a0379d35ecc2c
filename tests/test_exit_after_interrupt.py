"""A command stopped by a signal ignores a second Ctrl-C while it exits: pressed 20-50 ms after
the first, it landed in torch's or logging's exit handlers, which printed a traceback under
the run's one line."""

from __future__ import annotations

import signal
import warnings

import pytest

import neuralab.cli as cli


@pytest.mark.parametrize("status, ignored", [(130, True), (143, True), (0, False), (2, False)])
def test_only_a_command_stopped_by_a_signal_exits_deaf_to_a_second_ctrl_c(status, ignored, monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: status)
    for setting in ("openmp_waits", "quiet_pillow"):  # the process's own settings, not this test's to change
        monkeypatch.setattr(cli, setting, lambda: None)
    monkeypatch.setattr(cli.gc, "freeze", lambda: None)
    before, shown = signal.getsignal(signal.SIGINT), warnings.formatwarning
    try:
        # Python's own handler: a process started in the background by a shell (CI's) ignores SIGINT already
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(SystemExit) as e:
            cli.run()
        assert e.value.code == status
        assert (signal.getsignal(signal.SIGINT) is signal.SIG_IGN) is ignored
    finally:
        signal.signal(signal.SIGINT, before)
        warnings.formatwarning = shown
