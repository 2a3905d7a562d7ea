"""The result store's promises, tried the hard way: a second writer, a killed sweep, a failed write, a changed
config, a corrupt or foreign file. Fake runners (parallel_runners) stand in for training."""
import errno
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aurora_bench import store
from aurora_bench.store import files as store_files
from aurora_bench.cli import main
from aurora_bench.config import load_config, resolve_run
from aurora_bench.report import load_results
from aurora_bench.store.locks import FolderInUse
from aurora_bench.sweep import ConfigChanged, run_one, sweep

import parallel_runners
from fixtures import vtab_task
from parallel_runners import counts, fake_record

HERE = Path(__file__).parent


def cfg_for(tmp_path, methods=("a", "b"), **over):
    over.setdefault("method_overrides", {m: {"method": "full"} for m in methods})  # names for the fake runners
    over.setdefault("data", {"root": str(tmp_path / "no-data")})  # fake runners read none
    return load_config({"name": "s", "tasks": ["t"], "methods": list(methods), "seeds": [0],
                        "output": str(tmp_path / "out"), **over})


def on_file(cfg) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (Path(cfg["output"]) / "runs").glob("*.json")}


def leftovers(folder) -> list:
    return [p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def failing_runner(run, logdir=None, quiet=False):
    raise ValueError("this run fails")


# ------------------------------------------------------------------------------- a writer into a sweep's folder

def test_cli_run_into_a_sweep_folder_keeps_its_finished_result(tmp_path, capsys):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    before = on_file(cfg)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # the default runner would fail here (no data): an already finished run is not made again
    assert main(["run", str(tmp_path / "c.yaml"), "--task", "t", "--method", "a"]) == 0
    assert "already done" in capsys.readouterr().out
    assert on_file(cfg) == before


def test_run_one_refuses_another_config_and_remakes_a_failure(tmp_path):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    before = on_file(cfg)
    changed = {**cfg, "train": {**cfg["train"], "lr": 0.5}}
    with pytest.raises(ConfigChanged, match=r"train\.lr 0\.001 -> 0\.5.*--replace-changed"):
        run_one(changed, "t", "a", 0, quiet=True, runner=failing_runner)
    assert on_file(cfg) == before
    run_one(changed, "t", "a", 0, quiet=True, runner=failing_runner, replace_changed=True)
    assert on_file(cfg)["t__a__seed0"]["status"] == "failed"  # the new config's outcome, the old one kept aside
    aside = Path(cfg["output"]) / "replaced" / "runs" / "t__a__seed0.json"
    assert json.loads(aside.read_text()) == before["t__a__seed0"]
    assert run_one(changed, "t", "a", 0, quiet=True, runner=parallel_runners.ok_runner)["status"] == "ok"


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_failure_under_another_config_never_blocks_a_run(tmp_path, retry_failed):
    """Issue 24's trap: failures recorded under a mistyped data root (a failing runner here), other seeds' too; the
    sweep with the right root makes those runs, with or without --retry-failed, and `run` too: a failure holds no
    result, so no config clashes with it (replaced without a copy in replaced/)."""
    wrong = cfg_for(tmp_path, seeds=[0, 1], data={"root": str(tmp_path / "mistyped")})
    assert sweep(wrong, quiet=True, runner=failing_runner) == counts(failed=4)
    right = cfg_for(tmp_path)  # seed 0 only: seed 1's failures are other seeds of another config
    assert sweep(right, quiet=True, retry_failed=retry_failed, runner=parallel_runners.ok_runner) == counts(ok=2)
    assert {k: r["status"] for k, r in on_file(right).items()} == {
        "t__a__seed0": "ok", "t__b__seed0": "ok", "t__a__seed1": "failed", "t__b__seed1": "failed"}
    assert run_one(load_config(right, ["seeds=[1]"]), "t", "a", 1, quiet=True,
                   runner=parallel_runners.ok_runner)["status"] == "ok"
    assert not (Path(right["output"]) / "replaced").exists()


def test_a_failure_never_replaces_a_finished_result_of_the_same_config(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(store_files.FALLBACK_ENV, str(tmp_path / "unsaved"))
    cfg = cfg_for(tmp_path)
    run = resolve_run(cfg, "t", "a", 0)
    store.save(cfg["output"], run, fake_record(run, 50.0))
    failed = {"status": "failed", "config": run, "task": "t", "method": "a", "seed": 0, "error": "boom"}
    saved = store.save(cfg["output"], run, failed)
    assert not saved.in_store and json.loads(saved.path.read_text()) == failed
    assert on_file(cfg)["t__a__seed0"]["accuracy"] == 50.0
    assert str(saved.path) in caplog.text and "kept" in caplog.text


def test_invalid_records_are_refused_on_write_and_fail_the_run(tmp_path):
    cfg = cfg_for(tmp_path, methods=["a"])
    run = resolve_run(cfg, "t", "a", 0)
    with pytest.raises(store.InvalidRecord, match="accuracy must be set"):
        store.save(cfg["output"], run, {"status": "ok", "config": run, "task": "t", "method": "a", "seed": 0})
    incomplete = lambda run, logdir=None, quiet=False: {"status": "ok", "config": run}
    assert sweep(cfg, quiet=True, runner=incomplete) == counts(failed=1)
    assert "InvalidRecord" in on_file(cfg)["t__a__seed0"]["error"]


# -------------------------------------------------------------------------------------------------- drift

def test_a_refused_resume_leaves_the_folder_as_it_was(tmp_path):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    recorded = (Path(cfg["output"]) / "sweep-s.yaml").read_text()
    cfg["train"]["lr"] = 0.5
    with pytest.raises(ConfigChanged, match=r"2 result\(s\).*train\.lr 0\.001 -> 0\.5.*another output folder.*"
                                            r"--replace-changed"):
        sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    assert (Path(cfg["output"]) / "sweep-s.yaml").read_text() == recorded


@pytest.mark.parametrize("change", ["name=other", "data.cache_dir=/elsewhere", "train.eval_every=5",
                                    "train.device=cpu"])
def test_what_does_not_change_the_numbers_is_not_drift(tmp_path, change):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    changed = load_config(cfg, [change])
    assert sweep(changed, quiet=True, runner=failing_runner) == counts(skipped=2)
    with pytest.raises(ConfigChanged):  # while what does is
        sweep(load_config(cfg, [change, "train.epochs=30"]), quiet=True, runner=failing_runner)


def test_other_seeds_of_another_config_are_not_mixed_into_one_folder(tmp_path):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)  # seed 0
    more_seeds = load_config(cfg, ["seeds=[1, 2]"])
    with pytest.raises(ConfigChanged, match=r"2 result\(s\).*other seeds.*train\.lr 0\.001 -> 0\.5.*average"):
        sweep(load_config(more_seeds, ["train.lr=0.5"]), quiet=True, runner=parallel_runners.ok_runner)
    assert sweep(more_seeds, quiet=True, runner=parallel_runners.ok_runner) == counts(ok=4)  # the same config


def test_replace_changed_keeps_every_result_until_its_successor_is_written(tmp_path):
    cfg = cfg_for(tmp_path)
    sweep(cfg, quiet=True, runner=parallel_runners.ok_runner)
    before = on_file(cfg)
    cfg["train"]["lr"] = 0.5

    def interrupted(run, logdir=None, quiet=False):
        raise KeyboardInterrupt  # the sweep killed while it makes its first run

    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, quiet=True, runner=interrupted, replace_changed=True)
    assert on_file(cfg) == before
    assert sweep(cfg, quiet=True, runner=parallel_runners.ok_runner, replace_changed=True) == counts(ok=2)
    assert all(r["config"]["train"]["lr"] == 0.5 for r in on_file(cfg).values())
    assert len(list((Path(cfg["output"]) / "replaced" / "runs").glob("*.json"))) == 2


# ------------------------------------------------------------------------------------------- failed writes

def test_a_record_the_folder_cannot_take_is_kept_elsewhere_and_the_sweep_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(store_files.FALLBACK_ENV, str(tmp_path / "unsaved"))
    monkeypatch.setattr(store_files, "RETRY_DELAYS_S", (0, 0))
    real_replace, tries = os.replace, []

    def disk_full_in_runs(src, dst):
        if Path(dst).parent.name == "runs":
            tries.append(dst)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_in_runs)
    cfg = cfg_for(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert sweep(cfg, quiet=True, runner=parallel_runners.ok_runner) == counts(ok=2, unsaved=2)
    assert len(tries) == 2 * 3  # each record tried three times
    assert leftovers(cfg["output"]) == [] and on_file(cfg) == {}
    kept = sorted((tmp_path / "unsaved").glob("*.json"))
    assert [json.loads(p.read_text())["method"] for p in kept] == ["a", "b"]
    assert all(str(p) in caplog.text for p in kept) and "No space left on device" in caplog.text


SWEEP_SCRIPT = """
import json, resource, sys
from functools import partial
sys.path[:0] = [{here!r}, {root!r}]
from aurora_bench.store import files as store_files
from aurora_bench.config import load_config
from aurora_bench.executors.processes import run_parallel
from aurora_bench.sweep import sweep
import parallel_runners
cfg, runner, workers, fsize = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store_files.RETRY_DELAYS_S = (0,)
if fsize:
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
executor = partial(run_parallel, devices=[None] * workers, quiet=True) if workers else None
print(json.dumps(sweep(load_config(cfg), quiet=True, runner=getattr(parallel_runners, runner), executor=executor)))
"""


def start_sweep(cfg, runner: str, workers: int = 0, fsize: int = 0) -> subprocess.Popen:
    script = SWEEP_SCRIPT.format(here=str(HERE), root=str(HERE.parent))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    return subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg), runner, str(workers), str(fsize)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, what: str, proc=None, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.slow
def test_a_file_size_limit_loses_no_record_and_leaves_no_temporary_file(tmp_path):
    cfg = cfg_for(tmp_path)
    proc = start_sweep(cfg, "big_record_runner", fsize=8192)  # a record is some 20 kB
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1]) == counts(ok=2, unsaved=2)
    assert err.count('"accuracy": 42.5') == 2  # the records themselves, where nothing could be written
    assert leftovers(cfg["output"]) == [] and on_file(cfg) == {}


def test_writes_are_fsynced_file_and_folder(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    store.write_json(tmp_path / "runs" / "x.json", {"a": 1})
    assert False in synced and True in synced


# ------------------------------------------------------------------------------------ bad files in runs/

def test_corrupt_and_foreign_files_are_quarantined_and_named_never_crash(tmp_path, caplog):
    cfg = cfg_for(tmp_path)
    runs = Path(cfg["output"]) / "runs"
    runs.mkdir(parents=True)
    (runs / "t__a__seed0.json").write_text('{"status": "ok", "acc')  # cut short
    (runs / "notes.json").write_text('{"hello": 1}')  # not a record
    run_b = resolve_run(cfg, "t", "b", 0)
    (runs / "t__x__seed0.json").write_text(json.dumps(fake_record(run_b, 1.0)))  # b's record under x's name
    with caplog.at_level(logging.WARNING):
        assert sweep(cfg, quiet=True, runner=parallel_runners.ok_runner) == counts(ok=2)
        assert sorted(r["method"] for r in load_results(cfg["output"])) == ["a", "b"]
    quarantined = Path(cfg["output"]) / "quarantine" / "runs"
    assert sorted(p.name for p in quarantined.iterdir()) == ["notes.json", "t__a__seed0.json", "t__x__seed0.json"]
    for name, why in [("t__a__seed0.json", "not a readable JSON file"), ("notes.json", "status must be set"),
                      ("t__x__seed0.json", "holds the record of t__b__seed0")]:
        assert any(name in m and why in m and str(quarantined) in m for m in caplog.messages), name
    assert store.load_all(tmp_path / "nothing here") == []


# ------------------------------------------------------------------------------------------ concurrency

@pytest.mark.slow
def test_a_second_sweep_shares_the_runs_of_its_config_and_another_config_is_refused(tmp_path):
    cfg = cfg_for(tmp_path, methods=["a", "b", "c"])
    out = Path(cfg["output"])
    out.mkdir(parents=True)
    first = start_sweep(cfg, "gated_runner")  # makes its first run until told to go on
    try:
        wait_for(lambda: (out / "started").exists(), "first run", first)
        other = load_config(cfg, ["train.lr=0.5"])
        with pytest.raises(FolderInUse, match="another live writer.*different config for 3"):
            sweep(other, quiet=True, runner=parallel_runners.ok_runner)
        assert sweep(cfg, quiet=True, runner=parallel_runners.gated_runner) == counts(ok=2, elsewhere=1)
    finally:
        (out / "go").touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-2000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == counts(ok=1, skipped=2)
    made = [line.split()[1] for line in (out / "calls.log").read_text().splitlines()]
    assert sorted(made) == ["a", "b", "c"]  # each run made once, by one of the two
    with pytest.raises(ConfigChanged):
        sweep(other, quiet=True, runner=parallel_runners.ok_runner)


def alive(pid: int) -> bool:
    """Whether any thread of process `pid` has yet to finish exiting. A killed process's leader shows as a zombie
    while its other threads still tear down; its files, and so its flock claims, close with the last thread."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return False  # reaped
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    for task in tasks:
        try:
            if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread just went
    return False


@pytest.mark.slow
def test_killing_a_parallel_sweep_ends_its_workers_and_frees_its_runs(tmp_path):
    cfg = cfg_for(tmp_path, methods=["a", "b", "c"])
    pids = Path(cfg["output"]) / "pids"
    parent = start_sweep(cfg, "sleeping_runner", workers=2)
    try:
        wait_for(lambda: pids.is_dir() and len(list(pids.iterdir())) == 2, "two workers in a run", parent)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    workers = [int(p.name) for p in pids.iterdir()]
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "the workers outlived their sweep"
    # the killed sweep's registration and claims died with it
    assert sweep(load_config(cfg, ["train.lr=0.5"]), quiet=True, runner=parallel_runners.ok_runner) == counts(ok=3)


# ------------------------------------------------------------------------------------------------ messages

def test_a_rerun_after_failures_points_to_retry_failed(tmp_path, capsys):
    task_dir = vtab_task(tmp_path / "data", "t")
    shutil.rmtree(task_dir / "images")  # the lists are there (the plan's check passes), the images are not
    cfg = cfg_for(tmp_path, methods=["linear"], data={"root": str(tmp_path / "data")})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(tmp_path / "c.yaml"), "--quiet"]) == 1
    assert "runs: 0 ok, 1 failed" in capsys.readouterr().out
    assert main(["sweep", str(tmp_path / "c.yaml"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "runs: 0 ok, 0 failed, 1 already done" in out
    assert "1 of the runs already done had failed" in out and "--retry-failed" in out


def test_the_dry_run_says_what_the_sweep_will_do_with_failures(tmp_path, capsys):
    """It printed '2 on file, 0 to make' where the real sweep would make both runs (failures under another config),
    and had no word for failures it keeps or --retry-failed makes again, nor for a refusal the data would bring."""
    vtab_task(tmp_path / "data", "t")
    configs = {"wrong": cfg_for(tmp_path, data={"root": str(tmp_path / "mistyped")}),
               "right": cfg_for(tmp_path, data={"root": str(tmp_path / "data")})}
    for name, cfg in configs.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    sweep(configs["wrong"], quiet=True, runner=failing_runner)  # as a version without the plan's data check did

    def dry_run(name, *flags):
        assert main(["sweep", str(tmp_path / f"{name}.yaml"), "--dry-run", *flags]) == 0
        return capsys.readouterr().out
    out = dry_run("right")
    assert "2 runs (1 tasks x 2 methods x 1 seeds; 2 to make, 0 done)" in out
    assert out.count("failed under another config, to make") == 2 and "refused" not in out
    out = dry_run("wrong")
    assert "0 to make, 0 done, 2 failed and kept (--retry-failed makes them again)" in out and "refused" not in out
    out = dry_run("wrong", "--retry-failed")
    assert "2 to make, 0 done" in out and out.count("failed, to make again") == 2
    assert f"the sweep would be refused now: data.root {tmp_path / 'mistyped'} does not exist" in out


def test_a_bad_file_in_a_folder_that_cannot_be_changed_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "t__a__seed0.json").write_text("{")

    def read_only(*args):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "RunClaim", read_only)
    assert store.load_all(tmp_path) == []
    assert "t__a__seed0.json" in caplog.text and "Read-only file system" in caplog.text
    assert (tmp_path / "runs" / "t__a__seed0.json").exists()


LIFELINE_CHILD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lifeline", {path!r})
lifeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lifeline)
lifeline._ask_kernel = lambda: None  # where there is no prctl: the watchdog alone
lifeline.die_with_parent(int(sys.argv[1]))
print("watching", flush=True)
time.sleep(60)
"""
LIFELINE_PARENT = """
import subprocess, sys, os, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
time.sleep(60)
"""


def test_without_the_kernel_signal_a_watchdog_ends_an_orphaned_worker():
    child = LIFELINE_CHILD.format(path=str(HERE.parent / "benchmarks" / "executors" / "lifeline.py"))
    parent = subprocess.Popen([sys.executable, "-c", LIFELINE_PARENT, child], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker)
