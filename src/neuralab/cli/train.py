"""`neuralab train`, `neuralab compare` and `neuralab evaluate`."""

from __future__ import annotations

from neuralab.cli._args import positive_float, positive_int


def _budget(p) -> None:
    """Options shared by train and compare: the data and the training budget."""
    from neuralab.training.trainer import SCHEDULES, TrainConfig

    d = TrainConfig()
    p.add_argument("--data", default="fashion-mnist", help="dataset name or image folder (default fashion-mnist)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--recipe", choices=("fast",),
                   help="tuned defaults: fast = one-cycle, epoch 1 on all training data, then 5 on the hardest 18%%")
    p.add_argument("--epochs", type=positive_int, default=None, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=positive_float, default=None, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"default {d.schedule}")
    p.add_argument("--focus", type=positive_float, default=None,
                   help="after the first epoch, train each epoch on this fraction of the training images: "
                        "those with the highest loss when last seen (default 1 = all of them)")
    p.add_argument("--val-fraction", type=float, default=None, help="held out from the training set (default 0.1)")
    p.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs (default 0 = off)")
    p.add_argument("--monitor", default=None, choices=("val_loss", "val_accuracy"))
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--amp", default=d.amp, choices=("auto", "off", "bf16", "fp16"))
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice; fewer when the cores are shared)")
    p.add_argument("--overwrite", action="store_true", help="replace what is already in --out")


def register(sub) -> None:
    p = sub.add_parser("train", help="train an image classifier and write a run directory",
                       description="Train a zoo model on an image dataset. Under torchrun, runs data-parallel.")
    p.add_argument("--model", default="lenet5", help="architecture (see `neuralab zoo`; default lenet5)")
    _budget(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.set_defaults(func=run_train)

    c = sub.add_parser("compare", help="train several models on one budget and tabulate test accuracy")
    c.add_argument("--models", default="mlp,cnn,lenet5", help="comma-separated (default mlp,cnn,lenet5)")
    c.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 per model (default 3)")
    _budget(c)
    c.add_argument("--out", default="runs/compare", help="folder for the runs and the table (default runs/compare)")
    c.set_defaults(func=run_compare)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run, rebuilt from its directory")
    e.add_argument("run_dir")
    e.add_argument("--data-dir", help="folder holding the dataset files, if not where the run found them")
    e.set_defaults(func=run_evaluate)


def _config(args, model: str, seed: int = 0):
    from neuralab.training import ClassifierConfig, TrainConfig
    from neuralab.training.classify import RECIPES

    chosen = dict(RECIPES.get(args.recipe, {}))
    given = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "schedule",
                                            "val_fraction", "patience", "monitor", "threads", "focus")}
    chosen.update({k: v for k, v in given.items() if v is not None})
    val_fraction = chosen.pop("val_fraction", 0.1)
    train = TrainConfig(seed=seed, device=args.device, amp=args.amp, **chosen)
    return ClassifierConfig(model=model, data=args.data, data_dir=args.data_dir, val_fraction=val_fraction,
                            train=train)


def run_train(args) -> int:
    from neuralab.runs import Interrupted
    from neuralab.training import resume_classifier, train_classifier
    from neuralab.training.device import dist_info

    try:
        if args.resume:
            resume_classifier(args.resume, verbose=not args.quiet)
            return 0
        result = train_classifier(_config(args, args.model, args.seed), out=args.out, overwrite=args.overwrite,
                                  verbose=not args.quiet)
    except Interrupted as e:
        raise KeyboardInterrupt(f"{e}; `neuralab train --resume {e.path}` continues it") from None
    if args.quiet and dist_info().is_main:
        print(f"test accuracy {result.test['accuracy'] * 100:.2f}%  run: {result.run_dir}")
    return 0


def run_compare(args) -> int:
    from neuralab.training.compare import compare, to_markdown

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    base = _config(args, models[0] if models else "")
    rows = compare(models, base, args.seeds, args.out, overwrite=args.overwrite)
    print(to_markdown(rows, base, args.seeds))
    print(f"written: {args.out}/compare.csv, {args.out}/compare.md")
    return 0


def run_evaluate(args) -> int:
    from neuralab.training import evaluate_run

    r = evaluate_run(args.run_dir, args.data_dir)
    print(f"test loss {r['test_loss']:.4f}  test accuracy {r['test_accuracy'] * 100:.2f}%")
    width = max(len(c) for c in r["classes"])
    print("confusion matrix (rows: true, columns: predicted)")
    for name, row in zip(r["classes"], r["confusion_matrix"]):
        print(f"  {name:>{width}}  " + " ".join(f"{v:5d}" for v in row))
    return 0
