"""Each split decoded once per machine: the process that decodes a split into the cache holds a lock keyed by
the split's cache file, and a process that needs the same split meanwhile waits for that decode and then reads
the cache instead of decoding it again (two sweep workers on one task each decoded it at once: issue 23 saw
svhn decoded four times). An OS file lock (flock, through `filelock`): a process that dies releases it, and the
next one finds no cache file and decodes."""
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def lock_path(cache_file: Path) -> Path:
    """<cache file>.lock, beside it: one per split content (a few bytes each)."""
    return cache_file.with_name(cache_file.name + ".lock")


@contextmanager
def decoding(cache_file: Path):
    """Held while this process decodes the split `cache_file` will hold; waits while another process does. A cache
    folder that cannot be written holds no lock either: the decode goes on unlocked (and uncached, cache.py)."""
    lock = FileLock(lock_path(cache_file))
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()
