"""The result store: one JSON record per run under `<output>/runs/`, keyed by (task, method variant, seed).

Every writer (sweep, run, tune, the executors' drivers) goes through here, so where a result lives and
how it is written are decided in one place."""
import json
import os
import shutil
from pathlib import Path

RUNS_DIR = "runs"


def run_key(task: str, variant: str, seed: int) -> str:
    return f"{task}__{variant}__seed{seed}"


def key_of(run: dict) -> str:
    return run_key(run["task"], run["method"]["variant"], run["seed"])


def result_path(output, run: dict) -> Path:
    return Path(output) / RUNS_DIR / f"{key_of(run)}.json"


def logdir(output, run: dict) -> Path:
    """The run's TensorBoard folder: method first, so one method's seeds sit together."""
    return Path(output) / "tb" / run["method"]["variant"] / run["task"] / f"seed{run['seed']}"


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)  # readers never see half a file; an interrupted run leaves no result


def write_result(output, run: dict, result: dict) -> Path:
    path = result_path(output, run)
    write_json(path, result)
    return path


def read_result(path) -> dict:
    return json.loads(Path(path).read_text())


def result_paths(output) -> list[Path]:
    return sorted(Path(output).glob(f"{RUNS_DIR}/*.json"))


def set_aside(path: Path, output) -> Path:
    """Move a result out of the sweep's way into <output>/replaced/runs/ (kept, reportable), never overwriting."""
    aside = Path(output) / "replaced" / RUNS_DIR
    aside.mkdir(parents=True, exist_ok=True)
    target, n = aside / path.name, 1
    while target.exists():
        target, n = aside / f"{path.stem}.{n}.json", n + 1
    return Path(shutil.move(str(path), target))
