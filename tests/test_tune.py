import json
from pathlib import Path

import pytest
import yaml

from aurora_bench.cli import main
from aurora_bench.report.tuning import tuning_rows
from aurora_bench.config import load_config, resolve_run
from aurora_bench.tune import (TuningOnReportedSplit, choose, refuse_tuning_on_reported_split, tune, tuning_config,
                               write_lrs)

from parallel_runners import fake_record
from fixtures import tiny_cfg


def fake_results(tuned, accuracy):
    """Result files as the tuning sweep writes them, accuracy(variant, lr, task) made up."""
    fake_seeded_results(tuned, lambda v, lr, t, seed: accuracy(v, lr, t))


def fake_seeded_results(tuned, accuracy):
    """fake_results with accuracy(variant, lr, task, seed)."""
    for run in (resolve_run(tuned, t, m, s) for t in tuned["tasks"] for m in tuned["methods"] for s in tuned["seeds"]):
        path = tuned["output"] / "runs" / f"{run['task']}__{run['method']['variant']}__seed{run['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        acc = accuracy(run["method"]["variant"].rsplit("_lr", 1)[0], run["train"]["lr"], run["task"], run["seed"])
        path.write_text(json.dumps(fake_record(run, acc)))


def test_tuning_config_grids_and_choice(tmp_path):
    cfg = load_config({"tasks": ["a", "b", "c"], "methods": ["full", "lora", "lora_r2"], "output": str(tmp_path / "o"),
                       "method_overrides": {"lora_r2": {"method": "lora", "config": {"r": 2}}},
                       "tune": {"methods": ["full", "lora_r2"], "tasks": ["a", "b"],
                                "lrs": {"full": [1e-5, 1e-4], "default": [1e-3, 1e-2]}}})
    tuned = tuning_config(cfg)
    assert tuned["tuning"] and tuned["tasks"] == ["a", "b"] and tuned["seeds"] == [0]
    assert tuned["methods"] == ["full_lr1e-05", "full_lr0.0001", "lora_r2_lr0.001", "lora_r2_lr0.01"]
    run = resolve_run(tuned, "a", "lora_r2_lr0.01", 0)
    assert run["method"]["name"] == "lora" and run["method"]["config"] == {"r": 2} and run["train"]["lr"] == 0.01
    assert run["data"]["split_eval"] == "val200"
    tuned["output"] = tmp_path / "o-tune"
    # full: 1e-4 wins on the mean over tasks although 1e-5 wins on task a; lora: a tie goes to the smaller rate
    fake_results(tuned, lambda v, lr, t: {("full", 1e-5, "a"): 80, ("full", 1e-5, "b"): 50,
                                          ("full", 1e-4, "a"): 70, ("full", 1e-4, "b"): 70}.get((v, lr, t), 60.0))
    chosen = choose(tuned, tuned["output"])
    assert chosen["lrs"] == {"full": 1e-4, "lora_r2": 1e-3}
    assert chosen["table"]["full"] == {1e-5: 65.0, 1e-4: 70.0}
    (tuned["output"] / "runs" / "b__full_lr0.0001__seed0.json").unlink()  # an unfinished rate does not compete
    assert choose(tuned, tuned["output"])["lrs"]["full"] == 1e-5


def test_lrs_apply_per_variant_then_method_below_overrides():
    cfg = load_config({"tasks": ["t", "t2"], "lrs": {"lora": 0.02, "full": 1e-5, "lora_r8": 0.004},
                       "method_overrides": {"lora_r2": {"method": "lora"}, "lora_r8": {"method": "lora"},
                                            "lora_x": {"method": "lora", "train": {"lr": 0.5}}},
                       "task_overrides": {"t2": {"train": {"lr": 0.7}}}})
    assert resolve_run(cfg, "t", "lora_r2", 0)["train"]["lr"] == 0.02  # by registered method
    assert resolve_run(cfg, "t", "lora_r8", 0)["train"]["lr"] == 0.004  # a variant tuned on its own
    assert resolve_run(cfg, "t", "full", 0)["train"]["lr"] == 1e-5
    assert resolve_run(cfg, "t", "aurora", 0)["train"]["lr"] == 1e-3  # no entry: the recipe's rate
    assert resolve_run(cfg, "t", "lora_x", 0)["train"]["lr"] == 0.5   # a variant's own rate wins
    assert resolve_run(cfg, "t2", "lora_r2", 0)["train"]["lr"] == 0.7  # and a task's


def test_cli_tune_writes_an_includable_lrs_file(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path)
    cfg["tune"] = {"methods": ["linear", "aurora"], "lrs": {"default": [1e-3, 1e-1]}, "seeds": [0], "tasks": None,
                   "extend": 0}  # the grid as given (extension: test_a_best_rate_on_an_edge_extends_the_grid)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["tune", str(tmp_path / "c.yaml"), "--quiet", "--write", str(tmp_path / "lrs.yaml")]) == 0
    lrs = yaml.safe_load((tmp_path / "lrs.yaml").read_text())["lrs"]
    assert set(lrs) == {"linear", "aurora"} and all(v in (1e-3, 1e-1) for v in lrs.values())
    assert "mean validation accuracy" in (tmp_path / "lrs.yaml").read_text()
    assert (tmp_path / "lrs.yaml").read_text() == (Path(cfg["output"] + "-tune") / f"lrs-{cfg['name']}.yaml").read_text()
    assert len(list((tmp_path / "out-tune" / "runs").glob("*.json"))) == 4
    (tmp_path / "main.yaml").write_text("include: [c.yaml, lrs.yaml]\n")
    assert resolve_run(load_config(tmp_path / "main.yaml"), "mytask", "aurora", 0)["train"]["lr"] == lrs["aurora"]


def test_tune_without_a_grid_names_the_variant():
    with pytest.raises(ValueError, match="no grid for 'lora'"):  # refused as the config loads
        load_config({"tasks": ["a"], "methods": ["lora"], "tune": {"lrs": {"full": [1e-5], "default": None}}})
    cfg = load_config({"tasks": ["a"], "methods": ["lora"]})
    cfg["tune"]["lrs"] = {"full": [1e-5]}  # a config built in code
    with pytest.raises(ValueError, match="no grid for 'lora'"):
        tuning_config(cfg)


def test_a_best_rate_on_an_edge_extends_the_grid_up_to_the_bound(tmp_path):
    """full peaks inside its grid; lora keeps rising and is given rates past the top edge, twice at most;
    aurora peaks just past the bottom edge and stops once the peak is inside."""
    cfg = load_config({"name": "g", "tasks": ["a", "b"], "methods": ["full", "lora", "aurora"],
                       "output": str(tmp_path / "o"),
                       "tune": {"lrs": {"default": [1e-3, 1e-2, 1e-1]}, "seeds": [0, 1], "extend": 2}})
    peak = {"full": 1e-2, "aurora": 1e-4}
    accuracy = lambda v, lr, t: 50 + (10 * __import__("math").log10(lr) if v == "lora" else
                                      -abs(__import__("math").log10(lr / peak[v])))

    def run_sweep(tuned):
        tuned = {**tuned, "output": Path(tuned["output"])}
        fake_results(tuned, accuracy)
    chosen = tune(cfg, run_sweep)
    assert chosen["grids"]["full"] == [1e-3, 1e-2, 1e-1] and chosen["lrs"]["full"] == 1e-2
    assert chosen["grids"]["lora"] == [1e-3, 1e-2, 1e-1, 1.0, 10.0] and chosen["lrs"]["lora"] == 10.0
    assert chosen["grids"]["aurora"] == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1] and chosen["lrs"]["aurora"] == 1e-4
    assert chosen["at_edge"] == ["lora"]  # still best at its edge once the bound is spent: said in the file
    text = write_lrs(chosen, chosen["tuned"], tmp_path / "lrs.yaml").read_text()
    assert "Still best at an edge of its grid after tune.extend more rates: lora (" in text
    assert chosen["spread"]["full"][1e-2] == 0.0  # the made-up accuracies do not depend on the seed


def test_per_task_rates_are_chosen_written_and_applied_per_task(tmp_path):
    cfg = load_config({"name": "p", "tasks": ["a", "b"], "methods": ["lora"], "output": str(tmp_path / "o"),
                       "tune": {"lrs": {"default": [1e-3, 1e-2, 1e-1]}, "per_task": True, "extend": 1}})
    peak = {"a": 1e-2, "b": 1e-3}  # task b's best is the grid's bottom edge: one rate below is tried
    accuracy = lambda v, lr, t: 60 - abs(__import__("math").log10(lr / peak[t]))

    def run_sweep(tuned):
        fake_results({**tuned, "output": Path(tuned["output"])}, accuracy)
    chosen = tune(cfg, run_sweep)
    assert chosen["grids"]["lora"] == [1e-4, 1e-3, 1e-2, 1e-1]
    assert chosen["lrs"] == {"lora": {"a": 1e-2, "b": 1e-3}}
    path = write_lrs(chosen, chosen["tuned"], tmp_path / "lrs.yaml")
    assert "lora on b: 0.0001 -> 59.00, 0.001 -> 60.00" in path.read_text()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({k: cfg[k] for k in ("name", "tasks", "methods", "output")}))
    (tmp_path / "main.yaml").write_text("include: [base.yaml, lrs.yaml]\n")
    tuned_cfg = load_config(tmp_path / "main.yaml")
    assert [resolve_run(tuned_cfg, t, "lora", 0)["train"]["lr"] for t in ("a", "b")] == [1e-2, 1e-3]
    with pytest.raises(ValueError, match=r"lrs.lora holds rates per task and none for 'c'"):
        load_config(tmp_path / "main.yaml", ["tasks=[a,b,c]"])


@pytest.mark.parametrize("where", ["data", "task_overrides", "method_overrides"])
def test_tune_refuses_to_choose_on_the_split_the_sweep_reports(tmp_path, where):
    """Selection on validation data only: a tuning split that is the reported split, set for the whole config
    or through one task's or variant's overrides, is refused before any tuning run."""
    same = {"data": {"tuning_eval_split": "test"}}
    cfg = load_config({"name": "g", "tasks": ["a", "b"], "methods": ["full", "lora"], "output": str(tmp_path / "o"),
                       "tune": {"lrs": {"default": [1e-3, 1e-2]}},
                       **({"data": same["data"]} if where == "data" else
                          {"task_overrides": {"b": same}} if where == "task_overrides" else
                          {"method_overrides": {"lora": same}})})
    made = []
    with pytest.raises(TuningOnReportedSplit, match="split the sweep reports.*data.tuning_eval_split"):
        tune(cfg, made.append)
    assert made == []
    fine = load_config({"name": "g", "tasks": ["a"], "methods": ["full"], "output": str(tmp_path / "p"),
                        "tune": {"lrs": {"default": [1e-3]}}, "data": {"eval_split": "val200", "tuning_eval_split": "val100"}})
    refuse_tuning_on_reported_split(fine)  # a sweep reporting a validation split tunes on another one


@pytest.mark.parametrize("per_task", [False, True])
def test_the_report_tuning_table_shows_the_numbers_tune_chose_by(tmp_path, per_task):
    """tune's choice and the report's tuning table read the tuning runs through one reader: the same mean,
    seed spread and chosen rate per variant (and task), a rate with an unfinished run shown but not chosen."""
    cfg = load_config({"name": "g", "tasks": ["a", "b"], "methods": ["full", "lora"], "output": str(tmp_path / "o"),
                       "tune": {"lrs": {"default": [1e-3, 1e-2, 1e-1]}, "seeds": [0, 1, 2], "per_task": per_task}})
    tuned = {**tuning_config(cfg), "output": tmp_path / "o-tune"}
    score = {("full", "a"): 1e-3, ("full", "b"): 1e-2, ("lora", "a"): 1e-1, ("lora", "b"): 1e-1}
    fake_seeded_results(tuned, lambda v, lr, t, s: 70 - 3 * abs(__import__("math").log10(lr / score[(v, t)]))
                        + [0.0, 1.5, -0.7][s] * (1 + lr))
    (tuned["output"] / "runs" / "b__lora_lr0.1__seed2.json").unlink()  # lora's best rate is unfinished
    chosen = choose(tuned, tuned["output"])
    rates = write_lrs(chosen, tuned, tuned["output"] / "lrs-g.yaml")
    (tuned["output"] / "sweep-g-tune.yaml").write_text(yaml.safe_dump({**tuned, "output": str(tuned["output"])}))
    rows = tuning_rows(rates)
    assert len(rows) == 2 * 3 * (2 if per_task else 1)
    for r in rows:
        v, lr = r["variant"], r["lr"]
        best = chosen["lrs"][v][r["task"]] if per_task else chosen["lrs"][v]
        assert r["chosen"] == (lr == best)
        if v == "lora" and lr == 1e-1:  # a rate competes once all its runs (every task's) are finished
            assert lr not in chosen["table"][v] and not r["chosen"]
            assert r["runs"] == r["expected_runs"] - (r["task"] in ("b", "all"))  # shown with what is on file
            continue
        assert r["runs"] == r["expected_runs"]
        if per_task:
            assert r["mean"] == chosen["per_task"][v][r["task"]][lr]
        else:
            assert (r["mean"], r["spread"]) == (chosen["table"][v][lr], chosen["spread"][v][lr])
            assert r["spread"] > 0


def diverging_runner(run, logdir=None, quiet=False):
    """Diverges at rates above 0.05, and at every rate for lora; linear peaks at 0.01."""
    import math
    from aurora_bench.run import NonFiniteLoss
    if run["train"]["lr"] > 0.05 or run["method"]["name"] == "lora":
        raise NonFiniteLoss(f"training loss became nan in epoch 1 (lr {run['train']['lr']}, head_lr None); lower the "
                            "learning rate")
    return fake_record(run, 70 - abs(math.log10(run["train"]["lr"] / 1e-2)))


def test_diverged_rates_are_said_to_have_diverged(tmp_path):
    """Every rate diverging was reported as no rate having all its runs 'finished', and the rates file's
    comments dropped a diverged rate."""
    from aurora_bench.sweep import sweep
    from aurora_bench.tune import UnfinishedTuning
    from aurora_bench.tuning_runs import DIVERGED
    from aurora_bench.run import NonFiniteLoss
    assert DIVERGED == NonFiniteLoss.__name__
    cfg = load_config({"name": "d", "tasks": ["a", "b"], "methods": ["linear"], "output": str(tmp_path / "o"),
                       "tune": {"lrs": {"default": [1e-3, 1e-2, 1e-1]}, "extend": 0}})
    chosen = tune(cfg, lambda tuned: sweep(tuned, quiet=True, runner=diverging_runner))
    assert chosen["lrs"] == {"linear": 1e-2}
    text = write_lrs(chosen, chosen["tuned"], tmp_path / "lrs.yaml").read_text()
    assert "#   linear: 0.001 -> 69.00, 0.01 -> 70.00, 0.1 -> diverged\n" in text
    with pytest.raises(UnfinishedTuning, match=r"^every rate of 'lora' diverged \(0.001, 0.01, 0.1: the training loss "
                                               r"became NaN or inf\); give tune.lrs lower rates for it"):
        tune({**cfg, "methods": ["lora"]}, lambda tuned: sweep(tuned, quiet=True, runner=diverging_runner))
