"""Argument types shared by several commands; each names the option in its error."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def shape_hwc(text: str) -> tuple[int, int, int]:
    """'28x28x1' (Keras order H x W x C, as the workshop writes it) -> (C, H, W)."""
    parts = text.lower().split("x")
    try:
        h, w, c = (int(p) for p in parts) if len(parts) == 3 else (*map(int, parts), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxWxC, e.g. 28x28x1 or 32x32x3") from None
    if min(h, w, c) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return c, h, w
