"""NOAH's VTAB-1k folders (the layout most VTAB-1k users have on disk)."""
from pathlib import Path

from ..schema import closest
from .raw import DataError, RawSplit, check_files, check_labels, class_count, find_task_dir, root_dir
from .registry import Option, register_source
from .tasks import VTAB1K, lookup

LAYOUT = "one folder per task (NOAH's VTAB-1k layout: <task>/{train800,val200,train800val200,test}.txt)"


def split_file(cfg: dict, task: str, split: str) -> Path:
    """<root>/<task>/<split>.txt, the task's folder under its name or an alias; DataError naming what is missing."""
    info = lookup("vtab", task)
    names = [task] + (list(info.aliases) + [info.name] if info else [])
    known = [n for i in VTAB1K.values() for n in (i.name, *i.aliases)]
    folder = find_task_dir(root_dir(cfg, LAYOUT), task, names, known)
    list_file = folder / f"{split}.txt"
    if not list_file.is_file():
        have = sorted(p.stem for p in folder.glob("*.txt"))
        raise DataError(f"split file {list_file} is missing (split {split!r} of task {task!r}){closest(split, have)} "
                        f"(split files there: {', '.join(have) or 'none'})")
    return list_file


def check_vtab(cfg: dict, task: str, split: str) -> None:
    split_file(cfg, task, split)


@register_source("vtab", check_vtab, root=Option(str, required=True, help="folder holding one folder per task"))
def vtab_folder(cfg: dict, task: str, split: str) -> RawSplit:
    """NOAH's VTAB-1k layout: <root>/<task>/<split>.txt with lines `images/<split>/000123.jpg <label>`."""
    list_file = split_file(cfg, task, split)
    task_dir = list_file.parent
    items, labels = [], []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{list_file} line {n}: expected '<image path> <integer label>', got {line!r}")
        items.append(str(task_dir / parts[0]))
        labels.append(int(parts[1]))
    if not items:
        raise DataError(f"split file {list_file} lists no images")
    classes_txt = task_dir / "classes.txt"
    found = len([c for c in classes_txt.read_text().splitlines() if c.strip()]) if classes_txt.is_file() else None
    num_classes, origin = class_count("vtab", task, cfg, found, str(classes_txt))
    where = lambda i: f"{list_file} ({items[i]})"
    labels = check_labels(labels, num_classes, where)
    check_files(items, f"listed in {list_file}")
    return RawSplit({"source": "vtab", "file": str(list_file.resolve())}, items, labels, num_classes,
                    describe=where, classes_from=origin)
