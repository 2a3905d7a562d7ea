"""Learning rates chosen on validation data only: each variant of `tune.methods` trained at every rate of
its grid on the tuning splits (train800 -> val200), the rate with the best mean validation accuracy over
tasks and seeds kept, and written as the `lrs:` entry a sweep config includes.

    aurora-bench tune configs/shared_validation.yaml --gpus all     # -> <output>-tune/lrs-<name>.yaml
"""
import statistics
from pathlib import Path

import yaml

from . import store
from .config import deep_merge
from .report import load_results


def tuning_config(cfg: dict) -> dict:
    """The sweep of (variant x rate) runs on the tuning splits; variant '<name>_lr<rate>'."""
    tune = cfg["tune"]
    variants = tune["methods"] or cfg["methods"]
    grids = tune["lrs"] or {}
    overrides, methods = {}, []
    for v in variants:
        rates = grids.get(v, grids.get("default"))
        if not rates:
            raise ValueError(f"tune.lrs has no grid for {v!r} and no 'default' grid")
        base = cfg["method_overrides"].get(v, {}) or {}
        for lr in rates:
            name = f"{v}_lr{lr:g}"
            overrides[name] = deep_merge(base, {"method": base.get("method", v), "train": {"lr": float(lr)}})
            methods.append(name)
    return {**cfg, "name": f"{cfg['name']}-tune", "tuning": True, "methods": methods,
            "tasks": tune["tasks"] or cfg["tasks"], "seeds": tune["seeds"] or [0],
            "output": f"{cfg['output']}-tune", "method_overrides": overrides, "lrs": {}}


def choose(tuned: dict, results_dir) -> dict:
    """{'lrs': {variant: rate}, 'table': {variant: {rate: mean val accuracy}}} from the tuning runs. A sweep
    gives a variant its own rate, and an untuned variant its method's (lora_r4 takes lora's)."""
    variant_of = {name: name.rsplit("_lr", 1)[0] for name in tuned["methods"]}
    accs = {}  # variant -> rate -> [val accuracy]
    for r in load_results(results_dir):
        if r["status"] == "ok" and r["method"] in variant_of and r["task"] in tuned["tasks"] and r["seed"] in tuned["seeds"]:
            accs.setdefault(variant_of[r["method"]], {}).setdefault(r["config"]["train"]["lr"], []).append(r["accuracy"])
    expected = len(tuned["tasks"]) * len(tuned["seeds"])
    table, lrs = {}, {}
    for v in dict.fromkeys(variant_of.values()):
        complete = {lr: statistics.fmean(a) for lr, a in accs.get(v, {}).items() if len(a) == expected}
        if not complete:
            raise ValueError(f"no rate of {v!r} has all {expected} tuning runs finished; see {results_dir}")
        table[v] = complete
        lrs[v] = max(sorted(complete), key=lambda lr: complete[lr])  # ties: the smaller rate
    return {"lrs": lrs, "table": table}


def write_lrs(chosen: dict, tuned: dict, path) -> Path:
    lines = [f"# Written by `aurora-bench tune` from {tuned['output']}: mean validation accuracy (%) of each rate",
             f"# ({', '.join(tuned['tasks'])}; seeds {tuned['seeds']}; trained on the tuning split, evaluated on "
             "the validation split only). Chosen: the best rate per variant."]
    for v, row in chosen["table"].items():
        lines.append(f"#   {v}: " + ", ".join(f"{lr:g} -> {acc:.2f}" for lr, acc in sorted(row.items())))
    return store.write_text(path, "\n".join(lines) + "\n" + yaml.safe_dump({"lrs": chosen["lrs"]}, sort_keys=False))
