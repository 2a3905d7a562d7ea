"""Run a sweep's pending runs one after another in this process (the default executor), each later task's
splits decoded into the cache while an earlier run trains (ahead.py)."""
from tqdm.auto import tqdm

from ..run import run_and_record
from ..run.inputs import prefetch
from . import new_counts, tally
from .ahead import DecodeAhead


def run_serial(jobs: list, output, runner, quiet: bool = False, desc: str = "sweep") -> dict:
    counts, decode_ahead = new_counts(), DecodeAhead()
    bar = tqdm(jobs, desc=desc, disable=quiet)
    for i, job in enumerate(bar):
        ahead = decode_ahead.next_for(job, jobs[i + 1:])
        if ahead is not None:
            prefetch(ahead)
        bar.set_postfix_str(job.key)
        outcome = run_and_record(job, output, quiet, runner)
        tally(counts, job.key, outcome.status, outcome.error, outcome.unsaved)
    return counts
