"""What the decode cache's content key costs: one stat per file of a split.

    python -m benchmarks.perf.cache_key                         # 70,000 JPEGs in a temporary folder
    python -m benchmarks.perf.cache_key --dir /tmp/keybench      # kept there and reused by the next call

Writes N small JPEGs once in NOAH's VTAB layout (<dir>/task/test.txt + images/test/*.jpg), lists the split
(not part of the key), then times `content_key` over it, best of --repeat: with the thread pool the
cache uses and with one thread. The files were just listed, so their inodes are cached ("warm"), as on
every run after the first. --drop-caches (root) first drops the kernel's page, dentry and inode caches,
for a cold figure; it slows every process on the host, so it is off unless asked for.
"""
import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import list_split
from ..data.keys import content_key


def make_split(root: Path, n: int) -> bool:
    """n JPEGs of 32x32 (256 distinct images, written round robin) and their list file; False when an earlier
    call left them there."""
    task = root / "task"
    if (task / "test.txt").is_file() and len((task / "test.txt").read_text().splitlines()) == n:
        return False
    (task / "images" / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(256):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    lines = []
    for i in range(n):
        rel = f"images/test/{i:06d}.jpg"
        (task / rel).write_bytes(blobs[i % 256])
        lines.append(f"{rel} {i % 10}")
    (task / "test.txt").write_text("\n".join(lines) + "\n")
    return True


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=70000, help="images in the split")
    ap.add_argument("--dir", type=Path, default=None, help="where the JPEGs go (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=5, help="timings per variant; the best is printed")
    ap.add_argument("--drop-caches", action="store_true", help="time one cold key first (root; host-wide)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        start = time.perf_counter()
        made = f"writing the files {time.perf_counter() - start:.1f} s" if make_split(root, args.n) else \
            "files reused"
        cfg = {"source": "vtab", "root": str(root), "num_classes": 10}
        cold = ""
        if args.drop_caches:
            drop_caches()
            start = time.perf_counter()
            content_key(list_split(cfg, "task", "test"))
            cold = f", cold list+key {time.perf_counter() - start:.3f} s"
        listing = best(lambda: list_split(cfg, "task", "test"), args.repeat)
        raw = list_split(cfg, "task", "test")
        pooled = best(lambda: content_key(raw), args.repeat)
        single = best(lambda: content_key(raw, workers=1), args.repeat)
        print(f"cache key, {args.n} files ({os.cpu_count()} cores): warm {pooled:.3f} s with the thread pool "
              f"({pooled / args.n * 1e6:.1f} us/file), {single:.3f} s on one thread{cold}; listing the split "
              f"{listing:.3f} s; {made}")


if __name__ == "__main__":
    main()
