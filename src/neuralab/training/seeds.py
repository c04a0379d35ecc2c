"""The random generators a run draws from: seeded alike everywhere (``seed_everything``), and
given back to the caller as they were once the run is over (``generators_kept``), so that a run
repeats from its seed and the caller's own draws go on as if nothing had run.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from neuralab.training.config import check_seed


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that model initialisation and dropout repeat; they stay
    seeded (as Keras's set_random_seed leaves them): a run seeds them inside ``generators_kept``."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def generators_kept(seed: int | None = None):
    """Python's, NumPy's and torch's generators seeded with ``seed`` inside (None: left as they
    are) and put back as they were after, also when the block raises or is interrupted: a run
    repeats from its seed, and the caller's own draws go on as if nothing had run."""
    states = random.getstate(), np.random.get_state()
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    # torch.manual_seed seeds GPUs not yet started when they start: they get the caller's seed back
    caller_seed = None if gpus else torch.initial_seed()
    try:
        with torch.random.fork_rng(devices=gpus):
            if seed is not None:
                seed_everything(seed)
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        if caller_seed is not None and torch.cuda.is_available():
            torch.cuda.manual_seed_all(caller_seed)
