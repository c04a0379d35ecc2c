"""Devices, threads and the distributed process group (torchrun)."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from neuralab.errors import NeuralabError, ParameterError
from neuralab.training.config import DEVICES


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if name not in DEVICES:
        raise ParameterError("device", name, f"choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", name, "no CUDA GPU is visible to PyTorch; use `device` cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ParameterError("device", name, "Apple's Metal backend is not available here; use `device` cpu or auto")
    if name == "cuda" and dist_info().active:
        local, visible = dist_info().local_rank, torch.cuda.device_count()
        if local >= visible:  # CUDA's own "invalid device ordinal" would come from every such process
            raise NeuralabError(f"LOCAL_RANK {local}: this machine shows {visible} GPU{'s' * (visible != 1)}, one per "
                                f"process; start torchrun with nproc_per_node {visible} or fewer (or `device` cpu)")
        return torch.device("cuda", local)
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: a CUDA GPU that supports it, or a CPU
    with AVX-512 BF16 (AMX CPUs have it too). Elsewhere oneDNN emulates bfloat16 on float32
    units, slower than float32 itself."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        supported = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private: absent on some builds
        return bool(supported and supported())
    return False


CGROUPS = Path("/sys/fs/cgroup")


@functools.cache
def quota_cpus() -> int | None:
    """The CPUs a CPU quota grants this process, rounded up, or None where none is set: a
    container's (`docker run --cpus`, a Kubernetes limit) or a job's. PyTorch counts the cores
    it may run on, not the time it may use: with two cores and a quota of one, LeNet-5's epoch
    took 8.3-8.6 s on torch's two threads against 6.7 s on one (docs/speed-rounds.md); on a
    large node under a small quota, torch's dozens of threads would share a few CPUs' time."""
    return _quota_cpus(Path("/proc/self/cgroup"), CGROUPS)


def _quota_cpus(membership: Path, root: Path) -> int | None:
    """``quota_cpus`` read from ``membership`` (a /proc/PID/cgroup) and the cgroup tree at ``root``:
    cgroup v2's cpu.max ("max 100000", "150000 100000") or v1's cpu.cfs_quota_us over
    cpu.cfs_period_us (-1: none), the tightest of the process's cgroup and those above it."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:  # not Linux, or no cgroups: no quota known
        return None
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                                      # v2: one tree
            folders = [root]
        elif "cpu" in controllers.split(","):                      # v1: the cpu controller's tree
            folders = [root / controllers, root / "cpu"]
        else:
            continue
        for folder in folders:
            here = folder / path.lstrip("/")
            for level in (here, *here.parents):
                found.append(_quota_at(level))
                if level == folder:
                    break
    quotas = [q for q in found if q is not None]
    return max(1, math.ceil(min(quotas))) if quotas else None


def _quota_at(folder: Path) -> float | None:
    """CPUs the quota set in one cgroup folder grants (None: none set there, or not readable)."""
    try:
        if (folder / "cpu.max").is_file():
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None


# The threads of this session, over a run's own `threads` (``session_threads``); 0: the run's
_SESSION_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("session_threads", default=0)


def session_device(device: str | None, own: str, run_dir: Path) -> str:
    """The device a resumed run computes on in this session: ``device`` where given, else
    ``own``, the one it was started with (config.json's, which stays the run's). Like the
    threads (``session_threads``), it is the machine's, not a setting of the run: a job that a
    scheduler starts again may land on a node without the GPU it started on. Refused, where it
    is not here, with the device to give instead."""
    try:
        pick_device(device or own)
    except ParameterError as e:
        if device is not None:
            raise
        raise NeuralabError(f"{run_dir}: the run was started with `device` {own!r}: {e.reason.partition(';')[0]}; "
                            "the device is the session's, not the run's: resume with `device` cpu or auto to go on "
                            "here") from None
    return device or own


@contextlib.contextmanager
def session_threads(n: int | None):
    """A block in which every run computes with ``n`` CPU threads, whatever its config's
    ``threads`` (None or 0: the config's). A resumed run keeps the config it was started with,
    but the threads it computes with are the machine's, as its device is: a job started again
    by a scheduler may land on a node with another allotment of cores. The session records
    them (config.json's ``sessions``), and a resume warns where they differ from the first's."""
    token = _SESSION_THREADS.set(n or 0)
    try:
        yield
    finally:
        _SESSION_THREADS.reset(token)


def compute_threads(n: int = 0) -> int:
    """The intra-op CPU threads a run computes with: the session's (``session_threads``), else
    ``n``, else torch's count held to the CPU quota (``quota_cpus``); in a torchrun job that left
    OMP_NUM_THREADS to torchrun, this process's share of the node's CPUs (``torchrun_share``).

    In a torchrun job, ``n`` and the session's are the node's, this process's share of them
    computes here (at least one thread), as the default's is: a job given the cores it was
    allotted, as the README advises, ran that many threads in each process, twice as many as
    cores with two processes, and its epoch took 2.2x as long (docs/runs.md, "Under torchrun")."""
    n = _SESSION_THREADS.get() or n
    if n:
        return max(1, n // local_processes())
    share = torchrun_share()
    if share:
        return share
    quota = quota_cpus()
    return min(torch.get_num_threads(), quota) if quota else torch.get_num_threads()


def local_processes() -> int:
    """The processes of this torchrun job on this node (1 outside torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if dist_info().launched else 1


def torchrun_share(launcher: Path | None = None) -> int | None:
    """The CPUs (held to the quota) over torchrun's processes on this node, where torchrun chose
    OMP_NUM_THREADS=1 for them; None elsewhere. torchrun sets it for jobs of several processes a
    node that set none, to keep them from oversubscribing; each then computes on one thread, so a
    CPU job of 2 processes used 2 of a node's 32 cores. A user's own OMP_NUM_THREADS=1 stays: the
    launcher sets its value after it started, so its environment at start (``launcher``, by
    default /proc/PPID/environ, which later changes do not reach) lacks it."""
    local = local_processes()
    if os.environ.get("OMP_NUM_THREADS") != "1" or "TORCHELASTIC_RUN_ID" not in os.environ or local < 2:
        return None
    try:
        started_with = (launcher or Path(f"/proc/{os.getppid()}/environ")).read_bytes().split(b"\0")
    except OSError:  # not Linux, or not readable: the environment's 1 stands
        return None
    if any(entry.startswith(b"OMP_NUM_THREADS=") for entry in started_with):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, quota_cpus() or cpus) // local)


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run a block with ``n`` intra-op CPU threads (0: torch's setting, held to a CPU quota),
    then restore. Small models gain little from many threads, and where the cores are busy
    with other work (a shared node, parallel jobs) threads beyond the free cores spin at
    barriers and can be many times slower (docs/forecasting.md, "Training speed")."""
    before = torch.get_num_threads()
    n = compute_threads(n)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# After training: where glibc's own rule leaves the two once large blocks have been freed (its
# DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, and twice that). Setting either turns that rule off
# for good, and the starting 128 KB would then send every tensor above it to mmap and its
# page faults: a plain PyTorch training step of the sample CNN took 2.2-2.5x as long after a
# fit as in a fresh process.
_AFTER_MMAP_THRESHOLD, _AFTER_TRIM_THRESHOLD = 32 << 20, 64 << 20


@contextlib.contextmanager
def kept_heap():
    """Run a block with freed memory kept in the process's heap (glibc's malloc on Linux;
    elsewhere nothing changes), then hand it back to the system and leave glibc's thresholds
    where its own rule would have them. A block inside another (a validation pass inside
    training) or beside another (a second thread's) keeps the setting until the last one ends.

    Every training step frees and allocates the same large tensors. glibc gives big blocks
    back to the system when they are freed, and every page of the next allocation then
    costs a page fault when first written: about 3,000 faults and 13 ms of system time per
    step of the sample CNN at batch 128 on this project's machine, against 1 ms with the
    memory kept; inference over a test set in batches runs 2-3x faster for the same reason
    (docs/speed-rounds.md, the fourth and tenth rounds)."""
    global _heap_kept
    libc = _glibc()
    if libc is None:
        yield
        return
    with _heap_lock:  # the setting is the process's: the first block in sets it, the last one out hands memory back
        _heap_kept += 1
        if _heap_kept == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_kept -= 1
            if _heap_kept == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM_THRESHOLD)
                libc.malloc_trim(0)


_heap_kept = 0  # blocks inside kept_heap now, in any thread
_heap_lock = threading.Lock()


@functools.cache
def _glibc():
    """glibc, loaded once; None elsewhere (another libc, another system)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun, even as a single process

    @property
    def active(self) -> bool:
        return self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read the ranks torchrun puts in the environment (one process: rank 0 of 1)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        launched="RANK" in os.environ and "WORLD_SIZE" in os.environ,
    )


def refuse_distributed(work: str) -> None:
    """Refuse ``work`` (what a command does) in a torchrun job of several processes: it runs in one
    process, and N copies would each write the same run."""
    world = dist_info().world_size
    if world > 1:
        raise NeuralabError(f"{work} runs in one process, and torchrun started {world}: run it without torchrun "
                            "(torchrun is for training image classifiers)")


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun: NCCL on CUDA, gloo on the CPU."""
    info = dist_info()
    if info.active and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave_group)
    return info


def _leave_group() -> None:
    """The process group left at exit, where the user's script did not: a gloo group torn down
    by the interpreter's end instead now and then aborted a process ("terminate called without an
    active exception", exit -6) after a job that had finished well."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def on_rank_0(decide, device: torch.device | str):
    """What ``decide()`` returns on rank 0, in every process of a torchrun job (joining its
    process group where no trainer has yet), or the error it raises there, raised in every
    process with rank 0's words; in one process, ``decide()``. What rank 0 alone decides (a run
    folder's name, a refusal of it) must reach the others: refused by rank 0 alone, they would
    go on to train and end on the lost peer when torchrun stops them."""
    info = dist_info()
    if not info.active:
        return decide()
    init_distributed(pick_device(device) if isinstance(device, str) else device)
    value, refusal = None, None
    if info.is_main:
        try:
            value = decide()
        except BaseException as e:  # noqa: BLE001  a bug or Ctrl-C too: the others must not wait for rank 0 in vain
            refusal = e
    shared = [(value, None if refusal is None else str(refusal) or type(refusal).__name__)]
    torch.distributed.broadcast_object_list(shared, src=0)
    value, said = shared[0]
    if refusal is not None:
        raise refusal
    if said is not None:
        raise NeuralabError(said)
    return value


def environment(device: torch.device, threads: int = 0) -> dict:
    """What a run records so that it can be reproduced: versions, device, threads. ``threads``
    is the count the run computes with (``cpu_threads``'s; 0: torch's setting, which then applies).
    Keras's version and backend where Keras is loaded: a model from Keras code, or Keras's own
    fit (RunLogger). A Keras file is read without Keras; its spec keeps the version that saved it."""
    import platform

    import numpy

    from neuralab import __version__

    env = {
        "neuralab": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "threads": compute_threads(threads),
        "world_size": dist_info().world_size,
    }
    if local_processes() > 1:  # each computed on `threads`: the node ran that many times as many
        env["local_world_size"] = local_processes()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    keras = sys.modules.get("keras")  # not imported here: seconds of start-up for runs that do not use it
    if keras is not None:
        env.update(keras=keras.__version__, keras_backend=keras.backend.backend())
    return env
