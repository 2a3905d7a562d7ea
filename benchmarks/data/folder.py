"""Bring your own task: one folder per split, one folder per class."""
from pathlib import Path

import numpy as np

from .raw import DataError, RawSplit, class_count
from .registry import Option, register_source

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@register_source("folder", root=Option(str, required=True, help="folder holding <task>/<split>/<class>/<image>"))
def image_folder(cfg: dict, task: str, split: str) -> RawSplit:
    """Bring your own task: <root>/<task>/<split>/<class name>/<image>, classes in sorted order."""
    split_dir = Path(cfg["root"]).expanduser() / task / split
    if not split_dir.is_dir():
        raise DataError(f"folder {split_dir} is missing; expected <root>/<task>/<split>/<class>/<image>")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{split_dir} has no class folders")
    items, labels = [], []
    for label, c in enumerate(classes):
        files = sorted(p for p in (split_dir / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        items += [str(p) for p in files]
        labels += [label] * len(files)
    if not items:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {split_dir}")
    num_classes = class_count("folder", task, cfg, len(classes), str(split_dir))
    return RawSplit({"source": "folder", "dir": str(split_dir.resolve())}, items, np.array(labels), num_classes,
                    describe=lambda i: items[i])
