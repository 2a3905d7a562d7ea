"""Where a sweep's pending runs execute: `serial` (this process), `processes` (worker processes, one or more
per GPU), `ray_tasks` (a Ray cluster) and `slurm_jobs` (Slurm through submitit); `torchrun` launches one run
on several GPUs itself (run/ddp.py). Each executor is `(jobs, output, runner, ...) -> counts`, `jobs` being
the sweep's `store.Pending` runs and counts those of `new_counts()`; it depends on the run and the store only.

Whoever writes a run's record holds its claim while the run is made: the worker process that makes it, or
the driver of Ray tasks and Slurm jobs (`claim_for_driver`), which writes their records."""
from tqdm.auto import tqdm

from .. import store
from ..run import run_safely
from ..store_locks import allow_open_files

# ok / failed: made now; skipped: made by another process meanwhile; elsewhere: another live process is making
# it; unsaved: made, but its record went to a fallback file (the store could not take it)
COUNTS = ("ok", "failed", "skipped", "elsewhere", "unsaved")


def new_counts() -> dict:
    return dict.fromkeys(COUNTS, 0)


def tally(counts: dict, key: str, status: str, error=None, unsaved: bool = False, quiet: bool = False) -> None:
    counts[status] += 1
    counts["unsaved"] += bool(unsaved)
    if status == "failed" and not quiet:
        tqdm.write(f"FAILED {key}: {(error or '').strip()}")


def remote_run(run: dict, runner, output: str) -> dict:
    """One run's result where it executes (a Ray task, a Slurm job); the driver records it."""
    return run_safely(run, output, quiet=True, runner=runner)


def claim_for_driver(jobs: list, output, counts: dict) -> tuple[list, dict]:
    """The jobs a driver may send out, each claimed until `record_remote` writes it: {key: claim}. A job another
    live process holds is counted 'elsewhere', one made since the sweep planned it 'skipped'."""
    allow_open_files(len(jobs))  # one lock file open per claim
    mine, claims = [], {}
    for job in jobs:
        claim = store.claim(output, job.run)
        if not claim.acquire():
            counts["elsewhere"] += 1
        elif store.stamp(output, job.run) != job.seen:
            claim.release()
            counts["skipped"] += 1
        else:
            mine.append(job)
            claims[job.key] = claim
    return mine, claims


def record_remote(job: store.Pending, result: dict, output, counts: dict, claims: dict, bar,
                  quiet: bool = False) -> None:
    """The driver's side of a run that ran elsewhere: its result stored, its claim released, counted, a failure
    shown."""
    try:
        saved = store.save(output, job.run, result, replace=job.replace)
    finally:
        claims.pop(job.key).release()
    tally(counts, job.key, result["status"], result.get("error"), not saved.in_store, quiet)
    bar.update()
