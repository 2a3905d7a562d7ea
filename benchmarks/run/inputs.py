"""A run's data: both splits listed, decoded (through the cache) and held on the training device."""
from dataclasses import dataclass

import torch

from ..data import DataError, DeviceSplit, DeviceTransform, list_split, load_split
from ..data.cache import DEFAULT_CACHE
from ..data.raw import check_train_labels


@dataclass
class Inputs:
    train: DeviceSplit
    eval: DeviceSplit
    num_classes: int


def decoded_splits(run: dict):
    """((train images, labels), (eval images, labels)), num_classes: host arrays, decoded once per content."""
    data, task = run["data"], run["task"]
    train, evaluated = [list_split(data, task, data[k]) for k in ("split_train", "split_eval")]
    if train.num_classes != evaluated.num_classes:
        raise DataError(f"task {task!r}: splits {data['split_train']!r} and {data['split_eval']!r} disagree on "
                        f"the class count ({train.num_classes} vs {evaluated.num_classes})")
    check_train_labels(train, task, data["split_train"])
    cache = data.get("cache_dir") or DEFAULT_CACHE
    size = run["model"]["image_size"]
    return [load_split(raw, size, cache) for raw in (train, evaluated)], train.num_classes


def to_device(splits, num_classes: int, device: torch.device) -> Inputs:
    (train_x, train_y), (eval_x, eval_y) = splits
    return Inputs(DeviceSplit(train_x, train_y, device), DeviceSplit(eval_x, eval_y, device), num_classes)


def transform_for(model, run: dict) -> DeviceTransform:
    """Resize, augmentation and normalisation on the device, with the model's own mean and std."""
    cfg = model.pretrained_cfg
    return DeviceTransform(run["model"]["image_size"], cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3),
                           hflip=run["data"]["hflip"], crop_scale=run["data"]["crop_scale"])
