"""Run a sweep's pending runs as Ray tasks: one GPU per run on a cluster (`ray.init(address=...)`), or a
local instance. Each run is a pure function of its config; the driver claims each run and writes every
result into the one results folder, so workers need no shared disk (their TensorBoard logs stay where they
ran, under the same relative path). Ray retries a run whose worker died once; after that the run is recorded failed."""
from tqdm.auto import tqdm


def run_ray(jobs: list, output, runner, address=None, quiet: bool = False,
            gpus_per_run=None, cpus_per_run: float = 1) -> dict:
    """Run `jobs` (store.Pending) as Ray tasks; returns executors.new_counts()."""
    import ray

    from ..run.record import failure
    from . import claim_for_driver, new_counts, record_remote, remote_run

    counts = new_counts()
    jobs, claims = claim_for_driver(jobs, output, counts)

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    if gpus_per_run is None:
        gpus_per_run = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=1)(remote_run)
    refs = {task.remote(job.run, runner, str(output)): job for job in jobs}
    bar = tqdm(total=len(refs), desc="sweep on ray", disable=quiet)
    while refs:
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        job = refs.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as e:  # the worker died, twice (Ray retried once)
            result = failure(job.run, f"ray task failed after a retry: {type(e).__name__}: {e}")
        record_remote(job, result, output, counts, claims, bar, quiet)
    bar.close()
    return counts
