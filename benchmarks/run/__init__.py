"""One run: data -> model -> train -> evaluate -> record. `train_run` composes the steps; each lives in its
own module. A run is a pure function of its resolved config (config.resolve_run)."""
import random
import time
import traceback

import numpy as np
import torch

import aurora_vision as av

from .. import store
from . import ddp, record
from .evaluate import approximate_merge_accuracy
from .flops import count_macs
from .inputs import decoded_splits, to_device, transform_for
from .model import build_model
from .tensorboard import RunLogger, run_hparams, trial_id
from .train import NonFiniteLoss, fit  # noqa: F401  (NonFiniteLoss: what a diverging run raises)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_run(run: dict, logdir=None, quiet: bool = False, return_model: bool = False):
    """Train and evaluate one resolved run config; returns the result record (status 'ok'), and the
    trained model too with return_model=True."""
    started = time.perf_counter()
    seed_everything(run["seed"])
    rank, world = ddp.init()
    device = ddp.local_device(resolve_device(run["train"]["device"]))
    splits, num_classes = decoded_splits(run)
    model = build_model(run["model"], run["method"], num_classes).to(device)
    cost = {"params": av.count_parameters(model), **count_macs(model, run["model"]["image_size"])}
    inputs, transform = to_device(splits, num_classes, device), transform_for(model, run)
    logger = RunLogger(logdir if ddp.is_main() else None)
    try:
        fitted = fit(run, model, inputs, transform, device, rank, world, logger, quiet)
        static = approximate_merge_accuracy(model, inputs.eval, transform, run["train"]["eval_batch_size"],
                                            fitted.autocast)
        logger.hparams(run_hparams(run, cost["params"]["trainable"], cost["gmacs"]), trial_id(run),
                       run["train"]["epochs"], static_merge_accuracy=static)
    finally:
        logger.close()
    result = record.success(run, fitted, inputs, cost, static, device, world, started)
    return (result, model) if return_model else result


def run_safely(run: dict, output, quiet: bool = False, runner=train_run) -> dict:
    """The run's result, 'ok' or 'failed' with the reason: a failing run is a result, not an exception
    (KeyboardInterrupt still stops)."""
    try:
        return runner(run, logdir=store.logdir(output, run), quiet=quiet)
    except Exception as e:  # the sweep must go on; the record says what broke
        return record.failure(run, f"{type(e).__name__}: {e}", traceback.format_exc())


def run_and_record(run: dict, output, quiet: bool = False, runner=train_run) -> dict:
    """`run_safely`, then its result written to the store (an interrupted run leaves none)."""
    result = run_safely(run, output, quiet, runner)
    if ddp.is_main():  # under torchrun, rank 0 alone records
        store.write_result(output, run, result)
    return result
