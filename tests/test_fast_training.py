"""What the trainer does for speed besides the layers (models/fast.py): memory kept between steps."""

from __future__ import annotations

import resource
import threading

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


def _enter_and_leave_kept_heap() -> None:
    with kept_heap():
        torch.ones(4_000_000)


@pytest.mark.skipif(device._glibc() is None, reason="the heap setting is glibc's (Linux)")
def test_a_kept_heap_inside_another_leaves_the_outer_setting():
    """A validation pass (``Trainer.predict``) inside training, or another thread's block,
    must not hand the heap back when it ends: the training steps after it would fault their
    pages in again."""
    with kept_heap():
        with kept_heap():
            for _ in range(3):
                _faults_of_reallocating()
        after_inner = _faults_of_reallocating()
        another = threading.Thread(target=_enter_and_leave_kept_heap)  # a second thread's block, over before this one
        another.start()
        another.join()
        after_another = _faults_of_reallocating()
    assert after_inner < 500 and after_another < 500
    assert _faults_of_reallocating() > 5 * 3_000  # outside every block, glibc hands the memory back again
