"""scikit-learn's bundled handwritten digits: the embedded demo's real images, no download."""
import numpy as np

from .raw import DataError, RawSplit
from .registry import Option, register_source

def check_digits(cfg: dict, task: str, split: str) -> None:
    """Any task name (the digits are the data); the splits `train`, `test` and, with data.val_size, `val`."""
    if split not in ("train", "test") and not (split == "val" and cfg.get("val_size", 0)):
        raise DataError(f"digits has splits 'train', 'val' (when data.val_size > 0) and 'test', got {split!r}")


@register_source(
    "digits", check_digits, classes=Option(list, None, help="the digits to use, relabelled 0..n-1 (default: all ten)"),
    train_size=Option((float, int), 0.5, help="fraction (or count) of images in the train split"),
    val_size=Option((float, int), 0, help="fraction (or count) of the rest in the val split"),
    split_seed=Option(int, 0, help="seed of the stratified splits"))
def digits(cfg: dict, task: str, split: str) -> RawSplit:
    """scikit-learn's bundled handwritten digits (8x8, 1,797 images): the embedded demo's real images.
    data.classes picks the digits (relabelled 0..n-1); `train`, `val` (data.val_size images from the rest)
    and `test` (the remainder) are stratified and seeded."""
    check_digits(cfg, task, split)
    import sklearn
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
    index = {"train": idx_train, "val": idx_val, "test": idx_test}[split]
    rgb = np.repeat(images[index][..., None], 3, axis=-1)
    # the images ship inside scikit-learn: its version identifies them
    return RawSplit({"source": "digits", "classes": classes, "split": split, "train_size": train_size,
                     "val_size": val_size, "seed": seed, "sklearn": sklearn.__version__}, list(rgb), labels[index],
                    len(classes), load=lambda a: a, describe=lambda i: f"digits {split} item {i}", files=[])
