"""Tables and a plot from result JSONs alone: accuracy per task and VTAB group, trainable parameters,
GMACs, and each method against LoRA and full fine-tuning; the accuracy-vs-parameters Pareto plot."""
import csv
import json
import statistics
from pathlib import Path

from . import store
from .data.tasks import VTAB_GROUPS, lookup


def load_results(results_dir) -> list[dict]:
    """Result records; an AuroRA run's static-merge (and calibrated-merge) accuracy becomes a row
    '<method> (static merge)' ('<method> (calibrated merge)')."""
    paths = sorted(Path(results_dir).glob("runs/*.json"))
    if not paths:
        raise FileNotFoundError(f"no result files under {Path(results_dir) / 'runs'}; run a sweep first")
    results = store.load_all(results_dir)  # valid records; a bad file is quarantined with a warning
    merged = [{**r, "method": f"{r['method']} ({form} merge)", "accuracy": r[f"accuracy_{form}_merge"]}
              for form in ("static", "calibrated") for r in results if r.get(f"accuracy_{form}_merge") is not None]
    return results + merged


def _mean_std(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: list[dict]) -> dict:
    """{'tasks', 'methods', 'cells': {(task, method): {...}}, 'methods_info': {method: {...}}, 'failed': [...]}"""
    ok = [r for r in results if r["status"] == "ok"]
    tasks = list(dict.fromkeys(r["task"] for r in ok))
    methods = list(dict.fromkeys(r["method"] for r in ok))
    cells = {}
    for t in tasks:
        for m in methods:
            accs = [r["accuracy"] for r in ok if r["task"] == t and r["method"] == m]
            if accs:
                mean, std = _mean_std(accs)
                cells[(t, m)] = {"mean": mean, "std": std, "n": len(accs)}
    info = {}
    for m in methods:
        rs = [r for r in ok if r["method"] == m]
        p = rs[0]["params"]
        info[m] = {"params_wo_head": p["trainable"] - p["head"], "trainable": statistics.fmean(
            r["params"]["trainable"] for r in rs), "gmacs": statistics.fmean(r["gmacs_per_image"] for r in rs),
            "uncounted_ops": sorted({op for r in rs for op in r.get("uncounted_ops", {})}),
            "train_img_per_s": statistics.fmean(r["train_img_per_s"] for r in rs),
            "device_shared_by": max(r.get("device_shared_by", 1) for r in rs)}
    failed = [r for r in results if r["status"] != "ok"]
    return {"tasks": tasks, "methods": methods, "cells": cells, "info": info, "failed": failed,
            "accuracy_of": sorted({r["accuracy_of"] for r in ok}),
            "suite": ok[0]["config"]["suite"] if ok else None}


def averages(summary: dict, method: str) -> dict:
    """Task mean and, for VTAB tasks, group means and their mean; None where a task is missing."""
    cells, tasks = summary["cells"], summary["tasks"]
    values = [cells.get((t, method), {}).get("mean") for t in tasks]
    out = {"task_mean": statistics.fmean(values) if values and None not in values else None}
    groups = {}
    for t, v in zip(tasks, values):
        info = lookup("vtab", t) if summary["suite"] == "vtab" else None
        if info:
            groups.setdefault(info.group, []).append(v)
    for g in VTAB_GROUPS:
        if g in groups:
            out[g] = statistics.fmean(groups[g]) if None not in groups[g] else None
    present = [out[g] for g in VTAB_GROUPS if g in out]
    if present:
        out["mean_of_groups"] = statistics.fmean(present) if None not in present else None
    return out


def _cell(c) -> str:
    if not c:
        return "–"
    return f"{c['mean']:.1f} ± {c['std']:.1f} (n={c['n']})" if c["n"] > 1 else f"{c['mean']:.1f} (n=1)"


def _fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def _ratio(a, b):
    return None if not b else a / b


def compare(summary: dict, method: str, ref: str) -> dict | None:
    """Mean accuracy difference over the tasks both have, and parameter / MAC ratios, of method vs ref."""
    if ref not in summary["info"]:
        return None
    both = [t for t in summary["tasks"] if (t, method) in summary["cells"] and (t, ref) in summary["cells"]]
    if not both:
        return None
    delta = statistics.fmean(summary["cells"][(t, method)]["mean"] - summary["cells"][(t, ref)]["mean"] for t in both)
    a, b = summary["info"][method], summary["info"][ref]
    return {"delta_acc": delta, "param_ratio": _ratio(a["trainable"], b["trainable"]),
            "mac_ratio": _ratio(a["gmacs"], b["gmacs"])}


def pareto(points: dict) -> set:
    """Methods no other method beats on both fewer trainable parameters and higher accuracy."""
    front = set()
    for m, (p, a) in points.items():
        if not any((p2 <= p and a2 >= a) and (p2 < p or a2 > a) for m2, (p2, a2) in points.items() if m2 != m):
            front.add(m)
    return front


def write_report(results_dir, lora: str = "lora", full: str = "full") -> Path:
    """report.md, per_task.csv, methods.csv and pareto.png in results_dir; the plot also to TensorBoard."""
    results_dir = Path(results_dir)
    s = summarize(load_results(results_dir))
    if not s["methods"]:
        raise ValueError(f"no successful runs under {results_dir}; failed: {[r['error'] for r in s['failed']]}")
    avgs = {m: averages(s, m) for m in s["methods"]}
    avg_cols = [k for k in ["natural", "specialized", "structured", "mean_of_groups", "task_mean"]
                if any(k in a for a in avgs.values())]
    lines = [f"# Results: {results_dir.name}", "",
             "Accuracy (%): mean ± std over seeds of the final-epoch accuracy on each run's evaluation split "
             f"({'; '.join(s['accuracy_of'])}). Group means and `mean_of_groups` (the mean of the VTAB group means) and "
             "`task_mean` (the plain mean over tasks) use the seed means.", "",
             "| method | " + " | ".join(s["tasks"] + avg_cols) + " |", "|---" * (1 + len(s["tasks"]) + len(avg_cols)) + "|"]
    for m in s["methods"]:
        row = [_cell(s["cells"].get((t, m))) for t in s["tasks"]]
        lines.append(f"| {m} | " + " | ".join(row + [_fmt(avgs[m].get(k)) for k in avg_cols]) + " |")
    lines += ["", "Cost and comparison. Trainable parameters include the head (mean over tasks); `w/o head` is "
              "what the method adds or unfreezes. GMACs per image at inference (fvcore, 1 multiply-add = 1, "
              "SDPA and the AuroRA nonlinearity counted). Δ acc is the mean over shared tasks of the accuracy "
              f"difference; ratios are of trainable parameters and of GMACs. References: `{lora}` and `{full}`.", "",
              "| method | trainable | w/o head | GMACs | train img/s | Δ acc vs LoRA | params vs LoRA | GMACs vs LoRA "
              "| Δ acc vs full | params vs full | GMACs vs full |", "|---" * 11 + "|"]
    rows = []
    for m in s["methods"]:
        i = s["info"][m]
        cl, cf = compare(s, m, lora), compare(s, m, full)
        cmp_cells = []
        for c in (cl, cf):
            cmp_cells += ([f"{c['delta_acc']:+.2f}", f"{c['param_ratio']:.3g}x", f"{c['mac_ratio']:.4f}x"]
                          if c else ["–"] * 3)
        lines.append(f"| {m} | {i['trainable']:,.0f} | {i['params_wo_head']:,} | {i['gmacs']:.4f} | "
                     f"{i['train_img_per_s']:.0f} | " + " | ".join(cmp_cells) + " |")
        rows.append({"method": m, **{k: v for k, v in i.items() if k != "uncounted_ops"}, **avgs[m],
                     **{f"vs_{lora}_{k}": v for k, v in (cl or {}).items()},
                     **{f"vs_{full}_{k}": v for k, v in (cf or {}).items()}})
    shared = max(i["device_shared_by"] for i in s["info"].values())
    if shared > 1:
        lines += ["", f"Train img/s: up to {shared} runs shared one GPU at a time (parallel sweep workers), so "
                  "these are rates on a shared device, not a method's speed; benchmarks/perf/speed.py measures that."]
    uncounted = sorted({op for i in s["info"].values() for op in i["uncounted_ops"]})
    lines += ["", f"Ops fvcore left uncounted (elementwise outside AuroRA's nonlinearity): {', '.join(uncounted) or 'none'}."]
    if s["failed"]:
        lines += ["", "## Failed runs", ""] + [f"- {r['task']} / {r['method']} / seed {r['seed']}: {r['error']}"
                                               for r in s["failed"]]
    lines += ["", "![accuracy vs trainable parameters](pareto.png)", ""]
    key, points, left_out = plot_points(s, avgs)
    if left_out:
        lines += [f"Not in the plot (run on fewer of the plotted tasks): {', '.join(left_out)}.", ""]
    (results_dir / "report.md").write_text("\n".join(lines))
    _write_csv(results_dir / "methods.csv", rows)
    _write_csv(results_dir / "per_task.csv", [{"task": t, "method": m, **c} for (t, m), c in s["cells"].items()])
    _plot(key, points, results_dir / "pareto.png", results_dir / "tb" / "report")
    return results_dir / "report.md"


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def plot_points(s: dict, avgs: dict) -> tuple[str, dict, list]:
    """(y-axis name, {method: (trainable params, accuracy)}, methods left out). With every task done for every
    method: the VTAB mean of groups or the task mean. Otherwise (an unfinished sweep, or a rank sweep sharing
    the folder on fewer tasks) the mean over the task set that covers the most (task, method) cells, ties to
    the set more methods have: no method is favoured by tasks others lack, and the rest are listed."""
    has = {m: {t for t in s["tasks"] if (t, m) in s["cells"]} for m in s["methods"]}
    candidates = [frozenset(s["tasks"])] + [frozenset(ts) for ts in has.values() if ts]
    members = lambda ts: [m for m in s["methods"] if ts <= has[m]]
    tasks = max(candidates, key=lambda ts: (len(ts) * len(members(ts)), len(members(ts))))
    inside = members(tasks)
    left_out = [m for m in s["methods"] if m not in inside]
    if len(tasks) < len(s["tasks"]):
        common = [t for t in s["tasks"] if t in tasks]
        points = {m: (s["info"][m]["trainable"], statistics.fmean(s["cells"][(t, m)]["mean"] for t in common))
                  for m in inside}
        return f"mean of {len(common)}/{len(s['tasks'])} tasks", points, left_out
    key = "mean_of_groups" if any(avgs[m].get("mean_of_groups") is not None for m in inside) else "task_mean"
    points = {m: (s["info"][m]["trainable"], avgs[m][key]) for m in inside if avgs[m].get(key) is not None}
    return key, points, left_out


def _plot(key: str, points: dict, path: Path, tb_dir: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto(points)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for m, (p, a) in points.items():
        ax.scatter(p, a, s=60, marker="*" if m in front else "o", color="C3" if m in front else "C0", zorder=3)
        ax.annotate(m, (p, a), textcoords="offset points", xytext=(5, 5), fontsize=8)
    fp = sorted(points[m] for m in front)
    if len(fp) > 1:
        ax.plot(*zip(*fp), color="C3", lw=1, ls="--", label="Pareto front")
        ax.legend(loc="best", fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.12)
    ax.set_xlabel("trainable parameters (incl. head, log scale)")
    ax.set_ylabel(f"accuracy (%), {key.replace('_', ' ')}")
    ax.set_title(f"{path.parent.name}: accuracy vs trainable parameters", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(tb_dir)) as w:
        w.add_figure("report/accuracy_vs_params", fig)
    plt.close(fig)
