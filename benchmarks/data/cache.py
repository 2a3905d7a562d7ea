"""Decode a split once into a uint8 array and keep it on disk, keyed by the split and its content.

The cache makes the promises pytest's cache and DVC make: an entry is never half-written (written to a
temporary file that is renamed over it, and a temporary that a killed process left is swept later), never taken
on its name alone (it holds the key it was written under and must match the split's image count and labels, or
the split is decoded again), and a cache that cannot be written never fails a run (it goes on uncached, with a
warning naming the folder)."""
import logging
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from . import decode_lock
from .keys import content_key, identity_key
from .pixels import to_rgb8
from .raw import DataError, RawSplit

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("AURORA_VISION_CACHE", "~/.cache/aurora_vision")).expanduser()
# Temporaries named `<entry>.npz.tmp<pid>`, without the host, by versions before the store's atomic writes; one
# older than this was left by a killed process (a write takes seconds).
LEGACY_TMP_AGE_S = 3600


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


def _read(path: Path, raw: RawSplit):
    """(images, labels) of the entry at `path` when it proves to be `raw`'s split: the key it was written under is
    its file name, one image per item, the split's labels. None when there is no entry; one that is unreadable
    or another split's is warned about and decoded again (the new entry replaces it)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:  # allow_pickle stays False: a cache file is data, never code
            key, images, labels = f["key"], f["images"], f["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        problem = f"is unreadable or from an older version ({type(e).__name__}: {e})"
    else:
        problem = _not_the_split(path, raw, key, images, labels)
        if problem is None:
            return images, labels
    log.warning(f"decode cache file {path} {problem}: decoding the split again")
    return None


def _not_the_split(path: Path, raw: RawSplit, key, images, labels):
    if key.shape != () or str(key) != path.name:
        return f"was written as {str(key)!r}, not under its own name"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(raw.items):
        return f"holds {images.dtype} images of shape {images.shape}, not {len(raw.items)} RGB uint8 images"
    if not np.array_equal(labels, np.asarray(raw.labels)):
        return "holds other labels than the split's"
    return None


def _write(path: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    """Keep the decoded split at `path`; False, with a warning naming the folder, when it cannot be written."""
    from ..store.files import write_atomic_with  # here: the store imports the config, which imports data

    try:
        write_atomic_with(path, lambda f: np.savez(f, key=np.array(path.name), images=images, labels=labels))
    except OSError as e:
        log.warning(f"decode cache folder {path.parent} cannot take this split ({e}); the run goes on without "
                    "caching it: set data.cache_dir to a writable folder with room")
        return False
    for old in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.npz"):
        if old != path:  # an earlier content of the same split: never read again
            old.unlink(missing_ok=True)
    return True


def remove_stale_temporaries(cache_dir: Path) -> None:
    """Delete the temporary files that decodes killed mid-write left in `cache_dir` (as the store does)."""
    from ..store.files import remove_stale_tmp

    try:
        remove_stale_tmp(cache_dir)
        for tmp in Path(cache_dir).glob("*.npz.tmp*"):
            if tmp.name.rpartition(".tmp")[2].isdigit() and time.time() - tmp.stat().st_mtime > LEGACY_TMP_AGE_S:
                tmp.unlink(missing_ok=True)
    except OSError:  # a folder that cannot be changed: its leftovers stay, they are never read
        pass


def load_split(raw: RawSplit, size: int, cache_dir=DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images and labels of `raw`, from the cache when it holds this content (cache_dir=None: no cache)."""
    images, labels, _ = fetch_split(raw, size, cache_dir)
    return images, labels


def fetch_split(raw: RawSplit, size: int, cache_dir=DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray, str]:
    """`load_split` and where the images came from: 'hit' (the cache), 'decoded' (decoded now and cached),
    'uncached' (decoded, not cached: cache_dir None, or a cache that could not be written). A run's timing
    records it: decode and cache read differ tenfold."""
    if cache_dir is None:
        return decode(raw, size), raw.labels, "uncached"
    path = cache_path(raw, size, cache_dir)
    remove_stale_temporaries(path.parent)
    before = _stat(path)
    cached = _read(path, raw)
    if cached is not None:
        return (*cached, "hit")
    with decode_lock.decoding(path):  # another process decoding this split: wait for it, then read its file
        if _stat(path) != before:
            cached = _read(path, raw)
            if cached is not None:
                return (*cached, "hit")
        images = decode(raw, size)
        return images, raw.labels, "decoded" if _write(path, images, raw.labels) else "uncached"


def _stat(path: Path):
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None
