"""The trainer every neuralab model runs on: images and series alike.

Datasets that fit in memory stay as tensors and are batched by indexing a seeded
permutation (no per-sample Python work). Each epoch ends with a validation pass, one
progress line, an atomic checkpoint of the full training state and, when the monitored
metric improves, the best weights; an epoch whose training or validation loss is not finite
stops the training instead, refused as ``Diverged`` (naming ``lr``). Under torchrun each process takes
an equal share of every global batch, so N processes give the result of one with the same
global batch (to rounding) for models without dropout or batch norm. Dropout draws other masks
in each process, as it would in the next epoch of one; batch norm normalises each process's share
by its own statistics on the CPU (gloo), and by the whole batch's on GPUs (NCCL, SyncBatchNorm).

With ``focus`` below 1, every epoch after the first trains only on that fraction of the
training set: the samples whose loss was highest when they were last seen, the idea of
Loshchilov & Hutter, "Online batch selection for faster training of neural networks" (2015,
arXiv:1511.06343) and Jiang et al., "Accelerating deep learning by focusing on the biggest
losers" (2019, arXiv:1910.00762). The losses come free from the training passes themselves.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from neuralab.errors import NeuralabError, ParameterError, Shown, out_of_memory, reraise_interrupt
from neuralab.files import WriteError, atomic_write, signals_held
from neuralab.models.fast import accelerate
from neuralab.models.summary import in_eval_mode
from neuralab.runs import BEST, LAST, METRICS, PROGRESS, WEIGHTS, Run, not_written
from neuralab.training.callbacks import Callback, Checkpoint, EarlyStopping, checked_callbacks, overrides, ranked
from neuralab.training.checkpoint import (check_fits, load_checkpoint, load_tensors, save_checkpoint, save_tensors,
                                          save_weights, unwrap)
from neuralab.training.compile import (LOSS_EACH, OptimizerFactory, aligned, check_given, lr_factor, make_optimizer,
                                       on_softmax)
from neuralab.training.config import AUTO_BF16_PARAMETERS, REGRESSION_LOSSES, Diverged, TrainConfig
from neuralab.training.device import cpu_threads, environment, init_distributed, kept_heap, native_bf16, pick_device
from neuralab.training.inputs_check import (WrongOutput, blame_model, check_classes, check_train_config, check_val_form,
                                            checked_pairs, first_line, held_loss, input_refusal, labels, near,
                                            own_architecture, own_loss, own_loss_refusal, refuse_empty_shares,
                                            scored_as_values, step_output_refusal, users_code)
from neuralab.training.progress import Progress


@dataclass
class Task:
    """What is learned: a loss for each sample, and metrics summed over the batch."""
    name: str
    loss_each: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric_sums: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def _correct(out, y):
    return {"accuracy": (out.argmax(1) == (y if y.dim() == 1 else y.argmax(1))).sum()}  # labels or one-hot


def _squared_error(out, y):  # (B, H) forecasts: mean over the horizon, one per sample
    return F.mse_loss(out, aligned(out, y), reduction="none").reshape(len(out), -1).mean(1)


def _abs_error(out, y):
    return {"mae": (out - aligned(out, y)).abs().reshape(len(out), -1).mean(1).sum()}


CLASSIFICATION = Task("classification", lambda out, y: F.cross_entropy(out, y, reduction="none"), _correct)
REGRESSION = Task("regression", _squared_error, _abs_error)


class Trainer:
    """Fits ``model`` on in-memory tensors; ``run_dir`` (optional) receives checkpoints,
    ``metrics.jsonl`` and the best weights as ``model.safetensors`` with ``model_meta``.

    ``callbacks`` (neuralab.training.callbacks) run after the trainer's own; ``optimizer``, a
    torch.optim.Optimizer class or a function of the parameters returning one, replaces the
    optimizer that ``config`` names. ``inputs`` turns each batch, as the data hold it, into
    the model's input: image runs keep their uint8 pixels and normalise one batch at a time
    (``Preprocess.normalise``), where a float32 copy of the whole set took four times the
    memory and, in the fast recipe's command, half a second or more of page faults."""

    def __init__(self, model: nn.Module, config: TrainConfig, task: Task = CLASSIFICATION,
                 run_dir: str | Path | None = None, model_meta: dict | None = None, verbose: bool = True,
                 callbacks: Iterable[Callback] = (), optimizer: OptimizerFactory | None = None,
                 inputs: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if not isinstance(model, nn.Module):
            raise ParameterError("model", Shown(model), "give a torch.nn.Module, the network to train")
        callbacks = checked_callbacks(callbacks)
        check_train_config(config, "config")
        config.check(task.name)
        check_given(config, optimizer)
        # A classifier's targets: class numbers, or rows of class probabilities; mse, mae and huber
        # may also score float targets of any shape its outputs have
        self._classifies = task is CLASSIFICATION
        labelled = valued = task
        if config.loss is not None:  # the same task scored with another loss
            labelled = valued = Task(task.name, LOSS_EACH[config.loss], task.metric_sums)
            if self._classifies and config.loss in REGRESSION_LOSSES:
                # labels in any form are scored on the softmax, with an accuracy; values to regress
                # as they are, with their mae, having no class to be right about
                labelled = Task(task.name, on_softmax(config.loss), _correct)
                valued = Task(task.name, LOSS_EACH[config.loss], _abs_error)
        self.config, self._tasks = config, (labelled, valued)
        self.task = labelled  # what fit learns: its training targets' (``scoring``)
        self.callbacks = callbacks
        self.optimizer_factory = optimizer
        self.inputs = inputs
        self.stop_training = False  # a callback may set it, as Keras's model.stop_training
        self.optimizer = self.scheduler = None  # made by fit
        self.train_data = self.val_data = None  # (x, y) on the device while fit runs
        self.improved = False                   # the last epoch is the best so far
        self._step_callbacks: list[Callback] = []
        self._progress: Progress | None = None  # fit's, while it runs: say() writes there
        self.device = pick_device(config.device)
        self.dist = init_distributed(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None or callbacks:  # before the run's folder is made
            from neuralab.training.tensorboard import check_event_folders

            check_event_folders(self.run_dir, config.tensorboard, callbacks)
        self.model_meta = model_meta or {}
        self.verbose = verbose and self.dist.is_main
        self.model = model.to(self.device)
        # Channels-last only where every layer is neuralab's or PyTorch's, which take either layout: a
        # user's forward may use x.view(N, -1), which needs (N, C, H, W) strides.
        self.channels_last = config.channels_last and _layout_free(model)
        self._own = own_architecture(model)  # before fit's accelerate() gives a user's layers neuralab's classes
        self._users = users_code(model)  # what it raises in training is the user's to mend (ModelFailed)
        self._checked = self._own  # neuralab's architectures are known to train
        self._unused: set[str] = set()  # parameters the checked step left without a gradient
        self._scaler = torch.amp.GradScaler(self.device.type, enabled=False)  # fit's, for float16
        self.amp_dtype = self._amp_dtype()
        self.history: list[dict] = []
        self.sample_losses: torch.Tensor | None = None  # each training sample's loss when last seen (focus)
        self.best_state: dict | None = None

    def _amp_dtype(self):
        amp = self.config.amp
        if amp == "auto":
            # Measured on an H200: bf16 autocast made LeNet-5 (62k parameters) and the sample
            # CNN 3-30% slower per epoch (kernel launch bound); it pays off for large models.
            # On a CPU with AVX-512 BF16 it made AlexNet's, VGG16's and GoogLeNet's epochs
            # 1.4-1.8x faster, the sample CNN's 1.06x and LeNet-5's 1.07x
            # (docs/speed-rounds.md, the fourteenth round).
            # a lazy layer (nn.LazyLinear) has no size until its first batch: counted as none
            big = sum(p.numel() for p in self.model.parameters() if not is_lazy(p)) >= AUTO_BF16_PARAMETERS
            amp = "bf16" if big and native_bf16(self.device) else "off"
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return x
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else nchw(x)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as the data hold it (on the device, in the trainer's layout) -> the model's input."""
        return x if self.inputs is None else self.inputs(x)

    @property
    def autocast(self) -> str:
        """``off``, or the dtype that autocast computes in: ``bfloat16`` or ``float16``."""
        return "off" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")

    @property
    def device_text(self) -> str:
        """The device as run headers print it: ``cpu``, or ``cpu, bfloat16 autocast``."""
        return str(self.device) if self.amp_dtype is None else f"{self.device}, {self.autocast} autocast"

    @property
    def environment(self) -> dict:
        return {**environment(self.device, self.config.threads), "autocast": self.autocast}

    def scoring(self, y: torch.Tensor) -> Task:
        """The loss and metrics of checked targets ``y``, a whole set: under mse, mae or huber a
        classifier's labels (class numbers, rows of class probabilities) are scored on its softmax
        with an accuracy, values to regress (``scored_as_values``) as they are with their mae."""
        return self._tasks[self._classifies and scored_as_values(y, self.config.loss)]

    def fit(self, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor] | None = None,
            resume: bool = False) -> list[dict]:
        """Train on ``(x, y)`` from the model's current weights and return this fit's history, one
        record per epoch. With ``val``, the model ends with the weights of the epoch that scored best
        on it, not the last epoch's. Each call is a new training with a fresh history, as Keras's
        ``fit``; ``resume`` continues the run in ``run_dir`` instead. Class labels may be of any
        integer type, or bool (False is class 0, True class 1)."""
        cfg, dist = self.config, self.dist
        given = getattr(y, "dtype", None)  # as the user gave y, which ``labels`` makes int64 where bool or int32
        # a module's own loss takes y as it is (NaN where a target was not measured, which it masks); the
        # validation pass and evaluate score the eval-mode outputs with TrainConfig's loss, which NaN makes NaN
        y = checked_pairs(x, y, "x", "y", self._classifies, cfg.loss, own_loss(self.model) is not None)
        if self._classifies and cfg.monitor == "val_accuracy" and scored_as_values(y, cfg.loss):
            raise ParameterError("monitor", cfg.monitor, f"y holds values that {cfg.loss} scores as a regression, "
                                                         "with no accuracy: watch \"val_loss\"")
        if val is not None:
            if not (isinstance(val, (tuple, list)) and len(val) == 2):
                raise ParameterError("val", type(val).__name__, "give (x, y) of the validation set, or None")
            val_given = getattr(val[1], "dtype", None)
            val = (val[0], checked_pairs(*val, "val[0]", "val[1]", self._classifies, cfg.loss))
            if not len(val[0]):  # its loss would be a mean over no rows, which no epoch can be chosen by
                raise ParameterError("val", "0 rows", "give at least one row, or None for no validation set")
            if self._classifies:
                check_val_form(y, val[1], cfg.loss, val_given)
        self.task = self.scoring(y)
        # the model runs only once the data passed every check that needs no forward
        check_classes(y, "y", self._outputs(x, "x"), self.config.loss, given)
        if val is not None:
            check_classes(val[1], "val[1]", self._outputs(val[0], "val[0]"), cfg.loss, val_given)
        n = len(x)
        if n == 0:
            raise NeuralabError("the training set is empty")
        self.check_model(x, y, resumed=resume)
        sizes = cfg.epoch_sizes(n)
        model = accelerate(self.model)  # the same layers through faster CPU kernels (models/fast.py)
        if self.channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
        # The whole set moves to the device once; batches are gathered there.
        x, y = self._layout(x.to(self.device)), y.to(self.device)
        if dist.active:
            if self.device.type == "cuda":  # NCCL syncs batch norm's statistics over the whole batch; gloo cannot
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            # A parameter no forward uses would leave DDP waiting for its gradient at the next step
            model = nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                                        find_unused_parameters=bool(self._unused))
        optimizer = make_optimizer(model.parameters(), cfg, self.device, self.optimizer_factory)
        # float16's range is narrow: small gradients would flush to zero and large ones overflow unscaled
        self._scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(cfg, sum(math.ceil(size / cfg.batch_size) for size in sizes)))
        shuffle = torch.Generator().manual_seed(cfg.seed)
        # What the callbacks see, and the checkpoint saves, besides the model
        self.optimizer, self.scheduler, self._training = optimizer, scheduler, (model, shuffle)
        self.train_data, self.val_data = (x, y), val

        # A new training: an earlier fit's epochs and best weights would be compared with this one's
        self.history, self.best_state, self.sample_losses, self.improved = [], None, None, False
        start = 1
        if resume and self.run_dir is not None:
            meta = self._restore(model, optimizer, scheduler, shuffle)
            start = meta["epoch"] + 1 if meta else 1
        if dist.world_size > 1:
            # Every process was seeded alike to build the same model (a checkpoint restores rank 0's
            # state): the i-th sample of every share would get the same dropout mask.
            torch.manual_seed(int(np.random.SeedSequence([cfg.seed, start, dist.rank]).generate_state(1)[0]))

        progress = Progress(cfg.epochs, n, enabled=self.verbose, run_dir=self.run_dir if dist.is_main else None)
        self._progress = progress
        if resume and self.run_dir is not None:
            self.say(_resuming(self.run_dir, start - 1, cfg.epochs))
        own = self._own_callbacks(progress)
        callbacks = own + self.callbacks
        self._step_callbacks = [c for c in callbacks if overrides(c, "on_step_end")]
        self.stop_training = False
        try:
            for callback in callbacks:
                callback.on_train_begin(self)
            t0 = time.perf_counter() - self.elapsed  # wall time accumulates across resumes
            warned_val = False  # a validation loss that overflows is said once, not every epoch
            with cpu_threads(cfg.threads), kept_heap(), contextlib.closing(progress):
                for epoch in range(start, cfg.epochs + 1):
                    if self.stop_training:
                        break
                    order = self._epoch_order(shuffle, n, sizes[epoch - 1])
                    record = self._train_epoch(model, optimizer, scheduler, order, x, y, epoch, progress)
                    # NaN weights from here on: no validation, no checkpoint, no callback sees the epoch.
                    # The loss is the sum over every process's share, so all of them stop here.
                    if not math.isfinite(record["loss"]):
                        raise Diverged(cfg.lr, epoch)
                    if val is not None:
                        where = "in the validation pass"
                        record.update({f"val_{k}": v for k, v in self._evaluate(*val, (epoch, where)).items()})
                        # weights that went to NaN or overflow in the epoch's last steps show only here;
                        # every process validates on the same rows, so all of them stop alike. Finite
                        # outputs with a loss that is not (a target of 1e20, whose square overflows; NaN
                        # targets were refused) are no divergence: the epoch is never the best (ranked),
                        # and the run goes on
                        if not math.isfinite(record["val_loss"]):
                            if not bool(torch.isfinite(self._predict(val[0])).all()):
                                raise Diverged(cfg.lr, epoch, "its validation loss is not a finite number")
                            if not warned_val:
                                warnings.warn(f"epoch {epoch}: the validation loss is not a finite number, though the "
                                              "model's outputs and the targets are: a validation target too large "
                                              "for float32 (its error, squared under mse, overflows)? check the "
                                              "targets of `val`")
                                warned_val = True
                    record["elapsed"] = time.perf_counter() - t0
                    self.history.append(record)
                    self.improved = self._improved()
                    if self.improved:
                        self.best_state = copy.deepcopy(unwrap(model).state_dict())
                    with signals_held():  # the checkpoint first, then the progress line, the events
                        for callback in own:
                            if callback.on_epoch_end(self, record):
                                self.stop_training = True
                    for callback in self.callbacks:
                        if callback.on_epoch_end(self, record):
                            self.stop_training = True
                    if dist.active:  # one process stopping alone would leave the others waiting in the next step
                        self.stop_training = _any_process(self.stop_training, self.device)
        finally:
            for callback in callbacks:
                callback.on_train_end(self)
            # DDP's wrapper holds the process group: kept past fit, it outlived the group's
            # teardown at exit, and gloo's threads, ended by the interpreter's, aborted the process
            self.train_data = self.val_data = self._training = self._progress = None
        if self.best_state is not None:
            unwrap(model).load_state_dict(self.best_state)
        return self.history

    def say(self, line: str) -> None:
        """One line of the training's log, where its epochs' lines go (nothing with ``verbose``
        False, and only from the main process of a torchrun job)."""
        if self._progress is not None:
            self._progress.print(line)
        elif self.verbose:
            print(line, flush=True)

    def _own_callbacks(self, progress: Progress) -> list[Callback]:
        """The trainer's own duties as callbacks, in the order they always ran; the user's follow."""
        own: list[Callback] = []
        if self.dist.is_main and self.run_dir is not None:
            own.append(Checkpoint())
        own.append(_ProgressLine(progress))
        if self.config.patience > 0:
            own.append(EarlyStopping(self.config.patience))
        if self.config.tensorboard and self.dist.is_main and self.run_dir is not None:
            from neuralab.training.tensorboard import TensorBoard

            own.append(TensorBoard())
        return own

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, over every session of a resumed run."""
        return self.history[-1].get("elapsed", 0.0) if self.history else 0.0

    def _epoch_order(self, shuffle: torch.Generator, n: int, size: int) -> torch.Tensor:
        """This epoch's samples in random order: all ``n``, or the ``size`` with the highest loss."""
        order = torch.randperm(size, generator=shuffle).to(self.device)
        if size < n:
            order = self.sample_losses.topk(size).indices[order]
        return order

    def _criterion(self, model) -> Callable:
        """The summed loss of a batch's outputs. A module that computes its own loss (``own_loss``,
        GoogLeNet: main loss + 0.3 x each auxiliary head) gets the task's criterion;
        everything else is scored by it directly."""
        def summed(out, y):
            return self.task.loss_each(out.float(), y).sum()

        computed = own_loss(model)
        return (lambda out, y: computed(out, y, criterion=summed)) if computed is not None else summed

    def check_model(self, x: torch.Tensor, y: torch.Tensor, size: int | None = None, resumed: bool = False) -> None:
        """Refuse in one line, before anything trains or is written, a model that fails in training
        mode on ``(x, y)``: one step (forward, loss, backward) on a full batch and one on the smallest
        batch an epoch ends with. The weights, buffers and random state are left as they were, so the
        training that follows is the same. A model's check in eval mode (training.module_check) misses a
        forward that returns more while training, and batch norm on a last batch of one sample.
        Neuralab's own architectures are known to train and are not checked; ``fit`` checks once.
        ``x`` may hold only the first rows (a batch's) of a training set of ``size`` samples; a run
        ``resumed`` is told what its resume may change."""
        cfg, dist = self.config, self.dist
        sizes = cfg.epoch_sizes(size or len(x))
        refuse_empty_shares(sizes, cfg.batch_size, dist.world_size, resumed)
        if self._checked:
            return
        # the smallest process's part, the same in every process: all of them refuse alike, or none
        share = lambda rows: rows // dist.world_size  # noqa: E731
        full = share(min(cfg.batch_size, max(sizes)))
        last, epoch_size = min((share(s % cfg.batch_size or cfg.batch_size), s) for s in sizes)
        name = self.model_name
        refusal = own_loss_refusal(self.model, name)
        if refusal is not None:  # else refused as a forward that fails, where the loss's signature is at fault
            raise NeuralabError(refusal)
        for k in (full, last) if 0 < last < full else (full,):
            failure = self._step_error(x, y, k)
            if isinstance(failure, WrongOutput):
                raise failure
            if isinstance(failure, str):
                raise NeuralabError(f"{name}: in training mode (model.train()) the model returns {failure}, where "
                                    "the trainer needs one tensor of outputs (N, classes); return the outputs alone "
                                    "when training too")
            if failure is not None and k == full:
                shape = f"({', '.join(['N', *map(str, x.shape[1:])])})"
                raise NeuralabError(f"{name}: the model fails in training mode (model.train()) on a batch of {k} "
                                    f"inputs {shape}: {first_line(failure)}; make its forward work when training")
            if failure is not None:
                better = next((b for b in near(cfg.batch_size, max(sizes))
                               if all(share(s % b or b) > k for s in sizes)), None)
                raise NeuralabError(f"{name}: the model fails in training mode on the last batch of an epoch, {k} "
                                    f"of {epoch_size} training samples in batches of {cfg.batch_size} "
                                    f"({first_line(failure)}); choose a `batch_size` that leaves a larger last "
                                    "batch" + (f", such as {better}" if better else ""))
        if own_loss(self.model) is None and held_loss(self.model):
            # a criterion kept as self.loss (label smoothing, class weights) would else be dropped unsaid;
            # the module's attribute is no parameter of neuralab's, so only TrainConfig's is marked
            own = f'`loss` "{cfg.loss}"' if cfg.loss else "the task's own " + (
                "cross-entropy" if self._classifies else "mean squared error") + ", the default of `loss`"
            warnings.warn(f"{name}: the module's own loss (model.loss) is not called: it trains on {own}; "
                          "a class that sets loss_takes_criterion = True has its loss(outputs, y, criterion) "
                          "called instead, as GoogLeNet's", stacklevel=3)
        self._checked = True

    def _step_error(self, x: torch.Tensor, y: torch.Tensor, k: int) -> Exception | str | None:
        """What one training step on the first ``k`` rows raises, what a forward returns in place of
        a tensor ("a tuple"), or None; the model is left as it was."""
        model = self.model
        saved = [(m, name, b, b.detach().clone()) for m in model.modules() for name, b in m._buffers.items()
                 if b is not None]
        was_training = model.training
        xb, yb = self.model_input(self._layout(x[:k].to(self.device))), y[:k].to(self.device)
        try:
            model.train()
            with self._kept_rng(), cpu_threads(self.config.threads):
                with self._autocast():
                    out = model(xb)
                    if isinstance(out, (tuple, list, dict)) and own_loss(model) is None:
                        return WrongOutput(step_output_refusal(out, x, y, k, self.model, self._classifies,
                                                               self.model_meta, self.model_name, training=True,
                                                               loss=self.config.loss))
                    if not isinstance(out, torch.Tensor) and own_loss(model) is None:
                        return "None" if out is None else f"a {type(out).__name__}"
                    try:
                        loss = self._criterion(model)(out, yb)
                    except Exception as e:  # the loss refused the outputs: said as checking the module says it
                        reraise_interrupt(e)
                        refusal = step_output_refusal(out, x, y, k, self.model, self._classifies, self.model_meta,
                                                      self.model_name, loss=self.config.loss)
                        if refusal is None:
                            raise
                        return WrongOutput(refusal)
                loss.backward()
            self._unused |= {name for name, p in model.named_parameters() if p.requires_grad and p.grad is None}
        except Exception as e:  # noqa: BLE001  the user's forward: named in one line by check_model
            reraise_interrupt(e)  # Ctrl-C that the forward raised as another error stops the run
            return e
        finally:
            with torch.no_grad():  # running statistics (batch norm) and counters as they were
                for module, name, buffer, value in saved:
                    buffer.copy_(value)
                    module._buffers[name] = buffer
            for p in model.parameters():
                p.grad = None
            model.train(was_training)
        return None

    @property
    def model_name(self) -> str:
        return self.model_meta.get("architecture") or type(unwrap(self.model)).__name__

    def _kept_rng(self):
        """A block after which the random state is as it was: the CPU's, and the accelerator's (CUDA, MPS)."""
        accelerator = self.device.type != "cpu"
        return torch.random.fork_rng(devices=[self.device.index or 0] if accelerator else [],
                                     device_type=self.device.type if accelerator else "cuda")

    def _outputs(self, x: torch.Tensor, name: str) -> int | None:
        """How many outputs (classes) a classifier gives, from its forward on ``x``'s first sample (one
        of zeros where ``x`` has no rows) in eval mode, the random state kept; None where the loss takes
        no class numbers (a forecaster's), or where no tensor of outputs comes back (``_classes``).
        Inputs the model cannot take are refused naming ``name``: where a neuralab architecture's first
        step would fail with a raw PyTorch error. A user's forward that fails is left to check_model."""
        if not self._classifies:
            return None
        model = unwrap(self.model)
        try:
            with in_eval_mode(model), torch.no_grad(), self._kept_rng(), self._autocast(), \
                    cpu_threads(self.config.threads):
                out = model(self.model_input(self._layout((x[:1] if len(x) else _stand_in(x)).to(self.device))))
        except Exception as e:  # noqa: BLE001  named in one line below, or by check_model
            reraise_interrupt(e)  # Ctrl-C that the forward raised as another error stops the run
            if out_of_memory(e):
                raise
            refused = input_refusal(x, name, e, self.model, self.inputs, self._own, self.model_meta, self.model_name)
            if refused is not None:  # one line, without PyTorch's error chained in front of it
                raise refused from None
            return None
        return self._classes(getattr(out, "logits", out))

    def _classes(self, out) -> int | None:
        """How many outputs (classes) a classifier's ``out`` gives each sample, None where no tensor
        of outputs (N, outputs) comes back. A forward's .squeeze(-1) that leaves one value per sample
        (N,) gives one output to mse, mae and huber, as ``aligned`` scores it: where it gave none,
        whole numbers went unchecked to the first step's accuracy (``_correct``), a raw IndexError."""
        if not self._classifies or not isinstance(out, torch.Tensor):
            return None
        if out.dim() == 1 and self.config.loss in REGRESSION_LOSSES:
            return 1
        return out.shape[1] if out.dim() >= 2 else None

    def _train_epoch(self, model, optimizer, scheduler, order, x, y, epoch, progress) -> dict:
        cfg, dist, scaler = self.config, self.dist, self._scaler
        model.train()
        criterion = self._criterion(model)
        steps = math.ceil(len(order) / cfg.batch_size)
        progress.start_epoch(epoch, steps)
        t0 = time.perf_counter()
        seen = torch.zeros(len(x), device=self.device) if cfg.focus < 1 else None
        loss_total = torch.zeros((), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            mine = batch[dist.rank::dist.world_size] if dist.world_size > 1 else batch
            xb, yb = self.model_input(_rows(x, mine)), _rows(y, mine)
            try:
                with self._autocast():
                    out = model(xb)
                    loss_sum = criterion(out, yb)
                out = getattr(out, "logits", out)  # models with auxiliary heads (GoogLeNet) return more
                optimizer.zero_grad(set_to_none=True)
                # Sum over this process's share / global batch: DDP's mean over processes then
                # equals the mean over the whole batch, whatever the share sizes. The factor is a
                # product, not the sum's gradient given to backward: PyTorch checks a given
                # gradient through torch.fx's symbolic shapes, whose first import (SymPy) takes
                # 0.45 s of the fast recipe's whole command (the twelfth round); the product's node costs
                # 34 us a step (the MLP's loss forward and back: 110 -> 144 us).
                scaler.scale(loss_sum * (dist.world_size / len(batch))).backward()
            except Exception as e:  # noqa: BLE001  a user's model is named in one line, anything else goes on
                blame_model(e, self.model_name, self._users, dist.active, epoch,
                            f"batch {start // cfg.batch_size + 1} of {steps}")
                raise
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)  # the threshold is for the true gradients
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)  # skipped where float16 overflowed; the scale then halves
            scaler.update()
            scheduler.step()
            for callback in self._step_callbacks:
                callback.on_step_end(self, start // cfg.batch_size + 1, steps)
            with torch.no_grad():
                loss_total += loss_sum.detach()
                for k, v in self.task.metric_sums(out.detach().float(), yb).items():
                    if k in sums:
                        sums[k] += v
                    else:
                        sums[k] = torch.as_tensor(v).clone()  # summed in place from the next step on
                if seen is not None:
                    seen[mine] = self.task.loss_each(out.detach().float(), yb)
            progress.step(loss_sum, len(mine), len(batch))  # a clock reading; progress.json twice a second
        totals = torch.stack([loss_total, *(torch.as_tensor(v, device=self.device, dtype=torch.float32)
                                            for v in sums.values())])
        if dist.active:  # every process saw its own share; the epoch's figures are over all of them
            torch.distributed.all_reduce(totals)
            if seen is not None:
                torch.distributed.all_reduce(seen)
        if seen is not None:
            if self.sample_losses is None:  # the first epoch sees every sample
                self.sample_losses = seen
            else:
                self.sample_losses[order] = seen[order]
        totals = totals.tolist()
        record = {"epoch": epoch, "samples": len(order), "loss": totals[0] / len(order)}
        record.update({k: v / len(order) for k, v in zip(sums, totals[1:])})
        record["lr"] = optimizer.param_groups[0]["lr"]
        record["seconds"] = time.perf_counter() - t0
        return record

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss and metrics over ``(x, y)`` in inference mode, in large batches; each of the
        model's layers is left in the mode it had (a validation pass inside ``fit``)."""
        given = getattr(y, "dtype", None)
        y = checked_pairs(x, y, "x", "y", self._classifies, self.config.loss)
        if not len(x):  # a mean over no rows is no number
            raise ParameterError("x", "0 rows", "give at least one row to evaluate on")
        check_classes(y, "y", self._outputs(x, "x"), self.config.loss, given)
        return self._evaluate(x, y)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, at: tuple[int, str] | None = None) -> dict[str, float]:
        """``evaluate`` on inputs already checked; ``at``: the epoch and the pass it is of, in fit."""
        return self.score(self._predict(x, at), y)

    def score(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss and metrics of outputs already computed (``predict``'s) against ``y``:
        ``evaluate`` without running the model again."""
        given = getattr(y, "dtype", None)
        y = labels(y, "y", self._classifies, self.config.loss)
        check_classes(y, "y", self._classes(out), self.config.loss, given)
        y = y.to(out.device)
        n, task = max(1, len(out)), self.scoring(y)
        sums = task.metric_sums(out, y)
        return {"loss": float(task.loss_each(out, y).double().sum()) / n, **{k: float(v) / n for k, v in sums.items()}}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Raw model outputs (logits for classifiers) for ``x``, on the CPU."""
        if not isinstance(x, torch.Tensor):
            raise ParameterError("x", type(x).__name__, "give a torch tensor, e.g. torch.from_numpy(array)")
        self._outputs(x, "x")  # inputs the model cannot take, refused by name
        return self._predict(x)

    @torch.inference_mode()
    def _predict(self, x: torch.Tensor, at: tuple[int, str] | None = None) -> torch.Tensor:
        """The outputs for ``x``. No rows give no rows of the model's output shape, (0, classes), as
        a batch of 0 gives in torch, taken from a forward of one sample of zeros: users' models
        often flatten with x.view(len(x), -1), which fails on 0 rows. ``at``: the epoch and the pass
        of fit this is, where a user's model that fails is named (``ModelFailed``). Each layer is
        left in the mode it had: a caller's module in the middle of its own training goes on with
        Dropout on, and a BatchNorm its user froze in eval stays so."""
        outs = []
        size = self.config.eval_batch_size
        parts = [x[start:start + size] for start in range(0, len(x), size)] or [_stand_in(x)]  # views
        with in_eval_mode(unwrap(self.model)) as model, cpu_threads(self.config.threads), kept_heap():
            for part in parts:
                with self._autocast():
                    batch = self.model_input(self._layout(part.to(self.device)))
                    try:
                        out = model(batch)
                    except Exception as e:  # noqa: BLE001  as in a training step
                        if at is not None:
                            blame_model(e, self.model_name, self._users, self.dist.active, *at)
                        raise
                    if isinstance(out, (tuple, list, dict)):  # (logits, features): refused as fit refuses it
                        raise NeuralabError(step_output_refusal(out, part, None, len(part), self.model,
                                                                self._classifies, self.model_meta, self.model_name))
                    outs.append(out.float().cpu())
        return torch.cat(outs) if len(x) else outs[0][:0]

    # --- bookkeeping ---------------------------------------------------------------

    def _monitored(self, record: dict) -> float | None:
        """The monitored validation metric, lower is better; None without a validation set."""
        value = record.get(self.config.monitor)
        if value is None:
            return None
        return -value if self.config.monitor.endswith("accuracy") else value

    def _improved(self) -> bool:
        # Without a validation set the latest weights are kept: training losses of different
        # epochs are not comparable (with focus, later epochs see only the hardest samples).
        # A tie is no improvement, as in Keras's checkpoint and in EarlyStopping: the weights kept
        # are the first best epoch's, the one best_epoch() names.
        scores = [self._monitored(r) for r in self.history]
        earlier = [ranked(s) for s in scores[:-1] if s is not None]
        return scores[-1] is None or not earlier or ranked(scores[-1]) < min(earlier)

    def _tied(self, epoch, best: int) -> bool:
        """Whether ``epoch`` of the history scored as its ``best`` did, a later epoch: runs saved
        before a tie stopped counting as an improvement (``_improved``) kept the later one's weights."""
        if not isinstance(epoch, int) or not best < epoch <= len(self.history):
            return False
        return self._monitored(self.history[epoch - 1]) == self._monitored(self.history[best - 1])

    def best_epoch(self) -> int:
        scores = [self._monitored(r) for r in self.history]
        if not scores:
            return 0
        if scores[-1] is None:
            return self.history[-1]["epoch"]
        return self.history[int(np.argmin([ranked(s) for s in scores]))]["epoch"]

    # Every epoch writes, in this order: last.safetensors (the commit point: the whole state and
    # history), metrics.jsonl, then, when the epoch is the best so far, best.safetensors and
    # model.safetensors. A crash between two writes leaves files that ``_restore`` can make
    # agree from last.safetensors alone: a best epoch's state is committed in last before any
    # other file names it, and an earlier best's files were complete before the next commit.

    def save_epoch(self, epoch: int) -> None:
        """Save the state at the end of ``epoch`` (the Checkpoint callback calls it)."""
        model, shuffle = self._training
        self._save(model, self.optimizer, self.scheduler, shuffle, epoch, self.improved)

    def _save(self, model, optimizer, scheduler, shuffle, epoch, improved) -> None:
        try:
            own = {} if self.sample_losses is None else {"sample_losses": self.sample_losses}
            if self._scaler.is_enabled():
                scale = self._scaler.state_dict()
                own["grad_scale"] = torch.tensor([scale["scale"], scale["_growth_tracker"]], dtype=torch.float64)
            state = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=shuffle,
                         epoch=epoch, history=self.history, state=own)
            run = Run(self.run_dir)
            save_checkpoint(run.file(LAST), **state)
            self._write_metrics()
            if improved:
                save_checkpoint(run.file(BEST), **state)
                save_weights(run.file(WEIGHTS), model, {**self.model_meta, "epoch": epoch})
        except WriteError as e:
            raise not_written(e, self.run_dir, f"save epoch {epoch}", "earlier checkpoints are intact") from None

    def _write_metrics(self) -> None:
        Run(self.run_dir).write_metrics(self.history)

    def _restore(self, model, optimizer, scheduler, shuffle) -> dict | None:
        """Load last.safetensors and bring the other files in line with it; None when the run
        stopped before its first checkpoint (it then starts again from epoch 1)."""
        # each file the resume reads or rewrites, checked first: none is a folder, none leads out of the run
        last, best_file, weights, _, _ = (Run(self.run_dir).file(n) for n in (LAST, BEST, WEIGHTS, METRICS, PROGRESS))
        if not last.exists():
            return None
        try:
            meta = load_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler, generator=shuffle)
        except NeuralabError as e:
            raise NeuralabError(f"{e}; resume from the best epoch instead (best for `checkpoint`), "
                                "or start a new run") from None
        self.history = meta["history"]
        if "sample_losses" in meta["state"]:
            self.sample_losses = meta["state"]["sample_losses"].to(self.device)
        if "grad_scale" in meta["state"] and self._scaler.is_enabled():
            scale, tracker = meta["state"]["grad_scale"].tolist()
            self._scaler.load_state_dict({**self._scaler.state_dict(), "scale": scale, "_growth_tracker": int(tracker)})
        best = self.best_epoch()
        if best == meta["epoch"] and _epoch_of(best_file) != best:
            with atomic_write(best_file, "wb") as f:  # the crash came between the two writes
                f.write(last.read_bytes())
        if best:
            check_fits(best_file, model, "the model", prefix="model.", fix="the run's files are damaged; put back a good "
                       "copy or start a new run")
            tensors, best_meta = load_tensors(best_file)
            if self._tied(best_meta.get("epoch"), best):  # a run saved when a tie was an improvement
                best = best_meta["epoch"]
            if best_meta.get("epoch") != best:
                raise NeuralabError(f"{best_file}: holds epoch {best_meta.get('epoch')} but the "
                                    f"history's best is epoch {best}; the run's files are damaged")
            self.best_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
            if _epoch_of(weights) != best:
                save_tensors(weights, self.best_state, {**self.model_meta, "epoch": best})
        self._write_metrics()
        return meta


def nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` with PyTorch's default strides, those of (N, C, H, W) in that order: what plain PyTorch
    code such as ``x.view(len(x), -1)`` after a convolution needs. Images read as (N, H, W, C) and
    viewed as (N, C, H, W) do not have them, even with one channel, where PyTorch counts the tensor
    contiguous but convolutions still give channels-last maps; there the same memory is viewed again."""
    x = x.contiguous()
    return x.view(-1).view(x.shape)


def _stand_in(x: torch.Tensor) -> torch.Tensor:
    """One sample of zeros shaped as ``x``'s rows, for what a forward of ``x``, which has none, gives."""
    return x.new_zeros((1, *x.shape[1:]))


def _layout_free(model: nn.Module) -> bool:
    """Whether every layer of ``model`` is neuralab's or PyTorch's own, whose forward takes maps in
    either memory layout; a user's forward may assume (N, C, H, W) strides."""
    return all(type(m).__module__.startswith(("neuralab.", "torch.nn.")) for m in model.modules())


def _any_process(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set in any process of the job."""
    t = torch.tensor(float(flag), device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def _rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[index]``: through index_select, which copies whole rows where indexing goes value by
    value (the MLP's batch of 128 images: 25 us against 52), where ``t`` is contiguous; its
    result is always contiguous, so a channels-last batch of several channels is indexed."""
    return t.index_select(0, index) if t.is_contiguous() else t[index]


def _resuming(run_dir: Path, kept: int, epochs: int) -> str:
    """The line a resumed training starts with: from which epoch of the run in ``run_dir`` it goes
    on (``kept`` 0: the run stopped before its first checkpoint)."""
    if not kept:
        return (f"resuming {run_dir}: it stopped before its first epoch finished, so training starts again "
                f"from epoch 1 of {epochs}")
    left = f"training goes on at epoch {kept + 1}" if kept < epochs else "no epoch is left to train"
    return f"resuming {run_dir} from epoch {kept} of {epochs}, its last checkpoint: {left}"


def _epoch_of(path: Path) -> int | None:
    """The epoch recorded in a checkpoint's or weights file's header; None if absent or damaged."""
    try:
        return load_tensors(path)[1].get("epoch") if path.exists() else None
    except NeuralabError:
        return None


class _ProgressLine(Callback):
    """The epoch's line (or the end of its live bar) once its checkpoint is safe."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.progress.end_epoch(record)
