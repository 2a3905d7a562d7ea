import json
import os
from pathlib import Path

import pytest

from aurora_bench.config import resolve_run
from aurora_bench.store import result_path
from aurora_bench.sweep import ConfigChanged, sweep
from aurora_bench.run import train_run
from aurora_bench.run.timing import PHASES
from aurora_bench.store.record import InvalidRecord, check_record

from fixtures import tiny_cfg
from parallel_runners import counts, failing_runner, fake_record

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
    assert result["blas"] is None  # the GEMM library is recorded on CUDA only (cuBLAS or cuBLASLt)
    for key in ("versions", "git", "device", "train_img_per_s", "peak_memory_mb", "wall_seconds", "config"):
        assert key in result
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_timing_parts_add_up_and_the_cache_is_told(tmp_path):
    cfg = tiny_cfg(tmp_path)
    run = resolve_run(cfg, "mytask", "aurora", 0)
    first, again = train_run(run, quiet=True), train_run(run, quiet=True)
    for result, cache in ((first, "decoded"), (again, "hit")):
        t = result["timing"]
        assert t["data_cache"] == {"train": cache, "eval": cache}
        parts = [t[f"{phase}_seconds"] for phase in PHASES]
        assert all(p >= 0 for p in parts) and sum(parts) <= t["total_seconds"] + 1e-6
        assert sum(parts) + t["other_seconds"] == pytest.approx(t["total_seconds"])
        assert t["total_seconds"] <= result["wall_seconds"] <= t["wall_end"] - t["wall_start"] + 0.5
        # the eager path: no graph, its first step timed apart from the steady epochs
        assert t["graph_capture_seconds"] == 0 and t["first_step_seconds"] > 0
        assert t["train_steady_seconds"] + t["first_step_seconds"] == pytest.approx(result["train_seconds"])
        assert t["evals"] == 2 and t["eval_seconds"] > 0 and t["merge_eval_seconds"] > 0  # AuroRA: a static merge
        assert t["model_build_seconds"] > 0 and t["data_load_seconds"] > 0
        assert t["pid"] == os.getpid() and t["gpu"] == "cpu" and t["device"] == "cpu"
    assert first["timing"]["wall_end"] <= again["timing"]["wall_start"]
    assert check_record(first, "test") is first


def test_one_off_costs_are_timed_apart_at_every_batch_size_and_out_of_eval():
    """A static-shape compile compiles the tail batch again, and a graphed evaluation captures once: both
    are capture/compile time, not steady training or evaluation."""
    import time
    import torch
    from aurora_bench.run import add_training
    from aurora_bench.run.timing import RunTimer
    from aurora_bench.run.train import Fitted, FirstCallsTimed
    step = FirstCallsTimed(lambda x: time.sleep(0.05 if x.shape[0] not in seen else 0) or seen.add(x.shape[0]),
                           torch.device("cpu"))
    seen = set()
    for rows in (4, 4, 2, 4, 2):
        step(torch.zeros(rows))
    assert 0.1 <= step.seconds < 0.15  # the first batch of 4 and the first tail of 2
    timer = RunTimer()
    add_training(timer, Fitted(final={}, train_seconds=10.0, capture_seconds=3.0, eval_seconds=5.0,
                               eval_capture_seconds=2.0))
    assert (timer.seconds["graph_capture"], timer.seconds["train_steady"], timer.seconds["eval"]) == (5.0, 7.0, 3.0)


def test_a_record_without_timing_stays_valid_and_a_broken_one_is_refused(tmp_path):
    cfg = tiny_cfg(tmp_path)
    result = train_run(resolve_run(cfg, "mytask", "linear", 0), quiet=True)
    check_record({k: v for k, v in result.items() if k != "timing"}, "an old record")
    with pytest.raises(InvalidRecord, match="timing must hold the numbers total_seconds"):
        check_record({**result, "timing": {"wall_start": 1.0}}, "a record")


def test_a_failed_run_records_when_and_where_it_ran_and_its_gpu_time_counts_as_busy(tmp_path):
    import socket
    import time
    from aurora_bench import store
    from aurora_bench.perf.sweep_breakdown import breakdown
    cfg = tiny_cfg(tmp_path, methods=["a"])
    start = time.time()
    assert sweep(cfg, quiet=True, runner=failing_runner) == counts(failed=1)
    end = time.time()
    rec = json.loads(result_path(cfg["output"], resolve_run(cfg, "mytask", "a", 0)).read_text())
    t = rec["timing"]
    assert rec["status"] == "failed" and "CUDA out of memory" in rec["error"]
    assert start <= t["wall_start"] and t["wall_start"] + 0.2 <= t["wall_end"] <= end
    assert (t["pid"], t["host"], t["device"], t["gpu"]) == (os.getpid(), socket.gethostname(), "cpu", "cpu")
    assert t["total_seconds"] == pytest.approx(t["wall_end"] - t["wall_start"])
    check_record({k: v for k, v in rec.items() if k != "timing"}, "a failure recorded before timing")
    with pytest.raises(InvalidRecord, match="timing must hold the numbers total_seconds"):
        check_record({**rec, "timing": {"wall_start": 1.0}}, "a record")
    b = breakdown(store.load_all(cfg["output"]), [[start, end]])
    g = b["gpus"][f"{socket.gethostname()}:cpu"]
    assert g["runs"] == 0 and g["failed_runs"] == pytest.approx(g["busy"]) == pytest.approx(t["total_seconds"])
    assert g["busy"] + g["idle_before"] + g["idle_between"] + g["idle_after"] == pytest.approx(end - start)


def test_decode_ahead_names_each_later_set_of_splits_once():
    from types import SimpleNamespace

    from aurora_bench.executors.ahead import DecodeAhead
    def job(task, size=16):
        return SimpleNamespace(run={"task": task, "data": {"root": "/d"}, "model": {"image_size": size}})
    a1, a2, b1, b2, c1 = job("a"), job("a"), job("b"), job("b"), job("c", 32)
    ahead = DecodeAhead()
    assert ahead.next_for(a1, [a2, b1, b2, c1]) is b1.run  # a1's own task is being decoded by a1 itself
    assert ahead.next_for(a2, [b1, b2, c1]) is c1.run       # b is asked for already
    assert ahead.next_for(b1, [b2, c1]) is None and ahead.next_for(b2, [c1]) is None


def _two_tasks(tmp_path):
    from fixtures import vtab_task
    cfg = tiny_cfg(tmp_path)
    vtab_task(tmp_path / "data", "first", num_classes=3)
    vtab_task(tmp_path / "data", "second", num_classes=3)
    cfg.update(tasks=["first", "second"], methods=["lora"])
    return cfg


def test_a_serial_sweep_decodes_the_next_task_while_a_run_trains(tmp_path):
    """The first task's run waits for the second task's splits, which nothing but the prefetch decodes; the
    second task's run then reads them from the cache."""
    from parallel_runners import decode_ahead_runner
    cfg = _two_tasks(tmp_path)
    assert sweep(cfg, quiet=True, runner=decode_ahead_runner)["ok"] == 2
    records = {r["task"]: r for r in map(json.loads, map(Path.read_text, (tmp_path / "out" / "runs").glob("*.json")))}
    assert records["first"]["saw_next_task_decoded"] is True
    assert records["first"]["origins"] == {"train": "decoded", "eval": "decoded"}
    assert records["second"]["origins"] == {"train": "hit", "eval": "hit"}


def test_same_seed_same_result(tmp_path):
    cfg = tiny_cfg(tmp_path)
    a = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    b = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    untimed = lambda curve: [{k: v for k, v in p.items() if k != "seconds"} for p in curve]
    assert untimed(a["curve"]) == untimed(b["curve"])


def test_nan_loss_stops_run_and_is_recorded(tmp_path):
    cfg = tiny_cfg(tmp_path, methods=["linear"])
    cfg["train"]["lr"] = 1e30  # diverges to a NaN loss in the first epoch
    assert sweep(cfg, quiet=True) == counts(failed=1)
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
        return fake_record(run, 1.0)

    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, quiet=True, runner=runner)
    done = sorted(p.stem for p in (Path(cfg["output"]) / "runs").glob("*.json"))
    assert done == ["mytask__a__seed0", "mytask__b__seed0"]  # finished ones kept, nothing half-written
    assert not list((Path(cfg["output"]) / "runs").glob(".*tmp*"))
    calls.clear()
    interrupt["at"] = None
    assert sweep(cfg, quiet=True, runner=runner) == counts(ok=2, skipped=2, failed_before=1)
    assert calls == ["c", "d"]
    assert sweep(cfg, quiet=True, runner=runner, retry_failed=True) == counts(failed=1, skipped=3)
    cfg["train"]["lr"] = 0.5
    with pytest.raises(ConfigChanged):
        sweep(cfg, quiet=True, runner=runner)


def test_replace_changed_sets_old_results_aside_and_reruns_only_those(tmp_path):
    cfg = tiny_cfg(tmp_path, methods=["a", "b"])
    runner = lambda run, logdir=None, quiet=False: fake_record(run, run["train"]["lr"])
    sweep(cfg, quiet=True, runner=runner)
    cfg["method_overrides"] = {"b": {"train": {"lr": 0.5}}}  # b's rate changed, a's did not
    for round_ in (1, 2):
        assert sweep(cfg, quiet=True, runner=runner, replace_changed=True) == counts(ok=1, skipped=1)
        cfg["method_overrides"]["b"]["train"]["lr"] = 0.25  # changed again: the second set-aside copy is kept too
    out = Path(cfg["output"])
    aside = sorted(p.name for p in (out / "replaced" / "runs").glob("*.json"))
    assert aside == ["mytask__b__seed0.1.json", "mytask__b__seed0.json"]
    assert json.loads((out / "runs" / "mytask__b__seed0.json").read_text())["accuracy"] == 0.25
    assert json.loads((out / "replaced" / "runs" / "mytask__b__seed0.json").read_text())["accuracy"] == 1e-3




@pytest.mark.slow  # two torchrun processes
@pytest.mark.parametrize("compiled", [False, "regional"])
def test_torchrun_ddp_matches_single_process(tmp_path, compiled):
    """Two CPU ranks (gloo) over the same global batches give the single-process run's losses and accuracy;
    with regional compile too (DDP stays outside the compiled blocks)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as free:  # a port nobody holds: parallel test runs must not collide on a fixed one
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    cfg = tiny_cfg(tmp_path)  # 18 training images, batch 4: every batch splits evenly over 2 ranks
    cfg["train"].update(epochs=3, compile=compiled)
    single = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", port, "-m", "aurora_bench.cli", "run", str(tmp_path / "c.yaml"),
                           "--task", "mytask", "--method", "aurora", "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = json.loads(result_path(cfg["output"], resolve_run(cfg, "mytask", "aurora", 0)).read_text())
    assert ddp["world_size"] == 2
    assert ddp["accuracy"] == single["accuracy"]
    for a, b in zip(ddp["curve"], single["curve"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
