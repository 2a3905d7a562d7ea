"""Run a sweep's pending runs one after another in this process (the default executor)."""
from tqdm.auto import tqdm

from ..run import run_and_record
from . import new_counts, tally


def run_serial(jobs: list, output, runner, quiet: bool = False, desc: str = "sweep") -> dict:
    counts = new_counts()
    bar = tqdm(jobs, desc=desc, disable=quiet)
    for job in bar:
        bar.set_postfix_str(job.key)
        outcome = run_and_record(job, output, quiet, runner)
        tally(counts, job.key, outcome.status, outcome.error, outcome.unsaved)
    return counts
