import csv
import json

import numpy as np
import pytest

from aurora_bench import store
from aurora_bench.errors import UserError
from aurora_bench.report import averages, load_results, pareto, plot_points, summarize, write_report
from aurora_bench.report.stats import binomial_se, bootstrap_interval, paired_comparison, wilcoxon_p

BASE = {"lora_r2": "lora", "peft-lora": "peft-lora", "dora": "dora"}


def fake_result(task, method, seed, acc, trainable, head=10, gmacs=1.0, suite="vtab", num_eval=1000, **extra):
    name = BASE.get(method, method)
    return {"status": "ok", "task": task, "method": method, "seed": seed, "accuracy": acc,
            "accuracy_of": "test split, final epoch (1)", "num_eval": num_eval, "num_classes": 10,
            "config": {"suite": suite, "task": task, "seed": seed, "model": {"name": "vit_tiny"},
                       "method": {"variant": method, "name": name, "config": {}},
                       "train": {"lr": 1e-3, "head_lr": None, "epochs": 1}},
            "params": {"trainable": trainable, "head": head}, "gmacs_per_image": gmacs, "uncounted_ops": {},
            "train_img_per_s": 100.0, **extra}


def write_results(folder, records):
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / "runs" / f"{r['task']}__{r['method']}__seed{r['seed']}.json").write_text(json.dumps(r))


def report_rows(text: str, heading: str) -> dict:
    """{first cell: [cells]} of the table under `heading` in report.md."""
    rows, inside = {}, False
    for line in text.splitlines():
        if line.startswith("#"):
            inside = line.strip() == heading
        elif inside and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_the_method_table_names_each_variants_rank_targets_and_rate(tmp_path):
    """'lora' and 'lora_r2' alone do not say what ran: the rows name rank and targets (the method's defaults filled
    in: AuroRA's r=2, qv) and the learning rate (a range where it was tuned per task); methods.csv holds them too."""
    records = [fake_result(t, m, 0, 70.0, p) for t in ("cifar", "dtd") for m, p in
               (("full", 100000), ("lora_r2", 600), ("aurora", 300))]
    for r in records:
        if r["method"] == "lora_r2":
            r["config"]["method"]["config"] = {"r": 2,
                                               "targets": ["blocks\\..*\\.attn\\.qkv", "blocks\\..*\\.mlp\\.fc1"]}
            r["config"]["train"]["lr"] = 3e-3 if r["task"] == "cifar" else 1e-2
    write_results(tmp_path, records)
    acc = report_rows(write_report(tmp_path).read_text(), "# Results: " + tmp_path.name)
    assert acc["method"][:3] == ["rank", "targets", "lr"]
    assert acc["full"][:3] == ["–", "–", "0.001"]
    assert acc["aurora"][:3] == ["2", "qv", "0.001"]
    assert acc["lora_r2"][:3] == ["2", "blocks\\..*\\.attn\\.qkv,blocks\\..*\\.mlp\\.fc1", "0.003..0.01"]
    with open(tmp_path / "methods.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert (rows["aurora"]["rank"], rows["aurora"]["targets"], rows["aurora"]["lr"]) == ("2", "qv", "0.001")


def test_report_from_result_files(tmp_path):
    rows = [("cifar", "lora", 0, 70.0, 1000, 1.1), ("cifar", "lora", 1, 72.0, 1000, 1.1),
            ("eurosat", "lora", 0, 90.0, 1000, 1.1), ("cifar", "full", 0, 75.0, 100000, 1.0),
            ("eurosat", "full", 0, 80.0, 100000, 1.0), ("cifar", "aurora", 0, 73.0, 300, 1.2),
            ("eurosat", "aurora", 0, 91.0, 300, 1.2)]
    records = [fake_result(t, m, s, a, p, gmacs=g, num_eval=400 if t == "cifar" else 2500) for t, m, s, a, p, g in rows]
    for r in records:
        if r["method"] == "aurora":
            r["accuracy_static_merge"] = r["accuracy"] - 2
    write_results(tmp_path, records)
    (tmp_path / "runs" / "cifar__bad__seed0.json").write_text(json.dumps(
        {"status": "failed", "config": {"suite": "vtab"}, "task": "cifar", "method": "bad", "seed": 0,
         "error": "NonFiniteLoss: nan"}))
    text = write_report(tmp_path).read_text()
    acc = report_rows(text, "# Results: " + tmp_path.name)
    assert list(acc) == ["method", "full", "lora", "aurora", "aurora (static merge)"]  # family order, static last
    assert acc["lora"][3:5] == ["71.0 ± 1.4 (n=2)", "90.0 (n=1)"]
    assert acc["aurora (static merge)"][3:5] == ["71.0 (n=1)", "89.0 (n=1)"]
    assert "group means" in text and "mean_of_groups" in acc["method"]
    # a static merge costs the base model's GMACs (full's here) and has no measured speed
    cost = report_rows(text, "## Cost")
    assert cost["aurora"] == ["300", "290", "1.2000", "100", "0.3x", "1.0909x", "0.003x", "1.2000x"]
    assert cost["aurora (static merge)"] == ["300", "290", "1.0000", "–", "0.3x", "0.9091x", "0.003x", "1.0000x"]
    tasks = report_rows(text, "## Tasks")
    assert tasks["cifar"] == ["natural", "400", "73.0", f"{binomial_se(73.0, 400):.2f}"]  # mean of 71, 75, 73
    assert tasks["eurosat"][:2] == ["specialized", "2,500"]
    vs_lora = report_rows(text, "### vs `lora`")
    assert vs_lora["aurora"][:3] == ["2", "2", "+2.00"]  # (73 - 70) and (91 - 90), paired on seed 0
    assert "| paired mean Δ (pt) |" in text and "`vs_<reference>_task_mean_diff`, the difference of the" in text
    # two differences, each named for what it is: the task means (lora's cifar over seeds 0 and 1: 71) differ by
    # ((73 - 71) + (91 - 90)) / 2; the paired runs by 2
    with open(tmp_path / "methods.csv") as f:
        methods = {r["method"]: r for r in csv.DictReader(f)}
    assert float(methods["aurora"]["vs_lora_task_mean_diff"]) == pytest.approx(1.5)
    with open(tmp_path / "comparisons.csv") as f:
        paired = {(r["method"], r["reference"]): r for r in csv.DictReader(f)}
    assert float(paired[("aurora", "lora")]["paired_mean_diff"]) == pytest.approx(2.0)
    assert "cifar / bad / seed 0: NonFiniteLoss: nan" in text
    for f in ("methods.csv", "per_task.csv", "comparisons.csv", "pareto.png", "per_task.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_report_header_names_vtab_groups_only_when_the_suite_has_them(tmp_path):
    write_results(tmp_path, [fake_result(t, m, 0, 80.0, p, suite="custom") for t in ("a", "b")
                             for m, p in (("lora", 100), ("full", 1000))])
    text = write_report(tmp_path).read_text()
    assert "group" not in text.split("## Tasks")[0]
    assert "mean_of_groups" not in text and "| task | test images |" in text
    assert "Reference" not in text  # both references present


def test_tasks_in_the_suites_order():
    rs = [fake_result(t, "lora", 0, 50.0, 10) for t in ("kitti", "mine", "eurosat", "cifar100", "dtd")]
    assert summarize(rs)["tasks"] == ["cifar100", "dtd", "eurosat", "kitti", "mine"]  # natural, specialized, ...


def test_report_rows_by_family_then_parameters():
    rs = [fake_result("a", m, 0, 50.0, p) for m, p in
          (("aurora", 300), ("lora", 1000), ("dora", 1100), ("linear", 10), ("lora_r2", 400), ("full", 10**6))]
    assert summarize(rs)["methods"] == ["full", "linear", "lora_r2", "lora", "dora", "aurora"]


def test_baseline_reference_and_missing_references(tmp_path):
    write_results(tmp_path, [fake_result(t, m, s, a + s + (5.0 if m == "aurora" else 0.0), p)
                             for t, a in (("a", 60.0), ("b", 70.0), ("c", 80.0)) for s in (0, 1, 2)
                             for m, p in (("dora", 1100), ("aurora", 300))])
    text = write_report(tmp_path, baselines=["dora"]).read_text()
    assert "Reference `lora`: not in these results." in text and "Reference `full`: not in these results." in text
    row = report_rows(text, "### vs `dora`")["aurora"]
    assert row[:5] == ["9", "3", "+5.00", "[+5.00, +5.00]", "0.25"] and row[5] == "better (few pairs)"
    with pytest.raises(UserError, match="--baseline vera: not in .*methods there: dora, aurora"):
        write_report(tmp_path, baselines=["vera"])


def test_report_replaces_its_tensorboard_event_file(tmp_path):
    write_results(tmp_path, [fake_result("a", m, 0, 50.0, p) for m, p in (("lora", 100), ("full", 1000))])
    write_report(tmp_path)
    write_report(tmp_path)
    assert len(list((tmp_path / "tb" / "report").glob("events.*"))) == 1


def accs_of(table: dict) -> dict:
    """{(task, method): {seed: accuracy}} from {(task, seed): (method accuracy, reference accuracy)}."""
    out = {}
    for (task, seed), (a, r) in table.items():
        out.setdefault((task, "m"), {})[seed] = a
        out.setdefault((task, "ref"), {})[seed] = r
    return out


def test_a_method_five_points_better_on_every_pair_is_outside_noise():
    rng = np.random.default_rng(1)
    base = {(t, s): 60 + 10 * rng.random() for t in "abcdef" for s in range(3)}
    c = paired_comparison(accs_of({k: (v + 5, v) for k, v in base.items()}), "m", "ref")
    assert c["pairs"] == 18 and c["tasks"] == 6 and c["paired_mean_diff"] == pytest.approx(5)
    assert c["ci_low"] > 0 and c["verdict"] == "better"
    assert c["wilcoxon_p"] == pytest.approx(2 / 2**6)  # every task the same sign: the smallest p at 6 tasks


def test_identical_methods_are_within_noise():
    same = paired_comparison(accs_of({(t, s): (70.0, 70.0) for t in "abcd" for s in range(3)}), "m", "ref")
    assert (same["ci_low"], same["ci_high"], same["wilcoxon_p"], same["verdict"]) == (0, 0, 1.0, "within noise")
    # seed noise that cancels: differences -1.5..+1.5, each task's mean alternating in sign
    diffs = [1.5, -1.0, 0.5, -1.5, 1.0, -0.5, 1.0, 0.5, -1.0, -1.0, -0.5, 1.0]
    noisy = {(t, s): (70 + diffs[3 * i + s], 70.0) for i, t in enumerate("abcd") for s in range(3)}
    c = paired_comparison(accs_of(noisy), "m", "ref")
    assert c["ci_low"] < 0 < c["ci_high"] and c["verdict"] == "within noise" and c["wilcoxon_p"] > 0.5


def test_the_interval_is_about_seed_noise_not_the_spread_between_tasks():
    """Better by 3 points on one task and worse by 2 on the other, each within ±0.5 over seeds: on these tasks the
    mean (+0.5) is outside seed noise. Pairs resampled across tasks put the 5-point gap between tasks into the
    interval as if it were noise (it covered zero); whether the sign holds across tasks is Wilcoxon's question."""
    diffs = {("a", 0): 3.0, ("a", 1): 3.5, ("a", 2): 2.5, ("b", 0): -2.0, ("b", 1): -1.5, ("b", 2): -2.5}
    c = paired_comparison(accs_of({k: (70 + d, 70.0) for k, d in diffs.items()}), "m", "ref")
    assert c["paired_mean_diff"] == pytest.approx(0.5) and 0 < c["ci_low"] < 0.5 < c["ci_high"] < 1.0
    assert c["verdict"] == "better (few pairs)" and c["wilcoxon_p"] == pytest.approx(1.0)
    # a task's three seeds resampled: the mean's variance is s²/n, not the plain bootstrap's (n-1)/n of it
    draws = np.random.default_rng(0).normal(0.0, 1.0, (300, 3))
    widths = [np.subtract(*bootstrap_interval(x, resamples=2000)[::-1]) for x in draws]
    assert np.mean(widths) == pytest.approx(2 * 1.96 / np.sqrt(3) * 0.886, rel=0.1)  # E[s] = 0.886 sigma at n=3


def test_pairs_only_where_both_ran_the_seed():
    accs = {("a", "m"): {0: 71.0, 1: 72.0, 2: 90.0}, ("a", "ref"): {0: 70.0, 1: 70.0}, ("b", "m"): {0: 1.0}}
    c = paired_comparison(accs, "m", "ref")
    assert (c["pairs"], c["tasks"], c["paired_mean_diff"], c["wilcoxon_p"]) == (2, 1, 1.5, None)
    assert paired_comparison({("a", "m"): {0: 1.0}, ("a", "ref"): {1: 1.0}}, "m", "ref") is None


def test_bootstrap_is_seeded_and_shrinks_with_more_pairs():
    d = np.random.default_rng(3).normal(1.0, 2.0, 400)
    assert bootstrap_interval(d) == bootstrap_interval(d)
    lo, hi = bootstrap_interval(d)
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)  # the normal interval of a mean, for many pairs
    lo5, hi5 = bootstrap_interval(d[:20])
    assert hi5 - lo5 > hi - lo
    assert bootstrap_interval([1.0]) is None


def test_binomial_se_and_wilcoxon_edges():
    assert binomial_se(50.0, 100) == pytest.approx(5.0)
    assert binomial_se(90.0, 2500) == pytest.approx(0.6)
    assert wilcoxon_p([1.0]) is None and wilcoxon_p([0.0, 0.0]) == 1.0
    assert wilcoxon_p([1.0, -1.0, 2.0, -2.0]) == pytest.approx(1.0)


def test_static_merge_rows_cost_the_base_model(tmp_path):
    rs = [fake_result("a", "aurora", 0, 80.0, 300, gmacs=1.3, accuracy_static_merge=11.0),
          fake_result("a", "linear", 0, 60.0, 10, gmacs=1.0),
          fake_result("b", "aurora", 0, 82.0, 300, gmacs=1.3, accuracy_static_merge=12.0)]  # no base run on b
    write_results(tmp_path, rs)
    static = {r["task"]: r for r in load_results(tmp_path) if r["method"] == "aurora (static merge)"}
    assert static["a"]["gmacs_per_image"] == 1.0 and static["a"]["accuracy"] == 11.0
    assert static["b"]["gmacs_per_image"] is None and static["a"]["train_img_per_s"] is None
    info = summarize(load_results(tmp_path))["info"]["aurora (static merge)"]
    assert info["gmacs"] is None and info["static_merge_of"] == "aurora" and info["family"] == "aurora"


def test_pareto_points_carry_the_seed_spread_of_the_plotted_mean():
    rows = [("cifar", 0, 70.0), ("cifar", 1, 72.0), ("eurosat", 0, 90.0), ("eurosat", 1, 94.0)]
    s = summarize([fake_result(t, "lora", sd, a, 1000) for t, sd, a in rows])
    plot = plot_points(s, {"lora": averages(s, "lora")})
    # seed 0: groups natural 70, specialized 90 -> 80; seed 1: 72, 94 -> 83; std of (80, 83)
    assert plot.key == "mean_of_groups" and plot.points["lora"] == (1000, 81.5, pytest.approx(np.std([80, 83], ddof=1)))


def test_pareto_points_of_an_unfinished_sweep_use_the_tasks_every_method_has():
    rows = [("cifar", "lora", 0, 70.0, 1000), ("eurosat", "lora", 0, 90.0, 1000),
            ("cifar", "aurora", 0, 73.0, 300)]  # aurora's eurosat run is not done yet
    s = summarize([fake_result(t, m, sd, a, p) for t, m, sd, a, p in rows])
    plot = plot_points(s, {m: averages(s, m) for m in s["methods"]})
    assert plot.key == "mean of 1/2 tasks" and plot.left_out == [] and plot.tasks == ["cifar"]
    assert plot.points == {"lora": (1000, 70.0, 0.0), "aurora": (300, 73.0, 0.0)}
    s = summarize([fake_result(t, m, sd, a, p) for t, m, sd, a, p in rows[:2]])
    plot = plot_points(s, {"lora": averages(s, "lora")})
    assert (plot.key, plot.points, plot.left_out) == ("mean_of_groups", {"lora": (1000, 80.0, 0.0)}, [])


def test_pareto_points_leave_out_a_rank_sweep_on_fewer_tasks():
    tasks = ["cifar", "eurosat", "dtd"]
    rows = [(t, m, a, p) for t in tasks for m, a, p in (("lora", 70.0, 1000), ("aurora", 72.0, 300))]
    rows += [("cifar", "aurora_r8", 40.0, 1200), ("cifar", "lora_r4", 69.0, 500)]  # a sweep on one task
    s = summarize([fake_result(t, m, 0, a, p) for t, m, a, p in rows])
    plot = plot_points(s, {m: averages(s, m) for m in s["methods"]})
    assert plot.key == "mean_of_groups" and sorted(plot.points) == ["aurora", "lora"]  # 3 tasks x 2 beat 1 task x 4
    assert sorted(plot.left_out) == ["aurora_r8", "lora_r4"]


def test_pareto_front():
    pts = {"full": (100, 80), "lora": (10, 78), "aurora": (3, 79), "linear": (1, 60), "bad": (50, 70)}
    assert pareto(pts) == {"full", "aurora", "linear"}


def test_labels_of_crowded_points_do_not_overlap():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.text import Text

    from aurora_bench.report.labels import _overlap, place_labels

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xy = {f"method_{i}": (1e4 * (1 + 0.05 * (i % 3)), 75 + 0.1 * i) for i in range(10)}  # a tight cluster
    ax.scatter(*zip(*xy.values()))
    ax.set_xscale("log")
    ax.set_xlim(1e3, 1e6)
    ax.set_ylim(60, 80)
    labels = place_labels(ax, xy)
    renderer = fig.canvas.get_renderer()
    for a in labels:
        a.update_positions(renderer)
    boxes = [Text.get_window_extent(a, renderer) for a in labels]  # the text alone, not its leader line
    assert [a.get_text() for a in labels] == list(xy)
    inside = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert all(_overlap(a, b) == 0 for b in boxes[i + 1:]) and inside.contains(a.x0, a.y0)
    plt.close(fig)


def test_a_long_legend_fits_inside_the_pareto_figure():
    """A tuning's report plots every (variant, rate) pair: its legend must not run off the figure's bottom."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aurora_bench.report.plots import pareto_figure

    methods = [f"aurora_lr{i}" for i in range(24)] + [f"lora_lr{i}" for i in range(12)] + ["full", "linear"]
    s = summarize([fake_result("a", m, 0, 50.0 + i, 100 * (i + 1),
                               accuracy_static_merge=10.0 if "aurora" in m else None)
                   for i, m in enumerate(methods)])
    plot = plot_points(s, {m: averages(s, m) for m in s["methods"]})
    fig = pareto_figure(s, plot.key, plot.points, 10.0, "many variants")
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert len(fig.legends[0].get_texts()) > 60 and legend.y0 >= 0 and legend.y1 <= fig.bbox.height
    plt.close(fig)


def test_run_logdir_leads_with_the_method():
    run = {"task": "dtd", "method": {"variant": "lora_r4"}, "seed": 2}
    assert store.logdir("out", run).parts[-5:] == ("tb", "runs", "lora_r4", "dtd", "seed2")


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_a_rerun_starts_its_logdir_fresh(tmp_path):
    from aurora_bench.run.tensorboard import RunLogger, run_hparams, trial_id
    run = fake_result("dtd", "lora", 0, 0.0, 0)["config"]
    logdir = store.logdir(tmp_path, run)
    for epochs in (18, 60):  # an attempt killed after 18 epochs, then the retry that finishes
        logger = RunLogger(logdir)
        for epoch in range(1, epochs + 1):
            logger.scalars(epoch, train__loss=1.0 / epoch)
        logger.hparams(run_hparams(run, 100, 1.0), trial_id(run), epochs,
                       merged={"static": float(epochs), "calibrated": epochs + 0.5})
        logger.close()
    assert len(list(logdir.glob("events.*"))) == 1
    assert [e.step for e in events(logdir).Scalars("train/loss")] == list(range(1, 61))
    merged = events(logdir / "merged")
    assert [(e.step, e.value) for e in merged.Scalars("merged/static_accuracy")] == [(60, 60.0)]
    assert [(e.step, e.value) for e in merged.Scalars("merged/calibrated_accuracy")] == [(60, 60.5)]


def test_a_run_logs_curves_and_one_hparams_session(tmp_path):
    from tensorboard.plugins.hparams import metadata
    from aurora_bench.config import resolve_run
    from aurora_bench.run import train_run
    from fixtures import tiny_cfg

    run = resolve_run(tiny_cfg(tmp_path), "mytask", "aurora", 0)
    logdir = store.logdir(tmp_path / "out", run)
    train_run(run, logdir=logdir, quiet=True)
    acc = events(logdir)
    scalars = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    # curves only, one point per epoch: final metrics come from their last points, no one-dot charts
    assert scalars == {tag: [1, 2] for tag in ("train/loss", "train/lr", "train/img_per_s", "eval/accuracy")}
    session = metadata.parse_session_start_info_plugin_data(
        acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG])
    assert session.group_name == "aurora/mytask/seed0"
    assert {"method", "rank", "targets", "task", "seed", "model", "lr"} <= set(session.hparams)
    assert session.hparams["method"].string_value == "aurora" and session.hparams["rank"].number_value == 2
    assert [e.step for e in events(logdir / "merged").Scalars("merged/static_accuracy")] == [2]


def test_report_declares_the_hparams_columns(tmp_path):
    from tensorboard.plugins.hparams import metadata
    from aurora_bench.run.tensorboard import HPARAMS
    records = [fake_result("a", m, s, 50.0, p) for m, p in (("lora", 100), ("full", 1000)) for s in (0, 1)]
    for r in records[2:]:
        r["config"]["train"]["lr"] = 1e-5  # full's rate
    records[0]["accuracy_static_merge"] = 20.0  # a merged form some run measured gets its column, others none
    write_results(tmp_path, records)
    write_report(tmp_path)
    content = events(tmp_path / "tb" / "report").PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    experiment = metadata.parse_experiment_plugin_data(content)
    infos = {h.name: h for h in experiment.hparam_infos}
    assert list(infos) == list(HPARAMS)
    assert [v.string_value for v in infos["method"].domain_discrete.values] == ["full", "lora"]
    assert [v.number_value for v in infos["seed"].domain_discrete.values] == [0, 1]
    # TensorBoard shows 5 columns by default, `differs` first: the varying ones of method, rank, targets,
    # task, seed, lr, model (method, seed and lr here), then the others in that order
    assert sorted(h.name for h in experiment.hparam_infos if h.differs) == ["lr", "method", "rank", "seed", "targets"]
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [
        ("", "eval/accuracy"), ("merged", "merged/static_accuracy"), ("", "train/loss")]


def test_report_of_a_folder_without_results_is_one_line(tmp_path, capsys):
    from aurora_bench.cli import main
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no result files under" in capsys.readouterr().err


def test_reports_that_cannot_be_made_say_why_on_one_line(tmp_path, capsys):
    from aurora_bench.cli import main
    failed = {"status": "failed", "config": {"suite": "vtab"}, "task": "cifar", "method": "bad", "seed": 0,
              "error": "NonFiniteLoss: nan"}
    write_results(tmp_path / "failed", [failed])
    assert main(["report", str(tmp_path / "failed")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no successful runs" in err and "NonFiniteLoss" in err
    write_results(tmp_path / "sizes", [fake_result("cifar", "lora", 0, 70.0, 100, num_eval=400),
                                       fake_result("cifar", "full", 0, 70.0, 100, num_eval=None)])
    assert main(["report", str(tmp_path / "sizes")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cifar: results evaluated on different test sizes" in err


@pytest.mark.parametrize("field, value", [("accuracy", 150.0), ("accuracy", -20.0), ("accuracy", float("nan")),
                                          ("accuracy_static_merge", float("inf")), ("num_eval", -5),
                                          ("gmacs_per_image", float("nan"))])
def test_a_record_with_an_impossible_number_is_quarantined_not_reported(tmp_path, caplog, field, value):
    """A hand-edited accuracy of 150% crashed the report (math domain error); -20% was averaged in."""
    good = [fake_result("cifar", "lora", 0, 70.0, 1000), fake_result("cifar", "full", 0, 75.0, 100000)]
    write_results(tmp_path, good + [fake_result("cifar", "lora", 1, 72.0, 1000, **{field: value})])
    text = write_report(tmp_path).read_text()
    assert report_rows(text, "# Results: " + tmp_path.name)["lora"][3] == "70.0 (n=1)"  # after rank, targets, lr
    assert (tmp_path / "quarantine" / "runs" / "cifar__lora__seed1.json").is_file()
    assert any("cifar__lora__seed1.json" in m and field in m for m in caplog.messages)


def test_seeds_of_one_method_made_with_different_configs_are_refused_on_one_line(tmp_path, capsys):
    """AuroRA at 2 and 3 epochs became one row; a sweep refuses that mix (ConfigChanged), so does the report."""
    from aurora_bench.cli import main
    three = fake_result("cifar", "aurora", 1, 72.0, 300)
    three["config"]["train"]["epochs"] = 3
    write_results(tmp_path, [fake_result("cifar", "aurora", 0, 70.0, 300), fake_result("cifar", "aurora", 2, 71.0, 300),
                             three, fake_result("cifar", "full", 0, 75.0, 100000)])
    with pytest.raises(store.ConfigChanged):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "1 result(s) in" in err and "cifar__aurora__seed1.json: train.epochs 3 -> 1" in err
    assert "--replace-changed" in err and not (tmp_path / "report.md").exists()


def test_seeds_made_by_different_commits_are_said_apart_in_the_report(tmp_path):
    commit = lambda c, dirty=False: {"git": {"commit": c * 40, "dirty": dirty}}
    write_results(tmp_path, [fake_result("cifar", "lora", 0, 70.0, 1000, **commit("a")),
                             fake_result("cifar", "lora", 1, 72.0, 1000, **commit("b", dirty=True)),
                             fake_result("cifar", "full", 0, 75.0, 100000, **commit("a"))])
    text = write_report(tmp_path).read_text()
    assert "the seeds of 1 (task, method) cell(s) were made by different commits (cifar / lora: aaaaaaa, " \
           "bbbbbbb+changes)" in text
    write_results(tmp_path, [fake_result("cifar", "lora", 1, 72.0, 1000, **commit("a"))])
    assert "different commits" not in write_report(tmp_path).read_text()
