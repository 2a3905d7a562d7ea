"""A run's data: both splits listed, decoded (through the cache) and held on the training device."""
from dataclasses import dataclass

import torch
from timm.data import resolve_model_data_config

from ..data import COMMON, DataError, DeviceSplit, DeviceTransform, list_split
from ..data.cache import DEFAULT_CACHE, fetch_split
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
    train, evaluated = [list_split(data, task, data[k]) for k in ("split_train", "split_eval")]
    if train.num_classes != evaluated.num_classes:
        raise DataError(f"task {task!r}: splits {data['split_train']!r} and {data['split_eval']!r} disagree on "
                        f"the class count ({train.num_classes} vs {evaluated.num_classes})")
    check_train_labels(train, task, data["split_train"])
    cache = data.get("cache_dir") or DEFAULT_CACHE
    size = run["model"]["image_size"]
    splits = []
    for role, raw in (("train", train), ("eval", evaluated)):
        images, labels, origin = fetch_split(raw, size, cache)
        splits.append((images, labels))
        if origins is not None:
            origins[role] = origin
    return splits, train.num_classes


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
