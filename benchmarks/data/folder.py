"""Bring your own task: one folder per split, one folder per class, classes matched by name across splits."""
from pathlib import Path

import numpy as np

from ..schema import closest
from .raw import DataError, RawSplit, class_count, find_task_dir, root_dir
from .registry import Option, register_source

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _class_folders(split_dir: Path) -> list[str]:
    # hidden folders (.ipynb_checkpoints, .DS_Store's kin) are never classes
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_list(cfg: dict, task_dir: Path) -> tuple[list[str], str]:
    """The task's classes in label order, and what defines them: <task>/classes.txt (one name a line) when
    it exists, else the class folders of the train split (the run's `split_train`, else data.train_split,
    else 'train'). Every split of the task maps its folders to these labels by name."""
    listed = task_dir / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(f"{listed} names class(es) {twice} more than once")
        if not names:
            raise DataError(f"{listed} names no classes (one class folder name a line)")
        return names, str(listed)
    train = cfg.get("split_train") or cfg.get("train_split") or "train"
    train_dir = task_dir / train
    if not train_dir.is_dir():
        raise DataError(f"the classes of task folder {task_dir} come from {listed} or from the class folders of "
                        f"its train split {train_dir}; neither exists: add classes.txt (one class name a line) "
                        "or set data.train_split")
    names = _class_folders(train_dir)
    if not names:
        raise DataError(f"{train_dir} has no class folders; expected <root>/<task>/<split>/<class>/<image>")
    return names, str(train_dir)


def split_folder(cfg: dict, task: str, split: str) -> Path:
    """<root>/<task>/<split>; DataError naming what is missing."""
    folder = find_task_dir(root_dir(cfg, "<task>/<split>/<class>/<image>"), task)
    split_dir = folder / split
    if not split_dir.is_dir():
        have = _class_folders(folder)
        raise DataError(f"folder {split_dir} is missing (split {split!r} of task {task!r}){closest(split, have)} "
                        f"(folders there: {', '.join(have) or 'none'}; expected <root>/<task>/<split>/<class>/<image>)")
    return split_dir


def check_folder(cfg: dict, task: str, split: str) -> None:
    split_folder(cfg, task, split)


@register_source("folder", check_folder,
                 root=Option(str, required=True, help="folder holding <task>/<split>/<class>/<image>"))
def image_folder(cfg: dict, task: str, split: str) -> RawSplit:
    """Bring your own task: <root>/<task>/<split>/<class name>/<image>. Labels follow `class_list` (classes.txt,
    else the train split's folders in sorted order), so a split with a class folder of another name is an
    error, and a split lacking some classes (a small test set) keeps the labels of the others."""
    split_dir = split_folder(cfg, task, split)
    classes, defined_by = class_list(cfg, split_dir.parent)
    index = {c: i for i, c in enumerate(classes)}
    present = _class_folders(split_dir)
    unknown = [c for c in present if c not in index]
    if unknown:
        shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
        raise DataError(f"{split_dir}: class folder(s) {unknown} are not classes of task {task!r} ({defined_by} "
                        f"defines {len(classes)}: {shown}); rename the folder(s) or add the class there")
    items, labels = [], []
    for c in present:
        files = sorted(p for p in (split_dir / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {split_dir / c} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                            "add images or remove the folder")
        items += [str(p) for p in files]
        labels += [index[c]] * len(files)
    if not items:
        raise DataError(f"{split_dir} has no class folders; expected <root>/<task>/<split>/<class>/<image>")
    num_classes, origin = class_count("folder", task, cfg, len(classes), defined_by)
    return RawSplit({"source": "folder", "dir": str(split_dir.resolve()), "classes": classes}, items,
                    np.array(labels, dtype=np.int64), num_classes, describe=lambda i: items[i], classes_from=origin)
