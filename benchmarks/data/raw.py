"""What every data source returns (a `RawSplit`: items to decode, labels, the class count) and the checks
they share, with errors that name the file to fix."""
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UserError
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


def check_labels(labels, num_classes: int, where: Callable[[int], str]) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"label {labels[i]} out of range for {num_classes} classes at {where(i)}")
    return labels


def check_files(paths: list, where: str) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{len(missing)} image(s) {where} are missing, e.g. {missing[0]}")


def class_count(suite: str, task: str, cfg: dict, found: int | None, where: str) -> int:
    """The task's class count: the table's for a known task, else the config's, else what the data says.
    A count the data or config contradicts is an error."""
    info = lookup(suite, task)
    counts = {k: v for k, v in [("task table", info.num_classes if info else None),
                                ("config data.num_classes", cfg.get("num_classes")), (where, found)] if v}
    if not counts:
        raise DataError(f"cannot tell how many classes task {task!r} has: set data.num_classes")
    if len(set(counts.values())) > 1:
        raise DataError(f"class counts for task {task!r} disagree: {counts}")
    return next(iter(counts.values()))
