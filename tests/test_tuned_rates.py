"""tune.require_rates: test-split runs refused unless the included rates file was written by tune for this
config; the report's tuning section; --dry-run. Fake runners: no training."""
import csv
import os
import shutil
from pathlib import Path

import pytest
import yaml

from aurora_bench.cli import main
from aurora_bench.config import expand, load_config, resolve_run
from aurora_bench.report import write_report
from aurora_bench.sweep import sweep
from aurora_bench.tune import grids_of, tune, tuning_config, write_lrs
from aurora_bench.tuned_rates import UntunedRates, require_tuned_rates

from fixtures import vtab_task
from parallel_runners import fake_record

PEAK = {"linear": 1e-2}  # linear peaks inside its grid; lora keeps rising: its choice stays on the top edge


def peaked_runner(run, logdir=None, quiet=False):
    """Validation accuracy peaked in the rate (log scale), a little different per seed."""
    import math
    v, lr = run["method"]["name"], run["train"]["lr"]
    acc = 50 + 10 * math.log10(lr) if v == "lora" else 70 - 5 * abs(math.log10(lr / PEAK[v]))
    return fake_record(run, acc + run["seed"])


def write_configs(tmp_path, **tune_over):
    """base.yaml (the sweep), lrs.yaml (an empty rates file, as committed before tuning), main.yaml including both."""
    base = {"name": "s", "tasks": ["a", "b"], "methods": ["linear", "lora"], "seeds": [0],
            "output": str(tmp_path / "out"), "data": {"root": str(tmp_path / "data")},
            "train": {"epochs": 2, "warmup_epochs": 1},
            "tune": {"seeds": [0, 1], "lrs": {"default": [1e-3, 1e-2, 1e-1]}, "extend": 0, "require_rates": True,
                     **tune_over}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "lrs.yaml").write_text("lrs: {}\n")
    (tmp_path / "main.yaml").write_text("include: [base.yaml, lrs.yaml]\n")
    return tmp_path / "main.yaml"


def tune_into(config_path, rates_path):
    """`aurora-bench tune CONFIG --write RATES` with the fake runner."""
    cfg = load_config(config_path)
    chosen = tune(cfg, lambda tuned: sweep(tuned, quiet=True, runner=peaked_runner))
    write_lrs(chosen, chosen["tuned"], rates_path)
    write_lrs(chosen, chosen["tuned"], rates_path.parent / "out-tune" / f"lrs-{cfg['name']}.yaml")
    return chosen


def check(config_path, *overrides):
    cfg = load_config(config_path, overrides)
    require_tuned_rates(cfg, config_path, expand(cfg))


def test_a_fresh_tune_is_accepted_and_a_stale_one_refused_saying_what_changed(tmp_path):
    main_yaml = write_configs(tmp_path)
    chosen = tune_into(main_yaml, tmp_path / "lrs.yaml")
    assert chosen["lrs"] == {"linear": 1e-2, "lora": 1e-1}
    check(main_yaml)  # fresh: accepted
    check(main_yaml, "train.calibrated_merge=true", "train.eval_every=1")  # what does not decide the rate
    for override, changed in (("train.epochs=3", "recipe"), ("tune.lrs.default=[1e-3,1e-2]", "grid"),
                              ("tune.seeds=[0]", "protocol"), ("model.image_size=112", "recipe")):
        with pytest.raises(UntunedRates, match=rf"lrs.yaml: linear, lora: tuned with another {changed} .*stale") as e:
            check(main_yaml, override)
        assert "\n" not in str(e.value) and f"aurora-bench tune {main_yaml} --write {tmp_path / 'lrs.yaml'}" in str(e.value)
    with pytest.raises(UntunedRates, match=r"lora: lrs.lora = 0.5 is not the rate tune chose \(0.1\)"):
        check(main_yaml, "lrs.lora=0.5")


def test_validation_runs_are_never_refused(tmp_path):
    main_yaml = write_configs(tmp_path)  # nothing tuned yet
    with pytest.raises(UntunedRates):
        check(main_yaml)
    check(main_yaml, "tuning=true")  # train800 -> val200
    check(main_yaml, "data.eval_split=val200")  # a sweep evaluated on the validation split
    check(main_yaml, "tune.require_rates=false")
    cfg = load_config(main_yaml)
    require_tuned_rates(cfg, main_yaml, [resolve_run({**cfg, "tuning": True}, "a", "lora", 0)])


def test_missing_and_incomplete_rates_are_refused_on_one_line_by_the_cli(tmp_path, capsys):
    main_yaml = write_configs(tmp_path, methods=["linear"])  # lora is not tuned
    for task in ("a", "b"):  # the data is there: what is refused is the rates
        vtab_task(tmp_path / "data", task, per_split={"train800": 3, "val200": 3, "test": 3})
    assert main(["sweep", str(main_yaml)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tmp_path / 'lrs.yaml'}: linear: no rate (missing)" in err
    assert "lora: not in tune.methods, so never tuned (add it)" in err and "aurora-bench tune" in err
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    assert main(["run", str(main_yaml), "--task", "a", "--method", "lora"]) == 2  # one run is refused as well
    assert "lora: not in tune.methods" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # a rates file tuned for other variants: the new one is missing from it
    assert main(["sweep", str(main_yaml), "--set", "tune.methods=[linear,lora]"]) == 2
    assert "lora: no rate (missing)" in capsys.readouterr().err


def test_per_task_rates_must_come_from_a_per_task_tune(tmp_path):
    main_yaml = write_configs(tmp_path)
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    with pytest.raises(UntunedRates, match="tuned with another protocol"):
        check(main_yaml, "tune.per_task=true")
    tune_into(load_and_rewrite(tmp_path, per_task=True), tmp_path / "lrs.yaml")
    check(main_yaml)
    assert yaml.safe_load((tmp_path / "lrs.yaml").read_text())["lrs"]["linear"] == {"a": 1e-2, "b": 1e-2}


def load_and_rewrite(tmp_path, **tune_over):
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["tune"].update(tune_over)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    return tmp_path / "main.yaml"


def test_a_rates_file_without_a_tuning_record_is_judged_by_its_age(tmp_path):
    main_yaml = write_configs(tmp_path)
    (tmp_path / "lrs.yaml").write_text("lrs: {linear: 0.01, lora: 0.1}\n")  # as tune wrote before fingerprints
    for name, t in (("base.yaml", 1_000), ("main.yaml", 1_000), ("lrs.yaml", 2_000)):
        os.utime(tmp_path / name, (t, t))
    check(main_yaml)  # newer than the config's files
    os.utime(tmp_path / "base.yaml", (3_000, 3_000))
    with pytest.raises(UntunedRates, match=r"lrs.yaml: linear, lora: no tuning record and older than .*base.yaml \(stale\)"):
        check(main_yaml)
    (tmp_path / "main.yaml").write_text("include: [base.yaml]\nlrs: {linear: 0.01, lora: 0.1}\n")
    with pytest.raises(UntunedRates, match="lrs.linear is set by hand, not by tune"):
        check(main_yaml)


def test_report_shows_the_tuning_table_grid_values_choice_and_edge(tmp_path):
    main_yaml = write_configs(tmp_path)
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    cfg = load_config(main_yaml)
    sweep(cfg, quiet=True, runner=peaked_runner)  # the test runs, into out/ beside out-tune/
    text = write_report(cfg["output"]).read_text()
    section = text.split("## Tuning (validation split)")[1].split("\n## ")[0]
    assert text.index("Ops fvcore left uncounted") < text.index("## Tuning")  # the cost section's notes stay with it
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| variant")}
    # linear at 1e-2: 70 on both tasks at seed 0, 71 at seed 1 -> 70.5 ± 0.7; chosen inside its grid
    assert rows["linear"] == ["linear", "all", "0.001 0.01 0.1", "0.001: 65.5 ± 0.7, **0.01: 70.5 ± 0.7**, 0.1: 65.5 ± 0.7",
                              "0.01", ""]
    assert rows["lora"][3].endswith("**0.1: 40.5 ± 0.7**") and rows["lora"][4:] == ["0.1", "edge"]
    with open(tmp_path / "out" / "tuning.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {r["variant"] for r in table if r["chosen"] == "True"} == {"linear", "lora"}


def test_dry_run_counts_and_makes_nothing(tmp_path, capsys):
    main_yaml = write_configs(tmp_path)
    assert main(["sweep", str(main_yaml), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 tasks x 2 methods x 1 seeds; 4 to make, 0 done)" in out
    assert "the sweep would be refused now: tune.require_rates" in out
    assert main(["tune", str(main_yaml), "--dry-run"]) == 0
    out = capsys.readouterr().out  # 2 variants x 3 rates x 2 tasks x 2 seeds; extend=0 adds none
    assert "24 tuning runs on the initial grids" in out and "up to 0 more" in out
    assert main(["tune", str(main_yaml), "--dry-run", "--set", "tune.extend=2", "tune.per_task=true"]) == 0
    assert "up to 32 more" in capsys.readouterr().out  # 2 variants x 2 rounds x 2 edges x 2 tasks x 2 seeds
    assert not (tmp_path / "out").exists() and not (tmp_path / "out-tune").exists()


CLEAN = ["clean_validation.yaml", "clean_ranks.yaml"]


def test_the_clean_validation_configs_count_their_runs_and_require_rates():
    root = Path(__file__).parent.parent / "configs"
    main_cfg, ranks = (load_config(root / name) for name in CLEAN)
    for cfg in (main_cfg, ranks):
        assert cfg["tune"]["require_rates"] and cfg["tune"]["per_task"] and cfg["train"]["calibrated_merge"]
        assert all(len(grid) == 4 for grid in grids_of(cfg).values()) and cfg["seeds"] == [0, 1, 2]
        assert not resolve_run(tuning_config(cfg), cfg["tasks"][0], tuning_config(cfg)["methods"][0], 0)["train"][
            "calibrated_merge"]  # tuning runs skip the test-time merge
    assert len(expand(main_cfg)) == 90 and len(expand(tuning_config(main_cfg))) == 120
    assert len(expand(ranks)) == 54 and len(expand(tuning_config(ranks))) == 72
    assert main_cfg["output"] == ranks["output"]  # one results folder, one report
    assert {v: ranks["method_overrides"][v]["config"]["r"] for v in ("lora_r1", "aurora_r16", "aurora_no_tanh")} == \
        {"lora_r1": 1, "aurora_r16": 16, "aurora_no_tanh": 2}


def flat_peak_runner(run, logdir=None, quiet=False):
    """Every variant best at 3e-3 on validation."""
    import math
    return fake_record(run, 80 - 5 * abs(math.log10(run["train"]["lr"] / 3e-3)))


def test_the_clean_validation_sweeps_accept_the_rates_their_own_tunes_write(tmp_path):
    """From one commit: tune each config into its rates file, then both sweeps pass tune.require_rates."""
    root = Path(__file__).parent.parent / "configs"
    for name in [*CLEAN, "rank_variants.yaml", "shared_vits.yaml", "vtab1k.yaml"]:
        shutil.copy(root / name, tmp_path / name)
    for name in CLEAN:  # untuned, whatever configs/ holds now (the validation's rounds commit their rates there)
        (tmp_path / name.replace(".yaml", "_lrs.yaml")).write_text("lrs: {}\n")
    data = [f"output={tmp_path / 'out'}", "data.root=/data/vtab-1k", "model.file=/w/vits.safetensors"]
    for name in CLEAN:
        with pytest.raises(UntunedRates, match=f"{name.replace('.yaml', '_lrs.yaml')}: .*no rate \\(missing\\)"):
            check(tmp_path / name, *data)
        cfg = load_config(tmp_path / name, data)
        chosen = tune(cfg, lambda tuned: sweep(tuned, quiet=True, runner=flat_peak_runner))
        write_lrs(chosen, chosen["tuned"], tmp_path / name.replace(".yaml", "_lrs.yaml"))
    for name in CLEAN:
        check(tmp_path / name, *data)
    lrs = load_config(tmp_path / "clean_validation.yaml", data)["lrs"]
    # full is extended twice past its top edge by its outer ratio (3): 3e-4 -> 9e-4 -> 2.7e-3
    assert lrs["full"]["cifar10"] == 2.7e-3 and lrs["aurora"]["pacs_sketch"] == 3e-3
    with pytest.raises(UntunedRates, match="clean_validation_lrs.yaml: linear, full, .*: tuned with another recipe"):
        check(tmp_path / "clean_validation.yaml", *data[:2], "model.file=/w/other.safetensors")


def test_a_train_lr_override_above_the_tuned_rate_is_refused(tmp_path):
    """method_overrides and task_overrides sit above lrs:, and the fingerprint leaves train.lr out: a test run
    could train at another rate than tune chose while the rates file looks fresh."""
    main_yaml = write_configs(tmp_path)
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    with pytest.raises(UntunedRates, match=r"lora: the a run trains at 0.5, not at the rate tune chose \(0.1\): "
                                           r"method_overrides.lora sets train.lr; remove the train.lr override in "
                                           r"method_overrides.lora \(validation runs") as e:
        check(main_yaml, "method_overrides.lora.train.lr=0.5")
    assert "aurora-bench tune" not in str(e.value)  # tuning again would not help: the override still wins
    with pytest.raises(UntunedRates, match=r"linear: the b run trains at 0.5, not at the rate tune chose \(0.01\): "
                                           r"task_overrides.b sets train.lr; .*lrs.yaml: lora: the b run"):
        check(main_yaml, "task_overrides.b.train.lr=0.5")
    check(main_yaml, "method_overrides.lora.train.lr=0.1")  # the chosen rate itself: nothing overridden


def test_a_rate_added_by_hand_is_not_passed_by_the_age_of_its_file(tmp_path):
    """The age rule is for rates files from before tune wrote records: a rate added by hand to a file tune wrote
    with records, or set in an included config that holds an `lrs:`, is newer than the config yet never tuned."""
    main_yaml = write_configs(tmp_path, methods=["linear"])
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    rates = yaml.safe_load((tmp_path / "lrs.yaml").read_text())
    rates["lrs"]["lora"] = 0.1  # by hand, beside tune's records
    (tmp_path / "lrs.yaml").write_text(yaml.safe_dump(rates))
    with pytest.raises(UntunedRates, match="lrs.lora is set by hand, not by tune"):
        check(main_yaml, "tune.methods=[linear,lora]")
    (tmp_path / "lrs.yaml").write_text("lrs: {}\n")
    (tmp_path / "other.yaml").write_text("train: {epochs: 2}\nlrs: {linear: 0.01, lora: 0.1}\n")  # a config
    (tmp_path / "main.yaml").write_text("include: [base.yaml, lrs.yaml, other.yaml]\n")
    with pytest.raises(UntunedRates, match=r"other.yaml: linear: lrs.linear is set by hand, not by tune"):
        check(main_yaml)


def test_a_refusal_with_several_problems_gives_each_its_clause_and_its_fix(tmp_path):
    """A variant whose rate is missing needs tune; one whose rate an override replaces needs the override gone
    (tuning again would leave it): one clause per problem, the fixes after them, each naming where."""
    main_yaml = write_configs(tmp_path, methods=["linear"])
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["task_overrides"] = {"b": {"train": {"lr": 0.5}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    rates = tmp_path / "lrs.yaml"
    with pytest.raises(UntunedRates) as e:
        check(main_yaml, "tune.methods=[linear,lora]")
    assert str(e.value) == (
        f"tune.require_rates refuses the test-split runs: {rates}: linear: the b run trains at 0.5, not at the rate "
        f"tune chose (0.01): task_overrides.b sets train.lr; {rates}: lora: no rate (missing); remove the train.lr "
        f"override in task_overrides.b ({tmp_path / 'base.yaml'}), and run `aurora-bench tune {main_yaml} --write "
        f"{rates}` first (validation runs are never refused)")


def test_a_grid_of_one_rate_is_not_tuned_and_tune_says_so(tmp_path):
    """It passed require_rates with at_edge false: nothing was compared."""
    main_yaml = write_configs(tmp_path, lrs={"default": [1e-3, 1e-2, 1e-1], "linear": [1e-2]})
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    assert "# Not tuned: a grid of one rate compares nothing: linear (" in (tmp_path / "lrs.yaml").read_text()
    with pytest.raises(UntunedRates, match=r"lrs.yaml: linear: tuned on a grid of one rate, so nothing was compared"):
        check(main_yaml)
    check(main_yaml, "methods=[lora]")  # the variants tuned on a grid are accepted
    report = write_report(tmp_path / "out-tune").read_text()
    assert [line for line in report.splitlines() if line.startswith("| linear |")][0].endswith("| one rate |")


def test_a_fingerprint_that_reads_as_a_number_is_written_quoted(tmp_path, monkeypatch):
    """A 12-hex-digit hash such as 1518767248e9 is a float to the config loader (YAML 1.2 floats): written plain,
    it came back as 1.518767248e+18 and the rates were refused as stale (one tune in a few hundred)."""
    from aurora_bench import tuned_rates
    from aurora_bench.config import dump_yaml, parse_yaml
    for text in ("1518767248e9", "123456789012", "1e-3", ".5", "0x1f", "abc"):
        assert parse_yaml(dump_yaml({"recipe": text}), "test") == {"recipe": text}
    monkeypatch.setattr(tuned_rates, "_hash", lambda obj: "1518767248e9")
    main_yaml = write_configs(tmp_path)
    tune_into(main_yaml, tmp_path / "lrs.yaml")
    check(main_yaml)  # fresh: accepted
