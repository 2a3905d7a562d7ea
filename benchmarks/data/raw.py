"""What every data source returns (a `RawSplit`: items to decode, labels, the class count) and the checks
they share, with errors that name the file to fix."""
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UserError
from ..schema import closest
from .tasks import lookup


class DataError(UserError, ValueError):
    """Missing or malformed data; the message names the file or folder and what to do."""


@dataclass
class RawSplit:
    key: dict                        # what identifies the split (source, list file, ...), for the decode cache
    items: list                      # paths, or objects `load` knows how to decode
    labels: np.ndarray
    num_classes: int
    load: Callable[[Any], Any] = None  # item -> PIL image; None = items are file paths
    describe: Callable[[int], str] = field(default=lambda i: f"item {i}")
    # Files the images are read from when items are not paths: the cache key covers their size and times,
    # so an edited file is decoded again. [] when `key` alone identifies the content (an HF fingerprint).
    files: list | None = None
    # Who set num_classes: "table" (a suite's task table), "config" (data.num_classes) or "data" (the files).
    classes_from: str = "data"


def check_labels(labels, num_classes: int, where: Callable[[int], str]) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"label {labels[i]} out of range for {num_classes} classes at {where(i)}")
    return labels


def root_dir(cfg: dict, layout: str) -> Path:
    """data.root, a folder that exists; else a DataError naming it and the layout expected there."""
    root = Path(cfg["root"]).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root {root} {'is not a folder' if root.exists() else 'does not exist'}; set it to the "
                        f"folder holding {layout} (--set data.root=...)")
    return root


def find_task_dir(root: Path, task: str, names=(), known=()) -> Path:
    """The task's folder under `root`: the first of `names` (the task's name and its aliases; default: its name)
    that is one. Else a DataError naming the task, the nearest name among the folders there and `known` task names,
    and the folders there."""
    names = list(dict.fromkeys(names or [task]))
    found = next((root / n for n in names if (root / n).is_dir()), None)
    if found is None:
        have = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        tried = f"tried {', '.join(names)}; " if len(names) > 1 else ""
        suggestion = closest(task, [n for n in (*have, *known) if n not in (task, *names)])
        raise DataError(f"no folder for task {task!r} under {root}{suggestion} ({tried}folders there: "
                        f"{', '.join(have) or 'none'})")
    return found


def check_files(paths: list, where: str) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{len(missing)} image(s) {where} are missing, e.g. {missing[0]}")


def class_count(suite: str, task: str, cfg: dict, found: int | None, where: str) -> tuple[int, str]:
    """The task's class count and who set it ("table", "config" or "data"): the table's for a known task,
    else the config's, else what the data says. A count the data or config contradicts is an error."""
    info = lookup(suite, task)
    counts = {k: v for k, v in [("task table", info.num_classes if info else None),
                                ("config data.num_classes", cfg.get("num_classes")), (where, found)] if v}
    if not counts:
        raise DataError(f"cannot tell how many classes task {task!r} has: set data.num_classes")
    if len(set(counts.values())) > 1:
        raise DataError(f"class counts for task {task!r} disagree: {counts}")
    origin = "table" if info else "data" if found else "config"
    return next(iter(counts.values())), origin


def check_train_labels(raw: RawSplit, task: str, split: str) -> None:
    """The rules for the split a run trains on, so that its accuracy means something:
    - fewer than two classes (in the count or in the labels) is an error: nothing to learn, and accuracy
      would be a trivial 100%;
    - a count set by data.num_classes that the train labels do not fill is an error: the head would get
      outputs no image trains;
    - a count the data files declare (classes.txt, a dataset's label names) that the train labels do not
      fill is a warning: a subset may lack classes, but the head is larger than what it learns;
    - a suite's task table is authoritative: VTAB-1k's 1,000 training images need not cover SUN397's 397
      classes."""
    used = np.unique(raw.labels)
    if raw.num_classes < 2 or len(used) < 2:
        raise DataError(f"task {task!r}, split {split!r}: {len(used)} class(es) in the labels, {raw.num_classes} "
                        "in the count; a classifier needs at least two (one class would score a trivial 100%)")
    if len(used) == raw.num_classes or raw.classes_from == "table":
        return
    missing = sorted(set(range(raw.num_classes)) - set(used.tolist()))
    shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
    text = (f"task {task!r}: {raw.num_classes} classes, but the train split {split!r} has labels of only "
            f"{len(used)} (missing: {shown})")
    if raw.classes_from == "config":
        raise DataError(f"{text}: set data.num_classes to {len(used)} or remove it, or add training images "
                        "of the missing classes")
    warnings.warn(f"{text}: the head has {raw.num_classes} outputs, {len(used)} of them trained", stacklevel=2)
