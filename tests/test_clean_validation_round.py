"""benchmarks/clean_validation_round.sh, the device-side rounds of the clean validation, against a fake runner:
the calls of a round (each carrying part of the data), the driver's steps in order, STEPS_DONE across rounds,
failed runs, real errors, and what `pack` refuses. A fake `python3` logs each runner command and exits as told;
the script's device folder (CV_ROOT) and its naps (CV_NAP) are scratch and short."""
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "clean_validation_round.sh"
FIVE = ["cifar10", "pacs_photo", "pacs_art_painting", "pacs_cartoon", "pacs_sketch"]
STEPS = ["tune_cv", "sweep_cv", "tune_cr", "sweep_cr"]

FAKE_PYTHON = """#!/bin/bash
echo "$*" >> "$FAKE_LOG"
[ "$1 $2" = "-m pytest" ] && sleep ${FAKE_PYTEST_SLEEP:-0}
[ "$1 $2" = "-m aurora_bench.cli" ] || exit 0   # pip, pytest
case "$3" in
  tune) sleep ${FAKE_SLEEP:-0}
        for a in "$@"; do [ "$prev" = --write ] && printf '%b\n' "${FAKE_RATES:-lrs: {written: true\}}" > "$a"; prev=$a; done
        exit ${FAKE_TUNE_RC:-0} ;;
  sweep) [[ " $* " == *" --retry-failed "* ]] && exit ${FAKE_FINISH_RC:-0}; exit ${FAKE_SUBSET_RC:-0} ;;
esac
exit 0
"""

needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("tar") is None,
                                reason="needs bash and tar")


class Round:
    """A working tree as the device sees it (the script, committed results and rates, the carried folders)
    and the device's scratch folder; `serve` is one device call."""

    def __init__(self, tmp: Path):
        self.tree, self.root, self.out, self.log = tmp / "tree", tmp / "cv", tmp / "out", tmp / "runner.log"
        (self.tree / "benchmarks" / "results" / "clean-validation").mkdir(parents=True)
        (self.tree / "configs").mkdir()
        shutil.copy(SCRIPT, self.tree / "benchmarks")
        (self.tree / "benchmarks" / "results" / "clean-validation" / "PINNED").write_text("commit: abc123\n")
        for name in ("clean_validation_lrs.yaml", "clean_ranks_lrs.yaml"):
            (self.tree / "configs" / name).write_text("lrs: {}\n")
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "python3").write_text(FAKE_PYTHON)
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho '0 %, 0 MiB'\n")
        for f in bin_dir.iterdir():
            f.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CV_ROOT": str(self.root),
                    "CV_NAP": "0.2", "OUT": str(self.out), "FAKE_LOG": str(self.log)}
        code = tmp / "code"
        (code / "benchmarks").mkdir(parents=True)
        (code / "configs").mkdir()
        self.carry(1)
        with tarfile.open(self.tree / ".device" / "pinned.tgz", "w:gz") as tar:
            tar.add(code, arcname=".")
        (self.tree / ".device" / "whl").mkdir()
        (self.tree / ".device" / "vit_small_patch14_dinov2.imgfocus_fp16.safetensors").write_bytes(b"w")

    def carry(self, call: int, *splits: tuple) -> Path:
        """The folder a call carries (only one travels per call: the others are removed), with the named
        (task, split, split) archives in the layout `pack` makes."""
        for old in self.tree.glob(".device-*"):
            shutil.rmtree(old)
        folder = self.tree / (".device" if call == 1 else f".device-{call}")
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.*.tgz"):  # another round's splits
            old.unlink()
        for task, *names in splits:
            with tarfile.open(folder / f"{task}.{'-'.join(names)}.tgz", "w:gz") as tar:
                for name in names:
                    src = self.root.parent / "src" / task
                    (src / "images" / name).mkdir(parents=True, exist_ok=True)
                    (src / "images" / name / "0.jpg").write_bytes(b"jpg")
                    (src / f"{name}.txt").write_text(f"images/{name}/0.jpg 0\n")
                    tar.add(src / "images" / name, arcname=f"{task}/images/{name}")
                    tar.add(src / f"{name}.txt", arcname=f"{task}/{name}.txt")
        return folder

    def serve(self, seconds: int, **fake_rcs) -> str:
        env = {**self.env, **{k.upper(): str(v) for k, v in fake_rcs.items()}}
        done = subprocess.run(["bash", "benchmarks/clean_validation_round.sh", "serve", str(seconds)],
                              cwd=self.tree, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def wait_for_runner(self, text: str, seconds: float = 20) -> None:
        """The driver outlives a call: wait until it has run a command containing `text`."""
        deadline = time.monotonic() + seconds
        while not (self.log.exists() and text in self.log.read_text()):
            assert time.monotonic() < deadline, f"the driver ran no {text!r} in {seconds} s"
            time.sleep(0.1)

    def driver_log(self) -> str:
        return (self.root / "logs" / "driver.log").read_text()

    def runner_calls(self) -> list:
        return [line.split()[2:4] for line in self.log.read_text().splitlines() if "aurora_bench.cli" in line]

    def steps_done(self) -> list:
        path = self.root / "code" / "results" / "clean-validation" / "STEPS_DONE"
        return path.read_text().split() if path.exists() else []

    def returned(self) -> set:
        with tarfile.open(self.out / "results.tgz") as tar:
            return set(tar.getnames())

    def new_machine(self) -> None:
        """The next session: the device is bare, the round's results are committed into the tree."""
        self.stop_driver()
        results = self.root / "code" / "results" / "clean-validation"
        for name in ("STEPS_DONE", "clean_validation_lrs.yaml", "clean_ranks_lrs.yaml"):
            if (results / name).exists():
                shutil.copy(results / name, self.tree / "benchmarks" / "results" / "clean-validation")
        shutil.rmtree(self.root)
        self.log.unlink(missing_ok=True)

    def stop_driver(self) -> None:
        pid = self.root / "driver.pid"
        if pid.exists():
            try:
                os.killpg(int(pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def cv_round(tmp_path):
    r = Round(tmp_path)
    yield r
    r.stop_driver()


def tuning_splits(*tasks):
    return [(t, "train800", "val200") for t in tasks]


def sweep_splits(*tasks):
    return [(t, "train800val200", "test") for t in tasks]


@needs_bash
def test_a_round_over_calls_runs_the_steps_in_order_on_the_data_as_it_arrives(cv_round):
    cv_round.carry(1, *tuning_splits(*FIVE[:2]))
    cv_round.serve(1)
    cv_round.wait_for_runner("aurora_bench.cli tune")
    # call 1 carried two tasks' tuning splits: the driver tunes those (a subset, no rates written) and waits
    assert cv_round.runner_calls()[0] == ["tune", "configs/clean_validation.yaml"]
    assert "--write" not in cv_round.log.read_text()
    assert cv_round.steps_done() == []
    assert "clean-validation/STEPS_DONE" not in cv_round.returned()

    cv_round.carry(2, *tuning_splits(*FIVE[2:]), *sweep_splits(*FIVE))
    out = cv_round.serve(10)
    assert "all done" in out
    assert sorted(cv_round.steps_done()) == sorted(STEPS)
    log = cv_round.log.read_text()
    assert "tune configs/clean_validation.yaml --write configs/clean_validation_lrs.yaml" in log
    assert log.index("--write configs/clean_validation_lrs.yaml") < log.index("sweep configs/clean_validation.yaml")
    assert log.index("sweep configs/clean_validation.yaml") < log.index("tune configs/clean_ranks.yaml")
    # what the call returns: the records' folders, the rates the tuning wrote, STEPS_DONE, the driver log
    names = cv_round.returned()
    assert {"clean-validation/STEPS_DONE", "clean-validation/clean_validation_lrs.yaml"} <= names
    assert any(n.startswith("clean-validation/driver-") for n in names)
    # each carried split arrived whole, list files beside it
    task = cv_round.root / "vtab-1k" / "pacs_cartoon"
    assert {p.name for p in (task / "images").iterdir()} == {"train800", "val200", "train800val200", "test"}
    assert (task / "test.txt").exists()


@needs_bash
def test_a_later_round_skips_the_steps_done_and_sweeps_a_subset_under_all_tuning_tasks(cv_round):
    cv_round.carry(1, *tuning_splits(*FIVE), *sweep_splits(*FIVE))
    cv_round.serve(10, fake_finish_rc=1)  # the sweep's finish: some runs failed
    assert cv_round.steps_done() == ["tune_cv", "tune_cr"]
    assert "steps unfinished: sweep_cv sweep_cr" in cv_round.driver_log()

    cv_round.new_machine()
    cv_round.carry(1, *sweep_splits("cifar10"))
    cv_round.serve(1)
    cv_round.wait_for_runner("aurora_bench.cli sweep")
    calls = cv_round.runner_calls()
    assert calls and all(verb == "sweep" for verb, _ in calls)  # tune_cv is done: no tuning, no tuning splits
    subset = [line for line in cv_round.log.read_text().splitlines() if "aurora_bench.cli sweep" in line][-1]
    assert "tasks=[cifar10]" in subset and "tune.tasks=[" + ",".join(FIVE) + "]" in subset
    assert "--retry-failed" not in subset

    cv_round.carry(2, *sweep_splits(*FIVE[1:]))
    assert "all done" in cv_round.serve(10)
    assert "sweep configs/clean_validation.yaml --retry-failed" in cv_round.log.read_text()
    assert sorted(cv_round.steps_done()) == sorted(STEPS)


@needs_bash
def test_the_rank_steps_run_on_the_tasks_that_have_arrived_while_the_others_are_on_their_way(cv_round):
    (cv_round.tree / "benchmarks" / "results" / "clean-validation" / "STEPS_DONE").write_text("tune_cv\nsweep_cv\n")
    cv_round.carry(1, *tuning_splits("cifar10"))
    cv_round.serve(1)
    cv_round.wait_for_runner("tune configs/clean_ranks.yaml")
    subset = [line for line in cv_round.log.read_text().splitlines() if "tune configs/clean_ranks.yaml" in line]
    assert "tasks=[cifar10]" in subset[-1] and "--write" not in subset[-1]

    cv_round.carry(2, *tuning_splits("pacs_sketch"), *sweep_splits("cifar10"))
    cv_round.serve(1)
    cv_round.wait_for_runner("sweep configs/clean_ranks.yaml")
    assert "tune configs/clean_ranks.yaml --write configs/clean_ranks_lrs.yaml" in cv_round.log.read_text()
    subset = [line for line in cv_round.log.read_text().splitlines() if "sweep configs/clean_ranks.yaml" in line]
    assert "tasks=[cifar10]" in subset[-1] and "tune.tasks=[cifar10,pacs_sketch]" in subset[-1]
    assert "--retry-failed" not in subset[-1]

    cv_round.carry(3, *sweep_splits("pacs_sketch"))
    assert "all done" in cv_round.serve(10)
    assert sorted(cv_round.steps_done()) == sorted(STEPS)
    assert "sweep configs/clean_validation.yaml" not in cv_round.log.read_text()  # done in an earlier round


@needs_bash
def test_the_ranks_rates_come_back_with_a_number_like_hash_quoted(cv_round):
    """The pin's tune writes `recipe: 1518767248e9` plain and its loader reads a float back (a stale-rate
    refusal at the sweep); the driver quotes such a hash after the tuning, leaving every other line as written."""
    (cv_round.tree / "benchmarks" / "results" / "clean-validation" / "STEPS_DONE").write_text("tune_cv\nsweep_cv\n")
    cv_round.carry(1, *tuning_splits("cifar10", "pacs_sketch"))
    rates = ("lrs:\n  lora_r1: 0.01\nlrs_tuned:\n  lora_r1:\n    grid:\n    - 0.001\n    fingerprint:\n"
             "      grid: 1518767248e9\n      protocol: d57f65ff0a4a\n      recipe: 12e45\n")
    cv_round.serve(3, fake_rates=rates)
    deadline = time.monotonic() + 20
    while "== sweep_cr on" not in cv_round.driver_log():  # the tuning finished; the sweep waits for test splits
        assert time.monotonic() < deadline, cv_round.driver_log()
        time.sleep(0.1)
    written = (cv_round.root / "code" / "configs" / "clean_ranks_lrs.yaml").read_text()
    assert written.rstrip() == rates.replace("1518767248e9", "'1518767248e9'").replace("12e45", "'12e45'").rstrip()


@needs_bash
def test_a_real_error_stops_the_driver_with_its_exit_status(cv_round):
    cv_round.carry(1, *tuning_splits("cifar10"))
    out = cv_round.serve(10, fake_tune_rc=2)
    assert "tune_cv on [cifar10] failed (exit 2); stopping" in cv_round.driver_log()
    assert "stopping" in out and cv_round.steps_done() == []


def _stop(cv_round) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "benchmarks/clean_validation_round.sh", "stop"], cwd=cv_round.tree,
                          env=cv_round.env, capture_output=True, text=True, timeout=30)


@needs_bash
def test_stop_ends_the_driver_and_its_runs_and_returns_the_records_so_far(cv_round):
    cv_round.carry(1, *tuning_splits("cifar10"))
    cv_round.serve(1, fake_sleep=120)  # the driver's tuning run is still busy when the call returns
    cv_round.wait_for_runner("aurora_bench.cli tune")
    runs = cv_round.root / "code" / "results" / "clean-validation-tune" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "cifar10__lora__seed0.json").write_text('{"status": "ok"}')
    group = int((cv_round.root / "driver.pid").read_text())

    done = _stop(cv_round)
    assert done.returncode == 0, done.stderr
    assert "driver stopped; records: 1 ok" in done.stdout
    alive = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout.split()
    states = [Path(f"/proc/{p}/stat").read_text().split()[2] for p in alive if Path(f"/proc/{p}/stat").exists()]
    assert all(state == "Z" for state in states), "the driver or its run outlived stop"
    assert "clean-validation-tune/runs/cifar10__lora__seed0.json" in cv_round.returned()
    assert "stopped by 'stop'" in cv_round.driver_log()
    again = _stop(cv_round)
    assert again.returncode == 0 and "the driver had already ended; records: 1 ok" in again.stdout

    # a serve after the timing: the driver goes on where it stopped, its log kept
    tunes = cv_round.log.read_text().count("aurora_bench.cli tune")
    cv_round.serve(1, fake_sleep=120)
    deadline = time.monotonic() + 20
    while cv_round.log.read_text().count("aurora_bench.cli tune") == tunes:
        assert time.monotonic() < deadline, "serve after stop did not start the driver again"
        time.sleep(0.1)
    assert "stopped by 'stop'" in cv_round.driver_log() and "started again after 'stop'" in cv_round.driver_log()
    assert int((cv_round.root / "driver.pid").read_text()) != group


@needs_bash
def test_a_driver_that_failed_is_not_started_again_by_stop_and_serve(cv_round):
    cv_round.carry(1, *tuning_splits("cifar10"))
    cv_round.serve(10, fake_tune_rc=2, fake_pytest_sleep=120)  # its GPU tests outlive the failed driver
    assert "failed (exit 2); stopping" in cv_round.driver_log()
    done = _stop(cv_round)
    assert done.returncode == 0 and "the driver had already ended" in done.stdout
    tunes = cv_round.log.read_text().count("aurora_bench.cli tune")
    out = cv_round.serve(1)
    assert "stopping" in out and "started again" not in cv_round.driver_log()
    time.sleep(1)
    assert cv_round.log.read_text().count("aurora_bench.cli tune") == tunes


@needs_bash
def test_stop_on_a_machine_without_a_driver_says_so(cv_round):
    done = _stop(cv_round)
    assert done.returncode == 2 and "no driver was started on this machine" in done.stderr


def _pack(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "benchmarks/clean_validation_round.sh", "pack"], cwd=tree,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "SHARED": "/nonexistent"})


@needs_bash
def test_pack_refuses_while_a_finished_tunings_rates_are_not_in_configs(cv_round):
    results = cv_round.tree / "benchmarks" / "results" / "clean-validation"
    (results / "STEPS_DONE").write_text("tune_cv\n")
    (results / "clean_validation_lrs.yaml").write_text("lrs: {written: true}\n")
    done = _pack(cv_round.tree)
    assert done.returncode == 2
    assert "cp benchmarks/results/clean-validation/clean_validation_lrs.yaml configs/" in done.stderr
    assert (cv_round.tree / ".device" / "pinned.tgz").exists()  # refused before anything was removed

    shutil.copy(results / "clean_validation_lrs.yaml", cv_round.tree / "configs")
    (results / "STEPS_DONE").write_text("".join(s + "\n" for s in STEPS))
    (results / "clean_ranks_lrs.yaml").write_text("lrs: {}\n")
    done = _pack(cv_round.tree)
    assert done.returncode == 2 and "every step is done" in done.stderr


def _results_archive(path: Path, files: dict) -> Path:
    """A serve call's results.tgz holding `files` ({name: text}), as snapshot() makes it."""
    src = path.parent / "archive-src"
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    with tarfile.open(path, "w:gz") as tar:
        for top in sorted(p.name for p in src.iterdir()):
            tar.add(src / top, arcname=top)
    shutil.rmtree(src)
    return path


def _record(commit: str) -> str:
    return json.dumps({"status": "ok", "git": {"commit": commit, "dirty": None}}, indent=2)


def _import(tree: Path, *archives) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "benchmarks/clean_validation_round.sh", "import", *map(str, archives)],
                          cwd=tree, capture_output=True, text=True, timeout=60)


@needs_bash
def test_import_takes_a_calls_records_and_the_rates_of_a_finished_tuning_only(cv_round, tmp_path):
    archive = _results_archive(tmp_path / "results.tgz", {
        "clean-validation/runs/cifar10__lora__seed0.json": _record("abc123"),
        "clean-validation-tune/runs/cifar10__lora__seed0__lr0.001.json": _record("abc123"),
        "clean-validation/STEPS_DONE": "tune_cv\n",
        "clean-validation/clean_validation_lrs.yaml": "lrs: {written: true}\n",
        "clean-validation/clean_ranks_lrs.yaml": "lrs: {partial: true}\n",  # its tuning is not done
    })
    # a machine that went back between calls: the first call's archive, then the next machine's (a rerun's record)
    later = _results_archive(tmp_path / "later.tgz", {
        "clean-validation/runs/cifar10__lora__seed1.json": _record("abc123"),
        "clean-validation/STEPS_DONE": "tune_cv\n",
    })
    done = _import(cv_round.tree, archive, later)
    assert done.returncode == 0, done.stderr
    results = cv_round.tree / "benchmarks" / "results"
    assert (results / "clean-validation" / "runs" / "cifar10__lora__seed1.json").exists()
    assert (results / "clean-validation" / "runs" / "cifar10__lora__seed0.json").exists()
    assert (results / "clean-validation-tune" / "runs" / "cifar10__lora__seed0__lr0.001.json").exists()
    assert (cv_round.tree / "configs" / "clean_validation_lrs.yaml").read_text() == "lrs: {written: true}\n"
    assert (cv_round.tree / "configs" / "clean_ranks_lrs.yaml").read_text() == "lrs: {}\n"
    assert "clean-validation: 2 ok records" in done.stdout
    assert "steps left: sweep_cv tune_cr sweep_cr" in done.stdout
    assert _pack(cv_round.tree).stderr.count("is not the rates it wrote") == 0  # pack goes on past the check


@needs_bash
def test_import_refuses_whole_an_archive_with_another_commits_records_or_other_folders(cv_round, tmp_path):
    results = cv_round.tree / "benchmarks" / "results"
    mixed = _results_archive(tmp_path / "mixed.tgz", {
        "clean-validation/runs/cifar10__lora__seed0.json": _record("abc123"),
        "clean-validation/runs/cifar10__lora__seed1.json": _record("def456"),
    })
    done = _import(cv_round.tree, mixed)
    assert done.returncode == 2
    assert "not made at the pin abc123" in done.stderr and "cifar10__lora__seed1.json" in done.stderr
    assert "seed0" not in done.stderr and not (results / "clean-validation" / "runs").exists()

    good = _results_archive(tmp_path / "good.tgz",
                            {"clean-validation/runs/cifar10__lora__seed0.json": _record("abc123")})
    foreign = _results_archive(tmp_path / "code.tgz", {"aurora_vision/__init__.py": ""})
    done = _import(cv_round.tree, good, foreign)
    assert done.returncode == 2 and "holds aurora_vision, not a round's results" in done.stderr
    assert not (results / "aurora_vision").exists() and not (results / "clean-validation" / "runs").exists()

    done = _import(cv_round.tree)
    assert done.returncode == 2 and "name the results.tgz of each serve call" in done.stderr

    done = _import(cv_round.tree, tmp_path / "missing.tgz")
    assert done.returncode == 2 and "name the results.tgz a serve call returned" in done.stderr
