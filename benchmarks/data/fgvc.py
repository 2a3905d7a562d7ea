"""VPT's FGVC layout: json files mapping image paths to labels."""
import json
from pathlib import Path

import numpy as np

from .raw import DataError, RawSplit, check_files, class_count, find_task_dir, root_dir
from .registry import Option, register_source
from .tasks import FGVC, FGVC_IMAGE_DIRS, lookup

LAYOUT = "one folder per task (VPT's FGVC layout: <task>/{train,val,test}.json)"


def split_files(cfg: dict, task: str, split: str) -> list[Path]:
    """The json files of the split (`trainval`: train's and val's), under the task's folder (its FGVC name for an
    alias); DataError naming what is missing."""
    info = lookup("fgvc", task)
    known = [n for i in FGVC.values() for n in (i.name, *i.aliases)]
    folder = find_task_dir(root_dir(cfg, LAYOUT), task, [info.name if info else task], known)
    files = [folder / f"{part}.json" for part in (["train", "val"] if split == "trainval" else [split])]
    for f in files:
        if not f.is_file():
            raise DataError(f"split file {f} is missing (split {split!r} of task {task!r}; VPT's FGVC layout: "
                            "<root>/<task>/{train,val,test}.json, and trainval for train + val)")
    return files


def check_fgvc(cfg: dict, task: str, split: str) -> None:
    split_files(cfg, task, split)


@register_source("fgvc", check_fgvc, root=Option(str, required=True, help="folder holding one folder per task"),
                 image_dir=Option(str, "", help="image folder inside a task folder, for tasks FGVC does not list"))
def fgvc_json(cfg: dict, task: str, split: str) -> RawSplit:
    """VPT's FGVC layout: <root>/<task>/{train,val,test}.json mapping image path -> label.
    Split `trainval` is train + val. Labels map to 0..C-1 in sorted order of the train labels."""
    info = lookup("fgvc", task)
    files = split_files(cfg, task, split)
    task_dir = files[0].parent
    entries = {}
    for f in files:
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
