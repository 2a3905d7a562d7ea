"""AuroRA's merge forms on the same trained models, next to LoRA at equal parameters.

For each (task, seed) it trains AuroRA (r=2, q/v) and LoRA (r=2, q/v) with `train_run` and evaluates, on the
run's evaluation split: AuroRA exact (dynamic), its static merge (W0 + s B sigma(A)), its calibrated merge
(aurora_vision.calibrate, fitted on training images only, per --ridges), and LoRA r=2 unmerged and merged.

    python -m aurora_bench.perf.merge_forms configs/vtab1k.yaml --tasks dtd eurosat --seeds 0 1 2 \\
        --set data.root=/data/vtab-1k --out results/merge-forms
    python -m aurora_bench.perf.merge_forms demo --tasks digits_5_9 --out results/merge-forms-demo  # CPU

Writes merge_forms.json (one row per task and seed) and merge_forms.md to --out.
"""
import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

import aurora_vision as av
from aurora_vision.calibrate import DEFAULT_RIDGE

from ..config import load_config, resolve_run
from ..run import train_run
from ..run.evaluate import CALIBRATION_IMAGES, calibration_batches, evaluate, sync
from ..run.inputs import decoded_splits, to_device, transform_for
from ..run.record import git_commit, versions
from ..store import write_json

# used when the config does not define these variant names itself (configs/vtab1k.yaml does); their
# learning rate is then the one the config gives their method
VARIANTS = {"aurora": {"method": "aurora", "config": {"r": 2, "alpha": 4, "targets": "qv"}},
            "lora_r2": {"method": "lora", "config": {"r": 2, "alpha": 2, "targets": "qv"}}}


def load(config: str, overrides) -> dict:
    if config == "demo":  # the embedded digits demo, with its pre-trained tiny backbone
        from ..demo import load_demo_config, pretrain_backbone
        cfg, pretrain = load_demo_config(overrides)
        cfg["model"]["file"] = str(pretrain_backbone(cfg, pretrain, quiet=True))
        return cfg
    return load_config(config, overrides)


def trained(cfg: dict, task: str, variant: str, seed: int):
    """(result, model, eval inputs, transform, autocast, batch size) of one trained run."""
    run = resolve_run(cfg, task, variant, seed)
    result, model = train_run(run, quiet=True, return_model=True)
    device = next(model.parameters()).device
    splits, num_classes = decoded_splits(run)  # from the decode cache that train_run filled
    inputs = to_device(splits, num_classes, device)
    bf16 = result["precision"] == "bf16 autocast" or (result["precision"] == "fp8" and device.type == "cuda")
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    return result, model, inputs, transform_for(model, run), autocast, run["train"]["eval_batch_size"]


def aurora_forms(cfg: dict, task: str, variant: str, seed: int, ridges) -> dict:
    result, model, inputs, transform, autocast, bs = trained(cfg, task, variant, seed)
    out = {"device": result["device"], "params": result["params"]["adapter"], "exact": result["accuracy"],
           "static": result["accuracy_static_merge"], "calibrated": {}}
    device = inputs.eval.labels.device
    for ridge in ridges:
        sync(device)
        start = time.perf_counter()
        with autocast():
            fit = av.merge(model, calibration=calibration_batches(inputs.train, transform, bs, seed), ridge=ridge)
        sync(device)
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, inputs.eval, transform, bs, autocast)["accuracy"]
        av.unmerge(model)
        out["calibrated"][f"{ridge:g}"] = {
            "accuracy": accuracy, "seconds": seconds,
            # per-layer output-space errors on the calibration tokens, mean over the adapted layers
            "layer_error": statistics.fmean(f["relative_error"] for f in fit.values()),
            "layer_error_static": statistics.fmean(f["static_relative_error"] for f in fit.values())}
    return out


def lora_forms(cfg: dict, task: str, variant: str, seed: int) -> dict:
    result, model, inputs, transform, autocast, bs = trained(cfg, task, variant, seed)
    av.merge(model)
    merged = evaluate(model, inputs.eval, transform, bs, autocast)["accuracy"]
    return {"params": result["params"]["adapter"], "exact": result["accuracy"], "merged": merged}


def table(rows: list, ridges) -> str:
    keys = [f"{r:g}" for r in ridges]
    head = (["task", "seed", "AuroRA params", "AuroRA exact", "static merge"]
            + [f"calibrated (ridge {k})" for k in keys]
            + ["LoRA r=2 params", "LoRA r=2", "LoRA r=2 merged"]
            + [f"layer error cal / static (ridge {k})" for k in keys])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    for r in rows + _means(rows, keys):
        a, lo = r["aurora"], r["lora"]
        cells = ([r["task"], str(r["seed"]), str(a["params"]), fmt(a["exact"]), fmt(a["static"])]
                 + [fmt(a["calibrated"][k]["accuracy"]) for k in keys]
                 + [str(lo["params"]), fmt(lo["exact"]), fmt(lo["merged"])]
                 + [f"{a['calibrated'][k]['layer_error']:.3g} / {a['calibrated'][k]['layer_error_static']:.3g}"
                    for k in keys])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _means(rows: list, keys) -> list:
    """One 'mean' row per task with more than one seed."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        if len(mine) < 2:
            continue
        mean = lambda get: statistics.fmean(get(r) for r in mine)
        cal = {k: {f: mean(lambda r: r["aurora"]["calibrated"][k][f]) for f in mine[0]["aurora"]["calibrated"][k]}
               for k in keys}
        out.append({"task": task, "seed": "mean", "aurora": {
            "params": mine[0]["aurora"]["params"], "exact": mean(lambda r: r["aurora"]["exact"]),
            "static": mean(lambda r: r["aurora"]["static"]), "calibrated": cal},
            "lora": {"params": mine[0]["lora"]["params"], "exact": mean(lambda r: r["lora"]["exact"]),
                     "merged": mean(lambda r: r["lora"]["merged"])}})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a sweep config file, or 'demo' for the embedded digits demo")
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, as aurora-bench's")
    p.add_argument("--ridges", nargs="+", type=float, default=[DEFAULT_RIDGE],
                   help=f"calibrated-merge ridges to evaluate (default: the library's, {DEFAULT_RIDGE:g})")
    p.add_argument("--aurora", default="aurora", help="AuroRA variant of the config (r=2, q/v)")
    p.add_argument("--lora", default="lora_r2", help="LoRA variant of the config (r=2, q/v)")
    p.add_argument("--out", required=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    cfg = load(args.config, args.set)
    overrides = cfg["method_overrides"]
    for name in (args.aurora, args.lora):
        if name not in overrides and name in VARIANTS:
            # a variant we add trains as the config trains its method (lora_r2 takes lora's rate)
            own = overrides.get(VARIANTS[name]["method"]) or {}
            overrides[name] = {**VARIANTS[name], **({"train": own["train"]} if "train" in own else {})}
    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            rows.append({"task": task, "seed": seed,
                         "aurora": aurora_forms(cfg, task, args.aurora, seed, args.ridges),
                         "lora": lora_forms(cfg, task, args.lora, seed)})
            print(table(rows[-1:], args.ridges).splitlines()[-1], flush=True)
    meta = {"command": shlex.join(["python", "-m", "aurora_bench.perf.merge_forms", *argv]), "config": args.config,
            "overrides": args.set, "variants": {n: overrides[n] for n in (args.aurora, args.lora)},
            "calibration_images": CALIBRATION_IMAGES, "device": rows[0]["aurora"]["device"],
            "versions": versions(), "git": git_commit()}
    out = Path(args.out)
    write_json(out / "merge_forms.json", {**meta, "rows": rows})
    text = (f"# AuroRA merge forms ({args.config}; {meta['variants']})\n\n    {meta['command']}\n\n"
            f"Accuracy (%) on the evaluation split; calibrated merge fitted on up to {CALIBRATION_IMAGES} training "
            "images. Layer error: ||X dW^T - Y||^2 / ||Y||^2 on the calibration tokens, mean over adapted layers.\n\n"
            + table(rows, args.ridges) + "\n")
    (out / "merge_forms.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
