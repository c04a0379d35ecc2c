"""The training budget and the classifier's config as dataclasses, and the choices they allow.

Kept apart from the trainer and free of torch, so that the command line reads its choices
and defaults without importing torch (`neuralab --help` starts in a fraction of a second).
"""

from __future__ import annotations

import functools
import numbers
import warnings
from dataclasses import dataclass, field, fields, replace

from neuralab.data import TEST_FRACTION, VAL_FRACTION
from neuralab.errors import ParameterError, Shown

SCHEDULES = ("onecycle", "cosine", "constant")
AMP = ("auto", "off", "bf16", "fp16")
RESUME_FROM = ("last", "best")  # where a resumed run starts: its latest epoch (the default), or its best one
AUTO_BF16_PARAMETERS = 5_000_000  # amp="auto" computes in bfloat16 from this size, where the hardware has it
DEVICES = ("auto", "cpu", "cuda", "mps")   # auto: CUDA, then Apple's MPS, then the CPU
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# cross_entropy takes logits and class numbers; the Keras names are those a compile() call gives
# (categorical_crossentropy also takes one-hot or soft targets); None picks the task's default:
# cross_entropy for classifiers, mse for forecasters
LOSSES = ("cross_entropy", "sparse_categorical_crossentropy", "categorical_crossentropy", "mse", "mae", "huber")
REGRESSION_LOSSES = ("mse", "mae", "huber")  # what a forecaster's numbers can be scored with
NO_TENSORBOARD = "`tensorboard` needs the tensorboard package: pip install 'neuralab[tensorboard]'"
PYTHON = "python:"   # `optimizer` of a run given an optimizer object from Python: "python:" + its qualified name
# What `monitor` can watch: the validation set's loss and the task's metric (the trainer's
# history records them as val_ + the metric's name)
MONITORS = {"classification": ("val_loss", "val_accuracy"), "regression": ("val_loss", "val_mae")}
MAX_SEED = 2**32 - 1  # NumPy's global seed takes no more, and torch.manual_seed no more on every platform
# What a field annotated int, float or bool takes: (accepted, what it is stored as, what to give).
# NumPy's integers and floats (np.arange's) are accepted and stored as Python's: config.json
# holds the config, and JSON knows no NumPy types.
FIELD_TYPES = {"int": (numbers.Integral, int, "must be an int"), "float": (numbers.Real, float, "must be a number"),
               "bool": (bool, bool, "must be True or False")}


def check_types(config) -> None:
    """Refuse a dataclass config's int, float and bool fields (and ``int | None`` ones) holding
    another type, a bool where a number is meant included, naming the field; NumPy numbers
    become Python's (FIELD_TYPES). Every config's check starts here: TrainConfig's and
    ClassifierConfig's, and forecasting's WindowConfig, ModelConfig, ForecastConfig and GradientConfig."""
    for f in fields(config):
        optional = isinstance(f.type, str) and f.type.endswith(" | None")
        accepted, python, need = FIELD_TYPES.get(f.type.removesuffix(" | None") if optional else f.type,
                                                 (object, None, ""))
        value = getattr(config, f.name)
        if optional and value is None:
            continue
        if not isinstance(value, accepted) or (isinstance(value, bool) and python is not bool):
            raise ParameterError(f.name, value, f"{need}{' or None' if optional else ''}, not {type(value).__name__}")
        if python is not None and type(value) not in (bool, int, float):
            setattr(config, f.name, python(value))


def check_positive(name: str, value) -> None:
    """Refuse a rate or a norm that is not a finite number above 0, NaN included: a learning
    rate of inf trains to NaN without a word, and an infinite clip clips nothing."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ParameterError(name, value, "must be a finite number greater than 0")


def check_momentum(momentum) -> None:
    """Refuse a momentum no optimizer takes."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise ParameterError("momentum", momentum, f"must be a number, not {type(momentum).__name__}")
    if not 0 <= momentum < 1:
        raise ParameterError("momentum", momentum, "must be at least 0 and below 1 (0.9 is usual)")


def before_compile(train: TrainConfig, given) -> TrainConfig:
    """``train`` as it is checked before a model's compile() may give its optimizer: a momentum
    ``given`` without an optimizer is checked for its range alone, and left out (compile()'s
    SGD may be what it is for); given with one, it is checked against it at once."""
    if "momentum" in given and "optimizer" not in given:
        check_momentum(train.momentum)
        return replace(train, momentum=0.0)
    return train


def check_seed(seed, name: str = "seed") -> None:
    """Refuse a seed that NumPy or PyTorch would reject halfway through seeding."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ParameterError(name, seed, f"give a whole number from 0 to {MAX_SEED}")


def check_config(config, kind: type, parameter: str = "config") -> None:
    """Refuse, naming ``parameter``, a config that is no ``kind`` (a dict of its fields, a
    dataset's name): the first field read would fail with an error that names nothing."""
    if isinstance(config, kind):
        return
    name = kind.__name__
    how = f"neuralab.{name}(...)"
    if isinstance(config, str) and "data" in kind.__dataclass_fields__:
        how = f"neuralab.{name}(data={config!r})"
    elif isinstance(config, dict):
        how += f", or {name}.from_dict(d) from a dict of its fields"
    raise ParameterError(parameter, Shown(config), f"give a {name}: {how}")


def _records_given(cls):
    """``cls`` (TrainConfig, ClassifierConfig) recording in ``_named`` the fields its maker named, or
    set since: TrainConfig(epochs=10) gives epochs 10, the default's value or not, and a Keras
    model's compile() and fit() fill only the others (given_fields). One made with every field
    (dataclasses.replace, a stored config.json's) cannot say which were its maker's: None. The
    signature stays the dataclass's."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        names = [f.name for f in fields(cls)]
        named = {*names[:len(args)], *kwargs}
        object.__setattr__(self, "_named", None)
        init(self, *args, **kwargs)
        object.__setattr__(self, "_named", None if named >= set(names) else frozenset(named))

    def __setattr__(self, name, value):
        # __init__ sets each field once, unrecorded; one set since (`config.epochs = 10`) is given
        if name in self.__dataclass_fields__ and self.__dict__.get("_named") is not None:
            object.__setattr__(self, "_named", self._named | {name})
        object.__setattr__(self, name, value)

    cls.__init__ = __init__
    cls.__setattr__ = __setattr__
    return cls


@_records_given
@dataclass
class TrainConfig:
    """The training budget, optimizer and loss. A Keras model's compile() and fit() settings fill
    the fields you did not give: those you name, at any value, are kept.

    Fields:
        epochs: passes over the training set.
        batch_size: images (or windows) per step; under torchrun the global batch, split across processes.
        lr: the peak learning rate of the schedule.
        weight_decay: decoupled for every optimizer, as AdamW and Keras 3 apply it; 0 = off.
        schedule: "onecycle" (warm up, then down: good accuracy in few epochs, Smith 2018),
            "cosine" or "constant".
        warmup: with onecycle, the fraction of all steps spent warming up to ``lr``.
        seed: what the weights, the shuffling, dropout and the validation split start from: the
            same seed gives the same run. Training seeds Python's, NumPy's and PyTorch's
            generators with it and puts yours back afterwards.
        device: "auto" (CUDA, then Apple's MPS, then the CPU), "cpu", "cuda" or "mps".
        patience: stop after this many epochs without improvement of ``monitor``; 0 = off.
        monitor: what early stopping and the best epoch watch: "val_loss" or "val_accuracy"
            ("val_mae" for series).
        grad_clip: the largest gradient norm; 0 = off (series models want about 1.0).
        amp: mixed precision: "auto" (bfloat16 from 5 million parameters, where the hardware has
            it), "off" (float32 always), "bf16" or "fp16".
        channels_last: the memory layout that makes convolutions faster on CPUs and tensor cores.
        eval_batch_size: images per step when evaluating; changes no result.
        threads: CPU threads for PyTorch while training; 0 = PyTorch's choice, held to the CPU quota;
            under torchrun, the node's: shared out over its processes.
        focus: below 1, every epoch after the first trains on that fraction of the training set:
            the samples with the highest loss.
        optimizer: "adam" (AdamW when weight_decay > 0), "adamw", "sgd" or "rmsprop" (Keras's rho 0.9).
        momentum: for sgd and rmsprop only (Adam keeps its own moment estimates).
        loss: None for the task's own (cross_entropy for classifiers, mse for series), or one of LOSSES.
        tensorboard: also write TensorBoard event files into the run's tensorboard/ folder.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    warmup: float = 0.2
    seed: int = 0
    device: str = "auto"
    patience: int = 0
    monitor: str = "val_loss"      # one of MONITORS[task]
    grad_clip: float = 0.0
    amp: str = "auto"              # auto: see AUTO_BF16_PARAMETERS
    channels_last: bool = True
    eval_batch_size: int = 1024
    threads: int = 0
    focus: float = 1.0
    optimizer: str = "adam"
    momentum: float = 0.0
    loss: str | None = None
    tensorboard: bool = False

    def check(self, task: str = "classification") -> None:
        """Raise ParameterError for a value of the wrong type or out of range; ``task`` is
        classification or regression. A NumPy number becomes the Python one (FIELD_TYPES)."""
        check_types(self)
        if self.epochs <= 0:
            raise ParameterError("epochs", self.epochs, "must be at least 1")
        check_seed(self.seed)
        if self.batch_size <= 0:
            raise ParameterError("batch_size", self.batch_size, "must be at least 1")
        if self.eval_batch_size <= 0:  # the evaluation's batches would never advance through the data
            raise ParameterError("eval_batch_size", self.eval_batch_size, "must be at least 1")
        check_positive("lr", self.lr)
        if self.schedule not in SCHEDULES:
            raise ParameterError("schedule", self.schedule, f"choose one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP:
            raise ParameterError("amp", self.amp, f"choose one of {', '.join(AMP)}")
        if self.threads < 0:
            raise ParameterError("threads", self.threads, "must be 1 or more (0 = torch's choice)")
        if not 0 <= self.grad_clip < float("inf"):  # NaN too; a negative norm would clip every gradient to nothing
            raise ParameterError("grad_clip", self.grad_clip, "must be 0 (off) or a positive gradient norm, and finite")
        if not 0 <= self.weight_decay < float("inf"):  # NaN or a negative decay trains to garbage silently
            raise ParameterError("weight_decay", self.weight_decay, "must be 0 (off) or more, and finite")
        if not 0 <= self.warmup <= 1:  # NaN too: the schedule could not count its warm-up steps
            raise ParameterError("warmup", self.warmup, "must be the fraction of all steps spent warming up, "
                                 "from 0 to 1 (0.2 is usual)")
        if self.patience < 0:  # a negative count would turn early stopping off without a word
            raise ParameterError("patience", self.patience, "must be 0 (off) or more epochs")
        if not 0 < self.focus <= 1:
            raise ParameterError("focus", self.focus, "must be above 0 and at most 1 (1 = every sample, every epoch)")
        if not (self.optimizer in OPTIMIZERS or (isinstance(self.optimizer, str) and self.optimizer.startswith(PYTHON))):
            raise ParameterError("optimizer", self.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
        check_momentum(self.momentum)
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ParameterError("momentum", self.momentum, f"applies to `optimizer` sgd or rmsprop, not "
                                 f"{self.optimizer} (Adam keeps its own moment estimates); leave it at 0")
        if task in MONITORS and self.monitor not in MONITORS[task]:  # a task of the user's own names its metrics
            raise ParameterError("monitor", self.monitor, f"choose one of {', '.join(MONITORS[task])}")
        if self.loss is not None and self.loss not in LOSSES:
            raise ParameterError("loss", self.loss, f"choose one of {', '.join(LOSSES)}")
        if task == "regression" and self.loss not in (None, *REGRESSION_LOSSES):
            raise ParameterError("loss", self.loss, "takes class scores, and a forecaster outputs numbers; "
                                 f"choose one of {', '.join(REGRESSION_LOSSES)}")
        if self.tensorboard:  # imported as the callback will, so that a broken install stops before a run is made
            from neuralab.training.tensorboard import summary_writer

            summary_writer()

    def epoch_sizes(self, n: int) -> list[int]:
        """Samples trained on in each epoch, for a training set of ``n``."""
        return [n] + [max(1, round(self.focus * n))] * (self.epochs - 1)


class Diverged(ParameterError):
    """Training went to infinite or NaN numbers: refused naming `lr`, the usual cause. ``epoch``
    is the first whose training or validation loss was not finite (the trainer stops there, every
    process alike); ``sign`` what showed it, and ``fix`` what to do, where a caller knows better."""

    def __init__(self, lr: float, epoch: int | None = None, sign: str = "its training loss is not a finite number",
                 fix: str = "lower it"):
        self.epoch = epoch
        at = f" at epoch {epoch}" if epoch is not None else ""
        super().__init__("lr", lr, f"training diverged{at} ({sign}); {fix}")

    def resumed(self, run_dir) -> "Diverged":
        """This divergence as a resume says it: a resume keeps the run's settings, so the lower
        rate is a new run's."""
        return Diverged(self.value, self.epoch, fix=f"the run keeps its last finite epoch ({run_dir}); start a "
                        "new run with a lower one")


def given_fields(train: TrainConfig | ClassifierConfig, defaults: TrainConfig | ClassifierConfig | None = None
                 ) -> frozenset[str]:
    """The fields of ``train`` (a TrainConfig, or a ClassifierConfig, whose val_fraction a Keras
    model's fit(validation_split=...) fills) its maker gave: those named when it was made
    (``TrainConfig(epochs=10)``, a field given its default's value included) or set on it since.
    Where that cannot be told, ``train`` having been made with every field (``dataclasses.replace``,
    a stored config.json), those whose values differ from ``defaults`` (its class's own by default):
    one at its default is taken as left out. ``replaced`` keeps a TrainConfig's record through a change."""
    named = getattr(train, "_named", None)  # a config pickled before the record existed has none
    if named is not None:
        return named
    defaults = defaults or type(train)()
    return frozenset(f.name for f in fields(train) if getattr(train, f.name) != getattr(defaults, f.name))


def replaced(config, /, **changes):
    """``dataclasses.replace(config, **changes)`` for a TrainConfig or a ClassifierConfig that
    keeps which fields were given (given_fields), the changed ones added."""
    out = replace(config, **changes)
    named = getattr(config, "_named", None)
    object.__setattr__(out, "_named", None if named is None else named | frozenset(changes))
    return out


def given_only(defaults: dict, **given) -> TrainConfig:
    """A TrainConfig of ``defaults`` (a task's own, as forecasting's) with ``given`` in their place,
    where only ``given`` count as given (given_fields)."""
    out = TrainConfig(**{**defaults, **given})
    object.__setattr__(out, "_named", frozenset(given))
    return out


def with_compile(train: TrainConfig, settings: dict, given: frozenset[str] | set[str] | None = None) -> TrainConfig:
    """``train`` with a Keras model's compile() (and fit()) ``settings`` (TrainConfig field names, from
    training.source) in the fields not ``given`` (by default ``given_fields(train)``): a field the
    caller gave wins, at its default's value too. Fields TrainConfig does not have are left out.
    compile()'s learning rate, momentum and schedule ("constant", as Keras's optimizers step) are its
    optimizer's: a run given another optimizer takes none of them, but ``train``'s (neuralab's
    defaults where the caller gave none), and a warning says so of the rate."""
    given = given_fields(train) if given is None else given
    names = {f.name for f in fields(TrainConfig)}
    taken = {k: v for k, v in settings.items() if k in names and k not in given}
    compiled = settings.get("optimizer")
    if taken.get("optimizer", train.optimizer) != compiled:
        taken.pop("momentum", None)
        if compiled is not None:
            taken.pop("schedule", None)
            if taken.pop("lr", None) is not None:
                under = "" if "schedule" in given else f" under its `schedule` {train.schedule}"
                warnings.warn(f"`optimizer` {train.optimizer} over compile()'s {compiled}: the run trains at "
                              f"neuralab's `lr` {train.lr:g}{under}, not at compile()'s {settings['lr']:g}, which was "
                              f"its {compiled}'s; give `lr` to choose the rate")
    return replace(train, **taken)


# Tuned defaults a user picks by name (`--recipe fast`); explicit options override them.
RECIPES: dict[str, dict] = {
    # One-cycle schedule, no validation pass; epoch 1 on every training image, then five epochs
    # on the hardest 18%: 1.9 epochs' work (docs/speed-rounds.md, the third round).
    "fast": {"epochs": 6, "focus": 0.18, "batch_size": 128, "lr": 7e-3, "warmup": 0.3, "schedule": "onecycle",
             "val_fraction": 0.0},
}


def recipe_settings(recipe: str | None, **given) -> dict:
    """A recipe's settings (none: {}) with the ones ``given`` (not None) in their place: what a
    run of that recipe trains with; ``val_fraction`` among them is ClassifierConfig's."""
    if recipe and recipe not in RECIPES:
        raise ParameterError("recipe", recipe, f"choose one of {', '.join(RECIPES)} (or none)")
    return {**RECIPES.get(recipe or "", {}), **{k: v for k, v in given.items() if v is not None}}


@_records_given
@dataclass
class ClassifierConfig:
    """What to train: a model, the images, and the budget (``train``). ``train_classifier(config)``
    trains it, and the run's config.json keeps it.

    Fields:
        model: a zoo name ("lenet5", "mlp", ...; neuralab.ARCHITECTURES), a Keras file (.keras,
            .h5), "FILE.py" or "FILE.py:NAME" defining a Keras model or a torch.nn.Module, or
            such a model object itself.
        data: a built-in dataset ("mnist", "fashion-mnist", "cifar10", ...) or a folder of
            images, one subfolder per class.
        data_dir: where the built-in datasets' files are (None: the default place).
        val_fraction: the share of the training images held out for validation, chosen by
            ``train.seed``. Left out, a Keras model's fit(validation_split=...) gives it.
        model_options: a zoo model's keyword options, e.g. {"dropout": 0.5}.
        train: the TrainConfig: epochs, batch size, learning rate, seed, device, ...
        image_size, color, on_error, test_fraction: for a folder of images only (None: the
            loader's defaults): the (height, width) every image is resized to; "auto",
            "grayscale" or "rgb"; "refuse" or "skip" unreadable images; the share held out for
            the test set.
    """

    model: object = "lenet5"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    val_fraction: float = VAL_FRACTION
    model_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    image_size: tuple[int, int] | None = None
    color: str | None = None
    on_error: str | None = None
    test_fraction: float | None = None         # None: data.TEST_FRACTION

    def check(self) -> None:
        """Raise ParameterError for a field of the wrong type or out of range, ``train`` aside:
        the trainer checks that once a Keras model's compile() has filled it (TrainConfig.check)."""
        check_types(self)
        if self.model_options is None:  # as the zoo's builder reads it (options or {}): none
            self.model_options = {}
        if not isinstance(self.model_options, dict):  # the zoo's builder takes them as keyword arguments
            raise ParameterError("model_options", self.model_options, "give a dict of the zoo model's options, "
                                 "e.g. {'dropout': 0.5}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:  # NaN too
            raise ParameterError("val_fraction", self.val_fraction, "must be in [0, 1)")
        # none held out left nothing to score the model on, refused only once every picture was decoded
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ParameterError("test_fraction", self.test_fraction, "must be in (0, 1): the trained model is "
                                 f"scored on the pictures held out; give a share such as {TEST_FRACTION} (the default)")

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        size = d.get("image_size")
        return cls(**{**d, "train": TrainConfig(**d.get("train", {})),
                      "image_size": tuple(size) if isinstance(size, list) else size})

    @property
    def data_options(self) -> dict:
        """What ``neuralab.data.load_image_data`` takes from this config besides the data's name."""
        return {"val_fraction": self.val_fraction, "seed": self.train.seed, "image_size": self.image_size,
                "color": self.color, "on_error": self.on_error, "test_fraction": self.test_fraction}
