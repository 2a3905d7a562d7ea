"""Run a sweep's pending runs as Slurm jobs through submitit: one job per run (one Slurm job array per
round), one GPU each. Each run is a pure function of its config; the driver, which waits for the jobs,
claims each run and writes every result into the one results folder. A job that dies (preempted, out of
memory, node failure) is submitted once more; after that its run is recorded failed. `partition='local'` uses
submitit's local executor, which runs every job at once on this machine: for trying the path, not for
sharing GPUs (that is `--gpus`)."""
import time
from pathlib import Path

from tqdm.auto import tqdm

DEFAULTS = {"timeout_min": 180, "gpus_per_node": 1, "tasks_per_node": 1, "cpus_per_task": 8}


def run_slurm(jobs: list, output, runner, partition: str | None = None,
              options: dict | None = None, quiet: bool = False, poll_s: float = 5.0) -> dict:
    """Run `jobs` (store.Pending) as Slurm jobs; returns executors.new_counts()."""
    from . import claim_for_driver, new_counts, record_remote, remote_run

    counts = new_counts()
    jobs, claims = claim_for_driver(jobs, output, counts)
    if not jobs:
        return counts
    import submitit

    from ..run.record import failure

    folder = Path(output) / "slurm" / "%j"  # submitit's logs and pickles, per job
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if partition == "local" else None)
    params = {**DEFAULTS, "name": "aurora-bench", **(options or {})}
    if partition and partition != "local":
        params["slurm_partition"] = partition
    executor.update_parameters(**params)

    bar = tqdm(total=len(jobs), desc=f"sweep on {'local submitit' if partition == 'local' else 'slurm'}",
               disable=quiet)

    def submit(batch):
        runs = [job.run for job in batch]
        slurm = executor.map_array(remote_run, runs, [runner] * len(runs), [str(output)] * len(runs))
        return list(zip(slurm, batch))

    pending, attempts = submit(jobs), {job.key: 1 for job in jobs}
    while pending:
        time.sleep(poll_s)
        still, retry = [], []
        for slurm, job in pending:
            if not slurm.done():
                still.append((slurm, job))
                continue
            try:
                result = slurm.result()
            except Exception as e:  # the job died: resubmitted once, then recorded
                if attempts[job.key] < 2:
                    attempts[job.key] += 1
                    retry.append(job)
                    continue
                result = failure(job.run, f"slurm job {slurm.job_id} failed twice: {type(e).__name__}: {e}")
            record_remote(job, result, output, counts, claims, bar, quiet)
        pending = still + (submit(retry) if retry else [])
    bar.close()
    return counts
