"""perf/issue23_targets.py: the figures issue23.sh's steps wrote, each against its target; a missing step is
'not measured', never a verdict."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from aurora_bench.perf.issue23_targets import targets


def _cost(none_ms, regional_ms, batch=64, cold_s=18.0, warm_s=4.0, breaks=0):
    def mode(ms, s, cache):
        return {"step_ms": ms, "compile": {"seconds": s, "cache": cache, "graph_breaks": breaks}}
    return {"device": "NVIDIA H200", "batch": batch, "modes": {
        "none": {"cold": mode(none_ms, 0, None), "warm": mode(none_ms, 0, None)},
        "regional": {"cold": mode(regional_ms, cold_s, "cold"), "warm": mode(regional_ms, warm_s, "warm")}}}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_targets_read_every_step_and_judge_each_figure(tmp_path):
    _write(tmp_path / "s14_b64" / "compile_cost.json", _cost(20.0, 9.0))
    _write(tmp_path / "b16_b64" / "compile_cost.json", _cost(21.6, 12.5, warm_s=6.2))
    _write(tmp_path / "b16_speed" / "speed.json", {"device": "NVIDIA H100", "compile": "regional", "batches": {
        "64": {"full": {"train_step_s": 0.0200}, "aurora_r2_qv": {"train_step_s": 0.0150}},
        "256": {"full": {"train_step_s": 0.0768}, "aurora_r2_qv": {"train_step_s": 0.0600}}}})
    _write(tmp_path / "breaks.txt", "graph breaks: 0 {}; unique graphs: 4\n")
    _write(tmp_path / "cuda_tests.txt", "..\n2 passed in 31.20s\n")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets(tmp_path).splitlines() if line.startswith("| ")}
    assert "| 2.22x | >= 2x | **met** |" in rows["DINOv2 ViT-S/14 b64 throughput, new / previous default"]
    assert "9.0 ms, 7,111 img/s" in rows["DINOv2 ViT-S/14 b64 step, new default (regional compile, warm cache)"]
    assert "| 12.5 ms, 5,120 img/s | <= 13 ms | **met** |" in \
        rows["ViT-B/16 b64 step, new default (regional compile, warm cache)"]
    assert "| 6.2 (cache: warm) | <= 5 s | not met |" in rows["regional compile, warm process (s)"]
    assert "| 0, 0 | 0 | **met** |" in rows["graph breaks in the compiled adapted blocks (cold, warm process)"]
    assert "| 0.781 (60.0 / 76.8 ms) | <= 0.80 | **met** |" in \
        rows["ViT-B/16 b256 AuroRA / full step, new default (regional)"]
    assert "| 0 | 0 | **met** |" in rows["graph breaks, profile_step (compiled ViT-B/16 step)"]
    assert "| 2 passed | all pass | **met** |" in rows["CUDA tests of the sigma op"]


def test_the_autotune_steps_are_judged_against_the_same_baselines(tmp_path):
    """regional-autotune's steps (their own compile_cost folders) against the previous default of s14_b64 and
    b16_b64, with its own compile rows; without those folders the table has no such rows."""
    _write(tmp_path / "s14_b64" / "compile_cost.json", _cost(16.1, 11.6))
    _write(tmp_path / "b16_b64" / "compile_cost.json", _cost(23.7, 18.3))
    assert "regional-autotune" not in targets(tmp_path)
    for model, ms, cold_s in (("s14", 7.9, 95.0), ("b16", 15.2, 140.0)):
        tuned = _cost(0, ms, cold_s=cold_s, warm_s=2.5)
        tuned["modes"] = {"regional-autotune": tuned["modes"]["regional"]}
        tuned["modes"]["regional-autotune"]["cold"]["compile"]["autotuned"] = 14
        _write(tmp_path / f"{model}_autotune" / "compile_cost.json", tuned)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets(tmp_path).splitlines() if line.startswith("| ")}
    expected = {  # row label: what it must show
        "DINOv2 ViT-S/14 b64 step, regional-autotune (warm cache)": "| 7.9 ms, 8,101 img/s |  | – |",
        "DINOv2 ViT-S/14 b64 throughput, regional-autotune / previous default": "| 2.04x | >= 2x | **met** |",
        "ViT-B/16 b64 step, regional-autotune (warm cache)": "| 15.2 ms, 4,211 img/s | <= 13 ms | not met |",
        "ViT-B/16 b64 throughput, regional-autotune / previous default": "| 1.56x |  | – |",
        "DINOv2 ViT-S/14 b64 step, regional-autotune / regional": "| 7.9 / 11.6 ms (1.47x) | faster | **met** |",
        "ViT-B/16 b64 step, regional-autotune / regional": "| 15.2 / 18.3 ms (1.20x) | faster | **met** |",
        "ViT-B/16 regional-autotune compile, cold process (s)": "| 140.0 (14 GEMMs timed) |  | – |",
        "DINOv2 ViT-S/14 regional-autotune compile, cold process (s)": "| 95.0 (14 GEMMs timed) |  | – |",
        "ViT-B/16 regional-autotune compile, warm process (s)": "| 2.5 (cache: warm) | <= 5 s | **met** |",
        "graph breaks in the ViT-B/16 regional-autotune-compiled adapted blocks (cold, warm process)":
            "| 0, 0 | 0 | **met** |"}
    for label, shown in expected.items():
        assert shown in rows[label], label
    assert "| 2.04x | >= 2x" not in rows["DINOv2 ViT-S/14 b64 throughput, new / previous default"]
    assert "not measured" in rows["CUDA test of regional-autotune (GEMMs timed, eager's outputs and gradients)"]
    _write(tmp_path / "autotune_test.txt", ".\n1 passed in 48.10s\n")
    assert "| 1 passed | passes | **met** |" in targets(tmp_path)
    only_tuned = tmp_path / "only_tuned"  # a call that ran the autotune steps alone names its device too
    _write(only_tuned / "b16_autotune" / "compile_cost.json", tuned)
    assert targets(only_tuned).startswith("Issue 23 targets, NVIDIA H200 (")
    only_speed = tmp_path / "only_speed"  # and one that ran the speed step alone
    _write(only_speed / "b16_speed" / "speed.json", {"device": "NVIDIA H100", "compile": "regional", "batches": {}})
    assert targets(only_speed).startswith("Issue 23 targets, NVIDIA H100 (")


def test_a_step_that_wrote_nothing_is_not_measured(tmp_path):
    _write(tmp_path / "b16_b64" / "compile_cost.json",
           {"device": "x", "batch": 64, "modes": {"none": _cost(21.6, 0)["modes"]["none"]}})  # regional: killed
    text = targets(tmp_path)
    assert "| ViT-B/16 b64 step, new default (regional compile, warm cache) | not measured (see issue23.log) |" in text
    assert "| ViT-B/16 AuroRA / full step, new default | not measured (see issue23.log) | <= 0.80 | – |" in text
    assert "**met**" not in text


def test_cublaslt_steps_are_judged_against_cublas_of_the_same_call(tmp_path):
    def speed(blas, full_s, aurora_s):
        return {"device": "NVIDIA H100", "compile": "regional", "blas": blas, "batches": {
            "256": {"full": {"train_step_s": full_s}, "aurora_r2_qv": {"train_step_s": aurora_s}}}}
    _write(tmp_path / "b16_speed" / "speed.json", speed("Cublas", 0.0799, 0.0659))
    _write(tmp_path / "b16_cublaslt" / "speed.json", speed("Cublaslt", 0.0801, 0.0630))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets(tmp_path).splitlines() if line.startswith("| ")}
    assert "| 63.0 / 65.9 ms (1.05x) | faster | **met** |" in rows["ViT-B/16 b256 aurora_r2_qv step, cuBLASLt / cuBLAS"]
    assert "| 80.1 / 79.9 ms (1.00x) | faster | not met |" in rows["ViT-B/16 b256 full step, cuBLASLt / cuBLAS"]
    assert "| 0.787 (63.0 / 80.1 ms) | <= 0.80 | **met** |" in \
        rows["ViT-B/16 b256 AuroRA / full step, new default with cuBLASLt (regional)"]
    _write(tmp_path / "b16_cublaslt" / "speed.json", speed("Cublas", 0.0801, 0.0630))  # the switch did not take
    text = targets(tmp_path)
    assert "| not measured: the steps ran Cublas / Cublas |" in text and "(1.05x)" not in text


def _script(tmp_path, steps: str, **more_env) -> subprocess.CompletedProcess:
    """issue23.sh on tiny CPU models with ISSUE23_STEPS=steps, its files under tmp_path/out."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "issue23.sh"
    env = {**os.environ, "ISSUE23_TINY": "1", "ISSUE23_STEPS": steps, "PYTHON": sys.executable,
           "OUT": str(tmp_path / "out"), "CACHE": str(tmp_path / "cache"), **more_env}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)


def test_the_script_runs_only_the_steps_issue23_steps_names(tmp_path):
    """A call with less device time runs a subset; the others are logged as not run, and targets.md is still
    written (their figures 'not measured'); ISSUE23_ARCHIVE packs every file into one (a device call returns 8)."""
    archive = tmp_path / "back" / "issue23.tgz"
    archive.parent.mkdir()
    stale = tmp_path / "out" / "s14_b64" / "compile_cost.json"  # an earlier call's, which targets.md would read
    _write(stale, _cost(16.1, 11.6))
    assert _script(tmp_path, "env", ISSUE23_ARCHIVE=str(archive)).returncode == 0
    assert not stale.exists()
    with tarfile.open(archive) as packed:
        assert {"./issue23.log", "./targets.md", "./env.txt"} <= set(packed.getnames())
    log = (tmp_path / "out" / "issue23.log").read_text()
    assert "== env: exit" in log
    for name in ("s14_b64", "b16_b64", "b16_speed", "b16_cublaslt", "cuda_tests", "breaks", "profile_s14", "thin_b16", "thin_s14",
                 "s14_autotune", "b16_autotune", "autotune_test"):
        assert f"== {name}: not run (ISSUE23_STEPS=env)" in log
    assert "not measured" in (tmp_path / "out" / "targets.md").read_text()


def test_the_script_refuses_a_step_name_it_does_not_have_before_running_any(tmp_path):
    done = _script(tmp_path, "env,s14_b46")  # a misspelt name would skip every step and waste the device call
    assert done.returncode == 2 and "no step 's14_b46'; the steps are env s14_b64" in done.stderr
    assert not (tmp_path / "out").exists()
