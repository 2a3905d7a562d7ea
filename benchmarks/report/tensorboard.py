"""The report's TensorBoard runs, beside the training runs (tb/runs/...) and apart from them:

    tb/report             the figures, the HParams experiment and the custom-scalars layout
    tb/methods/<variant>  the method's mean, min and max over seeds of each curve, per task and epoch

The layout draws each (task, curve) as a margin chart on the Custom Scalars page: a line (the mean) and a band
(min to max over seeds) per method, one colour per method. The series come from the result records' curves, not
from event files, so runs made on Ray or Slurm nodes count too; they sit under their own tags (over_seeds/...),
so the scalars page's training charts keep the training runs alone."""
import statistics
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from ..run.tensorboard import EVENTS, experiment_summary, start_fresh

# curve name -> (the record's curve key, chart title)
CURVES = {"eval_accuracy": ("accuracy", "eval accuracy (%)"), "train_loss": ("loss", "train loss")}
STATS = ("mean", "min", "max")


def tag(task: str, curve: str, stat: str) -> str:
    return f"over_seeds/{task}/{curve}/{stat}"


def seed_bands(records: list[dict]) -> dict:
    """{variant: {task: {curve: [(epoch, mean, min, max)]}}} over the seeds of each (method, task), at the
    epochs every seed's curve has; from the ok training runs (a merged form has no curve of its own). Every
    record the runner writes has its curve; a (method, task) with a seed lacking one (a record made by hand)
    gets no series rather than a mean over fewer seeds."""
    runs = {}
    for r in records:
        if r["status"] == "ok" and not r.get("static_merge_of"):
            runs.setdefault((r["method"], r["task"]), []).append(r.get("curve"))
    bands = {}
    for (variant, task), curves in runs.items():
        if None in curves:
            continue
        bands.setdefault(variant, {})[task] = {name: _band(curves, key) for name, (key, _) in CURVES.items()}
    return bands


def _band(curves: list, key: str) -> list:
    per_seed = [{p["epoch"]: p[key] for p in curve if key in p} for curve in curves]
    epochs = sorted(set.intersection(*(set(values) for values in per_seed)))
    band = []
    for e in epochs:
        values = [seed[e] for seed in per_seed]
        band.append((e, statistics.fmean(values), min(values), max(values)))
    return band


def layout(tasks: list) -> dict:
    """add_custom_scalars' layout: a category per task, titled by it, with a margin chart per curve. Tasks are
    categories, not charts, because the Custom Scalars page (TensorBoard 2.21) draws a category's margin charts in
    reverse order, and categories in order: the suite's task order survives (within a task, loss comes first)."""
    return {f"{task}: mean over seeds, band from min to max": {
                title: ["Margin", [tag(task, curve, stat) for stat in STATS]] for curve, (_, title) in CURVES.items()}
            for task in tasks}


def write_method_runs(tb_dir, bands: dict) -> None:
    """tb/methods/<variant>, each the only event file in its folder; a method no longer in the results loses its
    events."""
    for old in (Path(tb_dir) / "methods").glob(f"*/{EVENTS}"):
        old.unlink()
    for variant, by_task in bands.items():
        with SummaryWriter(str(Path(tb_dir) / "methods" / variant)) as w:
            for task, by_curve in by_task.items():
                for curve, points in by_curve.items():
                    for epoch, *values in points:
                        for stat, value in zip(STATS, values):
                            w.add_scalar(tag(task, curve, stat), value, epoch)


def write_tensorboard(tb_dir, figures: dict, records: list[dict], tasks: list) -> Path:
    """The report's runs in tb_dir (<results>/tb): figures, HParams experiment and layout as the only event file
    in tb/report, and the methods' series over seeds; tasks in the report's order, charted where some method
    has a series."""
    bands = seed_bands(records)
    write_method_runs(tb_dir, bands)
    charted = [t for t in tasks if any(t in by_task for by_task in bands.values())]
    report = start_fresh(Path(tb_dir) / "report")
    with SummaryWriter(str(report)) as w:
        for name, fig in figures.items():
            w.add_figure(name, fig, close=False)
        w._get_file_writer().add_summary(experiment_summary(records))
        if charted:
            w.add_custom_scalars(layout(charted))
    return report
