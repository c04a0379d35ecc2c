"""Progress output that behaves both in a terminal and in a log file.

In a terminal: a live bar per epoch (rich) and a summary line when it ends. Anywhere else
(a pipe, a log file, CI): exactly one plain line per epoch, no carriage returns.
"""

from __future__ import annotations

import sys
import time


def format_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if key in ("epoch", "samples", "seconds", "lr"):
            continue
        parts.append(f"{key} {value * 100:.2f}%" if key.endswith("accuracy") else f"{key} {value:.4f}")
    return "  ".join(parts)


class Progress:
    def __init__(self, epochs: int, samples: int = 0, enabled: bool = True, stream=None):
        self.epochs, self.samples = epochs, samples  # samples: the training set's size
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.live = enabled and self.stream.isatty()
        self._bar = None

    def print(self, text: str = "") -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._t0 = time.perf_counter()
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(
                TextColumn(f"epoch {epoch}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), TimeRemainingColumn(), transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=steps, loss="")

    def step(self, loss: float | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss="" if loss is None else f"loss {loss:.4f}")

    def end_epoch(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        trained = metrics.get("samples", self.samples)
        focus = f" (the {trained:,} hardest)" if trained < self.samples else ""
        self.print(
            f"epoch {metrics['epoch']}/{self.epochs}{focus}  {format_metrics(metrics)}  "
            f"lr {metrics['lr']:.2e}  {metrics['seconds']:.1f}s"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
