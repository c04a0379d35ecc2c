"""Training started from the browser: `neuralab train` as a separate process, one at a time.

The server only queues and watches: each job runs ``python -m neuralab train ...`` (the
command a user would type, so it writes the same run directory and honours the same
checks), its output going to a log file, while the pages stay responsive. One job trains
at a time; the others wait in order. Stopping sends SIGINT, as Ctrl-C does: the run keeps its
last finished epoch and `neuralab train --resume` (the resume button) continues it, bit for
bit; one stopped in its first epoch keeps only its config, and the resume starts it again
from epoch 1. Jobs die with the server: ``close`` interrupts the one training, and on Linux the
kernel sends it SIGINT if the server dies without closing (PR_SET_PDEATHSIG).

The form's fields are read here as the command line reads its flags (a zoo model, a dataset
neuralab knows and can find, whole epochs, a recipe, a seed) and then go through the
library's own check (``TrainConfig.check``) before anything starts.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError, ParameterError, Shown
from neuralab.web.inputs import choice, fields, text, whole
from neuralab.web.runs import resolve_run, run_name, without_root

TRAIN_FIELDS = ("model", "data", "epochs", "recipe", "seed")
MAX_EPOCHS = 1000          # the form's bound; a longer training belongs on the command line
MAX_QUEUED = 20            # jobs waiting at once; a page clicking without end is refused past this
STOP_GRACE = 30            # seconds a job may take to save and stop after SIGINT when the server closes
KEEP_DONE = 50             # finished jobs remembered for the page
ACTIVE = ("queued", "running", "stopping")  # a job's states before it ends


class JobRefused(NeuralabError):
    """A job request that is well-formed but cannot be done now (the app answers 409)."""


@dataclass
class Job:
    id: str
    run: str                   # the run directory, relative to the runs folder
    argv: list[str]            # after `neuralab`
    what: str                  # "train" or "resume"
    state: str = "queued"      # queued, running, stopping, finished, interrupted, failed, cancelled
    created: float = field(default_factory=time.time)
    returncode: int | None = None
    error: str = ""            # the last line the command printed when it failed
    log: Path | None = None
    command: str = ""          # as the page shows it: the runs folder's own path taken out

    def as_dict(self) -> dict:
        return {"id": self.id, "run": self.run, "what": self.what, "state": self.state, "created": self.created,
                "returncode": self.returncode, "error": self.error, "command": self.command}


def train_request(body: dict) -> dict:
    """The form's fields, checked as `neuralab train` checks its flags; raises ParameterError."""
    from neuralab.data.sources import SOURCES, locate
    from neuralab.models import ARCHITECTURES
    from neuralab.training.config import MAX_SEED, RECIPES, ClassifierConfig, TrainConfig, recipe_settings

    body = fields(body, TRAIN_FIELDS)
    model = choice("model", body.get("model", ClassifierConfig().model), tuple(ARCHITECTURES))
    data = choice("data", body.get("data", ClassifierConfig().data), tuple(SOURCES))
    recipe = body.get("recipe")
    recipe = "" if recipe is None else text("recipe", recipe)  # 0, false, [] are no way of saying "none"
    if recipe and recipe not in RECIPES:
        raise ParameterError("recipe", Shown(recipe), f"allowed are {', '.join(RECIPES)} (or none)")
    epochs = body.get("epochs")
    if epochs is None and not recipe:  # a recipe brings its own epochs; without one, the library's default
        epochs = TrainConfig().epochs
    if epochs is not None:
        epochs = whole("epochs", epochs, 1, MAX_EPOCHS)
    seed = body.get("seed")  # an empty box (null) is `neuralab train` without --seed, as epochs' is
    seed = TrainConfig().seed if seed is None else whole("seed", seed, 0, MAX_SEED)
    settings = recipe_settings(recipe, epochs=epochs)
    settings.pop("val_fraction", None)
    TrainConfig(seed=seed, **settings).check()  # the library's own check of the budget
    try:  # a dataset not on this machine fails now, in one line, not in the job's log
        locate(data)
    except NeuralabError:  # its message names the server's cache folder and Python's `data_dir`
        raise ParameterError("data", data, f"not on this machine; fetch it on the server with `neuralab data fetch "
                             f"{data}` (needs internet), or train in a terminal with `neuralab train --data-dir "
                             "DIR`") from None
    return {"model": model, "data": data, "epochs": epochs, "recipe": recipe, "seed": seed}


def train_argv(request: dict, out: Path) -> list[str]:
    argv = ["train", "--model", request["model"], "--data", request["data"], "--seed", str(request["seed"])]
    if request["recipe"]:
        argv += ["--recipe", request["recipe"]]
    if request["epochs"] is not None:
        argv += ["--epochs", str(request["epochs"])]
    return argv + ["--out", str(out)]


class Jobs:
    """The queue of one app: ``start`` and ``resume`` add a job, ``stop`` interrupts or cancels
    one, ``close`` ends them all. A single worker thread starts each process and waits for it."""

    def __init__(self, root: Path, trust_code: bool = False):
        self.root = Path(root)
        self.trust_code = trust_code  # the app's: a run of PyTorch code resumes only with it
        self._cv = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._current: tuple[Job, subprocess.Popen] | None = None
        self._ids = itertools.count(1)
        self._closed = False
        # the server closes them as it is told to stop, and the app again as it ends: the second
        # waits for the first, and does not interrupt the training a second time
        self._closing = threading.Lock()
        self._thread: threading.Thread | None = None
        # made when a job first starts: a server whose temporary folder is full still serves its pages
        self._logs: tempfile.TemporaryDirectory | None = None

    # --- requests --------------------------------------------------------------------

    def start(self, body: dict) -> Job:
        request = train_request(body)
        with self._cv:
            out = self._free_dir(request["model"], request["data"])
            return self._add(out, train_argv(request, self.root / out), "train")

    def resume(self, run_id: str) -> Job:
        command = self._resume_command(run_id)
        rel = run_name(self.root, run_id)
        with self._cv:
            if any(j.run == rel and j.state in ACTIVE for j in self._jobs.values()):
                raise JobRefused(f"run {run_id}: already queued or training")
            return self._add(rel, command, "resume")

    def why_not_resume(self, run_id: str) -> str:
        """Why Resume would be refused for the interrupted run ``run_id`` ("" where it would be
        queued): the run page offers the button only where it can work, and says why not."""
        try:
            self._resume_command(run_id)
        except NeuralabError as e:
            return str(e)
        return ""

    def _resume_command(self, run_id: str) -> list[str]:
        """`neuralab train --resume` for ``run_id``, or the refusal where the job could only fail."""
        path = resolve_run(self.root, text("run", run_id))
        run = runs.Run(path)
        if run.kind is not runs.Kind.CLASSIFIER:
            how = "in a terminal with `neuralab forecast --resume RUN`"
            if runs.resume_needs(path)[0] == "model":  # a module object's, which `--resume` would refuse
                how = ("in Python with the module given again, from the runs folder: "
                       f"{runs.Interrupted.resume_call(path, run.kind)}")
            raise JobRefused(f"run={Shown(run_id)!r}: only image-classifier runs resume from the app; a forecast run "
                             f"resumes {how}")
        status = run.status()
        if status is not runs.Status.INTERRUPTED:
            raise JobRefused(f"run {run_id}: {status.value}; only an interrupted run resumes")
        trust = self._trust(run, run_id)
        _refuse_moved_data(run, run_id)
        return ["train", "--resume", str(path), *trust]

    def _trust(self, run: runs.Run, run_id: str) -> list[str]:
        """What resuming ``run`` needs beyond `--resume`, refused here where the job could only fail:
        a run Keras's fit wrote goes on in Keras, and one of PyTorch code needs the app's trust."""
        if run.by_keras_fit:
            raise JobRefused(f"run {run_id}: {runs.KERAS_FIT_WAY_ON}")
        try:
            source = runs.json_object(runs.json_object(run.read(runs.MODEL)).get("source"))
        except NeuralabError:
            return []  # the resume names what is wrong with model.json
        from neuralab.training.source import TORCH

        if source.get("type") != TORCH:
            return []
        if source.get("file") is None:
            raise JobRefused(f"run {run_id}: its PyTorch model cannot be rebuilt from the run (docs/runs.md); resume "
                             "it in Python with the module given again, from the runs folder: "
                             f"{runs.Interrupted.resume_call(run.path, run.kind)}")
        if not self.trust_code:
            raise JobRefused(f"run {run_id}: its model is PyTorch code, which runs only when trusted; start the app "
                             "with `neuralab serve --trust-code` after reading the run's model.py")
        return ["--trust-code"]

    def stop(self, run_id: str) -> dict:
        """Cancel the run's queued job, or interrupt its training (SIGINT, as Ctrl-C); the job as
        this left it (the worker may end it a moment later)."""
        run = run_name(self.root, run_id)
        with self._cv:
            for job in reversed(self._jobs.values()):
                if job.run == run and job.state == "queued":
                    self._waiting.remove(job)
                    job.state = "cancelled"
                    return job.as_dict()
            if self._current is not None and self._current[0].run == run:
                job, process = self._current
                if job.state == "running":
                    job.state = "stopping"
                    process.send_signal(signal.SIGINT)
                return job.as_dict()
        raise JobRefused(f"run {run_id[:80]}: no job of this server is training or waiting for it")

    def list(self) -> list[dict]:
        with self._cv:
            return [j.as_dict() for j in self._jobs.values()]

    def active(self, run_id: str) -> dict | None:
        """The queued or running job of a run, if any."""
        run = run_name(self.root, run_id)
        with self._cv:
            for job in reversed(self._jobs.values()):
                if job.run == run and job.state in ACTIVE:
                    return job.as_dict()
        return None

    def last(self, run_id: str) -> dict | None:
        """The run's latest job of this server, whatever its state (a resume that failed, for
        the run page to say so beside Resume), if any."""
        run = run_name(self.root, run_id)
        with self._cv:
            return next((job.as_dict() for job in reversed(self._jobs.values()) if job.run == run), None)

    def training(self) -> str | None:
        """The run whose training process has not ended yet (once ``close`` has interrupted it:
        still saving), if any."""
        with self._cv:
            current = self._current
        return current[0].run if current is not None and current[1].poll() is None else None

    def kill(self) -> None:
        """Kill the training process at once, not waiting for it to save (a server told to end
        now): the run goes on from its last saved epoch, whose files are each written whole or
        not at all, as after any kill."""
        with self._cv:
            current = self._current
        if current is not None and current[1].poll() is None:
            current[1].kill()

    def close(self, grace: float = STOP_GRACE) -> None:
        """Cancel what waits and interrupt what trains; kill it if it has not stopped within ``grace`` s."""
        with self._closing:
            self._close(grace)

    def _close(self, grace: float) -> None:
        with self._cv:
            self._closed = True
            for job in self._waiting:
                job.state = "cancelled"
            self._waiting.clear()
            current = self._current
            self._cv.notify_all()
        if current is not None:
            job, process = current
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(grace)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._logs is not None:
            self._logs.cleanup()

    # --- the worker ------------------------------------------------------------------

    def _add(self, run: str, argv: list[str], what: str) -> Job:
        if self._closed:
            raise JobRefused("the server is shutting down")
        if len(self._waiting) >= MAX_QUEUED:
            raise JobRefused(f"{MAX_QUEUED} jobs are already waiting; stop some first")
        job = Job(str(next(self._ids)), run, argv, what,
                  command=without_root(self.root, "neuralab " + " ".join(argv)))
        self._jobs[job.id] = job
        self._waiting.append(job)
        for old in [j for j in self._jobs.values() if j.state not in ACTIVE][:-KEEP_DONE]:
            del self._jobs[old.id]
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="neuralab-jobs", daemon=True)
            self._thread.start()
        self._cv.notify_all()
        return job

    def _free_dir(self, model: str, data: str) -> str:
        """MODEL-DATA-TIME under the root, with -2, -3... when that folder is taken or promised."""
        base = runs.default_dir(model, data, root=self.root).name
        taken = {j.run for j in self._jobs.values()}
        for n in itertools.count(1):
            name = base if n == 1 else f"{base}-{n}"
            if name not in taken and not (self.root / name).exists():
                return name
        raise AssertionError("unreachable")

    def _work(self) -> None:
        # This thread starts every process and lives as long as the app: PR_SET_PDEATHSIG
        # fires when the thread that started a process ends, so it must not be a short-lived one.
        while True:
            with self._cv:
                while not self._waiting and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                try:
                    process = self._spawn(job)
                except OSError as e:
                    job.state, job.error = "failed", f"cannot start neuralab ({e.strerror})"
                    continue
                except NeuralabError as e:
                    job.state, job.error = "failed", without_root(self.root, str(e))
                    continue
                job.state = "running"
                self._current = (job, process)
            returncode = process.wait()
            with self._cv:
                self._current = None
                job.returncode = returncode
                # Asked to stop and ended short of finishing: whatever the status, the stop ended it. Stop in
                # the first second hits Python's start (-SIGINT, or 1 where an exit handler was interrupted)
                # or comes before the run's folder.
                stopped = job.state == "stopping" and returncode != 0
                job.state = {0: "finished", 130: "interrupted"}.get(returncode, "failed")
                if stopped:
                    job.state = "interrupted" if (self.root / job.run / runs.CONFIG).is_file() else "cancelled"
                if job.state == "failed":
                    job.error = without_root(self.root, _last_line(job.log)) or f"exited with status {returncode}"

    def _spawn(self, job: Job) -> subprocess.Popen:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self._log(job) as log:
            return subprocess.Popen([sys.executable, "-m", "neuralab", *job.argv], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def _log(self, job: Job):
        """The job's log file, open for writing, in the server's temporary folder."""
        try:
            if self._logs is None:
                self._logs = tempfile.TemporaryDirectory(prefix="neuralab-jobs-")
            job.log = Path(self._logs.name) / f"{job.id}.log"
            return open(job.log, "wb")
        except OSError as e:
            raise NeuralabError(f"cannot write the job's log: the server's temporary folder {tempfile.gettempdir()} "
                                f"cannot be written ({e.strerror}); free space there, or start the server with "
                                "TMPDIR set to a folder it can write") from None


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGINT when the server goes (Linux)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _last_line(path: Path | None) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except (OSError, AttributeError):
        return ""
    return lines[-1][:300] if lines else ""


def choices() -> dict:
    """What the form offers: the zoo, the datasets (and whether this machine has each), the recipes."""
    from neuralab.data.sources import SOURCES, locate
    from neuralab.models import ARCHITECTURES
    from neuralab.training.config import RECIPES, ClassifierConfig, TrainConfig

    def here(name: str) -> bool:
        try:
            locate(name)
            return True
        except NeuralabError:
            return False

    defaults = ClassifierConfig()
    return {"models": list(ARCHITECTURES), "datasets": [{"name": n, "found": here(n)} for n in SOURCES],
            "recipes": {name: {k: v for k, v in r.items()} for name, r in RECIPES.items()},
            "defaults": {"model": defaults.model, "data": defaults.data, "epochs": TrainConfig().epochs,
                         "seed": TrainConfig().seed}}


def _refuse_moved_data(run: runs.Run, run_id: str) -> None:
    """Refuse the resume of ``run`` whose image folder is not where config.json says: its job
    would stop asking for the folder's new place (`--data-dir`), which the app cannot give."""
    from neuralab.training.run_data import data_place, stored_config  # torch-free: asked on every page look

    try:
        config = stored_config(run)
    except NeuralabError:
        return  # the resume names what is wrong with config.json
    try:
        data_place(config)
    except NeuralabError:
        raise JobRefused(f"run {run_id}: its image folder is not there any more ({config.data}); if it moved, "
                         "resume it in a terminal with `neuralab train --resume RUN --data-dir NEW_PLACE`") from None
