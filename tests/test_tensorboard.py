"""TensorBoard output of a sweep and its report, read back with TensorBoard's own reader: the training runs under
tb/runs carry their curves alone, the merged forms and the report sit in runs of their own, and the per-method
margin charts draw each method's mean, min and max over seeds of the training runs' values."""
import statistics
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata as custom_scalars

from aurora_bench import store
from aurora_bench.config import resolve_run
from aurora_bench.report import write_report
from aurora_bench.report.tensorboard import CURVES, STATS, tag
from aurora_bench.sweep import sweep

from fixtures import tiny_cfg

TRAINING_TAGS = {"train/loss", "train/lr", "train/img_per_s", "eval/accuracy"}
METHODS, SEEDS = ("linear", "aurora"), (0, 1)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny sweep (2 methods x 2 seeds, 2 epochs) and its report."""
    cfg = tiny_cfg(tmp_path_factory.mktemp("tb"), methods=list(METHODS), seeds=list(SEEDS))
    assert sweep(cfg, quiet=True)["ok"] == len(METHODS) * len(SEEDS)
    write_report(cfg["output"])
    return cfg


def events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def run_dirs(cfg) -> dict:
    return {(m, s): store.logdir(cfg["output"], resolve_run(cfg, "mytask", m, s)) for m in METHODS for s in SEEDS}


def test_training_runs_hold_their_curves_alone(swept):
    tb = Path(swept["output"]) / "tb"
    for folder in run_dirs(swept).values():
        acc = events(folder)
        assert set(acc.Tags()["scalars"]) == TRAINING_TAGS and not acc.Tags()["images"]
    # AuroRA's static merge in its run's `merged` sub-run, under its own tag; the linear probe has none
    assert set(events(run_dirs(swept)["aurora", 0] / "merged").Tags()["scalars"]) == {"merged/static_accuracy"}
    assert not (run_dirs(swept)["linear", 0] / "merged").exists()
    report = events(tb / "report")
    assert not report.Tags()["scalars"] and set(report.Tags()["images"]) == {
        "report/accuracy_vs_params", "report/accuracy_per_task"}
    assert sorted(p.name for p in (tb / "methods").iterdir()) == sorted(METHODS)


def test_report_lays_out_a_margin_chart_per_task_and_curve(swept):
    [event] = events(Path(swept["output"]) / "tb" / "report").Tensors(custom_scalars.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    [category] = layout.category  # one task
    assert category.title.startswith("mytask:")
    assert [chart.title for chart in category.chart] == [title for _, title in CURVES.values()]
    for chart, curve in zip(category.chart, CURVES):
        [series] = chart.margin.series
        assert (series.value, series.lower, series.upper) == tuple(tag("mytask", curve, s) for s in STATS)


def test_method_series_are_the_mean_min_and_max_over_seeds(swept):
    tb = Path(swept["output"]) / "tb"
    runs = {key: events(folder) for key, folder in run_dirs(swept).items()}
    for method in METHODS:
        series = events(tb / "methods" / method)
        for curve, training_tag in (("eval_accuracy", "eval/accuracy"), ("train_loss", "train/loss")):
            per_seed = [{e.step: e.value for e in runs[method, s].Scalars(training_tag)} for s in SEEDS]
            assert list(per_seed[0]) == [1, 2]  # eval_every 1: a point per epoch
            for stat, expected in (("mean", statistics.fmean), ("min", min), ("max", max)):
                got = {e.step: e.value for e in series.Scalars(tag("mytask", curve, stat))}
                assert got == pytest.approx({step: expected(s[step] for s in per_seed) for step in per_seed[0]},
                                            rel=1e-6)


def test_a_method_gone_from_the_results_leaves_no_series(tmp_path):
    from test_report import fake_result, write_results
    curve = [{"epoch": 1, "loss": 1.0, "accuracy": 40.0}, {"epoch": 2, "loss": 0.5, "accuracy": 50.0}]
    records = [fake_result("a", m, s, 50.0, p, curve=curve) for m, p in (("lora", 100), ("full", 1000)) for s in SEEDS]
    write_results(tmp_path, records)
    write_report(tmp_path)
    (tmp_path / "runs" / "a__full__seed0.json").unlink()
    (tmp_path / "runs" / "a__full__seed1.json").unlink()
    write_report(tmp_path)
    assert not list((tmp_path / "tb" / "methods" / "full").glob("events.*"))
    [events_file] = (tmp_path / "tb" / "methods" / "lora").glob("events.*")  # replaced, not added to
    assert [e.value for e in events(events_file.parent).Scalars(tag("a", "eval_accuracy", "max"))] == [40.0, 50.0]
