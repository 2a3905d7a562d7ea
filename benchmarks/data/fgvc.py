"""VPT's FGVC layout: json files mapping image paths to labels."""
import json
from pathlib import Path

import numpy as np

from .raw import DataError, RawSplit, check_files, class_count
from .registry import Option, register_source
from .tasks import FGVC_IMAGE_DIRS, lookup


@register_source("fgvc", root=Option(str, required=True, help="folder holding one folder per task"),
                 image_dir=Option(str, "", help="image folder inside a task folder, for tasks FGVC does not list"))
def fgvc_json(cfg: dict, task: str, split: str) -> RawSplit:
    """VPT's FGVC layout: <root>/<task>/{train,val,test}.json mapping image path -> label.
    Split `trainval` is train + val. Labels map to 0..C-1 in sorted order of the train labels."""
    info = lookup("fgvc", task)
    task_dir = Path(cfg["root"]).expanduser() / (info.name if info else task)
    parts = ["train", "val"] if split == "trainval" else [split]
    entries = {}
    for part in parts:
        f = task_dir / f"{part}.json"
        if not f.is_file():
            raise DataError(f"split file {f} is missing (VPT's FGVC layout: <root>/<task>/{{train,val,test}}.json)")
        try:
            entries.update(json.loads(f.read_text()))
        except json.JSONDecodeError as e:
            raise DataError(f"{f} is not valid JSON: {e}")
    train_file = task_dir / "train.json"
    class_ids = sorted(set(json.loads(train_file.read_text()).values())) if train_file.is_file() else []
    image_dir = task_dir / FGVC_IMAGE_DIRS.get(info.name if info else task, cfg.get("image_dir", ""))
    items = [str(image_dir / k) for k in entries]
    unknown = [k for k, v in entries.items() if v not in class_ids]
    if unknown:
        raise DataError(f"{task_dir}: label of {unknown[0]!r} does not occur in train.json")
    index = {c: i for i, c in enumerate(class_ids)}
    labels = np.array([index[v] for v in entries.values()], dtype=np.int64)
    num_classes, origin = class_count("fgvc", task, cfg, len(class_ids), str(train_file))
    check_files(items, f"of {task}/{split}")
    return RawSplit({"source": "fgvc", "dir": str(task_dir.resolve()), "split": split}, items, labels,
                    num_classes, describe=lambda i: items[i], classes_from=origin)
