"""write_report: report.md, methods.csv, per_task.csv, comparisons.csv, pareto.png and per_task.png in a results
folder (and tuning.csv where tune's output lies beside it), and the report's TensorBoard runs (<results>/tb/report:
the figures, the HParams columns, the per-method charts; <results>/tb/methods: their series, tensorboard.py)."""
import csv
from pathlib import Path

from ..errors import UserError
from . import markdown as md
from .load import load_results, mixed_commits
from .plots import chance_level, pareto_figure, per_task_figure, plot_points
from .stats import paired_comparison
from .tables import averages, compare, summarize, task_info
from .tuning import rates_files, tuning_rows, tuning_section


def write_report(results_dir, lora: str = "lora", full: str = "full", baselines=()) -> Path:
    """lora and full name the LoRA and full fine-tuning references (skipped when absent); each of
    `baselines` is a further reference and must be in the results."""
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    s = summarize(results)
    if not s["methods"]:
        raise UserError(f"no successful runs under {results_dir} to report ({len(s['failed'])} failed, e.g. "
                        f"{s['failed'][0]['error']!r}); `aurora-bench sweep CONFIG --retry-failed` makes them "
                        "again, and a sweep whose config changed since (a corrected data.root, say) makes them "
                        "without it")
    unknown = [b for b in baselines if b not in s["info"]]
    if unknown:
        raise UserError(f"--baseline {', '.join(unknown)}: not in {results_dir}; methods there: {', '.join(s['methods'])}")
    avgs = {m: averages(s, m) for m in s["methods"]}
    tinfo = task_info(s, results)
    refs = {label: ref for label, ref in (("LoRA", lora), ("full", full)) if ref in s["info"]}
    refs.update({b: b for b in baselines})
    costs = {label: (ref, {m: compare(s, m, ref) for m in s["methods"]}) for label, ref in refs.items()}
    compared = [m for m in s["methods"] if not s["info"][m]["static_merge_of"]]  # near chance: nothing to test
    paired = {ref: {m: paired_comparison(s["accs"], m, ref) for m in compared if m != ref}
              for ref in dict.fromkeys(refs.values())}
    missing = [r for r in (lora, full) if r not in s["info"]]

    plot = plot_points(s, avgs)
    lines = [f"# Results: {results_dir.name}", ""] + md.accuracy_section(s, avgs)
    lines += md.commits_note(mixed_commits(results))
    lines += [""] + md.tasks_section(tinfo)
    lines += [""] + md.comparisons_section(s, paired, missing)
    lines += [""] + md.cost_section(s, costs)
    shared = max(i["device_shared_by"] for i in s["info"].values())
    if shared > 1:
        lines += ["", f"Train img/s: up to {shared} runs shared one GPU at a time (parallel sweep workers), so "
                  "these are rates on a shared device, not a method's speed; benchmarks/perf/speed.py measures that."]
    uncounted = sorted({op for i in s["info"].values() for op in i["uncounted_ops"]})
    lines += ["", f"Ops fvcore left uncounted (elementwise outside AuroRA's nonlinearity): {', '.join(uncounted) or 'none'}."]
    tuning = {p: tuning_rows(p) for p in rates_files(results_dir)}  # the tune output beside the results
    if tuning:
        lines += [""] + tuning_section(tuning)
    if s["failed"]:
        lines += ["", "## Failed runs", ""] + [f"- {r['task']} / {r['method']} / seed {r['seed']}: {r['error']}"
                                               for r in s["failed"]]
    lines += ["", "## Plots", "", f"Accuracy ({plot.key.replace('_', ' ')}) against trainable parameters; bars: std "
              "over seeds of that mean; static-merge rows in the lower panel.", "",
              "![accuracy vs trainable parameters](pareto.png)", ""]
    if plot.left_out:
        lines += [f"Not in the plot (run on fewer of the plotted tasks): {', '.join(plot.left_out)}.", ""]
    lines += ["Accuracy per task: mean (marker), std over seeds (bar) and each seed (small circle); static-merge "
              "rows left out.", "", "![accuracy per task](per_task.png)", ""]
    (results_dir / "report.md").write_text("\n".join(lines))

    _write_csv(results_dir / "methods.csv", [
        {"method": m, **{k: v for k, v in s["info"][m].items() if k != "uncounted_ops"}, **avgs[m],
         **{f"vs_{ref}_{k}": v for ref, c in costs.values() for k, v in (c[m] or {}).items()}} for m in s["methods"]])
    _write_csv(results_dir / "per_task.csv", [{"task": t, "method": m, **c} for (t, m), c in s["cells"].items()])
    _write_csv(results_dir / "comparisons.csv", [{"method": m, "reference": ref, **c} for ref, by in paired.items()
                                                 for m, c in by.items() if c])
    if tuning:
        _write_csv(results_dir / "tuning.csv", [r for rows in tuning.values() for r in rows])
    _figures(results_dir, s, plot, tinfo, results)
    return results_dir / "report.md"


def _figures(results_dir: Path, s: dict, plot, tinfo: dict, results: list) -> None:
    import matplotlib.pyplot as plt

    from .tensorboard import write_tensorboard

    chance = chance_level(results, plot.tasks)
    figures = {"report/accuracy_vs_params": pareto_figure(
                   s, plot.key, plot.points, chance, f"{results_dir.name}: accuracy vs trainable parameters"),
               "report/accuracy_per_task": per_task_figure(s, tinfo, f"{results_dir.name}: accuracy per task")}
    for fig, name in zip(figures.values(), ("pareto.png", "per_task.png")):
        fig.savefig(results_dir / name)
    write_tensorboard(results_dir / "tb", figures, results, s["tasks"])
    for fig in figures.values():
        plt.close(fig)


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
