"""One run: (task, method, seed) -> result dict. Data decoded once and held on the device; AdamW with
separate head and adapter learning rates; warmup + cosine (or linear) decay; bf16 autocast on GPU."""
import math
import os
import random
import resource
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import aurora_vision as av
from aurora_vision.layers import AuroraLinear
from aurora_vision.layers.adapter import FOLD_ON_CUDA
from aurora_vision.layers.nonlinearity import SIGMA_ON_CUDA

from . import distributed
from .build import build_model, compiled, param_groups
from .cuda_graph import GraphedTrainStep, adamw, train_step
from .data import DeviceSplit, DeviceTransform, list_split, load_split
from .data.cache import DEFAULT_CACHE
from .flops import count_macs
from .log import RunLogger, run_hparams
from .record import device_name, git_commit, versions


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf; the run stops and records why."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_cuda_graphs(device: torch.device, world: int) -> bool:
    """Whether the step runs as CUDA graphs (cuda_graph.py): on one CUDA device, unless
    AURORA_VISION_CUDA_GRAPHS=0; with train.compile the graph replays the compiled kernels (the compile
    happens in the capture's warm-up). How a run executes, like AURORA_VISION_SIGMA: recorded in its
    result, not part of its config (the arithmetic is the same)."""
    return device.type == "cuda" and world == 1 and os.environ.get("AURORA_VISION_CUDA_GRAPHS", "1") != "0"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"train.schedule must be 'cosine' or 'linear', got {schedule!r}")
    return f


@torch.no_grad()
def evaluate(model, split: DeviceSplit, transform: DeviceTransform, batch_size: int, autocast) -> dict:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    _sync(split.labels.device)
    start = time.perf_counter()
    for x, y in split.batches(batch_size):
        x, y = distributed.shard(x, y)
        with autocast():
            correct += (model(transform(x)).argmax(-1) == y).sum()
    acc = distributed.all_sum(correct).item() / len(split)
    elapsed = time.perf_counter() - start
    return {"accuracy": 100.0 * acc, "img_per_s": len(split) / elapsed}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(run: dict):
    data = run["data"]
    raws = [list_split(data, run["task"], data[k]) for k in ("split_train", "split_eval")]
    if raws[0].num_classes != raws[1].num_classes:
        raise ValueError(f"task {run['task']}: splits disagree on the class count ({raws[0].num_classes} vs "
                         f"{raws[1].num_classes})")
    cache = data.get("cache_dir") or DEFAULT_CACHE
    size = run["model"]["image_size"]
    return [load_split(raw, size, cache) for raw in raws], raws[0].num_classes


def train_run(run: dict, logdir=None, quiet: bool = False, return_model: bool = False):
    """Train and evaluate one resolved run config; returns the result record (status 'ok'), and the
    trained model too with return_model=True."""
    t0 = time.perf_counter()
    tr = run["train"]
    if tr["epochs"] < 1:
        raise ValueError(f"train.epochs must be >= 1, got {tr['epochs']}")
    seed_everything(run["seed"])
    rank, world = distributed.init()
    device = distributed.local_device(resolve_device(tr["device"]))
    ((train_x, train_y), (eval_x, eval_y)), num_classes = _data(run)
    model = build_model(run["model"], run["method"], num_classes).to(device)
    params = av.count_parameters(model)
    cost = count_macs(model, run["model"]["image_size"])
    cfg = model.pretrained_cfg
    transform = DeviceTransform(run["model"]["image_size"], cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3),
                                hflip=run["data"]["hflip"], crop_scale=run["data"]["crop_scale"])
    train_split, eval_split = DeviceSplit(train_x, train_y, device), DeviceSplit(eval_x, eval_y, device)

    bf16 = tr["precision"] == "bf16" or (tr["precision"] == "auto" and device.type == "cuda")
    graphs = use_cuda_graphs(device, world)
    # a graph must not keep autocast's per-forward weight casts in a cache
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=not graphs)
    optimizer = adamw(param_groups(model, tr["lr"], tr["head_lr"] or tr["lr"], tr["weight_decay"]), device, graphs)
    steps_per_epoch = math.ceil(len(train_split) / tr["batch_size"])
    total_steps = steps_per_epoch * tr["epochs"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(tr["schedule"], steps_per_epoch * tr["warmup_epochs"], total_steps))
    step_model = distributed.wrap(model, device)
    step_model = compiled(step_model) if tr.get("compile") else step_model

    def loss_of(x, y):
        with autocast():
            logits = step_model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=tr["label_smoothing"])

    take_step = GraphedTrainStep(model, optimizer, loss_of) if graphs else partial(train_step, optimizer, loss_of)
    order = torch.Generator().manual_seed(run["seed"])  # the same batch order on every rank
    augment = torch.Generator().manual_seed(run["seed"] + 7919 * (rank + 1))  # each rank its own draws
    logger = RunLogger(logdir if distributed.is_main() else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    curve, train_time, step = [], 0.0, 0
    epochs = tqdm(range(tr["epochs"]), desc=f"{run['task']}/{run['method']['variant']}/s{run['seed']}",
                  disable=quiet, leave=False)
    for epoch in epochs:
        model.train()
        _sync(device)
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for x, y in train_split.batches(tr["batch_size"], generator=order):
            if len(y) < world:  # a tail batch too small to give every rank an image: skipped on all
                continue
            x, y = distributed.shard(x, y)
            loss = take_step(transform(x, train=True, generator=augment), y)
            scheduler.step()
            loss_sum += loss * len(y)
            step += 1
        epoch_loss = (distributed.all_sum(loss_sum) / len(train_split)).item()  # one host sync per epoch
        epoch_time = time.perf_counter() - start
        train_time += epoch_time
        if not math.isfinite(epoch_loss):
            logger.close()
            raise NonFiniteLoss(f"training loss became {epoch_loss} in epoch {epoch + 1} "
                                f"(lr {tr['lr']}, head_lr {tr['head_lr']}); lower the learning rate")
        logger.scalars(epoch + 1, train__loss=epoch_loss, train__lr=float(optimizer.param_groups[0]["lr"]),
                       train__img_per_s=len(train_split) / epoch_time)
        # per-epoch seconds: the first epoch holds one-off costs (torch.compile, cuDNN/cuBLAS heuristics)
        point = {"epoch": epoch + 1, "loss": epoch_loss, "seconds": epoch_time}
        if (epoch + 1) % tr["eval_every"] == 0 or epoch + 1 == tr["epochs"]:  # always the final epoch
            ev = evaluate(model, eval_split, transform, tr["eval_batch_size"], autocast)
            point["accuracy"] = ev["accuracy"]
            logger.scalars(epoch + 1, eval__accuracy=ev["accuracy"])
            epochs.set_postfix(loss=f"{epoch_loss:.3f}", acc=f"{ev['accuracy']:.1f}")
        curve.append(point)

    final = ev  # the final epoch's evaluation
    static = None
    if any(isinstance(layer, AuroraLinear) for _, layer in av.adapter_layers(model)):
        av.merge(model, approximate=True)  # the paper's static inference form, on the same trained model
        static = evaluate(model, eval_split, transform, tr["eval_batch_size"], autocast)["accuracy"]
        av.unmerge(model)
    metrics = {"accuracy": final["accuracy"], "trainable_params": params["trainable"], "gmacs": cost["gmacs"]}
    logger.scalars(tr["epochs"], eval__img_per_s=final["img_per_s"])
    logger.hparams(run_hparams(run), metrics)
    logger.close()
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result = {
        "status": "ok", "config": run, "seed": run["seed"], "task": run["task"], "method": run["method"]["variant"],
        "accuracy": final["accuracy"], "accuracy_static_merge": static,
        "accuracy_of": f"{run['data']['split_eval']} split, final epoch ({tr['epochs']})",
        "num_classes": num_classes, "num_train": len(train_split), "num_eval": len(eval_split),
        "params": params, "gmacs_per_image": cost["gmacs"], "uncounted_ops": cost["uncounted_ops"],
        "macs_convention": "fvcore: 1 multiply-add = 1; SDPA and the AuroRA nonlinearity counted (see flops.py)",
        "curve": curve, "train_img_per_s": len(train_split) * tr["epochs"] / train_time,
        "eval_img_per_s": final["img_per_s"], "train_seconds": train_time,
        "peak_memory_mb": peak, "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS",
        "precision": "bf16 autocast" if bf16 else "fp32", "device": device_name(device), "world_size": world,
        "aurora_sigma": SIGMA_ON_CUDA if device.type == "cuda" else "eager",  # how AuroRA's nonlinearity ran
        # how adapted layers ran without autograd: the Triton fold serves half-precision GEMMs only
        "eval_fold": FOLD_ON_CUDA if device.type == "cuda" and bf16 else "torch",
        "cuda_graphs": graphs,
        # runs sharing this device at once (parallel sweep workers): throughput and times are per shared device
        "device_shared_by": int(os.environ.get("AURORA_VISION_DEVICE_SHARED_BY", "1")),
        "wall_seconds": time.perf_counter() - t0, "versions": versions(), "git": git_commit(),
    }
    return (result, model) if return_model else result
