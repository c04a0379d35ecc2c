"""Whole training steps of two or more versions of a model, alternating in one process."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def alternating_steps(models: dict, n: int, clock: Callable[[], float],
                      switch: Callable[[str], None] = lambda kind: None,
                      shape: tuple[int, int, int] = (1, 28, 28)) -> dict[str, list[float]]:
    """Seconds of each of ``n`` training steps (forward, backward, the optimizer's step) of every
    ``models[kind] = (model, optimizer)`` on one batch of 128 random channels-last images of
    ``shape`` (C, H, W), the kinds in turn (reversed every other round); ``switch(kind)`` runs
    before each step, untimed, to turn a shortcut on or off. Two untimed steps of each first
    warm oneDNN's primitives and the heap."""
    x = torch.randn(128, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step(kind: str) -> float:
        switch(kind)
        model, optimizer = models[kind]
        t0 = clock()
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        F.cross_entropy(getattr(out, "logits", out), y).backward()  # GoogLeNet's auxiliary heads return more
        optimizer.step()
        return clock() - t0

    kinds = list(models)
    for kind in kinds:
        step(kind)
        step(kind)
    times = {kind: [] for kind in kinds}
    for i in range(n):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):
            times[kind].append(step(kind))
    return times
