"""Numbers the report shows: accuracy per (task, method) over seeds, VTAB group means, each method's cost,
and each task's test size with the binomial noise of one accuracy."""
import statistics

from ..data.tasks import SUITES, VTAB_GROUPS, lookup
from ..errors import UserError
from .families import family_of, family_rank
from .stats import binomial_se


def summarize(results: list[dict]) -> dict:
    """{'tasks', 'methods' (ordered: family, then trainable parameters; static-merge rows last), 'cells':
    {(task, method): {mean, std, n}}, 'accs': {(task, method): {seed: accuracy}}, 'info': {method: cost and
    family}, 'failed', 'accuracy_of', 'suite'}."""
    ok = [r for r in results if r["status"] == "ok"]
    suite = ok[0]["config"]["suite"] if ok else None
    tasks = order_tasks(list(dict.fromkeys(r["task"] for r in ok)), suite)
    accs = {}
    for r in ok:
        by_seed = accs.setdefault((r["task"], r["method"]), {})
        if r["seed"] in by_seed:
            raise ValueError(f"two results for {r['task']} / {r['method']} / seed {r['seed']}")
        by_seed[r["seed"]] = r["accuracy"]
    info = {m: _info([r for r in ok if r["method"] == m]) for m in dict.fromkeys(r["method"] for r in ok)}
    methods = order_methods(info)
    cells = {(t, m): _mean_std(list(accs[(t, m)].values())) for t in tasks for m in methods if (t, m) in accs}
    return {"tasks": tasks, "methods": methods, "cells": cells, "accs": accs, "info": info,
            "failed": [r for r in results if r["status"] != "ok"],
            "accuracy_of": sorted({r["accuracy_of"] for r in ok}), "suite": suite}


def order_tasks(tasks: list, suite) -> list:
    """The suite's own order (VTAB: natural, specialized, structured); tasks it does not know after, as given."""
    order = list(SUITES.get(suite, {}))
    known = {t: order.index(info.name) for t in tasks if (info := lookup(suite, t))}
    return sorted(known, key=known.get) + [t for t in tasks if t not in known]


def _mean_std(values: list) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def _mean_or_none(values):
    return None if any(v is None for v in values) else statistics.fmean(values)


def _settings(rs: list[dict]) -> dict:
    """What tells a variant's runs apart from its method's other variants: rank and targets (its method's defaults
    filled in; None for a method without them) and learning rate ('1e-3', or '1e-3..3e-2' when tuned per task)."""
    import aurora_vision as av

    from ..run.tensorboard import method_config

    def joined(values) -> str | None:
        values = [v for v in dict.fromkeys(values) if v is not None]
        return "/".join(values) if values else None

    configs = [method_config(r["config"]["method"]) if r["config"]["method"]["name"] in av.list_methods()
               else r["config"]["method"]["config"] for r in rs]  # a custom runner's method: as recorded
    rates = sorted({r["config"]["train"]["lr"] for r in rs})
    targets = [c.get("targets") for c in configs]
    return {"rank": joined(str(c["r"]) if "r" in c else None for c in configs),
            "targets": joined(",".join(t) if isinstance(t, list) else t for t in targets),
            "lr": f"{rates[0]:g}" if len(rates) == 1 else f"{rates[0]:g}..{rates[-1]:g}"}


def _info(rs: list[dict]) -> dict:
    p = rs[0]["params"]
    return {**_settings(rs), "params_wo_head": p["trainable"] - p["head"],
            "trainable": statistics.fmean(r["params"]["trainable"] for r in rs),
            "gmacs": _mean_or_none([r["gmacs_per_image"] for r in rs]),
            "uncounted_ops": sorted({op for r in rs for op in r.get("uncounted_ops", {})}),
            "train_img_per_s": _mean_or_none([r["train_img_per_s"] for r in rs]),
            "device_shared_by": max(r.get("device_shared_by", 1) for r in rs),
            "family": family_of(rs[0]["config"]["method"]["name"]),
            "static_merge_of": rs[0].get("static_merge_of")}


def order_methods(info: dict) -> list:
    """References and adapters by family (families.FAMILIES), then by trainable parameters; each static-merge
    row after the others, in its unmerged method's place."""
    plain = sorted((m for m, i in info.items() if not i["static_merge_of"]),
                   key=lambda m: (family_rank(info[m]["family"]), info[m]["trainable"], m))
    static = sorted((m for m, i in info.items() if i["static_merge_of"]),
                    key=lambda m: plain.index(info[m]["static_merge_of"]) if info[m]["static_merge_of"] in plain else 0)
    return plain + static


def aggregate(values: dict, suite) -> dict:
    """{task: accuracy} -> task mean and, for VTAB tasks, group means and their mean; None where a task is
    missing (None)."""
    out = {"task_mean": _mean_or_none(list(values.values())) if values else None}
    groups = {}
    for t, v in values.items():
        info = lookup("vtab", t) if suite == "vtab" else None
        if info:
            groups.setdefault(info.group, []).append(v)
    for g in VTAB_GROUPS:
        if g in groups:
            out[g] = _mean_or_none(groups[g])
    present = [out[g] for g in VTAB_GROUPS if g in out]
    if present:
        out["mean_of_groups"] = _mean_or_none(present)
    return out


def averages(summary: dict, method: str) -> dict:
    """Task mean and, for VTAB tasks, group means and their mean, of the seed means; None where a task is missing."""
    return aggregate({t: summary["cells"].get((t, method), {}).get("mean") for t in summary["tasks"]}, summary["suite"])


def _ratio(a, b):
    return None if a is None or not b else a / b


def compare(summary: dict, method: str, ref: str) -> dict | None:
    """method vs ref: 'task_mean_diff', the difference of their task means (each task's mean over all its
    seeds, unpaired) on the tasks both have, and parameter / MAC ratios. Not the paired mean difference of
    stats.paired_comparison, which is over the (task, seed) runs both have."""
    if ref not in summary["info"]:
        return None
    both = [t for t in summary["tasks"] if (t, method) in summary["cells"] and (t, ref) in summary["cells"]]
    if not both:
        return None
    delta = statistics.fmean(summary["cells"][(t, method)]["mean"] - summary["cells"][(t, ref)]["mean"] for t in both)
    a, b = summary["info"][method], summary["info"][ref]
    return {"task_mean_diff": delta, "param_ratio": _ratio(a["trainable"], b["trainable"]),
            "mac_ratio": _ratio(a["gmacs"], b["gmacs"])}


def task_info(summary: dict, results: list[dict]) -> dict:
    """{task: {'group' (VTAB; None elsewhere), 'num_eval': test images (None if unrecorded), 'mean_accuracy'
    over the methods (static-merge rows left out), 'binomial_se' of one accuracy at that mean and size,
    'test_label'}}."""
    out = {}
    for t in summary["tasks"]:
        sizes = list({r.get("num_eval") for r in results if r["status"] == "ok" and r["task"] == t})
        if len(sizes) > 1:
            raise UserError(f"{t}: results evaluated on different test sizes ({', '.join(map(str, sizes))}; None: "
                            "not recorded): one binomial SE would not fit them; report them from separate folders")
        n = sizes[0]
        means = [summary["cells"][(t, m)]["mean"] for m in summary["methods"]
                 if (t, m) in summary["cells"] and not summary["info"][m]["static_merge_of"]]
        p = statistics.fmean(means)
        se = binomial_se(p, n) if n else None
        group = info.group if summary["suite"] == "vtab" and (info := lookup("vtab", t)) else None
        out[t] = {"group": group, "num_eval": n, "mean_accuracy": p, "binomial_se": se,
                  "test_label": f"n={n}, SE {se:.2f} pt" if n else "test size not recorded"}
    return out
