"""The one reader of tuning runs, for tune's choice (tune.py) and the report's tuning table (report/tuning.py),
so the two cannot give different numbers: a tuning config names each (variant, rate) run '<variant>_lr<rate>'
and gives it that rate in its method_overrides; the records of its tasks and seeds are grouped per variant
and rate (the ok runs' accuracies, the failed runs' errors), and summarised the way tune chooses by."""
import statistics

from . import store

# The error a run records when its training loss became NaN or inf (run/train.NonFiniteLoss, by name: reading
# records imports no torch).
DIVERGED = "NonFiniteLoss"


def tuning_name(variant: str, rate: float) -> str:
    """The variant name of `variant`'s tuning runs at `rate`."""
    return f"{variant}_lr{rate:g}"


def variant_and_rate(tuned: dict, name: str) -> tuple:
    """(variant, rate) of a tuning config's variant `name` ('<variant>_lr<rate>'): the rate is the one the
    config trains it at."""
    return name.rsplit("_lr", 1)[0], float(tuned["method_overrides"][name]["train"]["lr"])


def read_tuning_runs(tuned: dict, results_dir) -> tuple[dict, dict]:
    """({variant: {rate: {(task, seed): validation accuracy}}} of the ok runs, the same of their errors for the
    failed runs) for every rate of each variant's grid in the tuning config `tuned` (a rate with no such run: {}),
    from the runs of its tasks and seeds: one read of the records for both."""
    of = {name: variant_and_rate(tuned, name) for name in tuned["methods"]}
    accuracies, errors = {}, {}
    for v, lr in of.values():
        accuracies.setdefault(v, {})[lr] = {}
        errors.setdefault(v, {})[lr] = {}
    for r in store.load_all(results_dir):
        if r["method"] in of and r["task"] in tuned["tasks"] and r["seed"] in tuned["seeds"]:
            v, lr = of[r["method"]]
            if r["status"] == "ok":
                accuracies[v][lr][(r["task"], r["seed"])] = r["accuracy"]
            else:
                errors[v][lr][(r["task"], r["seed"])] = r["error"]
    return accuracies, errors


def unfinished_state(errors: dict, accs: dict, tasks: list, seeds: list) -> str:
    """Why a rate does not compete, from its failed runs' errors and its ok runs' accuracies (as read_tuning_runs
    gives them): 'diverged' (a run's training loss became NaN or inf), 'failed' (a run failed otherwise), or
    'unfinished (k/n runs)'."""
    if any(e.startswith(DIVERGED) for e in errors.values()):
        return "diverged"
    if errors:
        return "failed"
    summary = rate_summary(accs, tasks, seeds)
    return f"unfinished ({summary['runs']}/{summary['expected_runs']} runs)"


def rate_summary(accs: dict, tasks: list, seeds: list) -> dict:
    """One rate over `tasks` and `seeds` ({(task, seed): accuracy} as read_tuning_runs gives): 'mean' over the
    runs on file (None: none), 'spread' the std over seeds of the mean over tasks (seeds with every task only;
    None under two such seeds), 'seeds' with every task, 'runs' on file, 'expected_runs', 'complete'."""
    per_seed = [statistics.fmean(accs[(t, s)] for t in tasks) for s in seeds if all((t, s) in accs for t in tasks)]
    values = [a for (t, s), a in accs.items() if t in tasks and s in seeds]
    expected = len(tasks) * len(seeds)
    return {"mean": statistics.fmean(values) if values else None,
            "spread": statistics.stdev(per_seed) if len(per_seed) > 1 else None,
            "seeds": len(per_seed), "runs": len(values), "expected_runs": expected, "complete": len(values) == expected}
