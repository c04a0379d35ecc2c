"""What the user hands the Trainer, refused before anything trains, and the user's model named
when it fails in training after all.

The budget, the data and the model are refused in one line naming the parameter
(``check_train_config``, ``checked_pairs``, ``labels``, ``check_classes``, ``input_refusal``,
``refuse_empty_shares``): PyTorch's own error would blame the model's forward for a NumPy array,
a dtype or a label out of range, or come in the middle of an epoch. ``Trainer.check_model`` runs
the training steps whose failures are said here (``WrongOutput``, ``step_output_refusal``,
``near``); a user's model that fails later, in training, is named by ``ModelFailed``
(``blame_model``), neuralab's own architectures never (``own_architecture``, ``users_code``).

Apart from training.module_check, which judges a user's module by itself (one forward on the
data's inputs, its tensors for a run): here a model is judged as the Trainer runs it, with its
loss, its batches and torchrun's processes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from neuralab.errors import NeuralabError, ParameterError, out_of_memory, reraise_interrupt
from neuralab.runs import Interrupted, Kind, epoch_kept, resume_needs
from neuralab.training.checkpoint import unwrap
from neuralab.training.config import REGRESSION_LOSSES, TrainConfig


class ModelFailed(NeuralabError):
    """A model of the user's (PyTorch code, a converted Keras model, a module given) that raised in
    the middle of training, after the steps ``check_model`` tried had passed: a fault of its own
    (one that depends on the batch or the step), said in one line naming the model, the epoch,
    where in it, and the exception, which is its ``__cause__``. ``in_run`` adds what became of
    the run the training wrote."""

    def __init__(self, model: str, epoch: int, where: str, error: str,
                 then: str = "make its forward work on every batch"):
        self.model, self.epoch, self.where, self.error = model, epoch, where, error
        super().__init__(f"{model}: the model failed in training at epoch {epoch}, {where} ({error}); {then}")

    def in_run(self, run_dir: str | Path, kind: Kind) -> "ModelFailed":
        """This failure, where it stopped the run in ``run_dir``, with what the run keeps and the
        way on: none (the caller removed what it wrote), or the epochs before this one, which a
        resume goes on from with the model the run keeps (a fault that depends on chance may
        pass; one in the code comes back, which a new run of the mended model leaves behind)."""
        run_dir = Path(run_dir)
        if not epoch_kept(run_dir):
            then = "no epoch had finished, so the run is not kept; make the model's forward work on every batch"
        else:
            needs, _ = resume_needs(run_dir)
            resume = (f"`resume` {run_dir}" + (" and `trust_code`" if needs == "trust_code" else "")
                      if needs != "model" else Interrupted.resume_call(run_dir, kind))
            kept = "epoch 1" if self.epoch == 2 else f"epochs 1 to {self.epoch - 1}"
            then = (f"the run keeps {kept} and is interrupted: mend the model and start a new run"
                    + (f", or go on from epoch {self.epoch} with {resume}, which runs the model the run keeps"
                       if resume else ""))
        return ModelFailed(self.model, self.epoch, self.where, self.error, then)


class WrongOutput(NeuralabError):
    """Outputs of a shape the loss cannot take, found by ``Trainer.check_model``: said as
    training.module_check says it, so that the trainer and a command refuse alike."""


def check_train_config(config, parameter: str) -> None:
    """Refuse, naming ``parameter``, a training budget that is no TrainConfig: a dict of its
    fields, as Keras's fit takes them, would fail at the first field read."""
    if not isinstance(config, TrainConfig):
        raise ParameterError(parameter, type(config).__name__, "give a TrainConfig, e.g. TrainConfig(epochs=1)")


def checked_pairs(x, y, x_name: str, y_name: str, classifies: bool, loss: str | None,
                  own: bool = False) -> torch.Tensor:
    """``y`` as the loss takes it, once inputs and targets are found fit to train on, or refused by
    name before anything trains: the model's own error would blame its forward for a NumPy array
    or dtype, and NaN in the inputs or targets would read as a learning rate too high. The checks that need
    the model's outputs (shapes, label range) come after, from ``Trainer._outputs``. ``own``: the
    module computes its own loss on ``y`` (``own_loss``), whose NaN are its to judge (a target not
    measured, which it masks), and its rows of zeros (a multi-label sample with no tag)."""
    for name, t in ((x_name, x), (y_name, y)):
        if not isinstance(t, torch.Tensor):
            raise ParameterError(name, type(t).__name__, "give a torch tensor, e.g. torch.from_numpy(array)")
    if len(x) != len(y):
        raise ParameterError(y_name, f"{len(y)} rows", f"{x_name} has {len(x)}; give one target per input")
    y = labels(y, y_name, classifies, loss, own)
    # a NaN target makes every loss NaN: in y it would read as a learning rate too high, in val[1] as
    # an epoch never better than the first
    for name, t in ((x_name, x), *(() if own else ((y_name, y),))):
        row = _first_not_finite(t) if t.is_floating_point() or t.is_complex() else None
        if row is not None:
            raise ParameterError(name, f"row {row}", "holds NaN or infinity, which no training learns from; "
                                                     "drop or fill such rows (torch.isfinite finds them)")
    return y


def labels(y: torch.Tensor, name: str, classifies: bool, loss: str | None, own: bool = False) -> torch.Tensor:
    """A classifier's labels as its losses take them: class numbers as int64 (NumPy's int32 and
    uint8, and bools, False class 0 and True class 1, as y.long() makes them, are whole numbers
    too), or rows (N, classes) of class probabilities. ``loss``: the TrainConfig's, None for the
    task's own cross-entropy; mse, mae and huber also score float targets as they are, a
    regression (``scored_as_values``), and take whole numbers only as labels, class numbers or
    one-hot rows. Another task's targets are its loss's to judge
    (``classifies`` False), and so are a module's own loss's (``own``: multi-label tags as
    whole numbers or bools, which come as int64, rows of zeros for a sample with none of them)."""
    if not classifies:
        return y
    regression = loss in REGRESSION_LOSSES
    given = str(y.dtype).removeprefix("torch.")
    if y.dtype == torch.bool:  # whole numbers, as one-hot rows too: argmax and one_hot take no bools
        y = y.long()
    if own:
        return y
    if y.dim() == 2 and not (y.is_floating_point() or y.is_complex() or regression) and (
            y.shape[1] == 1 or loss is None):
        # Rows of whole numbers: a column of class numbers, which no cross-entropy takes, or one-hot
        # rows, which the task's own (F.cross_entropy) takes only as floats; both would fail in the
        # first step, where the error reads as the model's
        how = f"{name}.long().argmax(1)" if given == "bool" else f"{name}.argmax(1)"
        what, how = ("a column", f"{name}.view(-1)") if y.shape[1] == 1 else ("one-hot rows", how)
        raise ParameterError(name, f"{given} of {tuple(y.shape)}", f"{what}: give one class number per row, e.g. {how}")
    row = None if regression else _row_without_class(y)
    if row is not None:  # mse, mae and huber take such rows for values to regress: tags of which none applies
        raise ParameterError(name, f"row {row}", "sums to 0, where the other rows are one-hot (class probabilities "
                                                 "summing to 1), and scores nothing under the cross-entropy: "
                                                 "give it its class, or drop it")
    if regression and not (y.is_floating_point() or y.is_complex()) and (
            y.dim() > 2 or y.dim() == 2 and (y.shape[1] == 1 or not _class_probabilities(y))):
        # Whole numbers are labels, class numbers (N,) or one-hot rows, which mse, mae and huber score
        # on the softmax; a column of them or rows of counts read as labels would score an accuracy
        # of nothing (a one-class argmax, 100%)
        column = y.dim() == 2 and y.shape[1] == 1
        what = "a column of whole numbers" if column else "whole numbers that are not one-hot rows"
        raise ParameterError(name, f"{given} of {tuple(y.shape)}",
                             f"{what}, which {loss} takes for labels: "
                             + (f"class numbers go one per row, give {name}.view(-1); " if column else "")
                             + f"values to regress are floats, give {name}.float()")
    if y.dim() == 2 and y.shape[1] == 1 and y.is_floating_point() and not regression:
        # Keras's y_train.astype("float32"): class numbers in a column, which the cross-entropies
        # would take for one-hot rows of a single class
        raise ParameterError(name, f"{str(y.dtype).removeprefix('torch.')} of {tuple(y.shape)}",
                             f"a column of class numbers: give {name}.view(-1).long()")
    if y.dim() != 1 or (regression and y.is_floating_point()):
        return y
    if y.is_floating_point() or y.is_complex():
        raise ParameterError(name, str(y.dtype).removeprefix("torch."), "class labels are whole numbers: give "
                                                                        f"{name}.long() (or one-hot rows of floats); "
                                                                        "values to regress are scored by TrainConfig "
                                                                        "`loss` \"mse\", \"mae\" or \"huber\"")
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise ParameterError(name, int(y.min()), "class labels count from 0")
    return y


def scored_as_values(y: torch.Tensor, loss: str | None) -> bool:
    """Whether a classifier's checked targets ``y`` (``labels``) are values that ``loss``, the
    TrainConfig's, scores as they are, a regression: under mse, mae or huber, floats other than
    rows (N, classes) of class probabilities (non-negative, summing to 1, as one-hot and
    label-smoothed rows are), such as one value per sample, (N,) or (N, 1), where an accuracy
    would mean nothing."""
    if loss not in REGRESSION_LOSSES or not y.is_floating_point():
        return False
    return y.dim() != 2 or y.shape[1] == 1 or not _class_probabilities(y)


def _class_probabilities(y: torch.Tensor) -> bool:
    """Whether every row of ``y`` (N, columns) is non-negative and sums to 1: one-hot rows, of floats
    or whole numbers, and label-smoothed rows."""
    return bool((y >= 0).all()) and bool(((y.sum(1, dtype=torch.float64) - 1).abs() <= 1e-3).all())


def _row_without_class(y: torch.Tensor) -> int | None:
    """The first all-zero row of rows (N, classes) whose every other row is class probabilities
    (one-hot, label-smoothed), or None: a label lost from one row, which the cross-entropies score
    as nothing, or, under mse, mae and huber, tags of which none applies, which make the whole of
    ``y`` values to regress."""
    if y.dim() != 2 or y.shape[1] < 2 or not len(y) or y.is_complex() or not bool((y >= 0).all()):
        return None
    sums = y.sum(1, dtype=torch.float64)
    empty, whole = sums == 0, (sums - 1).abs() <= 1e-3
    if not bool((empty | whole).all()) or bool(empty.all()) or not bool(empty.any()):
        return None
    return int(empty.nonzero()[0])


def check_val_form(y: torch.Tensor, val_y: torch.Tensor, loss: str | None, given: torch.dtype | None = None) -> None:
    """Refuse, naming ``val[1]``, a classifier's validation targets ``val_y`` that ``loss`` scores in
    another way than the training targets ``y`` (both checked): values to regress beside labels,
    whose losses are no figures of one thing, and the best epoch would be chosen by the other.
    ``given``: ``val_y``'s dtype as the user gave it, where ``labels`` made int64 of it."""
    values = scored_as_values(y, loss)
    if scored_as_values(val_y, loss) == values:
        return
    kinds = ("labels, scored on the model's softmax", "values to regress, scored as they are")
    for name, rows, other in (("y", y, "val[1]"), ("val[1]", val_y, "y")):
        row = _row_without_class(rows)
        if row is not None:  # the rows of zeros alone make these values: named, not the other set that is clean
            raise ParameterError(name, f"row {row}", f"sums to 0, where the other rows are one-hot, so {loss} takes "
                                                     f"{name} for {kinds[1]}, and {other} for {kinds[0]}: give it "
                                                     "its class, or, for values to regress, train with "
                                                     "Trainer(model, config, REGRESSION)")
    if values:  # labels where y's are values: whole numbers are the cast's; rows of probabilities no cast's
        how = "give val[1].float()" if not val_y.is_floating_point() else \
            "give values to regress, as y's are, or train with Trainer(model, config, REGRESSION)"
    elif val_y.dim() == 1 or val_y.dim() == 2 and val_y.shape[1] == 1:  # a value per sample where y's are labels
        how = f"class numbers are whole numbers, give val[1]{'.view(-1)' * (val_y.dim() == 2)}.long()"
    else:
        how = "give class numbers or rows of class probabilities, as y's are"
    raise ParameterError("val[1]", f"{str(given or val_y.dtype).removeprefix('torch.')} of {tuple(val_y.shape)}",
                         f"{loss} takes its targets for {kinds[not values]}, and y's for {kinds[values]}: {how}")


def _values_refusal(y: torch.Tensor, name: str, outputs: int) -> str | None:
    """Why regression targets ``y`` that are not one value per output of ``outputs`` are refused,
    the reason a ParameterError naming ``name`` gives; None where they are one per output."""
    per_sample = y[0].numel() if len(y) else 1
    if y.dim() > 2 or per_sample == outputs:
        return None
    values = f"{per_sample} value{'s' if per_sample != 1 else ''}"
    return (f"{values} per sample, which a regression loss scores against the model's {outputs} outputs: make its "
            f"last layer output {per_sample} (nn.Linear(..., {per_sample})), or give `{name}` one column per output")


def check_classes(y: torch.Tensor, name: str, outputs: int | None, loss: str | None,
                  given: torch.dtype | None = None) -> None:
    """Refuse labels (or one-hot columns) that the model's ``outputs`` cannot score, where the
    cross-entropy would raise an IndexError in the middle of an epoch; and regression targets
    (``scored_as_values`` under ``loss``, the TrainConfig's) that are not one value per output.
    ``given``: ``y``'s dtype as the user gave it, where ``labels`` made int64 of it (bools, int32)."""
    if outputs is None or not len(y):
        return
    if scored_as_values(y, loss):
        refusal = _values_refusal(y, name, outputs)
        if refusal is not None:
            raise ParameterError(name, f"{str(y.dtype).removeprefix('torch.')} of {tuple(y.shape)}", refusal)
        return
    if y.dim() == 1 and not y.is_floating_point() and outputs == 1 and loss in REGRESSION_LOSSES:
        # the softmax of one output is 1 whatever it is: no class to choose, an accuracy of 100%
        raise ParameterError(name, f"{str(given or y.dtype).removeprefix('torch.')} of {tuple(y.shape)}",
                             f"whole numbers, which {loss} takes for class numbers, and the model gives 1 output: "
                             f"values to regress are floats, give {name}.float()")
    if y.dim() == 1 and not y.is_floating_point() and int(y.max()) >= outputs:  # floats: mse's targets
        raise ParameterError(name, int(y.max()), f"the model gives {outputs} outputs, and class labels count from 0 "
                                                 f"to {outputs - 1}: give labels in that range, or a model with "
                                                 "an output for each class" + (
                                                     f"; values to regress are floats, give {name}.float()"
                                                     if loss in REGRESSION_LOSSES else ""))
    if y.dim() == 2 and y.shape[1] != outputs:
        raise ParameterError(name, f"{y.shape[1]} columns", f"the model gives {outputs} outputs: give one-hot "
                                                            "rows with a column for each")


def _first_not_finite(x: torch.Tensor) -> int | None:
    """The first row of ``x`` that holds NaN or infinity, or None: a slice at a time, so that the
    mask stays small beside a large set."""
    if not x.numel():
        return None
    rows = max(1, 2**22 // x[0].numel())
    for start in range(0, len(x), rows):
        finite = torch.isfinite(x[start:start + rows]).reshape(min(rows, len(x) - start), -1).all(1)
        if not finite.all():
            return start + int(finite.logical_not().nonzero()[0])
    return None


def input_refusal(x: torch.Tensor, name: str, e: Exception, model: nn.Module, inputs: Callable | None, own: bool,
                  model_meta: dict, model_name: str) -> ParameterError | None:
    """The refusal of ``x``, on which the model's forward raised ``e``, for its dtype or, in
    neuralab's architectures (``own``), its shape; None where neither is known to be the cause.
    ``inputs`` and ``model_meta``: the Trainer's."""
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if inputs is None and weights is not None and x.dtype != weights:
        dtype = str(x.dtype).removeprefix("torch.")
        if x.dtype == torch.uint8:  # pixels as images are read; a float copy would take 4x the memory
            return ParameterError(name, dtype, "the model takes normalised floats, not pixels 0-255: give the "
                                               "Trainer `inputs` Preprocess.fit(images).normalise, which normalises "
                                               "a batch at a time, or give float32 values")
        cast = f"{name}.float()" if weights == torch.float32 else f"{name}.to({weights})"
        return ParameterError(name, dtype, f"the model's weights are {str(weights).removeprefix('torch.')}: "
                                           f"give {cast}")
    if not own:
        return None
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    built = model_meta.get("input_shape")
    if built:
        takes = f"(N, {', '.join(map(str, built))})"
    elif isinstance(first, nn.Conv2d):
        takes = f"(N, {first.in_channels}, H, W) of the height and width it was built for"
    elif first is not None:
        takes = f"(N, C, H, W) with C x H x W = {first.in_features}"
    else:
        takes = "(N, C, H, W) of the shape it was built for"
    channels_last = x.dim() == 4 and x.shape[3] in (1, 3) and x.shape[1] not in (1, 3)
    return ParameterError(name, tuple(x.shape), f"{model_name} takes images {takes} ({first_line(e)})"
                          + (f"; images as (N, H, W, C) become (N, C, H, W) by {name}.permute(0, 3, 1, 2)"
                             if channels_last else ""))


def step_output_refusal(out, x: torch.Tensor, y: torch.Tensor | None, k: int, model: nn.Module, classifies: bool,
                        model_meta: dict, model_name: str, training: bool = False,
                        loss: str | None = None) -> str | None:
    """training.module_check's refusal of ``out``, the model's outputs on the first ``k`` of
    inputs ``x`` whose targets are ``y`` (None where it predicts, the outputs the run's), where
    their shape is at fault; None otherwise. ``training``: ``out`` came in training mode; ``loss``:
    the TrainConfig's."""
    from neuralab.training.module_check import output_refusal

    if y is not None and own_loss(model) is not None:  # its own loss takes what it returns
        return None
    shape = f"({', '.join(['N', *map(str, x.shape[1:])])})"
    if y is None:
        outputs = model_meta.get("num_classes") if classifies else None
    elif classifies and scored_as_values(y, loss):  # a regression's values, not class numbers
        outputs = y[0].numel() if len(y) and y.dim() <= 2 else None
        if outputs is not None and isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == k:
            refusal = _values_refusal(y, "y", out.shape[1])
            if refusal is not None:
                values = ParameterError("y", f"{str(y.dtype).removeprefix('torch.')} of {tuple(y.shape)}", refusal)
                return f"{model_name}: on inputs {shape} the model gives (N, {out.shape[1]}); {values}"
    elif classifies:
        outputs = model_meta.get("num_classes") or (y.shape[1] if y.dim() == 2 else
                                                    int(y.max()) + 1 if len(y) else None)
    else:
        outputs = y.shape[1] if y.dim() == 2 else None
    return output_refusal(model_name, shape, out, k, outputs, "classes" if classifies else "steps",
                          unwrap(model), training)


def refuse_empty_shares(sizes: list[int], batch_size: int, world: int, resumed: bool = False) -> None:
    """Refuse, naming ``batch_size``, a batch that torchrun's processes cannot all take part in:
    each takes every world_size-th sample, and one left with none fails in its forward. A run
    ``resumed`` keeps its batch size: fewer processes are the way on."""
    if world == 1:
        return
    batches = lambda b: [(min(b, s), s) for s in sizes] + [(s % b, s) for s in sizes if s % b]  # noqa: E731
    smallest, epoch_size = min(batches(batch_size))
    if smallest >= world:
        return
    better = next((b for b in near(batch_size, max(sizes)) if min(batches(b))[0] >= world), None)
    which = "a batch" if smallest == min(batch_size, epoch_size) else \
        f"the last batch of an epoch of {epoch_size} training samples"
    said = f"torchrun's {world} processes split every batch, and {which} holds {smallest}, which leaves a process " \
        "without samples; "
    if resumed:
        raise ParameterError("batch_size", batch_size, f"{said}a resumed run keeps its batch size, so "
                             + ("resume it in one process, without torchrun" if smallest == 1 else
                                f"resume it with at most {smallest} processes"))
    raise ParameterError("batch_size", batch_size, f"{said}choose a `batch_size`" + (f" such as {better}" if better else "")
                         + " or start fewer processes")


def near(b: int, most: int):
    """Batch sizes other than ``b`` up to the larger of ``b`` and ``most``, nearest to ``b`` first."""
    top = max(b, most)
    for d in range(1, top):
        yield from (c for c in (b - d, b + d) if 1 <= c <= top)


def blame_model(e: Exception, model_name: str, users: bool, distributed: bool, epoch: int, where: str) -> None:
    """Raise ModelFailed for ``e``, which a user's model raised in a step or a validation pass
    of ``epoch`` (``where`` in it), once check_model's steps had passed; return for any other:
    neuralab's own architectures are known to train, so what they raise is neuralab's fault, to
    be shown whole (a traceback), and so is a refusal already in one line (NeuralabError).
    Memory runs short in any model. Under torchrun (``distributed``) another process's end reaches
    this one's step as an error of the process group, which no model caused: left to the command
    line. ``users``: whether the model runs code of the user's (``users_code``). An interrupt
    that Python or a library raised as another error is raised as the interrupt, so the run
    stops as at Ctrl-C and says how to resume."""
    reraise_interrupt(e)
    if not users or distributed or isinstance(e, NeuralabError) or out_of_memory(e) is not None \
            or _only_neuralabs_code(e):
        return
    raise ModelFailed(model_name, epoch, where, first_line(e)) from e


def own_loss(model: nn.Module) -> Callable | None:
    """The loss that a module computes from its own outputs, called as ``loss(outputs, y,
    criterion=...)`` with the trainer's criterion (GoogLeNet's: the main head's loss plus 0.3 x each
    auxiliary head's), or None. The class marks it (``loss_takes_criterion = True``), GoogLeNet's or
    a user's with auxiliary heads of its own: a module may hold a ``loss`` that is no such thing
    (nn.CrossEntropyLoss(label_smoothing=0.1) kept as an attribute, a method loss(logits, y)), which
    takes no criterion and is not called; the trainer scores such a model with TrainConfig's
    ``loss``, as any other, and says so (Trainer.check_model)."""
    model = unwrap(model)
    return model.loss if getattr(type(model), "loss_takes_criterion", False) is True else None


def held_loss(model: nn.Module) -> bool:
    """Whether ``model`` holds a callable ``loss`` that ``own_loss`` does not call (a criterion
    kept as an attribute or returned by a property, a method loss(logits, y)). One that raises
    when read (a property reading what the user's own training loop has not filled yet) holds none."""
    model = unwrap(model)
    try:
        return callable(getattr(model, "loss", None))
    except Exception as e:  # noqa: BLE001  another descriptor of the user's: no criterion to speak of
        reraise_interrupt(e)
        return False


def own_loss_refusal(model: nn.Module, model_name: str) -> str | None:
    """Why the ``own_loss`` of ``model`` cannot be called as the trainer calls it, with a
    ``criterion`` keyword, said naming ``model_name``; None where it can (or its signature is not
    known). A loss that is a module of its own (self.loss = nn.CrossEntropyLoss()) is judged by its
    forward: its __call__ takes any keyword."""
    computed = own_loss(model)
    if computed is None:
        return None
    layer = isinstance(computed, nn.Module)
    try:
        signature = inspect.signature(computed.forward if layer else computed)
    except (TypeError, ValueError):
        return None
    if any(p.name == "criterion" and p.kind != p.POSITIONAL_ONLY or p.kind == p.VAR_KEYWORD
           for p in signature.parameters.values()):
        return None
    if layer:
        what = f"its loss, a {type(computed).__name__}, has forward{signature}, which"
        how = "give its forward a criterion parameter, forward(self, outputs, y, criterion)"
    else:
        static = isinstance(inspect.getattr_static(type(unwrap(model)), "loss", None), staticmethod)
        what = f"its loss{signature}"
        how = f"give its loss a criterion parameter, loss({'' if static else 'self, '}outputs, y, criterion)"
    return (f"{model_name}: its class sets loss_takes_criterion = True, so each training step calls "
            f"loss(outputs, y, criterion=criterion), and {what} takes no criterion: {how}, or remove "
            "loss_takes_criterion = True to train on `loss`")


def own_architecture(model: nn.Module) -> bool:
    """Whether ``model`` is one of neuralab's architectures (the zoo, the forecasters' networks)."""
    return type(unwrap(model)).__module__.startswith(("neuralab.models.", "neuralab.forecasting."))


def _only_neuralabs_code(e: BaseException) -> bool:
    """Whether the frames below the one that caught ``e`` (the call of the model, its loss, its
    backward) are neuralab's and torch's alone, with some of neuralab's: a model that runs no
    code of the user's (a converted Keras model, a Sequential of PyTorch's layers that
    ``accelerate`` gave neuralab's kernels) fails by neuralab's fault, to be shown whole. A
    frame of the user's among them makes the fault the model's, even where it surfaces in
    neuralab's kernel (a shape its forward got wrong); none outside torch (backward, a compiled
    graph) leaves it to the model, as the step had passed check_model's."""
    here = Path(__file__).resolve().parents[1]  # the neuralab package
    library = Path(torch.__file__).resolve().parent
    neuralabs = False
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    while tb is not None:
        file = Path(tb.tb_frame.f_code.co_filename).resolve()
        if file.is_relative_to(here):
            neuralabs = True
        elif not file.is_relative_to(library):
            return False  # the user's code, or a library it called
        tb = tb.tb_next
    return neuralabs


def users_code(model: nn.Module) -> bool:
    """Whether ``model`` runs code of the user's: it is no architecture of neuralab's, or one that
    holds a layer neither neuralab's nor PyTorch's (a forecast's WindowNetwork around a user's
    module, or around a converted Keras model's layers)."""
    return not own_architecture(model) or not all(
        type(m).__module__.startswith(("neuralab.models.", "neuralab.forecasting.", "torch.nn."))
        for m in unwrap(model).modules())


def first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e) else type(e).__name__
