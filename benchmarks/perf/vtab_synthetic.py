"""VTAB-1k's 19 tasks made up at their real sizes, for timing: the real class counts (data/tasks.py VTAB1K)
and test-set sizes (VTAB1K_TEST_SIZES), 800 + 200 training images each, as smooth random JPEGs (quality 90,
about the size of a real photo's JPEG) in NOAH's layout, which the `vtab` source reads:
<root>/<task>/{train800,val200,train800val200,test}.txt, classes.txt, images/<split>/NNNNNN.jpg.

Generated once, in parallel processes; each task's `done` marker holds its sizes, so a second call skips it
and a folder of other sizes is refused rather than mixed. What the images show is noise (labels cycle
through the classes): the accuracies mean nothing, the times are those of the real sizes."""
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.raw import DataError
from ..data.tasks import VTAB1K, VTAB1K_TEST_SIZES, VTAB1K_TRAIN_SPLITS

CHUNK = 1000  # images per work item: small enough to spread dSprites' 73,728 over every core


def task_sizes(task: str, scale: float = 1.0) -> dict:
    """{split: images} of `task`, each real size times `scale` (at least 2, so a tiny split still has two
    classes to learn)."""
    real = {**VTAB1K_TRAIN_SPLITS, "test": VTAB1K_TEST_SIZES[task]}
    return {split: n if scale == 1 else max(2, round(n * scale)) for split, n in real.items()}


def smooth_image(rng: np.random.Generator, px: int) -> Image.Image:
    """8x8 noise upsampled to px x px: as a JPEG about a real photo's size, unlike pure noise."""
    return Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((px, px), Image.BICUBIC)


def _image(task_index: int, split_index: int, i: int, px: int) -> Image.Image:
    return smooth_image(np.random.default_rng([task_index, split_index, i]), px)  # any chunk, any process


def _write_chunk(item) -> int:
    """Writes images [start, stop) of one split; returns their bytes."""
    task_dir, task_index, split, split_index, start, stop, px = item
    folder = Path(task_dir) / "images" / split
    written = 0
    for i in range(start, stop):
        path = folder / f"{i:06d}.jpg"
        _image(task_index, split_index, i, px).save(path, quality=90)
        written += path.stat().st_size
    return written


def _marker(task: str, sizes: dict, px: int) -> dict:
    return {"task": task, "classes": VTAB1K[task].num_classes, "sizes": sizes, "px": px}


def _check_tasks(tasks) -> None:
    unknown = [t for t in tasks if t not in VTAB1K]
    if unknown:
        raise DataError(f"--tasks: {unknown} are not VTAB-1k tasks; the 19 are {', '.join(VTAB1K)}")


def generate(root, tasks=None, scale: float = 1.0, px: int = 224, processes: int | None = None) -> dict:
    """Writes the tasks not yet under `root`; returns {'seconds': spent now, 'images': made now, 'bytes': of
    those images, 'tasks': {task: its done marker}}."""
    tasks = list(tasks or VTAB1K)
    _check_tasks(tasks)
    if not 0 < scale <= 1:
        raise DataError(f"--scale must be in (0, 1] (a fraction of the real sizes), got {scale}")
    root = Path(root)
    start = time.perf_counter()
    work, markers, todo = [], {}, []
    for task_index, task in enumerate(VTAB1K):
        if task not in tasks:
            continue
        wanted = _marker(task, task_sizes(task, scale), px)
        done = root / task / "done"
        if done.is_file():
            found = json.loads(done.read_text())
            if {k: found.get(k) for k in wanted} != wanted:
                raise DataError(f"{root / task} was generated with {found['sizes']} at {found.get('px')} px, not "
                                f"{wanted['sizes']} at {px} px: pass another --data folder or delete it")
            markers[task] = found
            continue
        todo.append((task, wanted))
        for split_index, (split, n) in enumerate(wanted["sizes"].items()):
            (root / task / "images" / split).mkdir(parents=True, exist_ok=True)
            work += [(str(root / task), task_index, split, split_index, s, min(n, s + CHUNK), px)
                     for s in range(0, n, CHUNK)]
    written = 0
    if work:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(min(len(work), processes or os.cpu_count() or 1)) as pool:
            written = sum(pool.imap_unordered(_write_chunk, work))
    for task, wanted in todo:
        _write_lists(root / task, wanted)
        markers[task] = wanted
    images = sum(n for _, w in todo for n in w["sizes"].values())
    return {"seconds": time.perf_counter() - start, "images": images, "bytes": written, "tasks": markers}


def _write_lists(task_dir: Path, marker: dict) -> None:
    classes = marker["classes"]
    lines = {split: [f"images/{split}/{i:06d}.jpg {i % classes}" for i in range(n)]
             for split, n in marker["sizes"].items()}
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, listed in lines.items():
        (task_dir / f"{split}.txt").write_text("\n".join(listed) + "\n")
    (task_dir / "classes.txt").write_text("\n".join(f"class{c:03d}" for c in range(classes)) + "\n")
    (task_dir / "done").write_text(json.dumps(marker))  # last: a task without it is generated again
