"""Hugging Face `datasets`: a hub id or a folder written by `save_to_disk`."""
import json
from pathlib import Path

import numpy as np

from .raw import DataError, RawSplit, check_labels, class_count
from .registry import Option, register_source
from .tasks import lookup

# VTAB-1k split names -> Hugging Face split expressions ('+' concatenates).
HF_VTAB_SPLITS = {"train800": "train", "val200": "validation", "train800val200": "train+validation", "test": "test"}


def _local(path: str) -> Path | None:
    """The folder `path` names, or None for a hub id ('owner/name', not on disk)."""
    folder = Path(path).expanduser()
    return folder if folder.exists() or path.startswith(("/", "./", "../", "~")) else None


def check_hf(cfg: dict, task: str, split: str) -> None:
    """A local dataset folder exists, and one written by `save_to_disk` has the split's parts. A hub id is not
    checked: that needs the network (or the hub's cache, which the datasets library keys by more than the id),
    and a plan must not wait on it; a mistyped hub id or split fails its runs, each saying why."""
    path = cfg["path"].format(task=task)
    folder = _local(path)
    if folder is None:
        return
    if not folder.is_dir():
        raise DataError(f"data.path {path} (task {task!r}) is not a folder: set data.path to a save_to_disk folder "
                        "or a hub id ('{task}' is filled in)")
    listed = folder / "dataset_dict.json"
    if listed.is_file():
        have = json.loads(listed.read_text()).get("splits", [])
        expr = cfg.get("splits", HF_VTAB_SPLITS).get(split, split)
        missing = [name for name in expr.split("+") if name not in have]
        if missing:
            raise DataError(f"{path} has no split {missing[0]!r} (split {split!r} of task {task!r} reads {expr!r}); "
                            f"splits there: {', '.join(have)} (map split names with data.splits)")


@register_source(
    "hf", check_hf, path=Option(str, required=True, help="hub id ('{task}' is filled in) or a save_to_disk folder"),
    splits=Option(dict, None, help="split name -> HF split expression ('+' concatenates); default: VTAB-1k's"),
    image_column=Option(str, "img", help="column holding the images"),
    label_column=Option(str, "label", help="column holding the integer labels"))
def hf_dataset(cfg: dict, task: str, split: str) -> RawSplit:
    """A Hugging Face `datasets` dataset: a hub id (with `{task}` filled in, e.g. 'fw407/vtab-1k_{task}') or
    a local folder written by `save_to_disk`. Columns from data.image_column / data.label_column."""
    import datasets

    path = cfg["path"].format(task=task)
    expr = cfg.get("splits", HF_VTAB_SPLITS).get(split, split)
    image_col, label_col = cfg.get("image_column", "img"), cfg.get("label_column", "label")
    parts = []
    for name in expr.split("+"):
        try:
            if Path(path).expanduser().is_dir() and (Path(path).expanduser() / "dataset_dict.json").is_file():
                parts.append(datasets.load_from_disk(str(Path(path).expanduser()))[name])
            else:
                parts.append(datasets.load_dataset(path, split=name))
        except (FileNotFoundError, KeyError, ValueError, ConnectionError) as e:
            raise DataError(f"cannot load split {name!r} of Hugging Face dataset {path!r}: {e}")
    ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    for col in (image_col, label_col):
        if col not in ds.column_names:
            raise DataError(f"dataset {path!r} has no column {col!r}; columns: {ds.column_names} "
                            "(set data.image_column / data.label_column)")
    labels = np.array(ds[label_col], dtype=np.int64)
    feature = ds.features[label_col]
    found = getattr(feature, "num_classes", None)
    suite = "vtab" if lookup("vtab", task) else "hf"
    num_classes, origin = class_count(suite, task, cfg, found, f"{path} features")
    labels = check_labels(labels, num_classes, lambda i: f"{path} [{expr}] row {i}")
    # the fingerprint changes with every transform applied; the arrow files' stats catch files replaced on disk
    arrow_files = [f["filename"] for f in ds.cache_files]
    return RawSplit({"source": "hf", "path": path, "split": expr, "fingerprint": ds._fingerprint,
                     "image_column": image_col}, list(range(len(ds))), labels, num_classes,
                    load=lambda i: ds[i][image_col], describe=lambda i: f"{path} [{expr}] row {i}",
                    files=arrow_files, classes_from=origin)
