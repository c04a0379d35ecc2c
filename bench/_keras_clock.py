"""The clock of the benches that time TF-Keras: each epoch of a ``fit`` from its first step to
the end of its last, as Keras's own progress reports it. Imported only where TensorFlow is
installed (bench/_keras_zoo.py, bench/bench_lstm.py's TF-Keras column)."""

from __future__ import annotations

import time

from tensorflow import keras


class EpochClock(keras.callbacks.Callback):
    """Appends each epoch's seconds to ``times``."""

    def __init__(self, times: list[float]):
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)
