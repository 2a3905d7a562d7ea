"""Learning rates chosen on validation data only: each variant of `tune.methods` trained at every rate of
its grid on the tuning splits (train800 -> val200), the rate with the best mean validation accuracy over
tasks and seeds kept, and written as the `lrs:` entry a sweep config includes. A variant whose best rate
lies on an edge of its grid gets the next rate beyond that edge (the grid's own geometric step), up to
`tune.extend` times per variant: a choice on the edge says only that the optimum may lie further out.

    aurora-bench tune configs/shared_validation.yaml --gpus all     # -> <output>-tune/lrs-<name>.yaml
"""
import statistics
from pathlib import Path

import yaml

from . import store
from .config import deep_merge
from .report import load_results


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


def tuning_config(cfg: dict, grids: dict | None = None) -> dict:
    """The sweep of (variant x rate) runs on the tuning splits; variant '<name>_lr<rate>'. `grids` (variant ->
    rates) defaults to the config's."""
    tune = cfg["tune"]
    overrides, methods = {}, []
    for v, rates in (grids or grids_of(cfg)).items():
        base = cfg["method_overrides"].get(v, {}) or {}
        for lr in rates:
            name = f"{v}_lr{lr:g}"
            overrides[name] = deep_merge(base, {"method": base.get("method", v), "train": {"lr": float(lr)}})
            methods.append(name)
    return {**cfg, "name": f"{cfg['name']}-tune", "tuning": True, "methods": methods,
            "tasks": tune["tasks"] or cfg["tasks"], "seeds": tune["seeds"] or [0],
            "output": f"{cfg['output']}-tune", "method_overrides": overrides, "lrs": {}}


def choose(tuned: dict, results_dir) -> dict:
    """{'lrs': {variant: rate}, 'table': {variant: {rate: mean val accuracy}}, 'spread': {variant: {rate: std
    over tuning seeds of the mean over tasks}}} from the tuning runs. A sweep gives a variant its own rate,
    and an untuned variant its method's (lora_r4 takes lora's)."""
    variant_of = {name: name.rsplit("_lr", 1)[0] for name in tuned["methods"]}
    accs = {}  # variant -> rate -> [val accuracy]
    for r in load_results(results_dir):
        if r["status"] == "ok" and r["method"] in variant_of and r["task"] in tuned["tasks"] and r["seed"] in tuned["seeds"]:
            accs.setdefault(variant_of[r["method"]], {}).setdefault(r["config"]["train"]["lr"], []).append(
                (r["seed"], r["accuracy"]))
    expected = len(tuned["tasks"]) * len(tuned["seeds"])
    table, spread, lrs = {}, {}, {}
    for v in dict.fromkeys(variant_of.values()):
        complete = {lr: a for lr, a in accs.get(v, {}).items() if len(a) == expected}
        if not complete:
            raise ValueError(f"no rate of {v!r} has all {expected} tuning runs finished; see {results_dir}")
        table[v] = {lr: statistics.fmean(acc for _, acc in a) for lr, a in complete.items()}
        spread[v] = {lr: _seed_spread(a) for lr, a in complete.items()}
        lrs[v] = max(sorted(table[v]), key=lambda lr: table[v][lr])  # ties: the smaller rate
    return {"lrs": lrs, "table": table, "spread": spread}


def _seed_spread(pairs: list) -> float:
    """Std over seeds of the mean over tasks (0 with one seed): how far the choice could move with the seed."""
    by_seed = {}
    for seed, acc in pairs:
        by_seed.setdefault(seed, []).append(acc)
    means = [statistics.fmean(a) for a in by_seed.values()]
    return statistics.stdev(means) if len(means) > 1 else 0.0


def beyond_edges(chosen: dict, grids: dict) -> dict:
    """variant -> the next rate past the edge its best rate lies on (none for an interior best or a one-rate
    grid); the step is the ratio of the grid's two outermost rates on that side."""
    out = {}
    for v, best in chosen["lrs"].items():
        grid = grids.get(v, [])
        if len(grid) < 2:
            continue
        if best == grid[-1]:
            out[v] = float(f"{best * grid[-1] / grid[-2]:.3g}")
        elif best == grid[0]:
            out[v] = float(f"{best * grid[0] / grid[1]:.3g}")
    return out


def tune(cfg: dict, run_sweep) -> dict:
    """Tuning runs (`run_sweep(tuned config)` runs a sweep), then the choice; a variant best at an edge of its
    grid is given the next rate out and run again, up to `tune.extend` rates per variant. Returns the choice
    with 'tuned' (the last tuning config), 'grids' and 'at_edge' (variants still best at an edge)."""
    grids, added = grids_of(cfg), {}
    while True:
        tuned = tuning_config(cfg, grids)
        run_sweep(tuned)
        chosen = choose(tuned, tuned["output"])
        further = {v: lr for v, lr in beyond_edges(chosen, grids).items() if added.get(v, 0) < cfg["tune"]["extend"]}
        if not further:
            return {**chosen, "tuned": tuned, "grids": grids, "at_edge": sorted(beyond_edges(chosen, grids))}
        for v, lr in further.items():
            grids[v] = sorted(grids[v] + [lr])
            added[v] = added.get(v, 0) + 1


def write_lrs(chosen: dict, tuned: dict, path) -> Path:
    lines = [f"# Written by `aurora-bench tune` from {tuned['output']}: mean validation accuracy (%) of each rate",
             f"# ({', '.join(tuned['tasks'])}; seeds {tuned['seeds']}; trained on the tuning split, evaluated on "
             "the validation split only). Chosen: the best rate per variant."]
    for v, row in chosen["table"].items():
        spread = chosen.get("spread", {}).get(v, {})
        lines.append(f"#   {v}: " + ", ".join(f"{lr:g} -> {acc:.2f}" + (f" ± {spread[lr]:.2f}" if spread.get(lr) else "")
                                              for lr, acc in sorted(row.items())))
    if chosen.get("at_edge"):
        lines.append(f"# Still best at an edge of its grid after tune.extend more rates: {', '.join(chosen['at_edge'])}"
                     " (the optimum may lie further out).")
    return store.write_text(path, "\n".join(lines) + "\n" + yaml.safe_dump({"lrs": chosen["lrs"]}, sort_keys=False))
