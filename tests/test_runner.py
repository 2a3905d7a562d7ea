import json
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.config import load_config, resolve_run
from benchmarks.store import result_path
from benchmarks.sweep import ConfigChanged, sweep
from benchmarks.run import train_run

from fixtures import vtab_task

TINY_MODEL = {"name": "vit_tiny_patch16_224", "pretrained": False, "image_size": 16,
              "kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 16, "num_heads": 2}}


def tiny_cfg(tmp_path, **over):
    vtab_task(tmp_path / "data", "mytask", num_classes=3)
    cfg = load_config({"name": "t", "tasks": ["mytask"], "methods": ["linear", "aurora"], "seeds": [0],
                       "output": str(tmp_path / "out"), "model": TINY_MODEL,
                       "data": {"root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
                       "train": {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "eval_every": 1, "device": "cpu"}})
    for k, v in over.items():
        cfg[k] = v
    return cfg


def test_config_include_set_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 7, lr: 0.5}\nmethods: [lora]\n")
    (tmp_path / "suite.yaml").write_text(
        "include: [base.yaml]\ntasks: [a, b]\nmethod_overrides: {lora_r2: {method: lora, config: {r: 2}, "
        "train: {lr: 0.1}}}\ntask_overrides: {b: {train: {epochs: 3}}}\n")
    cfg = load_config(tmp_path / "suite.yaml", ["seeds=[0,1]", "train.weight_decay=0.2", "tuning=true"])
    assert cfg["train"]["epochs"] == 7 and cfg["seeds"] == [0, 1] and cfg["train"]["weight_decay"] == 0.2
    run = resolve_run(cfg, "b", "lora_r2", 1)
    assert run["method"] == {"variant": "lora_r2", "name": "lora", "config": {"r": 2}}
    assert run["train"]["lr"] == 0.1 and run["train"]["epochs"] == 3
    assert run["data"]["split_train"] == "train800" and run["data"]["split_eval"] == "val200"  # tuning mode
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["method=lora"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")


def test_train_run_records_everything(tmp_path):
    cfg = tiny_cfg(tmp_path)
    result = train_run(resolve_run(cfg, "mytask", "aurora", 0), logdir=tmp_path / "tb", quiet=True)
    assert result["status"] == "ok" and 0 <= result["accuracy"] <= 100
    assert result["num_train"] == 18 and result["num_eval"] == 9  # train800val200 -> test
    assert result["params"]["adapter"] == 2 * (2 * (16 + 16) + 20)
    assert result["gmacs_per_image"] > 0 and result["accuracy_of"].startswith("test split, final epoch")
    assert [p["epoch"] for p in result["curve"]] == [1, 2] and all(p["seconds"] > 0 for p in result["curve"])
    assert 0 <= result["accuracy_static_merge"] <= 100  # the same model, evaluated in the static form
    assert result["device_shared_by"] == 1  # no parallel workers on this device
    for key in ("versions", "git", "device", "train_img_per_s", "peak_memory_mb", "wall_seconds", "config"):
        assert key in result
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_same_seed_same_result(tmp_path):
    cfg = tiny_cfg(tmp_path)
    a = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    b = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    untimed = lambda curve: [{k: v for k, v in p.items() if k != "seconds"} for p in curve]
    assert untimed(a["curve"]) == untimed(b["curve"])


def test_nan_loss_stops_run_and_is_recorded(tmp_path):
    cfg = tiny_cfg(tmp_path, methods=["linear"])
    cfg["train"]["lr"] = float("nan")
    assert sweep(cfg, quiet=True) == {"ok": 0, "failed": 1, "skipped": 0}
    rec = json.loads(result_path(cfg["output"], resolve_run(cfg, "mytask", "linear", 0)).read_text())
    assert rec["status"] == "failed" and "NonFiniteLoss: training loss became nan" in rec["error"]


def test_sweep_resumes_after_interrupt_and_records_failures(tmp_path):
    cfg = tiny_cfg(tmp_path, methods=["a", "b", "c", "d"])
    calls, interrupt = [], {"at": "c"}

    def runner(run, logdir=None, quiet=False):
        calls.append(run["method"]["variant"])
        if run["method"]["variant"] == "b":
            raise ValueError("bad input")
        if run["method"]["variant"] == interrupt["at"]:
            raise KeyboardInterrupt
        return {"status": "ok", "config": run, "accuracy": 1.0}

    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, quiet=True, runner=runner)
    done = sorted(p.stem for p in (Path(cfg["output"]) / "runs").glob("*.json"))
    assert done == ["mytask__a__seed0", "mytask__b__seed0"]  # finished ones kept, nothing half-written
    assert not list((Path(cfg["output"]) / "runs").glob(".*tmp*"))
    calls.clear()
    interrupt["at"] = None
    assert sweep(cfg, quiet=True, runner=runner) == {"ok": 2, "failed": 0, "skipped": 2}
    assert calls == ["c", "d"]
    assert sweep(cfg, quiet=True, runner=runner, retry_failed=True) == {"ok": 0, "failed": 1, "skipped": 3}
    cfg["train"]["lr"] = 0.5
    with pytest.raises(ConfigChanged):
        sweep(cfg, quiet=True, runner=runner)


def test_replace_changed_sets_old_results_aside_and_reruns_only_those(tmp_path):
    cfg = tiny_cfg(tmp_path, methods=["a", "b"])
    runner = lambda run, logdir=None, quiet=False: {"status": "ok", "config": run, "accuracy": run["train"]["lr"]}
    sweep(cfg, quiet=True, runner=runner)
    cfg["method_overrides"] = {"b": {"train": {"lr": 0.5}}}  # b's rate changed, a's did not
    for round_ in (1, 2):
        assert sweep(cfg, quiet=True, runner=runner, replace_changed=True) == {"ok": 1, "failed": 0, "skipped": 1}
        cfg["method_overrides"]["b"]["train"]["lr"] = 0.25  # changed again: the second set-aside copy is kept too
    out = Path(cfg["output"])
    aside = sorted(p.name for p in (out / "replaced" / "runs").glob("*.json"))
    assert aside == ["mytask__b__seed0.1.json", "mytask__b__seed0.json"]
    assert json.loads((out / "runs" / "mytask__b__seed0.json").read_text())["accuracy"] == 0.25
    assert json.loads((out / "replaced" / "runs" / "mytask__b__seed0.json").read_text())["accuracy"] == 1e-3


def test_cli_run_and_unknown_method(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["run", str(tmp_path / "c.yaml"), "--task", "mytask", "--method", "linear", "--quiet"]) == 0
    assert main(["run", str(tmp_path / "c.yaml"), "--task", "mytask", "--method", "lorax", "--quiet"]) == 1
    assert "unknown method 'lorax'; known methods: aurora, bitfit" in capsys.readouterr().out


def test_demo_end_to_end_shortened(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--quiet", "--set", f"output={out}", "seeds=[0]", "train.epochs=2", "methods=[linear,aurora]",
                 "pretrain.epochs=2", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| aurora |" in text and "| linear |" in text
    assert (out / "pretrained" / "backbone.safetensors").is_file() and (out / "pareto.png").is_file()
    assert list((out / "tb" / "aurora" / "digits_5_9" / "seed0").glob("events.*"))


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path):
    import yaml
    from benchmarks.sweep import expand
    from aurora_vision import get_method
    cfg = load_config(path)
    if not cfg["tasks"]:  # a fragment (e.g. tuned rates): some config includes it
        assert any(path.name in (yaml.safe_load(p.read_text()).get("include") or []) for p in path.parent.glob("*.yaml"))
        return
    runs = expand(cfg)
    assert runs
    for run in runs:
        get_method(run["method"]["name"])


def test_torchrun_ddp_matches_single_process(tmp_path):
    """Two CPU ranks (gloo) over the same global batches give the single-process run's losses and accuracy."""
    import subprocess
    import sys

    cfg = tiny_cfg(tmp_path)  # 18 training images, batch 4: every batch splits evenly over 2 ranks
    cfg["train"]["epochs"] = 3
    single = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", "-m", "benchmarks.cli", "run", str(tmp_path / "c.yaml"),
                           "--task", "mytask", "--method", "aurora", "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = json.loads(result_path(cfg["output"], resolve_run(cfg, "mytask", "aurora", 0)).read_text())
    assert ddp["world_size"] == 2
    assert ddp["accuracy"] == single["accuracy"]
    for a, b in zip(ddp["curve"], single["curve"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
