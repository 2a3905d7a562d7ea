import json
import os
from functools import partial
from pathlib import Path

import pytest

from aurora_bench.config import load_config
from aurora_bench.executors.processes import run_parallel
from aurora_bench.sweep import sweep

import parallel_runners
from parallel_runners import counts

TWO_WORKERS = partial(run_parallel, devices=[None, None], quiet=True)

pytestmark = pytest.mark.slow  # spawned worker processes, Ray and submitit: seconds each


def cfg_for(tmp_path, methods):
    return load_config({"tasks": ["t"], "methods": methods, "seeds": [0, 1], "output": str(tmp_path / "out"),
                        "method_overrides": {m: {"method": "full"} for m in methods}})  # names for the fake runners


def results(cfg):
    return {p.stem: json.loads(p.read_text()) for p in (Path(cfg["output"]) / "runs").glob("*.json")}


def test_parallel_sweep_matches_serial_and_uses_several_processes(tmp_path):
    par = cfg_for(tmp_path / "p", ["a", "b", "c"])
    ser = cfg_for(tmp_path / "s", ["a", "b", "c"])
    assert sweep(par, quiet=True, runner=parallel_runners.ok_runner, executor=TWO_WORKERS) == counts(ok=6)
    sweep(ser, quiet=True, runner=parallel_runners.ok_runner)
    rp, rs = results(par), results(ser)
    assert sorted(rp) == sorted(rs) and len(rp) == 6
    assert all(rp[k]["accuracy"] == rs[k]["accuracy"] for k in rp)
    assert len({r["pid"] for r in rp.values()}) == 2  # both workers took runs
    # resumes: nothing is run twice
    assert sweep(par, quiet=True, runner=parallel_runners.ok_runner, executor=TWO_WORKERS) == counts(skipped=6)


def test_worker_crash_is_retried_once_then_recorded(tmp_path):
    cfg = cfg_for(tmp_path, ["a", "b", "always"])
    made = sweep(cfg, quiet=True, runner=parallel_runners.crash_once_runner, executor=TWO_WORKERS)
    assert made == counts(ok=4, failed=2)
    res = results(cfg)
    assert res["t__b__seed0"]["status"] == "ok" and res["t__b__seed1"]["status"] == "ok"  # retried after a crash
    assert res["t__always__seed0"]["status"] == "failed"
    assert "worker process died (exit code 9) in this run, twice" in res["t__always__seed0"]["error"]
    timing = res["t__always__seed0"]["timing"]  # the second attempt held its worker: busy time, not idle
    assert timing["wall_start"] <= timing["wall_end"] and timing["pid"] != os.getpid() and timing["gpu"] == "cpu"


def test_ray_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    from aurora_bench.executors.ray_tasks import run_ray

    here = Path(__file__).parent  # Ray's workers import the test runners by name
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{here}:{here.parent}"}})
    try:
        cfg = cfg_for(tmp_path, ["a", "b", "always"])
        made = sweep(cfg, quiet=True, runner=parallel_runners.crash_once_runner, executor=partial(run_ray, quiet=True))
        assert made == counts(ok=4, failed=2)
        res = results(cfg)
        assert res["t__b__seed0"]["status"] == "ok"  # the crashed worker's run was retried by Ray
        assert "ray task failed after a retry" in res["t__always__seed1"]["error"]
        assert sweep(cfg, quiet=True, runner=parallel_runners.ok_runner, executor=partial(run_ray, quiet=True)) == \
            counts(skipped=6, failed_before=2)
    finally:
        ray.shutdown()


def test_workers_per_gpu_spread_round_robin_and_are_recorded(tmp_path, monkeypatch):
    from aurora_bench.executors.processes import devices_for
    assert devices_for("0,1", 3) == ["0", "1", "0", "1", "0", "1"]
    assert devices_for("2", None) == ["2"] and devices_for(None, 2) == [None, None]
    cfg = cfg_for(tmp_path, ["a", "b"])
    sweep(cfg, quiet=True, runner=parallel_runners.env_runner,
          executor=partial(run_parallel, devices=["x", "x", "y"], quiet=True))
    seen = {r["env"]["CUDA_VISIBLE_DEVICES"]: r["env"]["AURORA_VISION_DEVICE_SHARED_BY"] for r in results(cfg).values()}
    assert seen.get("x", "2") == "2" and seen.get("y", "1") == "1" and seen


def test_slurm_through_submitit_local_executor_retries_then_records(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from aurora_bench.executors.slurm_jobs import run_slurm

    # a dead job leaves no result file; submitit waits 15-30 s for one (slow shared disks): not here
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)

    here = Path(__file__).parent  # the jobs import the test runners by name
    monkeypatch.setenv("PYTHONPATH", f"{here}:{here.parent}")
    cfg = load_config({"tasks": ["t"], "methods": ["b", "always"], "seeds": [0], "output": str(tmp_path / "out"),
                       "method_overrides": {"b": {"method": "full"}, "always": {"method": "full"}}})
    executor = partial(run_slurm, partition="local", options={"gpus_per_node": 0, "cpus_per_task": 1},
                       quiet=True, poll_s=0.2)
    made = sweep(cfg, quiet=True, runner=parallel_runners.crash_once_runner, executor=executor)
    assert made == counts(ok=1, failed=1)
    res = results(cfg)
    assert res["t__b__seed0"]["status"] == "ok"  # its job died once and was submitted again
    assert "failed twice" in res["t__always__seed0"]["error"]
    assert sweep(cfg, quiet=True, runner=parallel_runners.crash_once_runner, executor=executor)["skipped"] == 2


def test_a_worker_decodes_the_next_task_while_its_run_trains(tmp_path):
    """One worker: with its first run it is told the second task's run, whose splits it decodes meanwhile."""
    from test_runner import _two_tasks
    cfg = _two_tasks(tmp_path)
    assert sweep(cfg, quiet=True, runner=parallel_runners.decode_ahead_runner,
                 executor=partial(run_parallel, devices=[None], quiet=True))["ok"] == 2
    records = {r["task"]: r for r in results(cfg).values()}
    assert records["first"]["saw_next_task_decoded"] is True
    assert records["second"]["origins"] == {"train": "hit", "eval": "hit"}
