"""What the trainer does for speed besides the layers (models/fast.py): memory kept between steps."""

from __future__ import annotations

import resource

import pytest
import torch

from neuralab.training import device
from neuralab.training.device import kept_heap


def _faults_of_reallocating(times: int = 5) -> int:
    """Minor page faults while a 16 MB tensor is allocated, written and freed ``times`` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(4_000_000)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(device._glibc() is None, reason="the heap setting is glibc's (Linux)")
def test_kept_heap_spares_the_page_faults_of_reallocating():
    with kept_heap():
        for _ in range(3):  # the first allocations take their pages once; the heap's layout settles in 1-2 rounds
            _faults_of_reallocating()
        inside = _faults_of_reallocating()
    assert inside < 500  # 5 x 16 MB reused from the heap (3,906 fresh pages each without it)
