"""`neuralab rnn topologies` (the four RNN shapes, optionally trained on toy tasks) and
`neuralab rnn gradients` (the vanishing gradient, SimpleRNN vs LSTM, measured and plotted)."""

from __future__ import annotations

from neuralab.cli._args import number, whole_number

GRADIENT_OPTIONS = ("steps", "hidden", "batch", "train_steps", "lr", "clip", "init", "seed")


def register(sub) -> None:
    p = sub.add_parser("rnn", help="recurrent networks explained: topologies and vanishing gradients")
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = rsub.add_parser("topologies", help="one-to-one, one-to-many, many-to-one, many-to-many: shapes",
                        description="Print the input and output shapes of the four RNN topologies' templates; "
                                    "with --train, fit each on its toy task and show the loss fall.")
    t.add_argument("--train", action="store_true", help="fit each template on its toy task")
    t.defer(_topology_options)
    t.set_defaults(func=run_topologies)

    g = rsub.add_parser("gradients", help="gradient norm reaching each earlier time step, SimpleRNN vs LSTM",
                        description="Train a SimpleRNN and an LSTM of the same size to output the first value of a "
                                    "noise sequence, without and with gradient clipping, and measure ||dL/dx_t|| at "
                                    "every step t at initialisation and after training. Writes gradients.png, "
                                    "gradients.json and gradients.csv.")
    g.defer(_gradient_options)
    g.set_defaults(func=run_gradients)


def _topology_options(t) -> None:
    from neuralab.forecasting.config import TOY_SEED, TOY_STEPS

    t.add_argument("--steps", type=whole_number, default=TOY_STEPS,
                   help=f"training steps per template with --train (default {TOY_STEPS})")
    t.add_argument("--seed", type=whole_number, default=TOY_SEED, help=f"(default {TOY_SEED})")


def _gradient_options(g) -> None:
    """Options left out (None) keep GradientConfig's defaults, shown in the help."""
    from neuralab.forecasting.config import GradientConfig

    d = GradientConfig()
    g.add_argument("--steps", type=whole_number, help=f"sequence length, at least 2 (default {d.steps})")
    g.add_argument("--hidden", type=whole_number, help=f"hidden size of both models (default {d.hidden})")
    g.add_argument("--batch", type=whole_number, help=f"(default {d.batch})")
    g.add_argument("--train-steps", type=whole_number, help=f"Adam updates (default {d.train_steps})")
    g.add_argument("--lr", type=number, help=f"(default {d.lr})")
    g.add_argument("--clip", type=number, help=f"max gradient norm of the clipped runs (default {d.clip})")
    g.add_argument("--init", help=f"keras (forget-gate bias 1) or torch (default {d.init})")
    g.add_argument("--seed", type=whole_number, help=f"(default {d.seed})")
    g.add_argument("--out", help="folder for the plot and numbers (default rnn-gradients-TIME in "
                                 "the runs folder: $NEURALAB_RUNS or ./runs)")


def run_topologies(args) -> int:
    from neuralab.forecasting.topologies import TOPOLOGIES, check_toy, shapes, train_toy

    check_toy(steps=args.steps, seed=args.seed)  # typed without --train too: a bad value is said, not ignored
    refuse_training_options(args)
    print(f"{'topology':<14}{'input':<16}{'output':<16}{'parameters':>11}  example")
    rows = shapes()
    for row in rows:
        print(f"{row['name']:<14}{str(row['input']):<16}{str(row['output']):<16}{row['parameters']:>11,}  {row['example']}")
    print("shapes are (batch, features) or (batch, time, features); batch_first throughout")
    note = keras_note(rows)
    if note:
        print(note)
    if args.train:
        print(f"\ntoy tasks, {args.steps} Adam steps each (MSE on a fresh batch):")
        for name, topology in TOPOLOGIES.items():
            before, after = train_toy(name, steps=args.steps, seed=args.seed)
            print(f"  {name:<14}{before:8.4f} -> {after:8.4f}   {topology.task}")
    return 0


def keras_note(rows: list[dict]) -> str:
    """What Keras's model.summary() counts for the templates whose count differs from PyTorch's,
    and why, as the summary table says it ("" when none differs): the workshop's models are Keras's."""
    from neuralab.forecasting.topologies import TOPOLOGIES
    from neuralab.models.summary import keras_count, keras_differences

    models = {row["name"]: TOPOLOGIES[row["name"]].build() for row in rows}
    keras = {name: keras_count(model)[0] for name, model in models.items()}
    differ = {row["name"]: keras[row["name"]] for row in rows if keras[row["name"]] != row["parameters"]}
    if not differ:
        return ""
    why = keras_differences({type(m).__name__ for name in differ for m in models[name].modules()})
    counts = {n: [name for name in differ if differ[name] == n] for n in differ.values()}
    return ("parameters as PyTorch counts them: " + "; ".join(why) + "; Keras counts "
            + ", ".join(f"{n:,} for {' and '.join(names)}" for n, names in counts.items()))


def refuse_training_options(args) -> None:
    """Refuse --steps and --seed typed without --train (their defaults' values too): the
    shapes alone train nothing, and an option that changes nothing is said, not ignored."""
    from neuralab.cli._args import typed
    from neuralab.errors import NeuralabError

    if args.train:
        return
    given = [name for name in ("steps", "seed") if name in typed(args)]
    if given:
        raise NeuralabError(f"`{given[0]}` applies only with `train` (the shapes alone train nothing); "
                            "add `train` or leave it out")


def run_gradients(args) -> int:
    import csv
    from pathlib import Path

    from neuralab.errors import NeuralabError
    from neuralab.files import atomic_write, write_json
    from neuralab.forecasting.gradients import GradientConfig, measure, plot, norm_table
    from neuralab.reports import plots
    from neuralab.runs import default_dir

    config = GradientConfig(**{k: getattr(args, k) for k in GRADIENT_OPTIONS if getattr(args, k) is not None})
    config.check()
    out = Path(args.out) if args.out else default_dir("rnn-gradients")
    if (out / "config.json").is_file():  # a run's folder: the lesson's files would sit among the run's
        raise NeuralabError(f"`out` {out}: holds a run (config.json); give a folder of its own for the gradients")
    try:  # before the measurement, which takes a while: a place the results cannot go is said now
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NeuralabError(f"`out` {out}: cannot make the folder ({e.strerror}); give a folder to write into") from None
    print(f"SimpleRNN vs LSTM, hidden {config.hidden}, {config.steps} steps, {config.train_steps} training steps, "
          f"clip {config.clip} in the clipped runs ...", flush=True)
    result = measure(config)
    write_json(out / "gradients.json", result)
    with atomic_write(out / "gradients.csv") as f:
        w = csv.writer(f)
        w.writerow(["model", "clip", "when", "steps_back", "grad_norm"])
        for run in result["runs"]:
            for when in ("at_init", "trained"):
                for k, v in enumerate(reversed(run[when])):
                    w.writerow([run["model"], run["clip"] or "off", when, k, f"{v:.6g}"])
    plots.save(plot(result), out / "gradients.png")

    rows = norm_table(result)
    cols = [c for c in rows[0] if c not in ("model", "clip", "when")]
    back = config.steps - 1
    print(f"||dL/dx_t|| reaching k steps back from the output (the target is the first input, "
          f"{back} step{'' if back == 1 else 's'} back):")
    print(f"  {'model':<10}{'clip':<6}{'when':<9}" + "".join(f"{c:>11}" for c in cols))
    for r in rows:
        print(f"  {r['model']:<10}{str(r['clip']):<6}{r['when']:<9}" + "".join(f"{r.get(c, float('nan')):>11.2e}" for c in cols))
    for run in result["runs"]:
        largest = (f"largest gradient norm in training {max(run['grad_norm']):.3g} (before clipping)" if run["grad_norm"]
                   else "not trained (--train-steps 0)")
        print(f"  {run['model']:<10} clip {str(run['clip'] or 'off'):<4} final loss {run['final_loss']:.3f} "
              f"(predicting the mean gives 1.0), {largest}")
    print(f"written: {out / 'gradients.png'}, gradients.json, gradients.csv")
    return 0
