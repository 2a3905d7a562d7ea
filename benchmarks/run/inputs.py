"""A run's data: both splits listed, decoded (through the cache) and held on the training device; and a later
run's splits decoded into the cache ahead, in a background thread (`prefetch`)."""
import threading
from dataclasses import dataclass

import torch
from timm.data import resolve_model_data_config

from ..data import COMMON, DataError, DeviceSplit, DeviceTransform, list_split
from ..data.cache import DEFAULT_CACHE, cache_path, fetch_split
from ..data.raw import check_train_labels


@dataclass
class Inputs:
    train: DeviceSplit
    eval: DeviceSplit
    num_classes: int


def decoded_splits(run: dict, origins: dict | None = None):
    """((train images, labels), (eval images, labels)), num_classes: host arrays, decoded once per content.
    `origins`, when given, gets where each split came from: {'train': 'hit' | 'decoded' | 'uncached', 'eval': ...}."""
    data, task = run["data"], run["task"]
    train, evaluated = _listed(run)
    if train.num_classes != evaluated.num_classes:
        raise DataError(f"task {task!r}: splits {data['split_train']!r} and {data['split_eval']!r} disagree on "
                        f"the class count ({train.num_classes} vs {evaluated.num_classes})")
    check_train_labels(train, task, data["split_train"])
    cache, size = _cache_and_size(run)
    splits = []
    for role, raw in (("train", train), ("eval", evaluated)):
        images, labels, origin = fetch_split(raw, size, cache)
        splits.append((images, labels))
        if origins is not None:
            origins[role] = origin
    return splits, train.num_classes


def _listed(run: dict):
    data = run["data"]
    return [list_split(data, run["task"], data[k]) for k in ("split_train", "split_eval")]


def _cache_and_size(run: dict):
    return run["data"].get("cache_dir") or DEFAULT_CACHE, run["model"]["image_size"]


def warm_cache(run: dict) -> None:
    """Decode `run`'s splits into the decode cache where they are not there yet; nothing is kept in memory."""
    cache, size = _cache_and_size(run)
    for raw in _listed(run):
        if not cache_path(raw, size, cache).is_file():
            fetch_split(raw, size, cache)  # under the split's decode lock: one decode per machine


def cache_files(run: dict) -> list:
    """The decode cache entries `run`'s splits are (or would be) kept in, as they are listed now."""
    cache, size = _cache_and_size(run)
    return [cache_path(raw, size, cache) for raw in _listed(run)]


def prefetch(run: dict) -> threading.Thread:
    """`warm_cache(run)` in a background thread, so that a later run's decode overlaps this one's training (the
    decode threads release the GIL; the step replays a CUDA graph). A run that needs a split the thread is
    decoding waits for it at the split's lock. What goes wrong here is left for that run to meet and record: it
    lists and decodes its splits itself."""
    def warm():
        try:
            warm_cache(run)
        except Exception:  # noqa: BLE001  (the run reports it; see above)
            pass
    thread = threading.Thread(target=warm, daemon=True, name=f"prefetch-{run['task']}")
    thread.start()
    return thread


def to_device(splits, num_classes: int, device: torch.device) -> Inputs:
    (train_x, train_y), (eval_x, eval_y) = splits
    return Inputs(DeviceSplit(train_x, train_y, device), DeviceSplit(eval_x, eval_y, device), num_classes)


def transform_for(model, run: dict) -> DeviceTransform:
    """Resize, augmentation and normalisation on the device, from timm's data config for the model
    (mean, std, interpolation; crop_pct and crop_mode when data.eval_crop is 'timm') at the run's
    image size. Its `data_config` is what the run records."""
    size = run["model"].get("image_size")
    cfg = resolve_model_data_config(model, args={"img_size": size} if size else None)
    _, h, w = cfg["input_size"]
    if h != w:
        raise ValueError(f"model {run['model']['name']!r} takes {h}x{w} inputs; the device transform makes "
                         "square ones: set model.image_size")
    data = run["data"]
    timm_crop = data.get("eval_crop", COMMON["eval_crop"].default) == "timm"
    return DeviceTransform(h, cfg["mean"], cfg["std"], interpolation=cfg["interpolation"],
                           crop_pct=cfg["crop_pct"] if timm_crop else None, crop_mode=cfg["crop_mode"],
                           hflip=data["hflip"], crop_scale=data["crop_scale"])
