"""Runners for the sweep and store tests; imported by name inside spawned worker processes and subprocesses."""
import os
import time
from pathlib import Path


def fake_record(run, accuracy, **extra):
    """An 'ok' record with every field the store requires, made up."""
    return {"status": "ok", "config": run, "task": run["task"], "method": run["method"]["variant"],
            "seed": run["seed"], "accuracy": float(accuracy), "accuracy_of": "test split, final epoch (1)",
            "params": {"trainable": 10, "head": 2}, "gmacs_per_image": 1.0, "train_img_per_s": 100.0, **extra}


def ok_runner(run, logdir=None, quiet=False):
    return fake_record(run, run["seed"], pid=os.getpid())


def crash_once_runner(run, logdir=None, quiet=False):
    """Kills its worker process the first time it sees method 'b' (a marker file remembers)."""
    marker = _output(logdir) / f"crashed-{run['method']['variant']}"
    if run["method"]["variant"] in ("b", "always") and (run["method"]["variant"] == "always" or not marker.exists()):
        marker.touch()
        os._exit(9)
    return ok_runner(run)


def failing_runner(run, logdir=None, quiet=False):
    """Works for 0.2 s, then fails (say, out of memory): a failed run that held its device."""
    time.sleep(0.2)
    raise RuntimeError("CUDA out of memory (made up)")


def env_runner(run, logdir=None, quiet=False):
    """Reports the device pinning its worker was given."""
    keys = ("CUDA_VISIBLE_DEVICES", "AURORA_VISION_DEVICE_SHARED_BY")
    return {**ok_runner(run), "env": {k: os.environ.get(k) for k in keys}}


def _output(logdir) -> Path:
    return Path(logdir).parents[4]  # <output>/tb/runs/<variant>/<task>/seed<N>


def sleeping_runner(run, logdir=None, quiet=False):
    """Writes its process id to <output>/pids/, then trains for a minute."""
    (_output(logdir) / "pids").mkdir(exist_ok=True)
    (_output(logdir) / "pids" / str(os.getpid())).touch()
    time.sleep(60)
    return ok_runner(run)


def gated_runner(run, logdir=None, quiet=False):
    """Logs each call to <output>/calls.log; its first run says so (<output>/started) and waits for <output>/go."""
    out = _output(logdir)
    with open(out / "calls.log", "a") as f:
        f.write(f"{os.getpid()} {run['method']['variant']}\n")
    if not (out / "started").exists():
        (out / "started").touch()
        while not (out / "go").exists():
            time.sleep(0.05)
    return ok_runner(run)


def big_record_runner(run, logdir=None, quiet=False):
    """A record of some 20 kB (a long curve)."""
    return fake_record(run, 42.5, curve=[{"epoch": i, "loss": 1.0 / (i + 1)} for i in range(600)])


def counts(**made):
    """A sweep's counts: `made` and zeros."""
    return {**dict.fromkeys(("ok", "failed", "skipped", "elsewhere", "unsaved", "failed_before"), 0), **made}


def slow_split(log: Path, started=None, n: int = 6):
    """A RawSplit of n generated images, each taking 50 ms to 'decode' and logging the pid that decoded it;
    `started` (an Event) is set at the first image."""
    import numpy as np
    from PIL import Image

    from aurora_bench.data.raw import RawSplit

    def load(i):
        if started is not None:
            started.set()
        time.sleep(0.05)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {i}\n")
        return Image.new("RGB", (8, 8), (i, 0, 0))
    return RawSplit(key={"source": "slow", "name": "split"}, items=list(range(n)), labels=np.arange(n) % 2,
                    num_classes=2, load=load, files=[])


def fetch_slow_split(folder: str, barrier, results) -> None:
    """Both of two processes: wait for the other, then fetch the same slow split through the decode cache."""
    from aurora_bench.data.cache import fetch_split
    raw = slow_split(Path(folder) / "decoded.log")
    barrier.wait()
    images, _, origin = fetch_split(raw, 8, Path(folder) / "cache")
    results.put((origin, images.tobytes()))


def _cache_files(run) -> list:
    from aurora_bench.data import list_split
    from aurora_bench.data.cache import cache_path
    data = run["data"]
    return [cache_path(list_split(data, run["task"], data[k]), run["model"]["image_size"], data["cache_dir"])
            for k in ("split_train", "split_eval")]


def decode_ahead_runner(run, logdir=None, quiet=False):
    """Decodes its own splits as a run does; a run of task 'first' then waits (up to 60 s) for the next task's
    splits to appear in the cache, which only the executor's prefetch makes; the record says what it saw."""
    from aurora_bench.run.inputs import decoded_splits
    origins = {}
    decoded_splits(run, origins)
    seen = None
    if run["task"] == "first":
        later = _cache_files({**run, "task": "second"})
        deadline = time.time() + 60
        while not all(p.is_file() for p in later) and time.time() < deadline:
            time.sleep(0.05)
        seen = all(p.is_file() for p in later)
    return fake_record(run, 50, origins=origins, saw_next_task_decoded=seen)
