"""A sweep: every (task, method, seed) of a config, one result JSON each. Finished runs are skipped, so an
interrupted sweep resumes where it stopped; a failing run is recorded with its reason and the sweep goes on."""
import json
import shutil
import traceback
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from . import distributed
from .config import resolve_run, run_id
from .record import git_commit, versions, write_json
from .train import train_run


class ConfigChanged(RuntimeError):
    """A finished result was made with another config than the sweep now asks for."""


def expand(cfg: dict) -> list[dict]:
    if not cfg["tasks"]:
        raise ValueError("the config lists no tasks (set tasks: [...] or --set tasks=[...])")
    return [resolve_run(cfg, t, m, s) for t in cfg["tasks"] for m in cfg["methods"] for s in cfg["seeds"]]


def result_path(output, run: dict) -> Path:
    return Path(output) / "runs" / f"{run_id(run['task'], run['method']['variant'], run['seed'])}.json"


def logdir(output, run: dict) -> Path:
    return Path(output) / "tb" / run["task"] / run["method"]["variant"] / f"seed{run['seed']}"


def _plain(obj):
    return json.loads(json.dumps(obj, default=str))


def failure(run: dict, error: str, tb: str = "") -> dict:
    return {"status": "failed", "config": run, "task": run["task"], "method": run["method"]["variant"],
            "seed": run["seed"], "error": error, "traceback": tb, "versions": versions(), "git": git_commit()}


def record_failure(run: dict, output, error: str) -> dict:
    result = failure(run, error)
    write_json(result_path(output, run), result)
    return result


def record_remote(run: dict, result: dict, output, counts: dict, bar, quiet: bool = False) -> None:
    """The driver's side of a run that ran elsewhere (a Ray task, a Slurm job): its JSON written, counted,
    a failure shown."""
    write_json(result_path(output, run), result)
    counts[result["status"]] += 1
    bar.update()
    if result["status"] == "failed" and not quiet:
        tqdm.write(f"FAILED {run_id(run['task'], run['method']['variant'], run['seed'])}: {result['error']}")


def run_safely(run: dict, output, quiet: bool = False, runner=train_run) -> dict:
    """The run's result, 'ok' or 'failed' with the reason: a failing run is a result, not an exception
    (KeyboardInterrupt still stops)."""
    try:
        return runner(run, logdir=logdir(output, run), quiet=quiet)
    except Exception as e:  # the sweep must go on; the record says what broke
        return failure(run, f"{type(e).__name__}: {e}", traceback.format_exc())


def run_and_record(run: dict, output, quiet: bool = False, runner=train_run) -> dict:
    """`run_safely`, then its result JSON written atomically (an interrupted run leaves none)."""
    result = run_safely(run, output, quiet, runner)
    if distributed.is_main():  # under torchrun, rank 0 alone records
        write_json(result_path(output, run), result)
    return result


def set_aside(path: Path, output) -> Path:
    """Move a result out of the sweep's way into <output>/replaced/runs/ (kept, reportable), never overwriting."""
    aside = Path(output) / "replaced" / "runs"
    aside.mkdir(parents=True, exist_ok=True)
    target, n = aside / path.name, 1
    while target.exists():
        target, n = aside / f"{path.stem}.{n}.json", n + 1
    return Path(shutil.move(str(path), target))


def sweep(cfg: dict, quiet: bool = False, retry_failed: bool = False, runner=train_run, executor=None,
          replace_changed: bool = False) -> dict:
    """Run what is not finished yet; returns counts {'ok', 'failed', 'skipped'}. A result made with another
    config stops the sweep, or with `replace_changed` is set aside (`set_aside`) and its run made again.

    Serial by default. An `executor(runs, output, runner_path) -> {'ok', 'failed'}` runs them elsewhere
    (parallel.run_parallel: one process per GPU; ray_executor.run_ray: a Ray cluster); `runner_path`
    ('module:function') is how it names the runner to processes that import it afresh."""
    output = Path(cfg["output"])
    runs = expand(cfg)
    output.mkdir(parents=True, exist_ok=True)
    # one file per sweep config: several sweeps (a main one, a rank sweep) may fill one results folder
    (output / f"sweep-{cfg['name']}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    todo, counts = [], {"ok": 0, "failed": 0, "skipped": 0}
    for run in runs:
        path = result_path(output, run)
        if path.is_file():
            done = json.loads(path.read_text())
            if done["config"] != _plain(run):
                if not replace_changed:
                    raise ConfigChanged(f"{path} was made with another config than this sweep asks for; use "
                                        "another output folder, or --replace-changed to set it aside and re-run it")
                moved = set_aside(path, output)
                if not quiet:
                    tqdm.write(f"config changed: {path.name} set aside as {moved}")
                todo.append(run)
                continue
            if done["status"] == "ok" or not retry_failed:
                counts["skipped"] += 1
                continue
        todo.append(run)
    if executor is not None:
        runner_path = f"{runner.__module__}:{runner.__qualname__}"
        return {**executor(todo, output, runner_path), "skipped": counts["skipped"]}
    bar = tqdm(todo, desc=f"sweep {cfg['name']}", disable=quiet)
    for run in bar:
        bar.set_postfix_str(run_id(run["task"], run["method"]["variant"], run["seed"]))
        result = run_and_record(run, output, quiet, runner)
        counts[result["status"]] += 1
        if result["status"] == "failed":
            tqdm.write(f"FAILED {run_id(run['task'], run['method']['variant'], run['seed'])}: {result['error']}")
    return counts
