"""Where a sweep's pending runs execute: `processes` (worker processes, one or more per GPU), `ray_tasks`
(a Ray cluster) and `slurm_jobs` (Slurm through submitit); `torchrun` launches one run on several GPUs
itself (run/ddp.py). Each executor is `(runs, output, runner, ...) -> {'ok', 'failed'}` and depends on the
run and the store only."""
from tqdm.auto import tqdm

from .. import store
from ..run import run_safely


def remote_run(run: dict, runner, output: str) -> dict:
    """One run's result where it executes (a Ray task, a Slurm job); the driver records it."""
    return run_safely(run, output, quiet=True, runner=runner)


def record_remote(run: dict, result: dict, output, counts: dict, bar, quiet: bool = False) -> None:
    """The driver's side of a run that ran elsewhere: its result stored, counted, a failure shown."""
    store.write_result(output, run, result)
    counts[result["status"]] += 1
    bar.update()
    if result["status"] == "failed" and not quiet:
        tqdm.write(f"FAILED {store.key_of(run)}: {result['error']}")
