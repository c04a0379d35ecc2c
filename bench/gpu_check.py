"""Checks on a CUDA machine: training on the GPU with bf16 autocast and channels-last, and
DistributedDataParallel over NCCL under torchrun. Not part of the test suite (CI has no GPU).

    python bench/gpu_check.py DATA_ROOT
    torchrun --nproc_per_node N bench/gpu_check.py DATA_ROOT --ddp
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from neuralab.training import ClassifierConfig, TrainConfig, train_classifier
from neuralab.training.classify import RECIPES
from neuralab.training.device import dist_info


def run(label: str, model: str, data: str, root: Path, amp: str, val_fraction: float = 0.1, **train) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ClassifierConfig(model=model, data=data, data_dir=str(root / data), val_fraction=val_fraction,
                               train=TrainConfig(device="cuda", amp=amp, **train))
        r = train_classifier(cfg, out=Path(tmp) / "run", verbose=False)
        if dist_info().is_main:
            per_epoch = statistics.median(h["seconds"] for h in r.history)
            print(f"{model} {data} amp={amp} world={dist_info().world_size} {label}: {per_epoch:.2f} s/epoch, "
                  f"{r.seconds:.1f} s in all, test accuracy {r.test['accuracy'] * 100:.2f}%", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root", type=Path)
    p.add_argument("--ddp", action="store_true")
    args = p.parse_args()
    fast = dict(RECIPES["fast"])
    if args.ddp:  # the fast recipe: its remembered losses are shared across processes
        run("fast recipe", "lenet5", "mnist", args.root, "auto", **fast)
        torch.distributed.destroy_process_group()
        return
    print(torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported(), flush=True)
    for model, data in (("lenet5", "mnist"), ("cnn", "fashion-mnist")):
        for amp in ("off", "bf16"):
            run("3 epochs", model, data, args.root, amp, epochs=3)
    run("fast recipe", "lenet5", "mnist", args.root, "off", **fast)


if __name__ == "__main__":
    main()
