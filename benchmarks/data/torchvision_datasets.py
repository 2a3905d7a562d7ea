"""The AuroRA paper's 8-task protocol through torchvision's datasets."""
from pathlib import Path

import numpy as np

from ..schema import closest
from .raw import DataError, RawSplit, check_labels, root_dir
from .registry import Option, register_source
from .tasks import PAPER_SPLITS, lookup

TASKS = ("pets", "cars", "cifar10", "cifar100", "dtd", "eurosat", "fgvc_aircraft")  # the paper's, but RESISC45
SPLITS = ("train", "val", "trainval", "test")


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


def check_torchvision(cfg: dict, task: str, split: str) -> None:
    """A task and split of the paper's protocol, and data.root a folder unless data.download. The files inside are
    torchvision's to find (each dataset has its own layout): a run whose dataset is missing fails saying so."""
    info = lookup("paper", task)
    if info is None or info.name not in TASKS:
        raise DataError(f"the torchvision source has no task {task!r}{closest(task, TASKS)} (tasks: {', '.join(TASKS)}"
                        "; RESISC45: use source 'hf', e.g. 'timm/resisc45')")
    if split not in SPLITS:
        raise DataError(f"split {split!r} unknown for the paper's protocol{closest(split, SPLITS)}; splits: "
                        f"{', '.join(SPLITS)}")
    if not cfg.get("download"):
        root_dir(cfg, "torchvision's datasets (or set data.download=true)")


@register_source(
    "torchvision", check_torchvision, root=Option(str, required=True, help="torchvision's dataset folder"),
    download=Option(bool, False, help="let torchvision download missing datasets"),
    split_sizes=Option(dict, None, help="task -> [train, val, test] sizes, overriding the paper's"),
    split_seed=Option(int, 0, help="seed of the train / val / test carve-up"))
def torchvision_split(cfg: dict, task: str, split: str) -> RawSplit:
    """The AuroRA paper's 8-task protocol (FourierFT's splits): train / val carved from the official train set
    with a fixed seed, the official test set as test; tasks without one (DTD, EuroSAT) are split from the pool.
    RESISC45 is not in torchvision: use the `hf` source for it (e.g. 'timm/resisc45')."""
    check_torchvision(cfg, task, split)
    info = lookup("paper", task)
    makers = _tv_datasets(cfg["root"], bool(cfg.get("download", False)))
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
        lo, hi = bounds[split]
        if hi > len(pool):
            raise DataError(f"{task}: split sizes {(n_train, n_val, n_test)} need {hi} images, {cfg['root']} has "
                            f"{len(pool)} (set data.split_sizes.{info.name})")
        dataset, index = pool, order[lo:hi]
    labels = np.array([_tv_label(dataset, int(i)) for i in index], dtype=np.int64)
    labels = check_labels(labels, info.num_classes, lambda i: f"{task} {split} item {index[i]}")
    return RawSplit({"source": "torchvision", "root": str(Path(cfg["root"]).resolve()), "task": info.name,
                     "split": split, "sizes": [n_train, n_val, n_test], "seed": cfg.get("split_seed", 0)},
                    [int(i) for i in index], labels, info.num_classes,
                    load=lambda i: dataset[i][0], describe=lambda i: f"{task} {split} item {index[i]}",
                    files=_files_of(dataset, index), classes_from="table")


def _files_of(dataset, index) -> list[str]:
    """The files items `index` of a torchvision dataset are read from: one image file per sample, or the
    archive files of datasets held in a few batches (CIFAR)."""
    from torch.utils.data import ConcatDataset
    if isinstance(dataset, ConcatDataset):
        starts = [0] + list(dataset.cumulative_sizes[:-1])
        part = np.searchsorted(dataset.cumulative_sizes, index, side="right")
        return [_files_of(dataset.datasets[p], [i - starts[p]])[0] for p, i in zip(part, index)]
    for attr in ("samples", "_samples", "_image_files", "_images"):
        paths = getattr(dataset, attr, None)
        if paths is not None:
            return [str(p[0] if isinstance(p, tuple) else p) for p in (paths[int(i)] for i in index)]
    batches = getattr(dataset, "train_list", []) + getattr(dataset, "test_list", [])
    if batches:
        return [str(Path(dataset.root) / dataset.base_folder / name) for name, _ in batches]
    raise TypeError(f"{type(dataset).__name__}: no per-sample paths or batch files to key the decode cache by")


def _tv_label(dataset, i: int) -> int:
    for attr in ("targets", "_labels", "_samples"):
        values = getattr(dataset, attr, None)
        if values is not None:
            v = values[i]
            return int(v[1] if isinstance(v, tuple) else v)
    return int(dataset[i][1])
