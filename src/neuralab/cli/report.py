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

    from neuralab.runs import resume_needs, shell_word

    return f"neuralab report {shell_word(run_dir)}" + (" --trust-code" if resume_needs(Path(run_dir))[0] == "trust_code" else "")


REPORTED = "its report can only be written"  # what from_python_only says for `neuralab report`


def run_report(args) -> int:
    print(f"wrote {write_report(args.run_dir, args.data_dir, args.trust_code)}")
    return 0


def write_report(run_dir, data_dir: str | None = None, trust_code: bool = False):
    """Write the report of the finished run in ``run_dir`` again, as its kind draws it; the path of report.html."""
    from neuralab.errors import NeuralabError
    from neuralab.runs import Kind, Run
    from neuralab.training.source import from_python_only

    run = Run.open(run_dir)
    _refuse_unfinished(run)
    if run.kind is Kind.CLASSIFIER:
        from neuralab.training.evaluate import write_report

        with from_python_only(run_dir, REPORTED, "neuralab.training.evaluate.write_report", *filter(None, [data_dir])):
            return write_report(run_dir, data_dir, trust_code=trust_code)
    from neuralab.forecasting.finished import write_report

    if data_dir is not None:
        raise NeuralabError(f"--data-dir: {run_dir} is a forecast run, which reads its series from "
                            "where it was trained; leave --data-dir out")

    from neuralab.cli.forecast import finished_run_only

    with finished_run_only(), from_python_only(run_dir, REPORTED, "neuralab.forecasting.finished.write_report"):
        return write_report(run_dir, trust_code=trust_code)


def _refuse_unfinished(run) -> None:
    """A run that did not finish has no report to write: said as the command that resumes it,
    which writes the report at its end. (The library names its Python call; for a forecast its
    refusal is about forecasting with the run, naming its model.safetensors, which a run stopped
    in its first epochs has not yet.)"""
    from neuralab.cli._args import resume_command
    from neuralab.errors import NeuralabError
    from neuralab.runs import Status, resume_needs, way_on

    if run.by_keras_fit or resume_needs(run.path)[0] == "model":  # no command resumes those: the library says
        return
    status = run.status()
    if status is Status.RUNNING:
        raise NeuralabError(f"{run.path}: still training, so there is no report to write yet; its end writes it")
    if status is Status.INTERRUPTED:
        resume = way_on(run.path, run.kind, call=resume_command(run.kind.made_by, run.path))
        raise NeuralabError(f"{run.path}: the run did not finish (no results.json), so there is no report to write; "
                            f"{resume}, and writes its report at the end")
