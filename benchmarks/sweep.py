"""A sweep: every (task, method, seed) of a config, one result record each in the store. Finished runs are
skipped, so an interrupted sweep resumes where it stopped; a failing run is recorded with its reason and the
sweep goes on. A sweep whose config clashes with the records on file, or with a live writer of the folder, is
refused before it writes anything; a second sweep of the same config shares the runs with the first."""
from pathlib import Path

from . import store
from .config import dump_yaml, expand, resolve_run
from .errors import UserError
from .executors import COUNTS
from .executors.serial import run_serial
from .run import run_and_record, train_run
from .store import ConfigChanged  # noqa: F401  (what a sweep of a changed config raises)
from .store.files import remove_stale_tmp


class RunInProgress(UserError):
    """`aurora-bench run` of a run that another live process is making now."""


def plan(output, runs: list, retry_failed: bool = False, replace_changed: bool = False) -> tuple[list, dict]:
    """(the runs still to make as store.Pending, counts of those left as they are: 'skipped' (done: ok, or failed
    and not retried), 'failed_before' (of those, the failed)). Raises ConfigChanged, naming what differs, when
    records on file were made with another config, unless `replace_changed`, and when records of other seeds
    of the same (task, method) were (the report would average them with these). A failure on file holds no
    result: a run of another config is made over it (store.decide)."""
    pending, counts, changed = [], {"skipped": 0, "failed_before": 0}, []
    for run in runs:
        seen = store.stamp(output, run)  # before reading: a record made after this is seen as new
        record = store.existing(output, run)
        what = store.decide(record, run, retry_failed)
        if record is None:
            pending.append(store.Pending(run, store.stamp(output, run) if seen else None))  # a bad file went
        elif what == "changed":
            changed.append((record, run))
            pending.append(store.Pending(run, seen, replace=True))
        elif what in ("done", "failed"):
            counts["skipped"] += 1
            counts["failed_before"] += what == "failed"
        else:  # a failure to make again: 'retry' (asked), 'redo' (made under another config)
            pending.append(store.Pending(run, seen))
    if changed and not replace_changed:
        raise ConfigChanged(store.changed_message(output, changed))
    mixed = store.other_seeds_of_another_recipe(store.load_all(output), runs)
    if mixed:  # not replaced by this sweep, they would stay and be averaged with its seeds
        raise ConfigChanged(store.mixed_message(output, mixed))
    return pending, counts


def sweep(cfg: dict, quiet: bool = False, retry_failed: bool = False, runner=train_run, executor=None,
          replace_changed: bool = False) -> dict:
    """Make what is not finished yet; returns counts: made now 'ok' / 'failed'; 'skipped' (done before, or by
    another process meanwhile), 'failed_before' (of the skipped, those that had failed: `retry_failed` makes
    them again), 'elsewhere' (another live sweep is making them), 'unsaved' (made, but the store could not
    take their record: a warning says where it is).

    Records made with another config raise ConfigChanged; with `replace_changed` each is replaced when its new
    record is written (a copy kept in replaced/runs/). Serial by default. An
    `executor(jobs, output, runner) -> counts` runs them elsewhere (executors.processes: one process per GPU;
    executors.ray_tasks: a Ray cluster; executors.slurm_jobs). `runner` must be a module-level function: other
    processes receive it by its qualified name."""
    output = Path(cfg["output"])
    runs = expand(cfg)
    with store.writer(output, cfg["name"], runs):
        pending, counts = plan(output, runs, retry_failed, replace_changed)
        # one file per sweep config (several sweeps may fill one folder), written once the config is accepted
        store.write_text(output / f"sweep-{cfg['name']}.yaml", dump_yaml(cfg))
        remove_stale_tmp(output / store.RUNS_DIR)
        if executor is None:
            made = run_serial(pending, output, runner, quiet, desc=f"sweep {cfg['name']}")
        else:
            made = executor(pending, output, runner)
    return {k: counts.get(k, 0) + made.get(k, 0) for k in (*COUNTS, "failed_before")}


def summary(counts: dict, output) -> str:
    """What a sweep did, and what to do about runs it left: one line each."""
    lines = [f"runs: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done"]
    if counts["failed_before"]:
        lines.append(f"{counts['failed_before']} of the runs already done had failed (their records in "
                     f"{Path(output) / store.RUNS_DIR} say why); --retry-failed makes them again")
    if counts["elsewhere"]:
        lines.append(f"{counts['elsewhere']} runs are being made by another live sweep into {output}; run this "
                     "again when it ends to see them")
    if counts["unsaved"]:
        lines.append(f"{counts['unsaved']} records could not be written into {Path(output) / store.RUNS_DIR}; the "
                     "warnings above say where each is")
    return "\n".join(lines)


def run_one(cfg: dict, task: str, variant: str, seed: int, quiet: bool = False,
            replace_changed: bool = False, runner=train_run) -> dict:
    """`aurora-bench run`: one run of a config into its output folder, under a sweep's rules. A finished record of
    the same config is returned as it is (nothing runs); a failed one is made again; one of another config
    raises ConfigChanged unless `replace_changed`. Raises RunInProgress when another live process makes it."""
    run = resolve_run(cfg, task, variant, seed)
    output = Path(cfg["output"])
    with store.writer(output, f"run {store.key_of(run)}", [run]):
        pending, _ = plan(output, [run], retry_failed=True, replace_changed=replace_changed)
        if not pending:
            if not quiet:
                print(f"already done: {store.result_path(output, run)} (delete it, or use another output folder, "
                      "to make it again)")
            return store.existing(output, run)
        outcome = run_and_record(pending[0], output, quiet, runner)
    if outcome.status in ("elsewhere", "skipped"):
        raise RunInProgress(f"{store.key_of(run)} is being made by another live process into {output} "
                            f"(or was just made: {store.result_path(output, run)}); wait for it")
    return outcome.result
