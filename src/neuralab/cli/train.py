"""`neuralab train`, `neuralab compare` and `neuralab evaluate`."""

from __future__ import annotations

from neuralab.cli._args import number, resume_command, run_folder, whole_number

TRUST_HELP = ("run the run's copy of its PyTorch model code (model.py), for runs made from a .py file; "
              "read the file first: it runs with your permissions")

REQUEUE_HELP = ("with --out: start the run there, or, where it holds an interrupted run, resume it (the options "
                "typed must be the run's own); where it holds a finished one, exit 0. One command line for a job "
                "that a scheduler may stop and start again (docs/runs.md)")

# options that set the TrainConfig field of their name; one left out (None) keeps the recipe's, else a Keras
# model's compile() or fit() setting, else the library's default (TrainConfig is made with the recipe's and those
# typed alone, which given_fields then names)
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "grad_clip", "schedule", "patience", "monitor", "threads",
                 "focus", "optimizer", "momentum", "loss", "tensorboard")
# options that set ClassifierConfig's fields for a folder of images, the same way
FOLDER_OPTIONS = ("image_size", "color", "on_error", "test_fraction")


def _budget(p) -> None:
    """Options shared by train and compare: the data and the training budget, with the library's defaults."""
    from neuralab.cli._args import height_width
    from neuralab.data import COLORS, ON_ERROR, TEST_FRACTION
    from neuralab.training.config import (AMP, AUTO_BF16_PARAMETERS, DEVICES, MONITORS, RECIPES, SCHEDULES, ClassifierConfig,
                                          TrainConfig)

    d, c = TrainConfig(), ClassifierConfig()
    p.add_argument("--data", default=c.data, help=f"dataset name or image folder (default {c.data})")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--recipe", choices=tuple(RECIPES),
                   help="tuned defaults that the options below override: " + "; ".join(
                       f"{name} = " + ", ".join(f"{k} {v}" for k, v in recipe.items()) for name, recipe in RECIPES.items())
                   + " (warmup, the share of the steps over which the learning rate rises to --lr, has no option)")
    p.add_argument("--epochs", type=whole_number, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=whole_number, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=number, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=number, help=f"decoupled, as AdamW and Keras apply it, for every optimizer (default {d.weight_decay})")
    p.add_argument("--grad-clip", type=number,
                   help=f"clip the gradients' global norm to this, 0 = off (default {d.grad_clip:g})")
    p.add_argument("--schedule", choices=SCHEDULES, help=f"default {d.schedule}")
    p.add_argument("--focus", type=number,
                   help="after the first epoch, train each epoch on this fraction of the training images: "
                        f"those with the highest loss when last seen (default {d.focus:g} = all of them)")
    p.add_argument("--val-fraction", type=number, help=f"held out from the training set (default {c.val_fraction}, "
                                                         "or a Keras model file's fit(validation_split=...))")
    folder = p.add_argument_group("a folder of images (--data FOLDER, one sub-folder per class)")
    folder.add_argument("--image-size", type=height_width, metavar="HxW",
                        help="resize every picture to HxW pixels, e.g. 64x64 (needed when their sizes differ)")
    folder.add_argument("--color", choices=COLORS, help=f"read the pictures as grayscale or rgb (default {COLORS[0]}: "
                                                        "grayscale when every picture is)")
    folder.add_argument("--on-error", choices=ON_ERROR, help="a picture that cannot be read: refuse stops with its "
                                                             f"name; skip leaves it out with a warning (default {ON_ERROR[0]})")
    folder.add_argument("--test-fraction", type=number,
                        help=f"share of the pictures held out for the test set, above 0 and below 1 "
                             f"(default {TEST_FRACTION})")
    p.add_argument("--patience", type=whole_number, help=f"early stopping patience in epochs (default {d.patience} = off)")
    p.add_argument("--monitor", choices=MONITORS["classification"], help=f"default {d.monitor}")
    p.add_argument("--device", default=d.device, choices=DEVICES, help=f"(default {d.device})")
    p.add_argument("--amp", default=d.amp, choices=AMP,
                   help="mixed precision: auto computes in bfloat16 (float32 weights) for models of "
                        f"{AUTO_BF16_PARAMETERS / 1e6:g}M+ parameters "
                        "on CUDA GPUs and CPUs with AVX-512 BF16, in float32 elsewhere; off: float32 always "
                        f"(default {d.amp})")
    p.add_argument("--threads", type=whole_number,
                   help="CPU threads for torch (default, or 0: torch's choice, at most a container's CPU "
                        "quota; fewer when the cores are shared); under torchrun, the node's, shared over its processes")
    training_choices(p, d)
    p.add_argument("--overwrite", action="store_true", help="replace what is already in --out")


def training_choices(p, d, losses: tuple[str, ...] | None = None) -> None:
    """--optimizer, --momentum, --loss and --tensorboard (train and forecast); ``d``: the defaults."""
    from neuralab.training.config import LOSSES, OPTIMIZERS

    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d.optimizer}")
    p.add_argument("--momentum", type=number, help=f"for sgd and rmsprop, e.g. 0.9 (default {d.momentum:g})")
    task_loss = "mse" if losses else "cross_entropy"  # the trainer's choice for a forecaster or a classifier
    p.add_argument("--loss", choices=losses or LOSSES, help=f"Keras's names work (default {d.loss or task_loss})")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files into RUN/tensorboard (`tensorboard --logdir runs`)")


def _train_options(p) -> None:
    from neuralab.training.config import RESUME_FROM, ClassifierConfig, TrainConfig

    model, seed = ClassifierConfig().model, TrainConfig().seed
    p.add_argument("--model", default=model, metavar="MODEL",
                   help=f"a zoo architecture (see `neuralab zoo`; default {model}), a Keras file (.keras, .h5), or "
                        "FILE.py[:NAME] defining a Keras model or a torch.nn.Module (docs/keras.md)")
    _budget(p)
    p.add_argument("--seed", type=whole_number, default=seed, help=f"(default {seed})")
    p.add_argument("--out", help="run directory (default MODEL-DATA-TIME in the runs folder: $NEURALAB_RUNS or ./runs)")
    p.add_argument("--resume", type=run_folder, metavar="RUN_DIR", help="continue an interrupted run with its own settings")
    p.add_argument("--resume-if-interrupted", action="store_true", help=REQUEUE_HELP)
    p.add_argument("--checkpoint", choices=RESUME_FROM,
                   help=f"with --resume: go on from the last epoch or the best one (default {RESUME_FROM[0]})")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.add_argument("--trust-code", action="store_true",
                   help="with --resume: run the run's copy of its PyTorch model code (model.py); read it first "
                        "(--resume-if-interrupted runs it where --model names the same file, unchanged)")


def _compare_options(c) -> None:
    c.add_argument("--models", default="mlp,cnn,lenet5",
                   help="comma-separated; a file whose name holds a comma is one model (default %(default)s)")
    c.add_argument("--seeds", type=whole_number, default=3, help="seeds 0..N-1 per model (default %(default)s)")
    _budget(c)
    c.add_argument("--out", help="folder for the runs and the table (default compare in "
                                 "the runs folder: $NEURALAB_RUNS or ./runs)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train an image classifier and write a run directory",
                       description="Train a zoo model on an image dataset. Under torchrun, runs data-parallel.")
    p.defer(_train_options)
    p.set_defaults(func=run_train, makes_run=True)

    c = sub.add_parser("compare", help="train several models on one budget and tabulate test accuracy")
    c.defer(_compare_options)
    c.set_defaults(func=run_compare, makes_run=True)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run, rebuilt from its directory")
    e.add_argument("run_dir", type=run_folder, metavar="RUN_DIR", help="an image classifier's run directory")
    e.add_argument("--data-dir", help="folder holding the dataset files, if not where the run found them")
    e.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    e.set_defaults(func=run_evaluate)


def _config(args, model: str, seed: int = 0):
    """The ClassifierConfig the options describe: the recipe, then the options given, else the
    library's defaults. Its own fields are checked here, before the model and the data are read:
    the library's loaders refuse a share of the images only once they hold the data."""
    from neuralab.training.config import ClassifierConfig, TrainConfig, recipe_settings

    chosen = recipe_settings(args.recipe, **{k: getattr(args, k) for k in (*TRAIN_OPTIONS, "val_fraction")})
    # left out where neither the recipe nor an option sets it: a Keras model file's fit(validation_split=) fills it
    split = {"val_fraction": chosen.pop("val_fraction")} if "val_fraction" in chosen else {}
    train = TrainConfig(seed=seed, device=args.device, amp=args.amp, **chosen)
    folder = {k: getattr(args, k) for k in FOLDER_OPTIONS}
    config = ClassifierConfig(model=model, data=args.data, data_dir=args.data_dir, train=train, **split, **folder)
    config.check()
    return config


def _resume_options(args) -> dict:
    """The settings typed with --resume, their defaults' values included: the run keeps its own,
    so the library refuses any that differ from them (the threads and the device, the session's,
    excepted)."""
    from neuralab.cli._args import typed
    from neuralab.training.config import RECIPES

    given = typed(args)
    options = dict(RECIPES.get(args.recipe, {}))
    options.update({k: getattr(args, k) for k in (*TRAIN_OPTIONS, *FOLDER_OPTIONS, "val_fraction", "data_dir", "model",
                                                   "data", "seed", "device", "amp") if k in given})
    return options


def _requeued(args) -> bool:
    """``requeued``'s answer, rank 0's in every process of a torchrun job: decided by each, a
    process that looked after rank 0 had started the run would resume it while rank 0 trains."""
    import contextlib

    from neuralab.cli._args import requeued, typed
    from neuralab.errors import NeuralabError
    from neuralab.runs import CONFIG, Kind, Run, json_object
    from neuralab.training.device import on_rank_0, session_device

    # the process group's, as the training joins it: the session's, typed, else the run's own where it has one
    # and this machine has it (where not, the resume says which to give, and a finished run is done all the same)
    device = args.device
    if "device" not in typed(args) and args.out and (Run(args.out) / CONFIG).is_file():
        own = json_object(json_object(Run(args.out).record.get("config")).get("train")).get("device", device)
        with contextlib.suppress(NeuralabError):
            device = session_device(None, own, Run(args.out).path)
    return on_rank_0(lambda: requeued(args, Kind.CLASSIFIER), device)


def run_train(args) -> int:
    from neuralab.cli._args import code_named_again, finished_already, only_with_resume, refuse_other_kind
    from neuralab.training.source import from_python_only
    from neuralab.errors import NeuralabError
    from neuralab.runs import Kind, RunFinished
    from neuralab.training import resume_classifier, train_classifier
    from neuralab.training.device import dist_info

    resume = args.resume
    if args.resume_if_interrupted:
        # kept as --resume's is: a resume keeps its settings, which the advice on running out of memory says
        resume = args.resume = args.out if _requeued(args) else None
        # the job's own command line names the run's code, as it did when it started the run
        args.trust_code = args.trust_code or bool(resume) and code_named_again(args)
    elif args.resume and (args.out or args.overwrite):
        raise NeuralabError(f"{args.resume}: a resumed run stays in its folder; "
                            f"`{'out' if args.out else 'overwrite'}` does not apply to `resume`")
    if resume:
        refuse_other_kind(resume, Kind.CLASSIFIER)
        try:
            # its `model` is no --model but the module itself, which only Python can give
            with from_python_only(resume, "it can only be resumed", "neuralab.resume_classifier"):
                result = resume_classifier(resume, verbose=not args.quiet, checkpoint=args.checkpoint or "last",
                                           options=_resume_options(args), trust_code=args.trust_code)
        except RunFinished:  # refused after the options typed, which must be the run's own
            if not args.resume_if_interrupted:
                raise
            return finished_already(args) if dist_info().is_main else 0
    else:
        only_with_resume(args, "checkpoint", *(() if args.resume_if_interrupted else ("trust_code",)))
        result = train_classifier(_config(args, args.model, args.seed), out=args.out, overwrite=args.overwrite,
                                  verbose=not args.quiet)
    if args.quiet and dist_info().is_main:
        print(f"test accuracy {result.test['accuracy'] * 100:.2f}%  run: {result.run_dir}")
    return 0


def run_compare(args) -> int:
    from neuralab.cli._args import ways_on_as_commands
    from neuralab.runs import default_root
    from neuralab.training.compare import AFTER_ITS_RESUME, GOES_ON, ReportStopped, compare, to_markdown
    from neuralab.training.device import dist_info

    again = "the same `neuralab compare` command again"

    def way_on(e) -> str:
        if isinstance(e, ReportStopped):  # a finished run's report: the comparison writes it as it goes on
            return f"{again} {e.resume_does}"
        command = resume_command(e.kind.made_by, e.path)
        if command.endswith("--trust-code"):  # a comparison does not run a run's copy of its code: the user resumes it
            return f"`{command}` {e.resume_does}; then {again} {AFTER_ITS_RESUME}"
        return f"{again} {GOES_ON}"

    models = _model_names(args.models)
    base = _config(args, models[0] if models else "")
    out = args.out or default_root() / "compare"
    with ways_on_as_commands(way_on, then=f" (a comparison does not run a run's copy of its code), then {again} "
                                          f"{AFTER_ITS_RESUME}"):
        rows = compare(models, base, args.seeds, out, overwrite=args.overwrite)
    if dist_info().is_main:  # the same table in every process of a torchrun job
        print(to_markdown(rows, base, args.seeds))
        print(f"written: {out}/compare.csv, {out}/compare.md")
    return 0


def _model_names(text: str) -> list[str]:
    """The models --models names, split at its commas, except where words joined by them name a
    file that exists ("m/x,y.py", "m/x,y.py:Net") and the first word alone does not."""
    from neuralab.training.source import split_name

    def is_file(name: str) -> bool:
        return bool(name) and split_name(name)[0].is_file()

    words, models = text.split(","), []
    while words:
        joined = next((j for j in range(len(words), 1, -1) if is_file(",".join(words[:j]).strip())), 1)
        joined = 1 if is_file(words[0].strip()) else joined
        models.append(",".join(words[:joined]).strip())
        words = words[joined:]
    return [m for m in models if m]


def run_evaluate(args) -> int:
    from neuralab.training.source import from_python_only
    from neuralab.training import evaluate_run

    with from_python_only(args.run_dir, "it can only be evaluated", "neuralab.evaluate_run",
                          *filter(None, [args.data_dir])):
        r = evaluate_run(args.run_dir, args.data_dir, trust_code=args.trust_code)
    print(f"test loss {r['test_loss']:.4f}  test accuracy {r['test_accuracy'] * 100:.2f}%")
    width = max(len(c) for c in r["classes"])
    print("confusion matrix (rows: true, columns: predicted)")
    for name, row in zip(r["classes"], r["confusion_matrix"]):
        print(f"  {name:>{width}}  " + " ".join(f"{v:5d}" for v in row))
    return 0
