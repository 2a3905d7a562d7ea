"""Where images come from. Each source lists one split of one task as a `RawSplit`: items to decode,
labels and the class count, checked against the task table, with errors that name the file to fix."""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .tasks import FGVC_IMAGE_DIRS, PAPER_SPLITS, lookup


class DataError(ValueError):
    """Missing or malformed data; the message names the file or folder and what to do."""


@dataclass
class RawSplit:
    key: dict                        # what identifies the content, for the decode cache
    items: list                      # paths, or objects `load` knows how to decode
    labels: np.ndarray
    num_classes: int
    load: Callable[[Any], Any] = None  # item -> PIL image; None = items are file paths
    describe: Callable[[int], str] = field(default=lambda i: f"item {i}")


def _check_labels(labels, num_classes: int, where: Callable[[int], str]) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"label {labels[i]} out of range for {num_classes} classes at {where(i)}")
    return labels


def _check_files(paths: list, where: str) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{len(missing)} image(s) {where} are missing, e.g. {missing[0]}")


def _class_count(suite: str, task: str, cfg: dict, found: int | None, where: str) -> int:
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
    num_classes = _class_count("vtab", task, cfg, found, str(classes_txt))
    where = lambda i: f"{list_file} ({items[i]})"
    labels = _check_labels(labels, num_classes, where)
    _check_files(items, f"listed in {list_file}")
    return RawSplit({"source": "vtab", "file": str(list_file.resolve())}, items, labels, num_classes,
                    describe=where)


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
    num_classes = _class_count("fgvc", task, cfg, len(class_ids), str(train_file))
    _check_files(items, f"of {task}/{split}")
    return RawSplit({"source": "fgvc", "dir": str(task_dir.resolve()), "split": split}, items, labels,
                    num_classes, describe=lambda i: items[i])


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


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
    num_classes = _class_count("folder", task, cfg, len(classes), str(split_dir))
    return RawSplit({"source": "folder", "dir": str(split_dir.resolve())}, items, np.array(labels), num_classes,
                    describe=lambda i: items[i])


# VTAB-1k split names -> Hugging Face split expressions ('+' concatenates).
HF_VTAB_SPLITS = {"train800": "train", "val200": "validation", "train800val200": "train+validation", "test": "test"}


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
    num_classes = _class_count(suite, task, cfg, found, f"{path} features")
    labels = _check_labels(labels, num_classes, lambda i: f"{path} [{expr}] row {i}")
    fingerprint = getattr(ds, "_fingerprint", None)
    return RawSplit({"source": "hf", "path": path, "split": expr, "fingerprint": fingerprint},
                    list(range(len(ds))), labels, num_classes,
                    load=lambda i: ds[i][image_col], describe=lambda i: f"{path} [{expr}] row {i}")


def _tv_datasets(root: str, download: bool) -> dict:
    """The paper's tasks in torchvision: name -> (official train/pool set, official test set or None)."""
    import torchvision.datasets as tvd
    kw = dict(root=root, download=download)
    return {
        "pets": lambda: (tvd.OxfordIIITPet(split="trainval", **kw), tvd.OxfordIIITPet(split="test", **kw)),
        "cars": lambda: (tvd.StanfordCars(split="train", **kw), tvd.StanfordCars(split="test", **kw)),
        "cifar10": lambda: (tvd.CIFAR10(train=True, **kw), tvd.CIFAR10(train=False, **kw)),
        "cifar100": lambda: (tvd.CIFAR100(train=True, **kw), tvd.CIFAR100(train=False, **kw)),
        "dtd": lambda: (_concat([tvd.DTD(split=s, **kw) for s in ("train", "val", "test")]), None),
        "eurosat": lambda: (tvd.EuroSAT(**kw), None),
        "fgvc_aircraft": lambda: (tvd.FGVCAircraft(split="trainval", **kw), tvd.FGVCAircraft(split="test", **kw)),
    }


def _concat(parts):
    from torch.utils.data import ConcatDataset
    return ConcatDataset(parts)


def torchvision_split(cfg: dict, task: str, split: str) -> RawSplit:
    """The AuroRA paper's 8-task protocol (FourierFT's splits): train / val carved from the official train set
    with a fixed seed, the official test set as test; tasks without one (DTD, EuroSAT) are split from the pool.
    RESISC45 is not in torchvision: use the `hf` source for it (e.g. 'timm/resisc45')."""
    info = lookup("paper", task)
    makers = _tv_datasets(cfg["root"], bool(cfg.get("download", False)))
    if info is None or info.name not in makers:
        raise DataError(f"torchvision source has tasks {sorted(makers)}; got {task!r} (RESISC45: use source 'hf')")
    try:
        pool, test = makers[info.name]()
    except RuntimeError as e:
        raise DataError(f"{task}: torchvision could not find it under {cfg['root']} ({e}); "
                        "set data.download=true or place the files there")
    n_train, n_val, n_test = cfg.get("split_sizes", {}).get(info.name, PAPER_SPLITS[info.name])
    order = np.random.default_rng(cfg.get("split_seed", 0)).permutation(len(pool))
    if split == "test" and test is not None:
        dataset, index = test, np.arange(len(test))
    else:
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "trainval": (0, n_train + n_val),
                  "test": (n_train + n_val, n_train + n_val + n_test)}
        if split not in bounds:
            raise DataError(f"split {split!r} unknown for the paper's protocol; splits: {sorted(bounds)}")
        lo, hi = bounds[split]
        if hi > len(pool):
            raise DataError(f"{task}: split sizes {(n_train, n_val, n_test)} need {hi} images, {cfg['root']} has "
                            f"{len(pool)} (set data.split_sizes.{info.name})")
        dataset, index = pool, order[lo:hi]
    labels = np.array([_tv_label(dataset, int(i)) for i in index], dtype=np.int64)
    labels = _check_labels(labels, info.num_classes, lambda i: f"{task} {split} item {index[i]}")
    return RawSplit({"source": "torchvision", "root": str(Path(cfg["root"]).resolve()), "task": info.name,
                     "split": split, "sizes": [n_train, n_val, n_test], "seed": cfg.get("split_seed", 0)},
                    [int(i) for i in index], labels, info.num_classes,
                    load=lambda i: dataset[i][0], describe=lambda i: f"{task} {split} item {index[i]}")


def _tv_label(dataset, i: int) -> int:
    for attr in ("targets", "_labels", "_samples"):
        values = getattr(dataset, attr, None)
        if values is not None:
            v = values[i]
            return int(v[1] if isinstance(v, tuple) else v)
    return int(dataset[i][1])


def digits(cfg: dict, task: str, split: str) -> RawSplit:
    """scikit-learn's bundled handwritten digits (8x8, 1,797 images): the embedded demo's real images.
    data.classes picks the digits (relabelled 0..n-1); `train`, `val` (data.val_size images from the rest)
    and `test` (the remainder) are stratified and seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    classes = list(cfg.get("classes", range(10)))
    keep = np.isin(d.target, classes)
    images = (d.images[keep] * (255.0 / 16.0)).round().astype(np.uint8)
    labels = np.searchsorted(np.array(sorted(classes)), d.target[keep])
    seed, train_size, val_size = cfg.get("split_seed", 0), cfg.get("train_size", 0.5), cfg.get("val_size", 0)
    idx_train, rest = train_test_split(np.arange(len(labels)), train_size=train_size, stratify=labels,
                                       random_state=seed)
    idx_val, idx_test = (train_test_split(rest, train_size=val_size, stratify=labels[rest], random_state=seed)
                         if val_size else (rest[:0], rest))
    index = {"train": idx_train, "val": idx_val, "test": idx_test}.get(split)
    if index is None or not len(index):
        raise DataError(f"digits has splits 'train', 'val' (when data.val_size > 0) and 'test', got {split!r}")
    rgb = np.repeat(images[index][..., None], 3, axis=-1)
    return RawSplit({"source": "digits", "classes": classes, "split": split, "train_size": train_size,
                     "val_size": val_size, "seed": seed}, list(rgb), labels[index], len(classes),
                    load=lambda a: a, describe=lambda i: f"digits {split} item {i}")


SOURCES = {"vtab": vtab_folder, "fgvc": fgvc_json, "folder": image_folder, "hf": hf_dataset,
           "torchvision": torchvision_split, "digits": digits}


def list_split(cfg: dict, task: str, split: str) -> RawSplit:
    source = cfg.get("source")
    if source not in SOURCES:
        raise DataError(f"unknown data.source {source!r}; sources: {', '.join(SOURCES)}")
    for key in {"vtab": ["root"], "fgvc": ["root"], "folder": ["root"], "hf": ["path"],
                "torchvision": ["root"]}.get(source, []):
        if not cfg.get(key):
            raise DataError(f"data.source {source!r} needs data.{key} (e.g. --set data.{key}=...)")
    return SOURCES[source](cfg, task, split)
