"""Run a sweep's pending runs in parallel worker processes, one per GPU (or N on the CPU).

Each worker is its own process with its own CUDA_VISIBLE_DEVICES, pulling runs from one queue; results
are the same per-run JSON files a serial sweep writes (each run is a pure function of its config), so a
parallel sweep resumes like a serial one. A worker that dies mid-run (OOM kill, segfault) is replaced;
its run is retried once, and recorded as failed if it dies again.
"""
import multiprocessing as mp
import os
import importlib
import queue

from tqdm.auto import tqdm

from .config import run_id


def _worker(slot: int, device: str | None, tasks, events, output: str, runner: str) -> None:
    if device is not None:  # before torch initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    from .sweep import run_and_record  # imports torch, after the device is pinned

    module, _, name = runner.partition(":")
    run_fn = getattr(importlib.import_module(module), name)

    while True:
        item = tasks.get()
        if item is None:
            return
        key, run = item
        result = run_and_record(run, output, quiet=True, runner=run_fn)  # records failures itself
        events.put((slot, key, result["status"], result.get("error")))


def devices_for(gpus: str | None, workers: int | None) -> list:
    """`--gpus all` / `--gpus 0,2` -> one worker per GPU; otherwise `workers` CPU workers."""
    if gpus:
        if gpus == "all":
            import torch
            n = torch.cuda.device_count()
            if n == 0:
                raise ValueError("--gpus all: no CUDA device is visible")
            return [str(i) for i in range(n)]
        return [g.strip() for g in gpus.split(",") if g.strip()]
    return [None] * max(1, workers or 1)


def run_parallel(runs: list, output, devices: list, quiet: bool = False,
                 runner: str = "benchmarks.train:train_run") -> dict:
    """Run `runs` on one worker per entry of `devices`; returns counts {'ok', 'failed'}.

    The parent hands each worker one run at a time, so it always knows which run a dead worker held.
    `runner` ('module:function', imported in each worker) turns a run config into a result."""
    import json

    from .sweep import record_failure, result_path

    ctx = mp.get_context("spawn")  # fresh interpreters: no CUDA state inherited from the parent
    events = ctx.Queue()
    todo = [(run_id(r["task"], r["method"]["variant"], r["seed"]), r) for r in runs]
    runs_by_key = dict(todo)
    attempts = {k: 0 for k in runs_by_key}
    slots = {}  # slot -> [process, its task queue, key of the run it holds or None]
    counts = {"ok": 0, "failed": 0}
    bar = tqdm(total=len(todo), desc=f"sweep on {len(devices)} workers", disable=quiet)

    def start(slot):
        q = ctx.Queue()
        p = ctx.Process(target=_worker, args=(slot, devices[slot], q, events, str(output), runner), daemon=True)
        p.start()
        slots[slot] = [p, q, None]

    finished = set()

    def finish(key, status, error=None):
        if key in finished:  # a dead worker's last message can still arrive after we accounted for it
            return
        finished.add(key)
        counts[status] += 1
        bar.update()
        if status == "failed" and not quiet:
            tqdm.write(f"FAILED {key}: {(error or '').strip()}")

    for slot in range(len(devices)):
        start(slot)
    while len(finished) < len(runs_by_key):
        for slot, (p, q, held) in slots.items():
            if held is None and todo:
                key, run = todo.pop(0)
                attempts[key] += 1
                q.put((key, run))
                slots[slot][2] = key
        try:
            slot, key, status, error = events.get(timeout=0.5)
            slots[slot][2] = None
            finish(key, status, error)
        except queue.Empty:
            pass
        for slot, (p, q, held) in list(slots.items()):
            if p.is_alive():
                continue
            if held is not None:  # the worker died inside this run
                path = result_path(output, runs_by_key[held])
                if path.is_file() and json.loads(path.read_text())["status"] == "ok":
                    finish(held, "ok")  # it had finished; only its message was lost
                elif attempts[held] < 2:
                    todo.insert(0, (held, runs_by_key[held]))
                else:
                    record_failure(runs_by_key[held], output,
                                   f"worker process died (exit code {p.exitcode}) in this run, twice")
                    finish(held, "failed", "worker died twice")
            if len(finished) < len(runs_by_key):
                start(slot)
            else:
                slots.pop(slot)
    for p, q, _ in slots.values():
        q.put(None)
    for p, _, _ in slots.values():
        p.join(timeout=30)
    bar.close()
    return counts
