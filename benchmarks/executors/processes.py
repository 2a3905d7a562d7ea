"""Run a sweep's pending runs in parallel worker processes, one per GPU (or N on the CPU).

Each worker is its own process with its own CUDA_VISIBLE_DEVICES, pulling runs from one queue; results
are the same per-run records a serial sweep writes (each run is a pure function of its config), so a
parallel sweep resumes like a serial one. A worker claims each run while it makes it, and dies with the
sweep (lifeline.py). A worker that dies mid-run (OOM kill, segfault) is replaced; its run is retried once,
and recorded as failed if it dies again. With each run a worker is told a later run whose splits it decodes
into the cache meanwhile (ahead.py), so that decoding overlaps training.
"""
import multiprocessing as mp
import multiprocessing.connection
import os
import time

from tqdm.auto import tqdm

from .. import store
from . import new_counts, tally
from .ahead import DecodeAhead
from .lifeline import die_with_parent


def _worker(device: str | None, conn, output: str, runner, sharing: int, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    if device is not None:  # before torch initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    os.environ["AURORA_VISION_DEVICE_SHARED_BY"] = str(sharing)  # recorded with each result
    from ..run import run_and_record  # imports torch, after the device is pinned
    from ..run.inputs import prefetch

    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        job, ahead = message
        if ahead is not None:
            prefetch(ahead)
        outcome = run_and_record(job, output, quiet=True, runner=runner)  # records failures itself
        conn.send((job.key, outcome.status, outcome.error, outcome.unsaved))


def devices_for(gpus: str | None, workers: int | None) -> list:
    """`--gpus all` / `--gpus 0,2` -> one worker per GPU (`workers` per GPU if given); otherwise `workers` CPU
    workers."""
    if gpus:
        if gpus == "all":
            import torch
            n = torch.cuda.device_count()
            if n == 0:
                raise ValueError("--gpus all: no CUDA device is visible")
            ids = [str(i) for i in range(n)]
        else:
            ids = [g.strip() for g in gpus.split(",") if g.strip()]
        return [g for _ in range(max(1, workers or 1)) for g in ids]  # round-robin: runs spread over GPUs first
    return [None] * max(1, workers or 1)


class _Slot:
    """A worker process on one device, its own pipe (a worker that dies can break nothing shared), and
    the run it holds."""

    def __init__(self, ctx, device, output, runner, sharing):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(device, child, str(output), runner, sharing, os.getpid()),
                                   daemon=True)
        self.process.start()
        child.close()
        self.device = device
        self.held, self.sent_at = None, None

    def death_timing(self) -> dict:
        """The `timing` of the run this worker died in (its last attempt): from when it was handed the run
        to now, on its device, so that a sweep's breakdown counts that time as busy."""
        from ..run.timing import span
        return span(self.sent_at, "cpu" if self.device is None else "cuda:0", self.device or "cpu", self.process.pid)


def _record_death(job: store.Pending, output, exitcode, timing: dict) -> tuple:
    """A failure record for a run whose worker died in it twice: (status, error, unsaved) as counted."""
    from ..run.record import failure

    with store.claim(output, job.run) as held:
        if not held:
            return "elsewhere", None, False
        error = f"worker process died (exit code {exitcode}) in this run, twice"
        saved = store.save(output, job.run, failure(job.run, error, timing=timing), replace=job.replace)
        return "failed", error, not saved.in_store


def run_parallel(jobs: list, output, runner, devices=(None,), quiet: bool = False) -> dict:
    """Run `jobs` (store.Pending) on one worker per entry of `devices`; returns executors.new_counts().

    The parent hands each worker one run at a time, so it always knows which run a dead worker held.
    `runner` (a module-level function, which spawn sends by name) turns a run config into a result."""
    ctx = mp.get_context("spawn")  # fresh interpreters: no CUDA state inherited from the parent
    todo = list(jobs)
    by_key = {j.key: j for j in jobs}
    attempts = {k: 0 for k in by_key}
    sharing = {d: list(devices).count(d) for d in devices if d is not None}
    slots = [_Slot(ctx, d, output, runner, sharing.get(d, 1)) for d in devices]
    counts, finished, decode_ahead = new_counts(), set(), DecodeAhead()
    bar = tqdm(total=len(todo), desc=f"sweep on {len(devices)} workers", disable=quiet)

    def finish(key, status, error=None, unsaved=False):
        if key in finished:
            return
        finished.add(key)
        tally(counts, key, status, error, unsaved, quiet)
        bar.update()

    idle_deaths = 0  # workers that died holding no run: a broken environment, not a broken run
    while len(finished) < len(by_key):
        for slot in slots:
            if slot.held is None and todo and slot.process.is_alive():
                job = todo.pop(0)
                slot.held, slot.sent_at = job.key, time.time()
                attempts[job.key] += 1
                slot.conn.send((job, decode_ahead.next_for(job, todo)))
        mp.connection.wait([s.conn for s in slots] + [s.process.sentinel for s in slots], timeout=1.0)
        for i, slot in enumerate(slots):
            try:
                while slot.conn.poll():
                    key, status, error, unsaved = slot.conn.recv()
                    slot.held = None
                    finish(key, status, error, unsaved)
            except (EOFError, OSError):
                pass  # the worker is gone; handled below
            if slot.process.is_alive():
                continue
            slot.process.join()
            if slot.held is None:
                idle_deaths += 1
                if idle_deaths > 2 * len(devices):
                    raise RuntimeError(f"sweep workers keep dying before taking a run (last exit code "
                                       f"{slot.process.exitcode}); run one run serially to see the error")
            else:  # the worker died inside this run
                job = by_key[slot.held]
                done = store.existing(output, job.run) if store.stamp(output, job.run) != job.seen else None
                if done is not None:
                    finish(job.key, done["status"], done.get("error"))  # it was recorded; only its message was lost
                elif attempts[job.key] < 2:
                    todo.insert(0, job)
                else:
                    finish(job.key, *_record_death(job, output, slot.process.exitcode, slot.death_timing()))
            if len(finished) < len(by_key):
                slots[i] = _Slot(ctx, devices[i], output, runner, sharing.get(devices[i], 1))
    for slot in slots:
        if slot.process.is_alive():
            slot.conn.send(None)
    for slot in slots:
        slot.process.join(timeout=30)
    bar.close()
    return counts
