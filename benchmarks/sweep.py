"""A sweep: every (task, method, seed) of a config, one result JSON each. Finished runs are skipped, so an
interrupted sweep resumes where it stopped; a failing run is recorded with its reason and the sweep goes on."""
import json
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from . import store
from .config import resolve_run
from .run import run_and_record, train_run


class ConfigChanged(RuntimeError):
    """A finished result was made with another config than the sweep now asks for."""


def expand(cfg: dict) -> list[dict]:
    if not cfg["tasks"]:
        raise ValueError("the config lists no tasks (set tasks: [...] or --set tasks=[...])")
    return [resolve_run(cfg, t, m, s) for t in cfg["tasks"] for m in cfg["methods"] for s in cfg["seeds"]]


def _plain(obj):
    return json.loads(json.dumps(obj, default=str))


def sweep(cfg: dict, quiet: bool = False, retry_failed: bool = False, runner=train_run, executor=None,
          replace_changed: bool = False) -> dict:
    """Run what is not finished yet; returns counts {'ok', 'failed', 'skipped'}. A result made with another
    config stops the sweep, or with `replace_changed` is set aside (`set_aside`) and its run made again.

    Serial by default. An `executor(runs, output, runner) -> {'ok', 'failed'}` runs them elsewhere
    (executors.processes: one process per GPU; executors.ray_tasks: a Ray cluster; executors.slurm_jobs).
    `runner` must be a module-level function: other processes receive it by its qualified name."""
    output = Path(cfg["output"])
    runs = expand(cfg)
    output.mkdir(parents=True, exist_ok=True)
    # one file per sweep config: several sweeps (a main one, a rank sweep) may fill one results folder
    (output / f"sweep-{cfg['name']}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    todo, counts = [], {"ok": 0, "failed": 0, "skipped": 0}
    for run in runs:
        path = store.result_path(output, run)
        if path.is_file():
            done = store.read_result(path)
            if done["config"] != _plain(run):
                if not replace_changed:
                    raise ConfigChanged(f"{path} was made with another config than this sweep asks for; use "
                                        "another output folder, or --replace-changed to set it aside and re-run it")
                moved = store.set_aside(path, output)
                if not quiet:
                    tqdm.write(f"config changed: {path.name} set aside as {moved}")
                todo.append(run)
                continue
            if done["status"] == "ok" or not retry_failed:
                counts["skipped"] += 1
                continue
        todo.append(run)
    if executor is not None:
        return {**executor(todo, output, runner), "skipped": counts["skipped"]}
    bar = tqdm(todo, desc=f"sweep {cfg['name']}", disable=quiet)
    for run in bar:
        bar.set_postfix_str(store.key_of(run))
        result = run_and_record(run, output, quiet, runner)
        counts[result["status"]] += 1
        if result["status"] == "failed":
            tqdm.write(f"FAILED {store.key_of(run)}: {result['error']}")
    return counts
