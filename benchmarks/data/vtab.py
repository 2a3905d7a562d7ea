"""NOAH's VTAB-1k folders (the layout most VTAB-1k users have on disk)."""
from pathlib import Path

from .raw import DataError, RawSplit, check_files, check_labels, class_count
from .registry import Option, register_source
from .tasks import lookup


@register_source("vtab", root=Option(str, required=True, help="folder holding one folder per task"))
def vtab_folder(cfg: dict, task: str, split: str) -> RawSplit:
    """NOAH's VTAB-1k layout: <root>/<task>/<split>.txt with lines `images/<split>/000123.jpg <label>`."""
    root = Path(cfg["root"]).expanduser()
    info = lookup("vtab", task)
    names = [task] + (list(info.aliases) + [info.name] if info else [])
    task_dir = next((root / n for n in names if (root / n).is_dir()), None)
    if task_dir is None:
        have = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise DataError(f"no folder for task {task!r} under {root} (tried {names}); "
                        f"{'found: ' + ', '.join(have) if have else 'the folder is missing or empty'}. "
                        "Expected NOAH's layout: <root>/<task>/{train800,val200,train800val200,test}.txt")
    list_file = task_dir / f"{split}.txt"
    if not list_file.is_file():
        have = sorted(p.stem for p in task_dir.glob("*.txt"))
        raise DataError(f"split file {list_file} is missing; split files there: {have}")
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
