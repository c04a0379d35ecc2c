"""`neuralab train` and `neuralab evaluate`."""

from __future__ import annotations

from neuralab.cli._args import positive_float, positive_int


def register(sub) -> None:
    from neuralab.training.trainer import SCHEDULES, TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train an image classifier and write a run directory",
                       description="Train a zoo model on an image dataset. Under torchrun, runs data-parallel.")
    p.add_argument("--model", default="lenet5", help="architecture (see `neuralab zoo`; default lenet5)")
    p.add_argument("--data", default="fashion-mnist", help="dataset name or image folder (default fashion-mnist)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping patience in epochs (0 = off)")
    p.add_argument("--monitor", default=d.monitor, choices=("val_loss", "val_accuracy"))
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--amp", default=d.amp, choices=("auto", "off", "bf16", "fp16"))
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA-TIME)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.set_defaults(func=run_train)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run, rebuilt from its directory")
    e.add_argument("run_dir")
    e.add_argument("--data-dir", help="folder holding the dataset files, if not where the run found them")
    e.set_defaults(func=run_evaluate)


def run_train(args) -> int:
    from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier

    if args.resume:
        resume_classifier(args.resume, verbose=not args.quiet)
        return 0
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                        schedule=args.schedule, seed=args.seed, patience=args.patience, monitor=args.monitor,
                        device=args.device, amp=args.amp)
    config = ClassifierConfig(model=args.model, data=args.data, data_dir=args.data_dir,
                              val_fraction=args.val_fraction, train=train)
    result = train_classifier(config, out=args.out, overwrite=args.overwrite, verbose=not args.quiet)
    if args.quiet:
        print(f"test accuracy {result.test['accuracy'] * 100:.2f}%  run: {result.run_dir}")
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
