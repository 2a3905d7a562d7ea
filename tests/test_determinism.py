"""train.deterministic: reruns of one config and seed give the same accuracy and loss curve, with every
random draw of a run in play (augmentation, dropout, drop-path), and the record says which mode ran."""
import json
import os

import pytest
import torch

from aurora_bench.config import load_config, resolve_run
from aurora_bench.run import determinism, train_run

from fixtures import vtab_task

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# a 2-block ViT at 32 px with drop-path; AuroRA with dropout on its branch input; random crops and flips
MODEL = {"name": "vit_tiny_patch16_224", "pretrained": False, "image_size": 32,
         "kwargs": {"patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2, "drop_path_rate": 0.1}}


@pytest.fixture
def restore_switches(monkeypatch):
    """configure() sets process-wide state: put torch's defaults back for the tests that follow."""
    monkeypatch.delenv(determinism.CUBLAS_ENV, raising=False)  # monkeypatch restores the original at teardown
    yield
    determinism.configure(False)


def cfg_for(tmp_path, deterministic: bool) -> dict:
    if not (tmp_path / "data").exists():
        vtab_task(tmp_path / "data", "mytask", num_classes=3)
    return load_config({"name": "t", "tasks": ["mytask"], "methods": ["aurora"], "output": str(tmp_path / "out"),
                        "model": MODEL,
                        "data": {"root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache"),
                                 "hflip": True, "crop_scale": [0.3, 1.0]},
                        "train": {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "eval_every": 1, "device": "cpu",
                                  "deterministic": deterministic},
                        "method_overrides": {"aurora": {"config": {"dropout": 0.2}}}})


def untimed(curve: list) -> list:
    return [{k: v for k, v in point.items() if k != "seconds"} for point in curve]


def test_deterministic_reruns_give_identical_accuracy_and_curve(tmp_path, restore_switches):
    run = resolve_run(cfg_for(tmp_path, deterministic=True), "mytask", "aurora", 0)
    a, b = train_run(run, quiet=True), train_run(run, quiet=True)
    assert a["deterministic"] is True and a["determinism"]["torch.use_deterministic_algorithms"] is True
    # where CUDA already ran in this process (a GPU test session), the record adds that the earlier workspace stands
    assert a["determinism"][determinism.CUBLAS_ENV].startswith(":4096:8")
    assert a["accuracy"] == b["accuracy"] and a["accuracy_static_merge"] == b["accuracy_static_merge"]
    assert untimed(a["curve"]) == untimed(b["curve"])
    # the curve does depend on the run's random draws: another seed moves it
    other = train_run(resolve_run(cfg_for(tmp_path, deterministic=True), "mytask", "aurora", 1), quiet=True)
    assert [p["loss"] for p in other["curve"]] != [p["loss"] for p in a["curve"]]


@cuda
@pytest.mark.parametrize("compiled", [False, True, "regional"])
def test_deterministic_reruns_on_the_gpu(tmp_path, restore_switches, compiled):
    """CUDA graphs (with the compiled model's kernels), bf16 autocast, SDPA, the Triton sigma and AuroRA's q/v
    up-projection (index_copy, deterministic under capture) in one run, made twice."""
    cfg = cfg_for(tmp_path, deterministic=True)
    cfg["train"].update(device="cuda", epochs=3, compile=compiled)  # 18 images, batch 4: a tail batch of 2
    run = resolve_run(cfg, "mytask", "aurora", 0)
    a, b = train_run(run, quiet=True), train_run(run, quiet=True)
    assert a["cuda_graphs"] and a["determinism"].get("inductor.deterministic", False) == bool(compiled)
    assert a["accuracy"] == b["accuracy"] and untimed(a["curve"]) == untimed(b["curve"])


def test_default_mode_resets_what_a_deterministic_run_set(tmp_path, restore_switches):
    determinism.configure(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert os.environ[determinism.CUBLAS_ENV] == ":4096:8"
    result = train_run(resolve_run(cfg_for(tmp_path, deterministic=False), "mytask", "aurora", 0), quiet=True)
    assert result["deterministic"] is False and not torch.are_deterministic_algorithms_enabled()
    assert result["determinism"] == {"torch.use_deterministic_algorithms": False, "cudnn.deterministic": False,
                                     "cudnn.benchmark": False}


def test_compile_follows_the_mode_in_inductor(restore_switches):
    import torch._inductor.config as inductor
    assert determinism.configure(True, compile_model=True)["inductor.deterministic"] is True
    assert inductor.deterministic
    assert determinism.configure(False, compile_model=True)["inductor.deterministic"] is False
    assert not inductor.deterministic


def test_augmentation_draws_only_from_its_generator():
    """Crops and flips depend on the generator they are given, not on the global RNG (any batch size)."""
    from aurora_bench.data import DeviceTransform
    tf = DeviceTransform(8, (0.5,) * 3, (0.5,) * 3, hflip=True, crop_scale=(0.3, 1.0))
    x = torch.randint(0, 255, (5, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    draw = lambda seed: tf(x, train=True, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(1)
    a = draw(0)
    torch.manual_seed(2)
    assert torch.equal(a, draw(0)) and not torch.equal(a, draw(1))



def spread_args(tmp_path) -> list:
    vtab_task(tmp_path / "data", "mytask", num_classes=3)
    (tmp_path / "tiny.yaml").write_text(json.dumps({"model": MODEL, "train": {
        "epochs": 2, "batch_size": 4, "warmup_epochs": 1, "eval_every": 2, "device": "cpu"}}))
    return [str(tmp_path / "tiny.yaml"), "--task", "mytask", "--method", "aurora", "--seeds", "0",
            "--out", str(tmp_path / "spread"), "--set", f"data.root={tmp_path / 'data'}",
            f"data.cache_dir={tmp_path / 'cache'}", "data.hflip=true"]


def test_rerun_spread_table_on_cpu(tmp_path, restore_switches):
    """The GPU script on tiny settings: both modes, the table, a resumed job."""
    from aurora_bench.perf import rerun_spread
    args, out = spread_args(tmp_path) + ["--same-process"], tmp_path / "spread"
    summary = rerun_spread.main(args)
    assert [(r["mode"], len(r["accuracies"])) for r in summary["rows"]] == [("default", 2), ("deterministic", 2)]
    assert summary["modes"]["deterministic"]["all_curves_identical"]
    assert summary["modes"]["deterministic"]["max_spread"] == 0 and summary["modes"]["default"]["step_ms"] > 0
    assert "Deterministic mode's step time cost" in (out / "rerun_spread.md").read_text()
    assert json.loads((out / "rerun_spread.json").read_text())["rows"] == summary["rows"]
    assert json.loads((out / "runs" / "deterministic-s0-r1.json").read_text())["deterministic"] is True
    (out / "runs" / "deterministic-s0-r0.json").unlink()  # a resumed job makes only what is missing
    made = os.path.getmtime(out / "runs" / "default-s0-r0.json")
    assert rerun_spread.main(args)["rows"][1]["curves_identical"]
    assert os.path.getmtime(out / "runs" / "default-s0-r0.json") == made


@pytest.mark.slow  # a fresh interpreter per run: tens of seconds on a busy CPU
def test_a_run_in_a_fresh_process_equals_one_in_this_process(tmp_path, restore_switches):
    """What rerun_spread does on the GPU by default: the run in a spawned interpreter, same curve."""
    from aurora_bench.perf import rerun_spread
    args = spread_args(tmp_path)
    _, _, _, run = rerun_spread.planned_runs(args[0], args[args.index("--set") + 1:], "mytask", "aurora", [0], 2)[1]
    assert run["train"]["deterministic"]
    fresh = rerun_spread.run_once(run, tmp_path / "fresh.json", fresh_process=True)
    here = train_run(run, quiet=True)
    assert fresh["accuracy"] == here["accuracy"] and untimed(fresh["curve"]) == untimed(here["curve"])
