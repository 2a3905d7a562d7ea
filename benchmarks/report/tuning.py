"""The report's "Tuning (validation split)" section: for each rates file `aurora-bench tune` wrote for the
sweep (lrs-<name>.yaml in the results folder, in <results>-tune/, or in the -tune folder of an output its
sweep configs name), per variant (and task, with tune.per_task): the grid, the validation accuracy at each
rate (mean ± std over tuning seeds), the chosen rate and whether it lies on an edge of its grid. Read from
the tuning runs' records and the tuning config tune left beside them (sweep-<name>-tune.yaml)."""
from pathlib import Path

import yaml

from ..tuning_runs import rate_summary, read_tuning_runs
from .markdown import table


def rates_files(results_dir) -> list[Path]:
    results_dir = Path(results_dir)
    folders = [results_dir, results_dir.with_name(results_dir.name + "-tune")]
    for sweep_file in sorted(results_dir.glob("sweep-*.yaml")):
        output = (yaml.safe_load(sweep_file.read_text()) or {}).get("output")
        if output:
            folders.append(Path(f"{output}-tune"))
    found = {p.resolve(): p for f in folders if f.is_dir() for p in sorted(f.glob("lrs-*.yaml"))}
    return [p for p in found.values() if _tuning_config_path(p).is_file()]


def _tuning_config_path(rates_path: Path) -> Path:
    return rates_path.with_name(f"sweep-{rates_path.stem.removeprefix('lrs-')}-tune.yaml")


def tuning_rows(rates_path: Path) -> list[dict]:
    """A row per (variant, task or 'all', rate) with the validation accuracy over the tuning seeds, read and
    summarised as tune chose (tuning_runs.py): the runs on file, finished or not."""
    tuned = yaml.safe_load(_tuning_config_path(rates_path).read_text())
    chosen = (yaml.safe_load(rates_path.read_text()) or {}).get("lrs") or {}
    per_task = bool((tuned.get("tune") or {}).get("per_task"))
    tasks, seeds = tuned["tasks"], tuned["seeds"]
    rows = []
    accuracies, _ = read_tuning_runs(tuned, rates_path.parent)
    for v, rates in accuracies.items():
        grid = sorted(rates)
        for task in (tasks if per_task else [None]):
            best = chosen.get(v, {}).get(task) if per_task and isinstance(chosen.get(v), dict) else chosen.get(v)
            for lr in grid:
                cell = rate_summary(rates[lr], [task] if task else tasks, seeds)
                rows.append({"rates_file": str(rates_path), "variant": v, "task": task or "all", "lr": lr,
                             **{k: cell[k] for k in ("mean", "spread", "seeds", "runs", "expected_runs")},
                             "chosen": best is not None and float(best) == lr,
                             "at_edge": best is not None and len(grid) > 1 and float(best) in (grid[0], grid[-1])})
    return rows


def tuning_section(tables: dict) -> list:
    """tables: {rates file: tuning_rows(file)}; markdown lines (none without a rates file)."""
    if not tables:
        return []
    lines = ["## Tuning (validation split)", "",
             "Learning rates chosen by `aurora-bench tune` on validation data only: each rate trained on the tuning "
             "split and evaluated on the validation split; accuracy (%) is the mean over the tuning tasks (one task "
             "per row with tune.per_task) and seeds, ± the std over tuning seeds of that mean. **Bold**: the chosen "
             "rate. `edge`: the chosen rate lies on an edge of its grid, after the rates tune.extend added, so the "
             "optimum may lie further out; `one rate`: a grid of one rate, so nothing was compared. `(k/n runs)`: a "
             "rate with unfinished tuning runs."]
    for path, rows in tables.items():
        lines += ["", f"From `{path}`:", ""]
        by_cell = {}
        for r in rows:
            by_cell.setdefault((r["variant"], r["task"]), []).append(r)
        body = [[v, t, " ".join(f"{lr['lr']:g}" for lr in rs), ", ".join(map(_value, rs)),
                 next((f"{lr['lr']:g}" for lr in rs if lr["chosen"]), "–"),
                 "edge" if any(lr["at_edge"] for lr in rs) else "one rate" if len(rs) == 1 else ""]
                for (v, t), rs in by_cell.items()]
        header = ["variant", "task", "grid", "validation accuracy at each rate", "chosen", "edge"]
        lines += table(header, body)
    return lines


def _value(row: dict) -> str:
    if row["mean"] is None:
        return f"{row['lr']:g}: –"
    text = f"{row['lr']:g}: {row['mean']:.1f}" + (f" ± {row['spread']:.1f}" if row["spread"] is not None else "")
    if row["runs"] < row["expected_runs"]:
        text += f" ({row['runs']}/{row['expected_runs']} runs)"
    return f"**{text}**" if row["chosen"] else text
