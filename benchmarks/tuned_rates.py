"""Whether a sweep's learning rates are the ones `aurora-bench tune` chose for it. Tune records, beside the
`lrs:` it writes, per variant what the rate was tuned for (`lrs_tuned:`): the tuning tasks and seeds, the
grid it ended with, the chosen rate and a fingerprint of the settings that decide the choice (the configured
grid; the tuning protocol; the model, data, train and method settings but the rate). With
`tune.require_rates` a sweep checks these against its own config before any run evaluated on a test split:
a rate tuned under other settings, or never tuned, would make the test numbers a tuning set. A rates file
from before tune recorded fingerprints is judged by its age against the config's files."""
import hashlib
import json
from pathlib import Path

from . import store
from .config import config_files, resolve_run
from .errors import UserError

# Settings that change how a run executes or what else it measures, not what rate suits it: changing one
# after tuning leaves the choice standing (store.comparable leaves out name, cache_dir, eval_every, device,
# compile).
NOT_TUNING = {"train": ("lr", "calibrated_merge", "eval_batch_size"),
              "data": ("train_split", "eval_split", "split_train", "split_eval")}


class UntunedRates(UserError):
    """tune.require_rates: a test run's rate is missing from, or stale in, the rates file tune wrote."""


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tuning_tasks(cfg: dict) -> list:
    return cfg["tune"]["tasks"] or cfg["tasks"]


def fingerprint(cfg: dict, variant: str) -> dict:
    """{'grid', 'protocol', 'recipe'}: short hashes of what decides `variant`'s tuned rate, kept apart so
    that a refusal can say which changed."""
    tune = cfg["tune"]
    grid = tune["lrs"].get(variant, tune["lrs"].get("default")) or []
    protocol = {"tasks": tuning_tasks(cfg), "seeds": tune["seeds"] or [0], "extend": tune["extend"],
                "per_task": tune["per_task"]}
    untuned = {**cfg, "lrs": {}}  # the recipe the rate is chosen for, not the rate
    recipes = []
    for task in tuning_tasks(cfg):
        run = store.comparable(resolve_run(untuned, task, variant, 0))
        for key in ("seed", "tuning"):
            run.pop(key, None)
        for section, keys in NOT_TUNING.items():
            for key in keys:
                run.get(section, {}).pop(key, None)
        recipes.append(run)
    return {"grid": _hash(sorted(float(r) for r in grid)), "protocol": _hash(protocol), "recipe": _hash(recipes)}


def tuned_record(cfg: dict, chosen: dict) -> dict:
    """The `lrs_tuned:` entry tune writes for each variant it chose a rate for."""
    tuned = chosen["tuned"]
    return {v: {"config": cfg["name"], "tasks": list(tuned["tasks"]), "seeds": list(tuned["seeds"]),
                "grid": list(chosen["grids"][v]), "rate": rate, "at_edge": v in chosen.get("at_edge", []),
                "fingerprint": fingerprint(cfg, v)}
            for v, rate in chosen["lrs"].items()}


def is_test_run(run: dict) -> bool:
    """Evaluated on another split than its validation split: what tune.require_rates guards."""
    return run["data"]["split_eval"] != run["data"]["tuning_eval_split"]


def tested_variants(runs: list) -> list:
    """The variants of the runs evaluated on a test split."""
    return list(dict.fromkeys(r["method"]["variant"] for r in runs if is_test_run(r)))


def require_tuned_rates(cfg: dict, config_path, runs: list) -> None:
    """With tune.require_rates, raise UntunedRates (one line: the file, what is missing or stale, the fix)
    unless every variant of the runs that evaluate on a test split has a rate tune chose for this config.
    `config_path` (None: a config built in code) locates the rates file among the config's includes."""
    variants = tested_variants(runs)
    if not cfg["tune"]["require_rates"] or not variants:
        return
    problems = rate_problems(cfg, config_path, runs)
    if problems:
        raise UntunedRates(refusal(cfg, config_path, problems))


def rate_problems(cfg: dict, config_path, runs: list) -> dict:
    """{rates file (or a description): [(variant, what is wrong, its fix)]} for the variants of the test-split
    runs without a sound rate; the fix is None where tune must run (a rate missing, stale or set by hand), else
    what to remove (a train.lr override above the tuned rate)."""
    variants = tested_variants(runs)
    files = config_files(config_path) if config_path else []
    rates_files = [p for p, data in files if Path(p) != Path(config_path) and _is_rates_file(data)]
    default = str(rates_files[-1]) if rates_files else "the config (it includes no rates file)"

    def source(key, variant):  # the last file that sets key.<variant>: the one the merged config took it from
        found = [p for p, data in files if variant in (data.get(key) or {})]
        return found[-1] if found else None

    tuned_methods = cfg["tune"]["methods"] or cfg["methods"]
    problems = {}
    for v in variants:
        record, lr = cfg["lrs_tuned"].get(v), cfg["lrs"].get(v)
        where = str(source("lrs", v) or source("lrs_tuned", v) or default)
        if v not in tuned_methods:
            problem = "not in tune.methods, so never tuned (add it)"
        elif lr is None:
            problem = "no rate (missing)"
        elif record is None:
            problem = _judged_by_age(v, source("lrs", v), config_path, files, rates_files)
        else:
            changed = [part for part, h in fingerprint(cfg, v).items() if (record.get("fingerprint") or {}).get(part) != h]
            problem = (f"tuned with another {'/'.join(changed)} than the config's (stale)" if changed else
                       "tuned on a grid of one rate, so nothing was compared (give tune.lrs two rates or more)"
                       if len(record.get("grid") or []) < 2 else
                       f"lrs.{v} = {lr} is not the rate tune chose ({record.get('rate')})" if lr != record.get("rate")
                       else None)
        if problem:
            problems.setdefault(where, []).append((v, problem, None))
        elif overridden := _overridden(cfg, v, lr, runs, files):
            problems.setdefault(where, []).append((v, *overridden))
    return problems


def _overridden(cfg: dict, variant: str, lr, runs: list, files: list):
    """A train.lr in method_overrides or task_overrides sits above `lrs:` (and the fingerprint leaves the rate
    out), so a test run can train at another rate than the one tune chose: compare the rate each run trains at.
    (what is wrong, the fix: the override to remove) or None."""
    for r in runs:
        if r["method"]["variant"] != variant or not is_test_run(r):
            continue
        chosen = lr.get(r["task"]) if isinstance(lr, dict) else lr
        if chosen is not None and float(r["train"]["lr"]) != float(chosen):
            # method_overrides merge over task_overrides: the variant's own rate is the one the run took
            key = f"method_overrides.{variant}" if _override_lr(cfg, "method_overrides", variant) is not None \
                else f"task_overrides.{r['task']}"
            setter = [p for p, data in files if _override_lr(data, *key.split(".", 1)) is not None]
            return (f"the {r['task']} run trains at {r['train']['lr']:g}, not at the rate tune chose "
                    f"({float(chosen):g}): {key} sets train.lr",
                    f"remove the train.lr override in {key}" + (f" ({setter[-1]})" if setter else ""))
    return None


def _override_lr(data: dict, section: str, name: str):
    return ((((data.get(section) or {}).get(name) or {}).get("train") or {})).get("lr")


def _is_rates_file(data: dict) -> bool:
    """What tune writes: `lrs:` (and `lrs_tuned:`) and nothing else. A config that also holds `lrs:` (say an
    empty one, to be filled) is no rates file: a rate set there is set by hand."""
    return "lrs" in data and set(data) <= {"lrs", "lrs_tuned"}


def _judged_by_age(variant: str, lrs_file, config_path, files: list, rates_files: list):
    """A rate without a tuning record: sound only when a rates file from before tune wrote records (one with no
    `lrs_tuned:`; a rate missing from a file that has them was added by hand) set it after the config's other
    files last changed."""
    if lrs_file is None or not config_path or Path(lrs_file) == Path(config_path) or lrs_file not in rates_files \
            or "lrs_tuned" in dict(files)[lrs_file]:
        return f"lrs.{variant} is set by hand, not by tune (no tuning record)"
    newest = max((p for p, _ in files if p not in rates_files), key=lambda p: p.stat().st_mtime)
    if Path(lrs_file).stat().st_mtime < newest.stat().st_mtime:
        return f"no tuning record and older than {newest} (stale)"
    return None


def _clauses(where: str, items: list) -> list:
    """'<where>: a, b: no rate (missing)' per problem: the variants that share a problem named together, each
    problem its own clause."""
    by_problem = {}
    for variant, problem, _ in items:
        by_problem.setdefault(problem, []).append(variant)
    return [f"{where}: {', '.join(vs)}: {problem}" for problem, vs in by_problem.items()]


def refusal(cfg: dict, config_path, problems: dict) -> str:
    """One line: each problem a clause ('; '), then the fixes they need: the overrides to remove, and
    `aurora-bench tune` for rates missing, stale or set by hand."""
    what = "; ".join(c for where, items in problems.items() for c in _clauses(where, items))
    removes = list(dict.fromkeys(fix for items in problems.values() for _, _, fix in items if fix))
    to_tune = [where for where, items in problems.items() if any(fix is None for _, _, fix in items)]
    fixes = removes
    if to_tune:
        write = f" --write {to_tune[0]}" if to_tune[0].endswith((".yaml", ".yml")) else \
            " --write <rates file> (then add it to include:)"
        fixes = fixes + [f"run `aurora-bench tune {config_path or '<config>'}{write}` first"]
    return (f"tune.require_rates refuses the test-split runs: {what}; {', and '.join(fixes)} "
            "(validation runs are never refused)")
