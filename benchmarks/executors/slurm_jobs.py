"""Run a sweep's pending runs as Slurm jobs through submitit: one job per run (one Slurm job array per
round), one GPU each. Each run is a pure function of its config; the driver, which waits for the jobs,
writes every result JSON into the one results folder. A job that dies (preempted, out of memory, node
failure) is submitted once more; after that its run is recorded failed. `partition='local'` uses
submitit's local executor, which runs every job at once on this machine: for trying the path, not for
sharing GPUs (that is `--gpus`)."""
import time
from pathlib import Path

from tqdm.auto import tqdm

DEFAULTS = {"timeout_min": 180, "gpus_per_node": 1, "tasks_per_node": 1, "cpus_per_task": 8}


def run_slurm(runs: list, output, runner, partition: str | None = None,
              options: dict | None = None, quiet: bool = False, poll_s: float = 5.0) -> dict:
    if not runs:
        return {"ok": 0, "failed": 0}
    import submitit

    from ..run.record import failure
    from . import record_remote, remote_run

    folder = Path(output) / "slurm" / "%j"  # submitit's logs and pickles, per job
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if partition == "local" else None)
    params = {**DEFAULTS, "name": "aurora-bench", **(options or {})}
    if partition and partition != "local":
        params["slurm_partition"] = partition
    executor.update_parameters(**params)

    counts = {"ok": 0, "failed": 0}
    bar = tqdm(total=len(runs), desc=f"sweep on {'local submitit' if partition == 'local' else 'slurm'}",
               disable=quiet)

    def submit(batch):
        jobs = executor.map_array(remote_run, batch, [runner] * len(batch), [str(output)] * len(batch))
        return list(zip(jobs, batch))

    pending, attempts = submit(runs), {id(r): 1 for r in runs}
    while pending:
        time.sleep(poll_s)
        still, retry = [], []
        for job, run in pending:
            if not job.done():
                still.append((job, run))
                continue
            try:
                result = job.result()
            except Exception as e:  # the job died: resubmitted once, then recorded
                if attempts[id(run)] < 2:
                    attempts[id(run)] += 1
                    retry.append(run)
                    continue
                result = failure(run, f"slurm job {job.job_id} failed twice: {type(e).__name__}: {e}")
            record_remote(run, result, output, counts, bar, quiet)
        pending = still + (submit(retry) if retry else [])
    bar.close()
    return counts
