"""`neuralab report RUN_DIR`: write a run's report.html (and its pictures) again."""

from __future__ import annotations

from neuralab.cli._args import run_folder


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="write a run's report.html again from its directory",
        description="Write report.html and its pictures again from a finished run's directory alone, "
                    "for an image classifier (the model is loaded and the test set evaluated again) or a "
                    "forecast (from results.json, forecast.csv and the series): after a full disk stopped "
                    "the report, or to draw an old run with this version.")
    p.add_argument("run_dir", type=run_folder, metavar="RUN_DIR",
                   help="a run's directory (from neuralab train, import or forecast)")
    p.add_argument("--data-dir", help="folder holding an image classifier's dataset, if not where the run found it")
    p.add_argument("--trust-code", action="store_true",
                   help="run the run's copy of its PyTorch model code (model.py), for runs made from a .py file")
    p.set_defaults(func=run_report)


def report_command(run_dir) -> str:
    """The command line that writes the report of the finished run in ``run_dir`` again: with
    --trust-code where its model is PyTorch code, which the command runs only when told to. The
    library's report errors name the Python call; main() says this instead (``said_with``)."""
    from pathlib import Path

    from neuralab.runs import resume_needs

    return f"neuralab report {run_dir}" + (" --trust-code" if resume_needs(Path(run_dir))[0] == "trust_code" else "")


def run_report(args) -> int:
    from neuralab.errors import NeuralabError
    from neuralab.runs import Kind, Run

    kind = Run.open(args.run_dir).kind
    if kind is Kind.CLASSIFIER:
        from neuralab.training.classify import write_report

        path = write_report(args.run_dir, args.data_dir, trust_code=args.trust_code)
    else:
        from neuralab.forecasting.pipeline import write_report

        if args.data_dir is not None:
            raise NeuralabError(f"--data-dir: {args.run_dir} is a forecast run, which reads its series from "
                                "where it was trained; leave --data-dir out")

        from neuralab.cli.forecast import finished_run_only

        with finished_run_only():
            path = write_report(args.run_dir, trust_code=args.trust_code)
    print(f"wrote {path}")
    return 0
