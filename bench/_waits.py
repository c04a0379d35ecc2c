"""How a bench's OpenMP threads wait: as the `neuralab` command's, chosen before torch starts
OpenMP (this module must not import torch)."""

from __future__ import annotations

import sys

from neuralab.cli import openmp_waits


def bench_waits(bench: str) -> str:
    """``openmp_waits()`` for the bench named ``bench``, with a warning where the threads sleep at
    once: that slows the small steps of every PyTorch loop (neuralab's MLP epoch 1.4x in one run,
    LeNet-5's step about 2x), so a table measured that way says little."""
    waits = openmp_waits()
    if waits.endswith("PASSIVE"):
        print(f"{bench}: OpenMP threads sleep at once ({waits}: another task was running at the start, or the "
              "environment says so), which slows small steps; for the table, start on an idle machine",
              file=sys.stderr)
    return waits
