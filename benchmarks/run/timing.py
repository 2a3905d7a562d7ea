"""Where one run's time goes, recorded with its result as `timing`: each phase on the host clock, plus the
run's wall-clock start and end, process and device, so that a sweep's breakdown (perf/vtab_full.py) can
sum the phases and find the time a GPU sat idle between consecutive runs.

The device is synced at a phase's edges only where that is cheap: phases that run once per run (model
build, host-to-device copy, graph capture), or that end in a host sync anyway (an epoch's loss, an
evaluation's accuracy). Never per batch."""
import os
import socket
import time
from contextlib import contextmanager

import torch

from .evaluate import sync

# the phases, in the order a run passes through them; `other_seconds` is what none of them covers
PHASES = ("setup", "device_init", "data_load", "to_device", "model_build", "macs_count", "graph_capture",
          "first_step", "train_steady", "eval", "merge_eval")


def init_device(device: torch.device) -> None:
    """Create the CUDA context now (a sweep worker's first run pays it; later runs find it), so that it is
    its own phase rather than a part of the model build."""
    if device.type == "cuda":
        torch.zeros(1, device=device)


def physical_gpu(device: torch.device) -> str:
    """The GPU as the host numbers it: a sweep worker sees its GPU as cuda:0 under CUDA_VISIBLE_DEVICES=3. Asks
    CUDA nothing when it is not initialised (a failed run's record must not start it)."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else (
        torch.cuda.current_device() if torch.cuda.is_initialized() else 0)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[index] if index < len(visible) else str(index)


def span(wall_start: float, device: str, gpu: str, pid: int | None = None) -> dict:
    """When and where a run ran, from `wall_start` (time.time()) to now: the part of `timing` that every record
    has, a failed run's too, so that a sweep's breakdown can place it on its GPU."""
    wall_end = time.time()
    return {"total_seconds": wall_end - wall_start, "wall_start": wall_start, "wall_end": wall_end,
            "pid": os.getpid() if pid is None else pid, "host": socket.gethostname(), "device": device, "gpu": gpu}


class RunTimer:
    """Seconds per phase of one run; `timed(name)` adds a block's time to a phase."""

    def __init__(self):
        self.wall_start = time.time()
        self.started = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in self.seconds:
            raise KeyError(f"unknown timing phase {phase!r}; the phases are {PHASES}")
        self.seconds[phase] += seconds

    @contextmanager
    def timed(self, phase: str, device: torch.device = None):
        """Times the block; with `device`, synced before and after it (for one-off phases only)."""
        sync(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(device)
            self.add(phase, time.perf_counter() - start)

    def record(self, device: torch.device, **extra) -> dict:
        """The `timing` field of the run's record: total, each phase, what none covers, and where and when
        the run ran (`wall_start`/`wall_end` are time.time(): comparable across the processes of one host)."""
        total = time.perf_counter() - self.started  # the monotonic clock, as the phases
        parts = {f"{k}_seconds": v for k, v in self.seconds.items()}
        return {**span(self.wall_start, str(device), physical_gpu(device)), "total_seconds": total, **parts,
                "other_seconds": max(0.0, total - sum(self.seconds.values())), **extra}


def failed_run_timing(wall_start: float, device: torch.device) -> dict:
    """The `timing` of a run that failed: when and where it ran, without phases, so that a sweep's breakdown
    counts its time as busy."""
    try:
        gpu = physical_gpu(device)
    except Exception:  # a broken CUDA state: the record still says when the run ran
        gpu = "?"
    return span(wall_start, str(device), gpu)
