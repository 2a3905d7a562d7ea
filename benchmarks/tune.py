"""Learning rates chosen on validation data only: each variant of `tune.methods` trained at every rate of
its grid on the tuning splits (train800 -> val200), the rate with the best mean validation accuracy over
tasks and seeds kept, and written as the `lrs:` entry a sweep config includes. A variant whose best rate
lies on an edge of its grid gets the next rate beyond that edge (the grid's own geometric step), up to
`tune.extend` times per variant: a choice on the edge says only that the optimum may lie further out.
With `tune.per_task` each task gets its own rate per variant (VTAB-1k practice), chosen on its own
validation split; the rates file then maps variant -> task -> rate.

    aurora-bench tune configs/shared_validation.yaml --gpus all     # -> <output>-tune/lrs-<name>.yaml
"""
from pathlib import Path

from . import store
from .config import deep_merge, dump_yaml, resolve_run
from .errors import UserError
from .tuned_rates import tuned_record, tuning_tasks
from .tuning_runs import rate_summary, read_tuning_runs, tuning_name, unfinished_state


class UnfinishedTuning(UserError, ValueError):
    """No rate of a variant has all its tuning runs finished (or every rate diverged)."""


def grids_of(cfg: dict) -> dict:
    """variant -> its sorted grid of rates (its own `tune.lrs` entry, else 'default')."""
    grids = cfg["tune"]["lrs"] or {}
    out = {}
    for v in cfg["tune"]["methods"] or cfg["methods"]:
        rates = grids.get(v, grids.get("default"))
        if not rates:
            raise ValueError(f"tune.lrs has no grid for {v!r} and no 'default' grid")
        out[v] = sorted(float(lr) for lr in rates)
    return out


class TuningOnReportedSplit(UserError):
    """The tuning runs would be evaluated on the split the sweep reports: selection on test data."""


def refuse_tuning_on_reported_split(cfg: dict) -> None:
    """Rates are chosen on validation data only: a tuning split that is also the split the sweep reports (for
    any task and variant, its overrides merged as its run merges them) is refused."""
    untuned = {**cfg, "lrs": {}}  # the splits, whatever rates are on file yet
    for task in tuning_tasks(cfg):
        for variant in grids_of(cfg):
            data = resolve_run(untuned, task, variant, 0)["data"]
            if data["tuning_eval_split"] == data["eval_split"]:
                raise TuningOnReportedSplit(
                    f"tune would choose {variant}'s rate on {task}'s {data['eval_split']!r} split, the split the sweep "
                    "reports: that is selection on test data; set data.tuning_eval_split to a validation split "
                    "(e.g. val200) that the sweep does not report")


def tuning_config(cfg: dict, grids: dict | None = None) -> dict:
    """The sweep of (variant x rate) runs on the tuning splits; variant '<name>_lr<rate>'. `grids` (variant ->
    rates) defaults to the config's."""
    tune = cfg["tune"]
    overrides, methods = {}, []
    for v, rates in (grids or grids_of(cfg)).items():
        base = cfg["method_overrides"].get(v, {}) or {}
        for lr in rates:
            name = tuning_name(v, lr)
            # the calibrated merge is a test-time measurement: it has no say in the rate
            overrides[name] = deep_merge(base, {"method": base.get("method", v),
                                                "train": {"lr": float(lr), "calibrated_merge": False}})
            methods.append(name)
    return {**cfg, "name": f"{cfg['name']}-tune", "tuning": True, "methods": methods,
            "tasks": tuning_tasks(cfg), "seeds": tune["seeds"] or [0],
            "output": f"{cfg['output']}-tune", "method_overrides": overrides, "lrs": {}}


def choose(tuned: dict, results_dir) -> dict:
    """{'lrs': {variant: rate}, 'table': {variant: {rate: mean val accuracy}}, 'spread': {variant: {rate: std
    over tuning seeds of the mean over tasks}}} from the tuning runs (read as the report reads them:
    tuning_runs.py); a rate competes once all its runs are finished. A sweep gives a variant its own rate,
    and an untuned variant its method's (lora_r4 takes lora's). With tune.per_task, 'lrs' maps variant ->
    task -> rate and 'per_task' holds each task's table. 'left_out': {variant: {rate: why it did not compete}}
    ('diverged', 'failed', 'unfinished (k/n runs)'). UnfinishedTuning when no rate of a variant competes."""
    tasks, seeds = tuned["tasks"], tuned["seeds"]
    table, spread, lrs, per_task, left_out = {}, {}, {}, {}, {}
    accuracies, failed = read_tuning_runs(tuned, results_dir)
    for v, rates in accuracies.items():
        complete = {lr: a for lr, a in rates.items() if rate_summary(a, tasks, seeds)["complete"]}
        left_out[v] = {lr: unfinished_state(failed[v][lr], a, tasks, seeds) for lr, a in rates.items()
                       if lr not in complete}
        if not complete:
            raise UnfinishedTuning(_nothing_to_choose(v, left_out[v], len(tasks) * len(seeds), results_dir))
        summaries = {lr: rate_summary(a, tasks, seeds) for lr, a in complete.items()}
        table[v] = {lr: c["mean"] for lr, c in summaries.items()}
        spread[v] = {lr: c["spread"] or 0.0 for lr, c in summaries.items()}  # one seed: no spread
        lrs[v] = _best(table[v])
        if tuned["tune"].get("per_task"):
            per_task[v] = {t: {lr: rate_summary(a, [t], seeds)["mean"] for lr, a in complete.items()} for t in tasks}
            lrs[v] = {t: _best(row) for t, row in per_task[v].items()}
    return {"lrs": lrs, "table": table, "spread": spread, "per_task": per_task, "left_out": left_out}


def _nothing_to_choose(variant: str, left_out: dict, runs: int, results_dir) -> str:
    """Why no rate of `variant` competes (left_out: {rate: unfinished_state}), with what to do."""
    rates = ", ".join(f"{lr:g}" for lr in sorted(left_out))
    if set(left_out.values()) == {"diverged"}:
        return (f"every rate of {variant!r} diverged ({rates}: the training loss became NaN or inf); give tune.lrs "
                f"lower rates for it (the failed records are in {results_dir})")
    states = "; ".join(f"{lr:g} {state}" for lr, state in sorted(left_out.items()))
    return f"no rate of {variant!r} has all {runs} tuning runs finished ({states}); see {results_dir}"


def _best(row: dict) -> float:
    return max(sorted(row), key=lambda lr: row[lr])  # ties: the smaller rate


def beyond_edges(chosen: dict, grids: dict) -> dict:
    """variant -> the rates past the edges its best rates lie on (a per-task choice may touch both; none for
    interior bests or a one-rate grid); the step is the ratio of the grid's two outermost rates on that side."""
    out = {}
    for v, best in chosen["lrs"].items():
        grid, bests = grids.get(v, []), set(best.values()) if isinstance(best, dict) else {best}
        if len(grid) < 2:
            continue
        past = ([float(f"{grid[-1] * grid[-1] / grid[-2]:.3g}")] if grid[-1] in bests else []) + \
               ([float(f"{grid[0] * grid[0] / grid[1]:.3g}")] if grid[0] in bests else [])
        if past:
            out[v] = past
    return out


def tune(cfg: dict, run_sweep) -> dict:
    """Tuning runs (`run_sweep(tuned config)` runs a sweep), then the choice; a variant best at an edge of its
    grid is given the next rate out and run again, up to `tune.extend` rounds per variant (a round adds a rate
    on each edge a task's best lies on: two with tune.per_task, as dry_run counts). Returns the choice
    with 'tuned' (the last tuning config), 'grids', 'at_edge' (variants still best at an edge) and 'record'
    (what each rate was tuned for: the `lrs_tuned:` that tune.require_rates checks)."""
    refuse_tuning_on_reported_split(cfg)
    grids, added = grids_of(cfg), {}
    while True:
        tuned = tuning_config(cfg, grids)
        run_sweep(tuned)
        chosen = choose(tuned, tuned["output"])
        further = {v: lr for v, lr in beyond_edges(chosen, grids).items() if added.get(v, 0) < cfg["tune"]["extend"]}
        if not further:
            out = {**chosen, "tuned": tuned, "grids": grids, "at_edge": sorted(beyond_edges(chosen, grids))}
            return {**out, "record": tuned_record(cfg, out)}
        for v, rates in further.items():
            grids[v] = sorted(grids[v] + rates)
            added[v] = added.get(v, 0) + 1


def rates_path(cfg: dict, tuned: dict) -> Path:
    """Where tune writes `cfg`'s rates: in the folder of its tuning runs (`tuned`), one file per config (tunes
    can share a folder)."""
    return Path(tuned["output"]) / f"lrs-{cfg['name']}.yaml"


def write_lrs(chosen: dict, tuned: dict, path) -> Path:
    lines = [f"# Written by `aurora-bench tune` from {tuned['output']}: mean validation accuracy (%) of each rate",
             f"# ({', '.join(tuned['tasks'])}; seeds {tuned['seeds']}; trained on the tuning split, evaluated on "
             "the validation split only). Chosen: the best rate per variant" +
             (" and task." if chosen.get("per_task") else ".")]
    for v, row in (chosen.get("per_task") or {}).items():
        for t, task_row in row.items():
            lines.append(f"#   {v} on {t}: " + ", ".join(f"{lr:g} -> {acc:.2f}" for lr, acc in sorted(task_row.items())))
    for v, row in chosen["table"].items():
        spread, left_out = chosen.get("spread", {}).get(v, {}), chosen.get("left_out", {}).get(v, {})
        cells = {lr: f"{acc:.2f}" + (f" ± {spread[lr]:.2f}" if spread.get(lr) else "") for lr, acc in row.items()}
        lines.append(f"#   {v}: " + ", ".join(f"{lr:g} -> {text}" for lr, text in sorted({**cells, **left_out}.items())))
    alone = [v for v, grid in chosen.get("grids", {}).items() if len(grid) < 2]
    if alone:
        lines.append(f"# Not tuned: a grid of one rate compares nothing: {', '.join(alone)} (tune.require_rates "
                     "refuses these rates; give tune.lrs two rates or more).")
    if chosen.get("at_edge"):
        lines.append(f"# Still best at an edge of its grid after tune.extend more rates: {', '.join(chosen['at_edge'])}"
                     " (the optimum may lie further out).")
    lines.append("# lrs_tuned: what each rate was tuned for; a sweep with tune.require_rates checks it.")
    written = {"lrs": chosen["lrs"], **({"lrs_tuned": chosen["record"]} if chosen.get("record") else {})}
    return store.write_text(path, "\n".join(lines) + "\n" + dump_yaml(written))
