"""Run a sweep's pending runs as Ray tasks: one GPU per run on a cluster (`ray.init(address=...)`), or a
local instance. Each run is a pure function of its config; the driver writes every result JSON into the
one results folder, so workers need no shared disk (their TensorBoard logs stay where they ran, under
the same relative path). Ray retries a run whose worker died once; after that the run is recorded failed."""
from tqdm.auto import tqdm


def run_ray(runs: list, output, runner, address=None, quiet: bool = False,
            gpus_per_run=None, cpus_per_run: float = 1) -> dict:
    import ray

    from ..run.record import failure
    from . import record_remote, remote_run

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    if gpus_per_run is None:
        gpus_per_run = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=1)(remote_run)
    refs = {task.remote(run, runner, str(output)): run for run in runs}
    counts = {"ok": 0, "failed": 0}
    bar = tqdm(total=len(refs), desc="sweep on ray", disable=quiet)
    while refs:
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        run = refs.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as e:  # the worker died, twice (Ray retried once)
            result = failure(run, f"ray task failed after a retry: {type(e).__name__}: {e}")
        record_remote(run, result, output, counts, bar, quiet)
    bar.close()
    return counts
