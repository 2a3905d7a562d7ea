"""One run: data -> model -> train -> evaluate -> record. `train_run` composes the steps; each lives in its
own module. A run is a pure function of its resolved config (config.resolve_run)."""
import os
import random
import time
import traceback
from dataclasses import dataclass
from functools import partial
from typing import Optional

import numpy as np
import torch

import aurora_vision as av

from .. import store
from . import compiling, ddp, determinism, fp8, record
from .evaluate import approximate_merge_accuracy, calibrated_merge_accuracy
from .flops import count_macs
from .inputs import decoded_splits, to_device, transform_for
from .model import build_model
from .status import status
from .tensorboard import RunLogger, run_hparams, trial_id
from .timing import RunTimer, failed_run_timing, init_device
from .train import NonFiniteLoss, fit, use_cuda_graphs  # noqa: F401  (NonFiniteLoss: what a diverging run raises)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # what dropout and drop-path draw from on the GPU (lazy: no CUDA init)


def train_run(run: dict, logdir=None, quiet: bool = False, return_model: bool = False):
    """Train and evaluate one resolved run config; returns the result record (status 'ok'), and the
    trained model too with return_model=True. The record's `timing` says where the time went (timing.py)."""
    started = time.perf_counter()
    timer = RunTimer()
    with timer.timed("setup"):
        requested = resolve_device(run["train"]["device"])  # no CUDA work: fp8 compiles on CUDA
        compiles = compiling.run_mode(run["train"], requested.type) != "none"
        forced = determinism.configure(run["train"]["deterministic"], compiles)  # before any CUDA work
        seed_everything(run["seed"])
        rank, world = ddp.init()
        device = ddp.local_device(requested)
        if run["train"]["precision"] == "fp8":
            fp8.check_available(device)  # torchao and an FP8 GPU (or emulation), before any data or model work
    with timer.timed("device_init", device):
        init_device(device)
    say = partial(status, quiet=quiet or not ddp.is_main())
    data = run["data"]
    say(f"loading {run['task']}: {data['source']} splits {data['split_train']} and {data['split_eval']} "
        "(decoded into the cache the first time)")
    origins = {}
    with timer.timed("data_load"):
        splits, num_classes = decoded_splits(run, origins)
    say(f"building model {run['model']['name']} with {run['method']['variant']} ({run['method']['name']})")
    with timer.timed("model_build", device):
        model = build_model(run["model"], run["method"], num_classes).to(device)
    with timer.timed("macs_count", device):
        cost = {"params": av.count_parameters(model), **count_macs(model, run["model"]["image_size"])}
    # after the method (only frozen linears convert) and the MAC count (fvcore cannot trace torchao's tensors)
    with timer.timed("model_build", device):
        fp8_info = fp8.convert_frozen_linears(model, device) if run["train"]["precision"] == "fp8" else None
    with timer.timed("to_device", device):
        inputs = to_device(splits, num_classes, device)
    transform = transform_for(model, run)
    say(f"training on {device}" + (" (capturing the step as a CUDA graph first)" if use_cuda_graphs(device, world)
                                   else ""))
    logger = RunLogger(logdir if ddp.is_main() else None)
    try:
        fitted = fit(run, model, inputs, transform, device, rank, world, logger, quiet)
        # each evaluation ends in a host sync; one pass each through a merged model: compiling it again would not pay
        with timer.timed("merge_eval"), compiling.eager():
            static = approximate_merge_accuracy(model, inputs.eval, transform, run["train"]["eval_batch_size"],
                                                fitted.autocast)
            calibrated = (calibrated_merge_accuracy(model, inputs.eval, transform, run["train"]["eval_batch_size"],
                                                    fitted.autocast, inputs.train, run["seed"])
                          if run["train"]["calibrated_merge"] else None)
        logger.hparams(run_hparams(run, cost["params"]["trainable"], cost["gmacs"]), trial_id(run),
                       run["train"]["epochs"], merged={"static": static, "calibrated": calibrated})
    finally:
        logger.close()
    add_training(timer, fitted)
    result = record.success(run, fitted, inputs, cost, device, world, started, static_merge_accuracy=static,
                            calibrated_merge_accuracy=calibrated, data_config=transform.data_config,
                            determinism=forced, fp8=fp8_info,
                            timing=timer.record(device, data_cache=origins, evals=fitted.evals))
    return (result, model) if return_model else result


def add_training(timer: RunTimer, fitted) -> None:
    """fit's own timings as phases: its one-off costs (the step's and the evaluation's graph captures, the
    eager first steps) apart from the steady epochs and evaluations."""
    one_off = fitted.capture_seconds + fitted.first_step_seconds
    timer.add("graph_capture", fitted.capture_seconds + fitted.eval_capture_seconds)
    timer.add("first_step", fitted.first_step_seconds)
    timer.add("train_steady", max(0.0, fitted.train_seconds - one_off))
    timer.add("eval", max(0.0, fitted.eval_seconds - fitted.eval_capture_seconds))


def run_safely(run: dict, output, quiet: bool = False, runner=train_run) -> dict:
    """The run's result, 'ok' or 'failed' with the reason: a failing run is a result, not an exception
    (KeyboardInterrupt still stops). A runner that returns no valid record fails the run, saying why; a
    failure records when and where it ran (its `timing`), so a sweep's breakdown counts its time as busy."""
    wall_start = time.time()
    timing = lambda: failed_run_timing(wall_start, _device_of(run))  # noqa: E731
    try:
        result = runner(run, logdir=store.logdir(output, run), quiet=quiet)
    except Exception as e:  # the sweep must go on; the record says what broke
        return record.failure(run, f"{type(e).__name__}: {e}", traceback.format_exc(), timing())
    try:
        return store.check_record(result, f"the result {getattr(runner, '__name__', 'the runner')} returned")
    except store.InvalidRecord as e:
        return record.failure(run, f"InvalidRecord: {e}", timing=timing())


def _device_of(run: dict) -> torch.device:
    try:
        return resolve_device(run["train"]["device"])
    except Exception:  # a bad device name may be why the run failed
        return resolve_device("auto")


@dataclass(frozen=True)
class Outcome:
    """What became of a pending run: 'ok' or 'failed' (made now; `result` its record, `saved` where it went),
    'skipped' (another process made it since the sweep planned it), 'elsewhere' (another live process is
    making it now)."""
    status: str
    result: Optional[dict] = None
    saved: Optional[store.Saved] = None

    @property
    def error(self) -> Optional[str]:
        return (self.result or {}).get("error")

    @property
    def unsaved(self) -> bool:
        return self.saved is not None and not self.saved.in_store


def _records_here() -> bool:
    # under torchrun every rank trains and rank 0 alone claims and records; read before ddp.init
    return int(os.environ.get("RANK", "0")) == 0


def run_and_record(job: store.Pending, output, quiet: bool = False, runner=train_run) -> Outcome:
    """`run_safely` while this process holds the run's claim, then its result saved in the store (which keeps it
    elsewhere, and says where, when the folder cannot take it). An interrupted run leaves no record."""
    if not _records_here():
        result = run_safely(job.run, output, quiet, runner)
        return Outcome(result["status"], result)
    with store.claim(output, job.run) as held:
        if not held:
            return Outcome("elsewhere")
        if store.stamp(output, job.run) != job.seen:
            return Outcome("skipped")
        result = run_safely(job.run, output, quiet, runner)
        return Outcome(result["status"], result, store.save(output, job.run, result, replace=job.replace))
