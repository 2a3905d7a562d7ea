"""Accuracy on a split held on the device, and on the approximate merges (static, calibrated) of methods
without an exact one."""
import time

import torch

import aurora_vision as av

from . import ddp
from .cuda_graph import graphed_forward


def sync(device: torch.device | None) -> None:
    """Wait for `device`'s queued work (a CUDA device; nothing else, or None, needs it)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


# a padding row's label: no class index, so a padding row never counts as correct
PAD_LABEL = -1


def pad_batch(x: torch.Tensor, y: torch.Tensor, rows: int):
    """(x, y) grown to `rows` rows: zero images labelled PAD_LABEL, so that an epoch's tail batch has the shape
    a graph was captured at and its padding rows add nothing to the correct count (a ViT's rows never mix)."""
    missing = rows - x.shape[0]
    if missing <= 0:
        return x, y
    return torch.cat([x, x.new_zeros(missing, *x.shape[1:])]), torch.cat([y, y.new_full((missing,), PAD_LABEL)])


class GraphedEval:
    """`forward(x)` -> logits of `model(transform(x))` (no grad, eval mode), replayed as a CUDA graph per batch
    shape (cuda_graph.graphed_forward), transform included. The weights are updated in place by the training
    step, so one capture serves every epoch's evaluation; a model whose forward changes path (an adapter
    merged) needs a new one. `capture_seconds` sums the captures (synced; a compile's no-grad graphs happen
    there): a run's one-off cost, which the run's timing moves out of its evaluation time."""

    def __init__(self, model, transform, autocast):
        self.model, self.transform, self.autocast, self.graphs = model, transform, autocast, {}
        self.capture_seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.graphs:
            sync(x.device)
            start = time.perf_counter()
            self.graphs[key] = graphed_forward(lambda inp: self.model(self.transform(inp)), x, self.autocast)
            sync(x.device)
            self.capture_seconds += time.perf_counter() - start
        return self.graphs[key](x)


@torch.no_grad()
def evaluate(model, split, transform, batch_size: int, autocast, forward=None) -> dict:
    """{'accuracy': %, 'img_per_s'}; one host sync at the end. `forward` (uint8 batch -> logits, e.g. a
    GraphedEval, on one process) replaces `model(transform(x))`, its batches padded to `batch_size` rows."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    sync(split.labels.device)
    start = time.perf_counter()
    for x, y in split.batches(batch_size):
        x, y = ddp.shard(x, y)
        if forward is not None:
            x, y = pad_batch(x, y, batch_size)
            logits = forward(x)
        else:
            with autocast():
                logits = model(transform(x))
        correct += (logits.argmax(-1) == y).sum()
    acc = ddp.all_sum(correct).item() / len(split)
    elapsed = time.perf_counter() - start
    return {"accuracy": 100.0 * acc, "img_per_s": len(split) / elapsed}


def approximate_merge_accuracy(model, split, transform, batch_size: int, autocast):
    """Accuracy of the model with its adapters merged approximately (AuroRA's static form), when some
    adapter layer has no exact merge; None otherwise. The model is unmerged again afterwards."""
    if all(layer.exact_merge for _, layer in av.adapter_layers(model)):
        return None
    av.merge(model, approximate=True)
    try:
        return evaluate(model, split, transform, batch_size, autocast)["accuracy"]
    finally:
        av.unmerge(model)


# a few hundred training images: on ViT-B/16, 256 x 197 tokens per layer against 768 input features
CALIBRATION_IMAGES = 256


def calibration_batches(train_split, transform, batch_size: int, seed: int):
    """A callable giving CALIBRATION_IMAGES images of `train_split` (a seeded random subset; all of them when
    fewer) in their evaluation transform, as batches: the calibrated merge reads them once per layer."""
    pick = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_IMAGES]
    images = train_split.images[pick.to(train_split.images.device)]
    return lambda: (transform(images[i:i + batch_size]) for i in range(0, len(images), batch_size))


def calibrated_merge_accuracy(model, split, transform, batch_size: int, autocast, train_split, seed: int):
    """Accuracy of the model with its adapters merged by the calibrated merge (aurora_vision.calibrate),
    fitted on `calibration_batches` of the training split, when some adapter layer has no exact merge;
    None otherwise. The model is unmerged again afterwards."""
    if all(layer.exact_merge for _, layer in av.adapter_layers(model)):
        return None
    with autocast():  # the activations the evaluation below will see
        av.merge(model, calibration=calibration_batches(train_split, transform, batch_size, seed))
    try:
        return evaluate(model, split, transform, batch_size, autocast)["accuracy"]
    finally:
        av.unmerge(model)
