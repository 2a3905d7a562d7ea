"""The whole VTAB-1k at its real size, timed: 19 tasks with their real class counts and test-set
sizes (387,904 test images; synthetic 224-px JPEGs, perf/vtab_synthetic.py), LoRA r=8 q/v and AuroRA r=2
q/v on ViT-B/16 (no pretrained weights: the times are the same), one seed, the recipe of
configs/vtab1k.yaml, made by the normal sweep (the path `aurora-bench sweep --gpus ...` takes). Then where
the time went (perf/sweep_breakdown.py), as breakdown.json and breakdown.md in --out.

    python -m aurora_bench.perf.vtab_full --gpus 0 --out results/vtab-full-1gpu      # one GPU
    python -m aurora_bench.perf.vtab_full --gpus all --out results/vtab-full-2gpu    # every GPU of the host
    python -m aurora_bench.perf.vtab_full --scale 0.01 --tasks dtd kitti --out /tmp/vf   # a quick check

The images are generated once under --data (a folder per size and scale) and decoded once into its cache.
Evaluation runs once, after the last epoch (what the record reports; --eval-every N for the recipe's
curve). A second call resumes the sweep (finished runs are kept) and adds its wall time as a segment, so a
measurement can span calls (--tasks a subset per call, then all tasks for the whole breakdown); --redo
starts the measurement again. The decoded splits of all 19 tasks take ~57 GiB, more than a one-GPU device
machine's disk holds beside the images: --drop-cache deletes a call's finished tasks' entries after its sweep,
and before it those an earlier call cut off at its limit left (each split is still decoded once), so a machine
needs room only for the tasks of one call.
"""
import argparse
import json
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import torch

from ..config import expand, load_config, require_ready
from ..data.raw import DataError
from ..errors import UserError
from ..executors.processes import devices_for, run_parallel
from ..run.inputs import cache_files
from ..run.record import device_name, git_commit, versions
from ..store import decide, existing, load_all, write_json, write_text
from ..sweep import summary, sweep
from .sweep_breakdown import breakdown, markdown
from .vtab_synthetic import generate

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "vtab1k.yaml"
METHODS = ("lora", "aurora")  # configs/vtab1k.yaml's method_overrides: LoRA r=8 q/v, AuroRA r=2 alpha 4 q/v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", help="a subset of the 19 tasks (NOAH's names); default all")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of every split's real size (smoke tests)")
    p.add_argument("--px", type=int, default=224, help="side of the generated images")
    p.add_argument("--data", default="/tmp/aurora_vtab_full", help="where the images and their decode cache go")
    p.add_argument("--out", default="results/vtab-full", help="the sweep's records and the breakdown")
    p.add_argument("--gpus", help="'all' or a list like 0,1: one sweep worker per GPU (--workers-per-gpu N: N)")
    p.add_argument("--workers-per-gpu", type=int, metavar="N",
                   help="sweep workers per GPU; without --gpus, N CPU worker processes")
    p.add_argument("--model", default="vit_base_patch16_224", help="timm model name (pretrained=false)")
    p.add_argument("--epochs", type=int, help="default: the recipe's (100)")
    p.add_argument("--eval-every", type=int, help="epochs between evaluations; default: once, after the last")
    p.add_argument("--config", default=str(RECIPE), help="the recipe (default configs/vtab1k.yaml)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="more config overrides, as aurora-bench sweep --set takes them")
    p.add_argument("--processes", type=int, help="image-generating processes (default: every CPU)")
    p.add_argument("--generate-only", action="store_true", help="make the images and stop (a call of its own)")
    p.add_argument("--redo", action="store_true", help="delete --out's records and segments first")
    p.add_argument("--drop-cache", action="store_true",
                   help="delete the decoded splits of every task whose runs are all ok, before and after the "
                        "sweep (a disk that cannot hold every task's: 57 GiB at real size)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def _yaml(value) -> str:
    return json.dumps(value)  # JSON is YAML: paths with spaces or colons stay strings


def sweep_config(args, root: Path, output: Path) -> dict:
    tasks = args.tasks or []
    sets = ["name=vtab_full", f"methods={_yaml(list(METHODS))}", "seeds=[0]", f"output={_yaml(str(output))}",
            f"model.name={_yaml(args.model)}", "model.pretrained=false", f"data.root={_yaml(str(root))}",
            f"data.cache_dir={_yaml(str(root / 'cache'))}"]
    sets += [f"tasks={_yaml(tasks)}"] if tasks else []
    sets += [f"train.epochs={args.epochs}"] if args.epochs else []
    sets += args.set
    cfg = load_config(args.config, sets)
    every = args.eval_every or cfg["train"]["epochs"]
    return load_config(args.config, sets + [f"train.eval_every={every}"])


def executor(args):
    if args.gpus or args.workers_per_gpu:
        return partial(run_parallel, devices=devices_for(args.gpus, args.workers_per_gpu), quiet=args.quiet)
    return None


def _segments(path: Path) -> list:
    return json.loads(path.read_text()) if path.is_file() else []


def closed(segments: list, records: list) -> list:
    """[start, end] of each segment; one without an end (its call was killed) ends at its last run's end."""
    out = []
    for i, (start, end) in enumerate(segments):
        if end is None:
            stop = segments[i + 1][0] if i + 1 < len(segments) else float("inf")
            ends = [r["timing"]["wall_end"] for r in records if isinstance(r.get("timing"), dict)
                    and start <= r["timing"]["wall_start"] < stop]
            end = max(ends, default=start)
        out.append([start, end])
    return out


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def drop_cache(cfg: dict) -> dict:
    """Delete the decode cache entries of every task of `cfg` whose runs all have ok records of this config: each
    of its splits was decoded once, and the measurement never reads it again (a later call skips those runs). A
    task whose images are not on this machine has no entries here either."""
    runs = expand(cfg)
    unfinished = {run["task"] for run in runs if decide(existing(cfg["output"], run), run) != "done"}
    finished = sorted({run["task"] for run in runs} - unfinished)
    splits = {}  # the runs of a task share its splits: list each once (407k files at real size)
    for run in runs:
        if run["task"] in finished:
            splits.setdefault((run["task"], json.dumps(run["data"], sort_keys=True), run["model"]["image_size"]), run)
    files = set()
    for run in splits.values():
        try:
            files.update(f for f in cache_files(run) if f.is_file())
        except DataError:
            continue
    size = sum(f.stat().st_size for f in files)
    for f in files:
        f.unlink(missing_ok=True)
    return {"tasks": finished, "files": len(files), "bytes": size}


def _drop(cfg: dict) -> dict:
    dropped = drop_cache(cfg)
    print(f"decode cache: {dropped['files']} files of {len(dropped['tasks'])} finished tasks deleted "
          f"({dropped['bytes'] / 2**30:.2f} GiB)")
    return dropped


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return measure(args)
    except UserError as e:
        print(f"vtab_full: error: {e}", file=sys.stderr)
        return 2


def measure(args) -> int:
    out = Path(args.out)
    root = Path(args.data) / f"{args.px}px-x{args.scale:g}"
    if args.redo:
        shutil.rmtree(out / "sweep", ignore_errors=True)
        (out / "segments.json").unlink(missing_ok=True)
    made = generate(root, args.tasks, args.scale, args.px, args.processes)
    print(f"data: {root}: {made['images']:,} images made now in {made['seconds']:.1f} s "
          f"({made['bytes'] / 2**30:.2f} GiB); {len(made['tasks'])} tasks ready")
    if args.generate_only:
        return 0
    cfg = sweep_config(args, root, out / "sweep")
    require_ready(cfg)
    # also the tasks an earlier call finished but, cut off before its end, did not drop
    dropped = {"before": _drop(sweep_config(argparse.Namespace(**{**vars(args), "tasks": None}), root,
                                            out / "sweep"))} if args.drop_cache else None
    segments = _segments(out / "segments.json") + [[time.time(), None]]
    write_json(out / "segments.json", segments)
    counts = sweep(cfg, quiet=args.quiet, executor=executor(args))
    segments[-1][1] = time.time()
    write_json(out / "segments.json", segments)
    print(summary(counts, cfg["output"]))
    records = [r for r in load_all(cfg["output"]) if r["task"] in cfg["tasks"]]
    if dropped:
        dropped["after"] = _drop(cfg)
    result = breakdown(records, closed(segments, records))
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    result.update(
        command=sys.argv, model=args.model, methods=list(METHODS), epochs=cfg["train"]["epochs"],
        eval_every=cfg["train"]["eval_every"], scale=args.scale, px=args.px, data=str(root),
        generation={"seconds_this_call": made["seconds"], "images_this_call": made["images"],
                    "image_bytes": _folder_bytes(root) - _folder_bytes(root / "cache"),
                    "cache_bytes": _folder_bytes(root / "cache"), "tasks": made["tasks"]},
        cache_dropped=dropped,  # --drop-cache: what the latest call deleted before and after its sweep
        devices=gpus or [device_name(torch.device("cpu"))], counts=counts, versions=versions(), git=git_commit())
    write_json(out / "breakdown.json", result)
    write_text(out / "breakdown.md", markdown(result))
    print(markdown(result))
    return 0 if not counts["failed"] + counts["failed_before"] else 1


if __name__ == "__main__":
    sys.exit(main())
