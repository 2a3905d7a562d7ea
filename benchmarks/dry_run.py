"""`--dry-run` of sweep and tune: the runs a command would make and their count, from the config alone (no
data read, nothing written; a record on file counts as made, whatever its config)."""
from . import store
from .sweep import expand
from .tune import grids_of, rates_path, tuning_config


def run_lines(runs: list, output) -> tuple[list, int]:
    """A line per run ('task  variant  seed  lr  eval split  on file | to make') and how many are on file."""
    on_file = [store.result_path(output, r).exists() for r in runs]
    width = max(len(r["task"]) for r in runs), max(len(r["method"]["variant"]) for r in runs)
    lines = [f"  {r['task']:<{width[0]}}  {r['method']['variant']:<{width[1]}}  seed {r['seed']}  "
             f"lr {r['train']['lr']:g}  eval {r['data']['split_eval']}  {'on file' if done else 'to make'}"
             for r, done in zip(runs, on_file)]
    return lines, sum(on_file)


def sweep_listing(cfg: dict, refusal: str | None = None) -> str:
    runs = expand(cfg)
    lines, done = run_lines(runs, cfg["output"])
    head = (f"sweep {cfg['name']} -> {cfg['output']}: {len(runs)} runs ({len(cfg['tasks'])} tasks x "
            f"{len(cfg['methods'])} methods x {len(cfg['seeds'])} seeds; {done} on file, {len(runs) - done} to make)")
    tail = [f"the sweep would be refused now: {refusal}"] if refusal else []
    return "\n".join([head, *lines, *tail, "dry run: nothing was made"])


def max_extension_runs(cfg: dict) -> int:
    """The most tuning runs tune.extend can add: per variant and round one rate past its edge, two with
    per_task (tasks may sit on opposite edges), each run on every tuning task and seed."""
    tune, tuned = cfg["tune"], tuning_config(cfg)
    sides = 2 if tune["per_task"] and len(tuned["tasks"]) > 1 else 1
    return len(grids_of(cfg)) * tune["extend"] * sides * len(tuned["tasks"]) * len(tuned["seeds"])


def tune_listing(cfg: dict) -> str:
    tuned = tuning_config(cfg)
    runs = expand(tuned)
    lines, done = run_lines(runs, tuned["output"])
    grids = grids_of(cfg)
    head = (f"tune {cfg['name']} -> {tuned['output']}: {len(runs)} tuning runs on the initial grids ("
            f"{sum(map(len, grids.values()))} (variant, rate) pairs x {len(tuned['tasks'])} tasks x "
            f"{len(tuned['seeds'])} seeds; {done} on file, {len(runs) - done} to make); up to "
            f"{max_extension_runs(cfg)} more if best rates stay on a grid edge (tune.extend={cfg['tune']['extend']})")
    return "\n".join([head, *lines, f"rates file: {rates_path(cfg, tuned)}",
                      "dry run: nothing was made"])
