"""How far reruns of one (task, method, seed) spread, in the default mode and with train.deterministic.

    python -m benchmarks.perf.rerun_spread configs/shared_validation.yaml --task cifar10 --method aurora \\
        --seeds 0 1 2 --set data.root=DATA model.file=WEIGHTS --out results/rerun-spread

Every (seed, mode) is run `--repeats` times, each run in a fresh process: nothing a run leaves behind (CUDA
graphs, compiled kernels, cuBLAS handles, RNG state) reaches the next, as in two separate sweeps. The modes
alternate, so a drift in the machine's speed touches both. Writes rerun_spread.md and rerun_spread.json:
per seed the accuracies, their spread and whether the loss curves are identical; per mode the mean step
time (epochs after the first, which holds capture and compile costs) and deterministic mode's cost.
Each run's record is kept in runs/; a record made with the same config is reused, so an interrupted
job resumes where it stopped.
"""
import argparse
import json
import math
import multiprocessing as mp
import statistics
from pathlib import Path

from ..config import load_config, resolve_run
from ..run import train_run
from ..run.record import git_commit, versions
from ..store import write_json

MODES = {"default": False, "deterministic": True}


def planned_runs(config, overrides, task: str, method: str, seeds, repeats: int) -> list:
    """(mode, seed, repeat, run config) in the order they run: per seed and repeat, both modes."""
    only = [f"tasks=[{task}]", f"methods=[{method}]"]  # the one (task, method) measured
    cfgs = {mode: load_config(config, [*overrides, *only, f"train.deterministic={str(on).lower()}"])
            for mode, on in MODES.items()}
    return [(mode, seed, rep, resolve_run(cfg, task, method, seed))
            for seed in seeds for rep in range(repeats) for mode, cfg in cfgs.items()]


def _child(run: dict, path: str) -> None:
    write_json(path, train_run(run, quiet=True))


def run_once(run: dict, path: Path, fresh_process: bool) -> dict:
    """The run's record, from `path` when it holds one with the same config, else made (and saved there)."""
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("config") == json.loads(json.dumps(run, default=str)):
            print(f"reused {path} (same config)")
            return record
    if fresh_process:
        proc = mp.get_context("spawn").Process(target=_child, args=(run, str(path)))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"{path.stem} failed in its process (exit code {proc.exitcode}); traceback above")
    else:
        _child(run, str(path))
    return json.loads(path.read_text())


def step_seconds(record: dict) -> float:
    """Mean seconds per training step over the epochs after the first (all epochs if there is one)."""
    epochs = record["curve"][1:] or record["curve"]
    steps = math.ceil(record["num_train"] / record["config"]["train"]["batch_size"])
    return statistics.mean(p["seconds"] for p in epochs) / steps


def summarize(records: dict) -> dict:
    """records: (mode, seed) -> [record per repeat]. Rows per (seed, mode) and a summary per mode."""
    rows = []
    for (mode, seed), recs in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if any(r["deterministic"] != MODES[mode] for r in recs):
            raise RuntimeError(f"a {mode} run of seed {seed} recorded deterministic={recs[0]['deterministic']}")
        acc = [r["accuracy"] for r in recs]
        losses = [[p["loss"] for p in r["curve"]] for r in recs]
        rows.append({"seed": seed, "mode": mode, "accuracies": acc, "spread": max(acc) - min(acc),
                     "curves_identical": all(l == losses[0] for l in losses),
                     "max_loss_difference": max(max(abs(a - b) for a, b in zip(l, losses[0])) for l in losses),
                     "step_ms": [1000 * step_seconds(r) for r in recs]})
    modes = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        modes[mode] = {"max_spread": max(r["spread"] for r in mine),
                       "all_curves_identical": all(r["curves_identical"] for r in mine),
                       "step_ms": statistics.mean(t for r in mine for t in r["step_ms"])}
    cost = 100 * (modes["deterministic"]["step_ms"] / modes["default"]["step_ms"] - 1)
    return {"rows": rows, "modes": modes, "deterministic_cost_percent": cost}


def markdown(s: dict, head: dict) -> str:
    lines = [f"# Rerun spread: {head['task']} / {head['method']}", "",
             f"{head['device']}; {head['repeats']} runs per seed and mode, "
             f"{'each in a fresh process' if head['fresh_processes'] else 'all in one process'}; "
             f"config {head['config']} {' '.join(head['set'])}", "",
             "| seed | mode | accuracies | spread | loss curves identical | max loss difference | step ms |",
             "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['seed']} | {r['mode']} | {', '.join(f'{a:.2f}' for a in r['accuracies'])} | "
                     f"{r['spread']:.2f} | {'yes' if r['curves_identical'] else 'no'} | "
                     f"{r['max_loss_difference']:.3g} | {', '.join(f'{t:.2f}' for t in r['step_ms'])} |")
    lines += ["", "| mode | max spread | all curves identical | mean step ms |", "|---|---|---|---|"]
    for mode, m in s["modes"].items():
        lines.append(f"| {mode} | {m['max_spread']:.2f} | {'yes' if m['all_curves_identical'] else 'no'} | "
                     f"{m['step_ms']:.2f} |")
    lines += ["", f"Deterministic mode's step time cost: {s['deterministic_cost_percent']:+.1f}% "
              "(step time: epochs after the first, which holds graph capture and compiling)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("--task", required=True)
    p.add_argument("--method", required=True, help="a method variant of the config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=2, help="runs per seed and mode (at least 2)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, as aurora-bench's")
    p.add_argument("--same-process", action="store_true",
                   help="all runs in this process (fresh models, but caches and CUDA state carry over)")
    p.add_argument("--out", default="results/rerun-spread")
    args = p.parse_args(argv)
    if args.repeats < 2:
        p.error("--repeats must be at least 2: a spread needs two runs")
    out = Path(args.out)
    records = {}
    for mode, seed, rep, run in planned_runs(args.config, args.set, args.task, args.method, args.seeds, args.repeats):
        record = run_once(run, out / "runs" / f"{mode}-s{seed}-r{rep}.json", not args.same_process)
        records.setdefault((mode, seed), []).append(record)
        print(f"{mode} seed {seed} run {rep + 1}: accuracy {record['accuracy']:.2f}, "
              f"{1000 * step_seconds(record):.2f} ms/step")
    head = {"config": str(args.config), "set": args.set, "task": args.task, "method": args.method,
            "seeds": args.seeds, "repeats": args.repeats, "fresh_processes": not args.same_process,
            "device": next(iter(records.values()))[0]["device"]}
    summary = summarize(records)
    write_json(out / "rerun_spread.json", {**head, **summary, "versions": versions(), "git": git_commit()})
    (out / "rerun_spread.md").write_text(markdown(summary, head))
    print((out / "rerun_spread.md").read_text())
    return summary


if __name__ == "__main__":
    main()
