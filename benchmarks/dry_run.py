"""`--dry-run` of sweep and tune: the runs a command would make and their count, from the config and the records on
file (read only: nothing written, no data read), decided as the real command decides (store.decide); and what
would refuse it now (its data, its rates, records of another config)."""
from . import store
from .config import expand
from .tune import grids_of, rates_path, tuning_config

LABELS = {"new": "to make", "done": "done", "failed": "failed, kept",
          "retry": "failed, to make again", "redo": "failed under another config, to make",
          "changed": "another config's result: refused (--replace-changed)"}


def run_lines(runs: list, output, retry_failed: bool = False, replace_changed: bool = False,
              retry_hint: str = "") -> tuple[list, str, list]:
    """(a line per run: 'task  variant  seed  lr  eval split  what the command does with it'; the counts in words,
    `retry_hint` after that of the failures kept; the refusals the records on file would bring: another config's
    results, other seeds of another recipe)."""
    records = [store.peek(output, r) for r in runs]
    decided = [store.decide(rec, r, retry_failed) for rec, r in zip(records, runs)]
    labels = {**LABELS, "changed": "another config's result, to replace"} if replace_changed else LABELS
    width = max(len(r["task"]) for r in runs), max(len(r["method"]["variant"]) for r in runs)
    lines = [f"  {r['task']:<{width[0]}}  {r['method']['variant']:<{width[1]}}  seed {r['seed']}  "
             f"lr {r['train']['lr']:g}  eval {r['data']['split_eval']}  {labels[d]}" for r, d in zip(runs, decided)]
    made = store.MADE + ("changed",) * replace_changed
    counts = [f"{sum(d in made for d in decided)} to make", f"{decided.count('done')} done"]
    if decided.count("failed"):
        counts.append(f"{decided.count('failed')} failed and kept{retry_hint}")
    refusals = []
    changed = [(rec, r) for rec, r, d in zip(records, runs, decided) if d == "changed"]
    if changed and not replace_changed:
        counts.append(f"{len(changed)} of another config")
        refusals.append(store.changed_message(output, changed))
    mixed = store.other_seeds_of_another_recipe(store.peek_all(output), runs)
    if mixed:
        refusals.append(store.mixed_message(output, mixed))
    return lines, ", ".join(counts), refusals


def _refused(what: str, refusals: list) -> list:
    return [f"the {what} would be refused now: {r}" for r in refusals]


def sweep_listing(cfg: dict, retry_failed: bool = False, replace_changed: bool = False, refusals=()) -> str:
    """`refusals`: what the command's own checks (its data, its rates) say now."""
    runs = expand(cfg)
    lines, counts, on_file = run_lines(runs, cfg["output"], retry_failed, replace_changed,
                                       " (--retry-failed makes them again)")
    head = (f"sweep {cfg['name']} -> {cfg['output']}: {len(runs)} runs ({len(cfg['tasks'])} tasks x "
            f"{len(cfg['methods'])} methods x {len(cfg['seeds'])} seeds; {counts})")
    return "\n".join([head, *lines, *_refused("sweep", [*refusals, *on_file]), "dry run: nothing was made"])


def max_extension_runs(cfg: dict) -> int:
    """The most tuning runs tune.extend can add: per variant and round one rate past its edge, two with
    per_task (tasks may sit on opposite edges), each run on every tuning task and seed."""
    tune, tuned = cfg["tune"], tuning_config(cfg)
    sides = 2 if tune["per_task"] and len(tuned["tasks"]) > 1 else 1
    return len(grids_of(cfg)) * tune["extend"] * sides * len(tuned["tasks"]) * len(tuned["seeds"])


def tune_listing(cfg: dict, refusals=()) -> str:
    tuned = tuning_config(cfg)
    runs = expand(tuned)
    lines, counts, on_file = run_lines(runs, tuned["output"])
    grids = grids_of(cfg)
    head = (f"tune {cfg['name']} -> {tuned['output']}: {len(runs)} tuning runs on the initial grids ("
            f"{sum(map(len, grids.values()))} (variant, rate) pairs x {len(tuned['tasks'])} tasks x "
            f"{len(tuned['seeds'])} seeds; {counts}); up to "
            f"{max_extension_runs(cfg)} more if best rates stay on a grid edge (tune.extend={cfg['tune']['extend']})")
    return "\n".join([head, *lines, f"rates file: {rates_path(cfg, tuned)}", *_refused("tune", [*refusals, *on_file]),
                      "dry run: nothing was made"])
