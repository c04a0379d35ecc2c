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


@pytest.mark.skipif(device._glibc() is None, reason="the heap setting is glibc's (Linux)")
def test_a_kept_heap_inside_another_leaves_the_outer_setting():
    """A validation pass (``Trainer.predict``) inside training must not hand the heap back
    when it ends: the training steps after it would fault their pages in again."""
    with kept_heap():
        with kept_heap():
            for _ in range(3):
                _faults_of_reallocating()
        after_inner = _faults_of_reallocating()
    assert after_inner < 500


@pytest.mark.skipif(device._glibc() is None, reason="the heap setting is glibc's (Linux)")
def test_after_a_kept_heap_large_tensors_are_still_reused():
    """Once set, glibc's thresholds no longer follow the blocks freed; left at its starting
    128 KB, every tensor above it would be mapped and faulted in afresh, and a user's own
    PyTorch loop after a fit (a notebook's next cell) ran 2.2-2.5x slower than before it."""
    with kept_heap():
        _faults_of_reallocating()
    for _ in range(3):
        _faults_of_reallocating()
    assert _faults_of_reallocating() < 500  # about 19,500 with the 128 KB threshold


def test_the_heap_is_set_and_handed_back_once_when_the_last_block_of_any_thread_ends(monkeypatch):
    """The setting is the process's: blocks in two threads that overlap set it once and
    hand the memory back once, when the last of them ends."""
    calls = []

    class Libc:
        def mallopt(self, what, value):
            calls.append(("mallopt", what, value))

        def malloc_trim(self, pad):
            calls.append(("trim",))

    monkeypatch.setattr(device, "_glibc", Libc)
    inside, leave = threading.Event(), threading.Event()

    def other():
        with kept_heap():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with kept_heap():
        leave.set()
        thread.join(10)  # the other thread's block ends inside this one's
        assert calls == [("mallopt", device._M_MMAP_THRESHOLD, 1 << 30), ("mallopt", device._M_TRIM_THRESHOLD, 1 << 30)]
    assert calls[2:] == [("mallopt", device._M_MMAP_THRESHOLD, device._AFTER_MMAP_THRESHOLD),
                         ("mallopt", device._M_TRIM_THRESHOLD, device._AFTER_TRIM_THRESHOLD), ("trim",)]
