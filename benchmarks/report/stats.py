"""Paired comparisons of two methods on the same (task, seed) runs: the mean difference with a bootstrap
interval, a Wilcoxon signed-rank test across tasks, and the binomial noise of one accuracy."""
import math

import numpy as np
from scipy.stats import wilcoxon

RESAMPLES = 10_000
LEVEL = 0.95
# Below this many pairs a bootstrap interval is about the range of the differences themselves: too narrow.
FEW_PAIRS = 10


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error (percentage points) of one accuracy measured on n test images: sqrt(p(1-p)/n)."""
    p = accuracy / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / n)


def paired_differences(accs: dict, method: str, ref: str) -> dict:
    """{(task, seed): accuracy of method - accuracy of ref} over the runs both have; accs maps
    (task, method) -> {seed: accuracy}."""
    out = {}
    for (task, m), by_seed in accs.items():
        if m != method or (task, ref) not in accs:
            continue
        for seed, a in by_seed.items():
            if seed in accs[(task, ref)]:
                out[(task, seed)] = a - accs[(task, ref)][seed]
    return out


def bootstrap_interval(diffs, tasks=None, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL):
    """Percentile interval of the mean of `diffs`, resampling the pairs with replacement within each task
    (`tasks`: each pair's task; None: one task), so that each task keeps its number of pairs. The interval is
    then about seed noise on these tasks: the spread between tasks is not noise, and the Wilcoxon test across
    tasks speaks to it. Each task's differences are widened about their mean by sqrt(n/(n-1)), so that its
    resampled mean has the unbiased variance s²/n (a plain bootstrap of 3 seeds gives 2/3 of it). None for
    fewer than 2 pairs (one pair has no spread to resample)."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return None
    labels = np.asarray(tasks if tasks is not None else [0] * len(d))
    rng = np.random.default_rng(seed)  # seeded: the same results give the same report
    sums = np.zeros(resamples)
    for task in dict.fromkeys(labels.tolist()):
        x = d[labels == task]
        if len(x) > 1:
            x = x.mean() + (x - x.mean()) * math.sqrt(len(x) / (len(x) - 1))
        sums += x[rng.integers(0, len(x), size=(resamples, len(x)))].sum(axis=1)
    lo, hi = np.percentile(sums / len(d), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def wilcoxon_p(task_diffs):
    """Two-sided Wilcoxon signed-rank p over per-task mean differences; None for fewer than 2 tasks.
    With n tasks the smallest p it can give is 2 / 2**n (0.0625 at 5 tasks)."""
    d = np.asarray(task_diffs, dtype=float)
    if len(d) < 2:
        return None
    if not d.any():  # every task tied: nothing to rank (scipy divides by zero here)
        return 1.0
    return float(wilcoxon(d).pvalue)


def paired_comparison(accs: dict, method: str, ref: str) -> dict | None:
    """method vs ref over the (task, seed) pairs both ran: pairs, tasks, the mean paired difference, its bootstrap
    interval, the Wilcoxon p across tasks and a verdict; None when they share no pair."""
    diffs = paired_differences(accs, method, ref)
    if not diffs:
        return None
    tasks = list(dict.fromkeys(t for t, _ in diffs))
    per_task = [float(np.mean([d for (t, _), d in diffs.items() if t == task])) for task in tasks]
    interval = bootstrap_interval(list(diffs.values()), [t for t, _ in diffs])
    return {"pairs": len(diffs), "tasks": len(tasks), "paired_mean_diff": float(np.mean(list(diffs.values()))),
            "ci_low": interval[0] if interval else None, "ci_high": interval[1] if interval else None,
            "wilcoxon_p": wilcoxon_p(per_task), "verdict": verdict(interval, len(diffs))}


def verdict(interval, pairs: int) -> str:
    if interval is None:
        return "one pair: no interval"
    lo, hi = interval
    word = "within noise" if lo <= 0 <= hi else "better" if lo > 0 else "worse"
    return word if pairs >= FEW_PAIRS else f"{word} (few pairs)"
