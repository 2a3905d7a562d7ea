"""The training loop: AdamW with separate head and adapter learning rates, warmup + cosine (or linear) decay,
bf16 autocast on GPU (train.precision fp8: the frozen linears in FP8 as well, run/fp8.py), the step replayed
as a CUDA graph on one GPU, evaluation every `eval_every` epochs and always after the last."""
import math
import os
import time
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import compiling, ddp
from .cuda_graph import GraphedTrainStep, adamw, train_step
from .evaluate import GraphedEval, evaluate, sync
from .model import param_groups


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf; the run stops and records why."""


@dataclass
class Fitted:
    """What training produced besides the weights: the final epoch's evaluation and the per-epoch curve."""
    final: dict
    curve: list = field(default_factory=list)
    train_seconds: float = 0.0       # all epochs, one-off costs included (graph capture, first step)
    capture_seconds: float = 0.0     # CUDA-graph captures of the step, within train_seconds
    first_step_seconds: float = 0.0  # eager: each batch size's first step (compile...), within train_seconds
    eval_seconds: float = 0.0        # every evaluation during training, outside train_seconds
    eval_capture_seconds: float = 0.0  # the evaluation's CUDA-graph captures, within eval_seconds
    evals: int = 0
    bf16: bool = False
    graphs: bool = False
    autocast: object = None
    compile: dict = field(default_factory=lambda: {"mode": "none"})  # compiling.CompileCost.report()


def use_cuda_graphs(device: torch.device, world: int) -> bool:
    """Whether the step runs as CUDA graphs (cuda_graph.py): on one CUDA device, unless
    AURORA_VISION_CUDA_GRAPHS=0; with train.compile the graph replays the compiled kernels (the compile
    happens in the capture's warm-up). How a run executes, like AURORA_VISION_SIGMA: recorded in its
    result, not part of its config (the arithmetic is the same). Kept under train.deterministic: a replay
    runs the recorded kernels in the recorded order (run/determinism.py)."""
    return device.type == "cuda" and world == 1 and os.environ.get("AURORA_VISION_CUDA_GRAPHS", "1") != "0"


class FirstCallsTimed:
    """`fn(x, ...)`, its first call at each batch size synced and timed (`seconds`, summed): the eager step's
    one-off costs land there (torch.compile, cuDNN/cuBLAS heuristics; a static-shape compile compiles the
    epoch's smaller tail batch again). Later calls pass straight through, unsynced."""

    def __init__(self, fn, device: torch.device):
        self.fn, self.device, self.seconds, self.sizes = fn, device, 0.0, set()

    def __call__(self, x, *args):
        if x.shape[0] in self.sizes:
            return self.fn(x, *args)
        sync(self.device)
        start = time.perf_counter()
        out = self.fn(x, *args)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        self.sizes.add(x.shape[0])
        return out


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"train.schedule must be 'cosine' or 'linear', got {schedule!r}")
    return f


def fit(run: dict, model, inputs, transform, device: torch.device, rank: int, world: int, logger,
        quiet: bool = False) -> Fitted:
    """Train and evaluate `model` as `run` says; the process-wide compile settings hold for this run only."""
    tr = run["train"]
    mode = compiling.run_mode(tr, device.type)
    cache = compiling.cache_folder(compiling.cache_dir_for(run["data"].get("cache_dir"))) if mode != "none" else None
    with compiling.settings(cache):
        return _fit(run, model, inputs, transform, device, rank, world, logger, quiet, mode, cache)


def _fit(run: dict, model, inputs, transform, device: torch.device, rank: int, world: int, logger,
         quiet: bool, mode: str, cache) -> Fitted:
    tr = run["train"]
    # fp8 on CUDA: bf16 autocast around torchao's FP8 linears (run/fp8.py); their emulation elsewhere runs the
    # rest in fp32, as torchao's Float8Linear follows CUDA's autocast only
    bf16 = tr["precision"] == "bf16" or (tr["precision"] in ("auto", "fp8") and device.type == "cuda")
    graphs = use_cuda_graphs(device, world)
    # a graph must not keep autocast's per-forward weight casts in a cache
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=not graphs)
    optimizer = adamw(param_groups(model, tr["lr"], tr["head_lr"] or tr["lr"], tr["weight_decay"]), device, graphs)
    steps_per_epoch = math.ceil(len(inputs.train) / tr["batch_size"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(tr["schedule"], steps_per_epoch * tr["warmup_epochs"], steps_per_epoch * tr["epochs"]))
    step_model = compiling.for_training(ddp.wrap(model, device), model, mode)
    compile_cost = compiling.CompileCost(mode, cache)  # after for_training's dynamo reset, which zeroes its timers

    def loss_of(x, y):
        with autocast():
            logits = step_model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=tr["label_smoothing"])

    take_step = (GraphedTrainStep(model, optimizer, loss_of) if graphs
                 else FirstCallsTimed(partial(train_step, optimizer, loss_of), device))
    # evaluation as graphed forward passes too: the weights change in place, so one capture serves every epoch
    eval_forward = GraphedEval(model, transform, autocast) if graphs else None
    order = torch.Generator().manual_seed(run["seed"])  # the same batch order on every rank
    augment = torch.Generator().manual_seed(run["seed"] + 7919 * (rank + 1))  # each rank its own draws
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fitted = Fitted(final={}, bf16=bf16, graphs=graphs, autocast=autocast)
    epochs = tqdm(range(tr["epochs"]), desc=f"{run['task']}/{run['method']['variant']}/s{run['seed']}",
                  disable=quiet, leave=False)
    for epoch in epochs:
        model.train()
        sync(device)
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for x, y in inputs.train.batches(tr["batch_size"], generator=order):
            if len(y) < world:  # a tail batch too small to give every rank an image: skipped on all
                continue
            x, y = ddp.shard(x, y)
            loss = take_step(transform(x, train=True, generator=augment), y)
            scheduler.step()
            loss_sum += loss * len(y)
        epoch_loss = (ddp.all_sum(loss_sum) / len(inputs.train)).item()  # one host sync per epoch
        epoch_time = time.perf_counter() - start
        fitted.train_seconds += epoch_time
        if not math.isfinite(epoch_loss):
            raise NonFiniteLoss(f"training loss became {epoch_loss} in epoch {epoch + 1} "
                                f"(lr {tr['lr']}, head_lr {tr['head_lr']}); lower the learning rate")
        logger.scalars(epoch + 1, train__loss=epoch_loss, train__lr=float(optimizer.param_groups[0]["lr"]),
                       train__img_per_s=len(inputs.train) / epoch_time)
        # per-epoch seconds: the first epoch holds one-off costs (torch.compile, cuDNN/cuBLAS heuristics)
        point = {"epoch": epoch + 1, "loss": epoch_loss, "seconds": epoch_time}
        if (epoch + 1) % tr["eval_every"] == 0 or epoch + 1 == tr["epochs"]:  # always the final epoch
            start = time.perf_counter()  # evaluate syncs before it starts and when it ends
            fitted.final = evaluate(model, inputs.eval, transform, tr["eval_batch_size"], autocast, eval_forward)
            fitted.eval_seconds += time.perf_counter() - start
            fitted.evals += 1
            point["accuracy"] = fitted.final["accuracy"]
            logger.scalars(epoch + 1, eval__accuracy=fitted.final["accuracy"])
            epochs.set_postfix(loss=f"{epoch_loss:.3f}", acc=f"{fitted.final['accuracy']:.1f}")
        fitted.curve.append(point)
    if graphs:
        fitted.capture_seconds = take_step.capture_seconds
        fitted.eval_capture_seconds = eval_forward.capture_seconds
    else:
        fitted.first_step_seconds = take_step.seconds
    fitted.compile = compile_cost.report()
    return fitted
