"""Decode a split once into a uint8 array and keep it on disk, keyed by the split and its content."""
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from . import decode_lock
from .keys import content_key, identity_key
from .pixels import to_rgb8
from .raw import DataError, RawSplit

DEFAULT_CACHE = Path(os.environ.get("AURORA_VISION_CACHE", "~/.cache/aurora_vision")).expanduser()


def _open(raw: RawSplit, i: int) -> Image.Image:
    item = raw.items[i]
    try:
        img = Image.open(item) if raw.load is None else raw.load(item)
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        img.load()
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"cannot read image {raw.describe(i)}: {e}") from e
    return to_rgb8(img, raw.describe(i))


def decode(raw: RawSplit, size: int, workers: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8. Images keep their size when they all share one (resizing then happens on the
    device, in the training transform); a split of mixed sizes is resized to size x size (bicubic)."""
    workers = workers or min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(lambda i: _open(raw, i), range(len(raw.items))))
    if len({im.size for im in images}) > 1:
        images = [im.resize((size, size), Image.BICUBIC) for im in images]
    return np.stack([np.asarray(im, dtype=np.uint8) for im in images])


def cache_path(raw: RawSplit, size: int, cache_dir: Path) -> Path:
    """<cache_dir>/<source>-<identity>-<content>.npz: a changed file changes the content part."""
    return Path(cache_dir) / f"{raw.key['source']}-{identity_key(raw, size)}-{content_key(raw)}.npz"


def _read(path: Path):
    try:
        with np.load(path) as f:
            return f["images"], f["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"decode cache file {path} is unreadable ({e}): delete it to decode again") from e


def load_split(raw: RawSplit, size: int, cache_dir=DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images and labels of `raw`, from the cache when it holds this content (cache_dir=None: no cache)."""
    images, labels, _ = fetch_split(raw, size, cache_dir)
    return images, labels


def fetch_split(raw: RawSplit, size: int, cache_dir=DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray, str]:
    """`load_split` and where the images came from: 'hit' (the cache), 'decoded' (decoded now and cached),
    'uncached' (decoded, cache_dir None). A run's timing records it: decode and cache read differ tenfold."""
    if cache_dir is None:
        return decode(raw, size), raw.labels, "uncached"
    path = cache_path(raw, size, cache_dir)
    if path.is_file():
        return (*_read(path), "hit")
    with decode_lock.decoding(path):  # another process decoding this split: wait for it, then read its file
        return _read_or_decode(raw, size, path)


def _read_or_decode(raw: RawSplit, size: int, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    if path.is_file():
        return (*_read(path), "hit")
    images = decode(raw, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, labels=raw.labels)
    os.replace(tmp, path)  # atomic: an interrupted write never leaves a half cache
    for old in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.npz"):
        if old != path:  # an earlier content of the same split: never read again
            old.unlink(missing_ok=True)
    return images, raw.labels, "decoded"
