"""What the decode cache is keyed by: the split's identity, and its content as the files' stats show it.

A file's size, mtime and ctime (in ns) change whenever it is rewritten, so an edited or replaced image
is decoded again. ctime cannot be set back by tools that restore mtime (touch -d, cp -p, rsync -a);
reading every byte instead would cost as much as the decode the cache saves."""
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .raw import DataError, RawSplit

# Bump when decoding changes what a file decodes to, so old cache entries are not reused.
# 2: 16-bit images scaled to 8 bits (they were clipped to white).
DECODE_VERSION = 2
CHUNK = 2048


def _stat_chunk(paths: list) -> list:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise DataError(f"image {p} is missing (it is listed in the split)") from None
        out.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


def file_stats(paths: list, workers: int | None = None) -> list:
    """(size, mtime_ns, ctime_ns) per path, in order. Chunks run in threads: os.stat releases the GIL, so
    stats that wait on a disk or a network file system overlap."""
    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    if workers == 1 or len(chunks) == 1:
        return [s for c in chunks for s in _stat_chunk(c)]
    with ThreadPoolExecutor(workers) as pool:
        return [s for part in pool.map(_stat_chunk, chunks) for s in part]


def files_of(raw: RawSplit) -> list:
    if raw.load is None:
        return raw.items
    if raw.files is None:
        raise TypeError(f"source {raw.key.get('source')!r} decodes items with `load` but does not name the files "
                        "they come from (RawSplit.files; [] when its key identifies the content)")
    return raw.files


def identity_key(raw: RawSplit, size: int) -> str:
    """Which split at which size: content versions of one split share it."""
    text = json.dumps({**raw.key, "size": size, "decode": DECODE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def content_key(raw: RawSplit, workers: int | None = None) -> str:
    """The split's content: item count, labels, and every file's path and stats."""
    h = hashlib.sha1(f"{len(raw.items)}\n".encode())
    h.update(np.asarray(raw.labels).astype("<i8").tobytes())
    files = files_of(raw)
    stats = file_stats(files, workers)
    h.update("".join(f"{p}\t{size}\t{mtime}\t{ctime}\n" for p, (size, mtime, ctime) in zip(files, stats)).encode())
    return h.hexdigest()[:16]
