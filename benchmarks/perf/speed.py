"""Training and inference speed of each method in one process on one device.

    python -m aurora_bench.perf.speed --model vit_base_patch16_224 --batch 64 256 --out results/speed

For each method: train step time (fwd + loss + bwd + AdamW step, bf16 autocast on GPU) and img/s,
peak memory, and eval throughput; for AuroRA also eval after the opt-in static merge. Random weights
and inputs (speed does not depend on them); warm-up excluded; medians of several timed repetitions.
`--precision fp8` converts each method's frozen linears to torchao's FP8 ones as the runner does
(run/fp8.py; it implies --compile regional); the base model's eval stays bf16.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

import aurora_vision as av
from aurora_vision import kernels

from ..errors import UserError
from ..run import fp8
from ..run.compiling import add_compile_option, compile_mode, for_training, run_mode
from ..run.model import param_groups
from ..run.cuda_graph import GraphedTrainStep, adamw, graphed_forward, train_step
from ..run.flops import count_macs
from ..run.record import blas_library, device_name, git_commit, versions
from ..store import write_json

METHODS = {
    "full": ("full", {}),
    "linear": ("linear", {}),
    "lora_r8_qv": ("lora", {"r": 8, "alpha": 8, "targets": "qv"}),
    "aurora_r2_qv": ("aurora", {"r": 2, "alpha": 4, "targets": "qv"}),
    "aurora_r2_all": ("aurora", {"r": 2, "alpha": 4, "targets": "all"}),
}


def _timer(device):
    if device.type == "cuda":
        def measure(fn, steps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000 / steps
    else:
        def measure(fn, steps):
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            return (time.perf_counter() - t) / steps
    return measure


def _autocast(device, graphs: bool):
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda",
                                  cache_enabled=not graphs)


def eval_img_per_s(net, x, device, steps, repeats, warmup, graphs=False) -> float:
    """Inference throughput of `net` on batch `x` (bf16 autocast on GPU), median over repeats."""
    measure = _timer(device)
    autocast = _autocast(device, graphs)
    if graphs:
        forward = graphed_forward(net, x, autocast, warmup)
        step = lambda: forward(x)
    else:
        @torch.no_grad()
        def step():
            with autocast():
                net(x)
        for _ in range(warmup):
            step()
    return x.shape[0] / statistics.median([measure(step, steps) for _ in range(repeats)])


def _model(name: str, kwargs: dict | None):
    """The timm model (100 classes, random weights) and its input size; kwargs: --model-kwargs."""
    kwargs = kwargs or {}
    return timm.create_model(name, num_classes=100, **kwargs), kwargs.get("img_size", 224)


def bench_method(model_name, method, config, batch, device, steps, repeats, warmup, compile_model="none",
                 graphs=False, precision="bf16", evaluate=True, model_kwargs=None) -> dict:
    torch.manual_seed(0)
    base, size = _model(model_name, model_kwargs)
    model = av.apply(base, method, config).to(device)
    converted = fp8.convert_frozen_linears(model, device) if precision == "fp8" else None
    net = for_training(model, model, compile_mode(compile_model, device.type))  # regional: the blocks, in place
    opt = adamw(param_groups(model, 1e-4, 1e-4, 1e-4), device, graphs)  # as the runner builds it
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (batch,), device=device)
    autocast = _autocast(device, graphs)
    measure = _timer(device)

    def loss_of(x, y):
        with autocast():
            return F.cross_entropy(net(x).float(), y)

    model.train()
    if graphs:
        graphed = GraphedTrainStep(model, opt, loss_of, warmup)
        step = lambda: graphed(x, y)
        step()  # captures
    else:
        step = lambda: train_step(opt, loss_of, x, y)
        for _ in range(warmup):
            step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    step_times = [measure(step, steps) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    model.eval()
    out = {"train_step_s": statistics.median(step_times), "train_step_s_all": step_times,
           "train_img_per_s": batch / statistics.median(step_times), "peak_train_mem_gib": peak,
           "eval_img_per_s": eval_img_per_s(net, x, device, steps, repeats, warmup, graphs) if evaluate else None,
           "params": av.count_parameters(model), "fp8": converted}
    if evaluate and not all(layer.exact_merge for _, layer in av.adapter_layers(model)):  # deployable: merged
        av.merge_and_unload(model, approximate=True)
        out["eval_img_per_s_static_merge"] = eval_img_per_s(net, x, device, steps, repeats, warmup, graphs)
    del model, net, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def base_eval(model_name, batch, device, steps, repeats, warmup, graphs=False, model_kwargs=None) -> float:
    model, size = _model(model_name, model_kwargs)
    model = model.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    return eval_img_per_s(model, x, device, steps, repeats, warmup, graphs)


def _precision_words(res: dict) -> str:
    if res.get("precision") != "fp8":
        return "bf16 autocast"
    converted = {m: r["fp8"]["linears_converted"] for r in res["batches"].values() for m, r in r.items()
                 if not m.startswith("_") and r.get("fp8")}
    return (f"fp8 frozen linears (torchao {res.get('torchao')}; converted per method: "
            + ", ".join(f"{m} {n}" for m, n in converted.items()) + "), the rest bf16 autocast on CUDA")


def markdown(res: dict) -> str:
    lines = [f"Device: {res['device']}; model {res['model']}; AuroRA sigma: {res.get('aurora_sigma', 'compile')}; "
             f"eval fold: {res.get('eval_fold', 'torch')}; GEMMs: {res.get('blas') or 'torch (CPU)'}; "
             f"CUDA graphs: {res.get('cuda_graphs', False)}; compile: {res.get('compile', False)}; "
             f"{_precision_words(res)}; "
             f"medians of {res['repeats']} x {res['steps']} steps after {res['warmup']} warm-up steps.", "",
             "| batch | method | train step (ms) | train img/s | peak mem (GiB) | eval img/s | eval vs base |",
             "|---|---|---|---|---|---|---|"]
    for b, by_method in res["batches"].items():
        base = by_method["_base_eval_img_per_s"]
        for m, r in by_method.items():
            if m.startswith("_"):
                continue
            mem = "–" if r["peak_train_mem_gib"] is None else f"{r['peak_train_mem_gib']:.1f}"
            evals = "– | –" if base is None else f"{r['eval_img_per_s']:.0f} | {r['eval_img_per_s'] / base:.3f}"
            lines.append(f"| {b} | {m} | {1000 * r['train_step_s']:.1f} | {r['train_img_per_s']:.0f} | {mem} | "
                         f"{evals} |")
            if "eval_img_per_s_static_merge" in r:
                lines.append(f"| {b} | {m} (static merge) | | | | {r['eval_img_per_s_static_merge']:.0f} | "
                             f"{r['eval_img_per_s_static_merge'] / base:.3f} |")
        if base is not None:
            lines.append(f"| {b} | base model (no adapters) | | | | {base:.0f} | 1.000 |")
    lines += ["", "Ratios against the speed targets in benchmarks/RESULTS.md (where both methods ran):", ""]
    for b, r in res["batches"].items():
        t = lambda m: r[m]["train_step_s"]
        parts = []
        if {"aurora_r2_qv", "lora_r8_qv"} <= set(r):
            parts.append(f"AuroRA / LoRA step time (qv) = {t('aurora_r2_qv') / t('lora_r8_qv'):.2f} (target <= 1.10)")
        if {"lora_r8_qv", "aurora_r2_qv", "full"} <= set(r):
            parts.append(f"LoRA / full = {t('lora_r8_qv') / t('full'):.2f}, AuroRA / full = "
                         f"{t('aurora_r2_qv') / t('full'):.2f} (targets <= 0.80)")
        if "aurora_r2_qv" in r and r["_base_eval_img_per_s"] is not None:
            a, base = r["aurora_r2_qv"], r["_base_eval_img_per_s"]
            parts.append(f"AuroRA eval / base = {a['eval_img_per_s'] / base:.3f} (target >= 0.95), after static "
                         f"merge {a['eval_img_per_s_static_merge'] / base:.3f} (target 1.0)")
        if "_full_mfu" in r:
            parts.append(f"full FT = {r['_full_mfu'] * 100:.1f}% of 989 TFLOP/s (target >= 35% at 256)")
        lines.append(f"- batch {b}: " + "; ".join(parts))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="more timm.create_model keywords, as JSON")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    add_compile_option(p, "torch.compile each model: whole (--compile alone, or model) or per block (regional)")
    p.add_argument("--graphs", action="store_true",
                   help="train steps and eval passes as CUDA graphs (as the runner trains on one GPU)")
    p.add_argument("--precision", choices=("bf16", "fp8"), default="bf16",
                   help="fp8: the frozen linears in FP8 via torchao, as train.precision fp8 (implies --compile regional)")
    p.add_argument("--train-only", action="store_true",
                   help="time the training steps only (no eval, static-merge or base-model passes)")
    p.add_argument("--out", default="results/speed")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.graphs and device.type != "cuda":
        raise SystemExit("--graphs needs a CUDA device")
    if args.precision == "fp8":
        try:
            fp8.check_available(device)
        except UserError as e:
            raise SystemExit(str(e))
    args.compile = run_mode({"compile": args.compile, "precision": args.precision}, device.type)  # auto resolved
    macs = count_macs(*_model(args.model, args.model_kwargs))["gmacs"]
    res = {"device": device_name(device), "model": args.model, "model_kwargs": args.model_kwargs,
           "steps": args.steps, "repeats": args.repeats,
           "warmup": args.warmup, "compile": args.compile, "cuda_graphs": args.graphs, "aurora_sigma": kernels.SIGMA_ON_CUDA,
           "precision": args.precision, "torchao": fp8.torchao_version() if args.precision == "fp8" else None,
           "eval_fold": kernels.FOLD_ON_CUDA, "blas": blas_library(device), "gmacs_per_image": macs,
           "versions": versions(), "git": git_commit(), "batches": {}}
    for b in args.batch:
        r = {m: bench_method(args.model, *METHODS[m], b, device, args.steps, args.repeats, args.warmup, args.compile,
                             args.graphs, args.precision, evaluate=not args.train_only, model_kwargs=args.model_kwargs)
             for m in args.methods}
        r["_base_eval_img_per_s"] = None if args.train_only else base_eval(
            args.model, b, device, args.steps, args.repeats, args.warmup, args.graphs, args.model_kwargs)
        if "full" in r:  # 3x forward FLOPs per trained image, 2 FLOPs per MAC, against dense bf16 peak
            r["_full_mfu"] = 3 * 2 * macs * 1e9 * r["full"]["train_img_per_s"] / 989e12
        res["batches"][str(b)] = r
        print(f"batch {b}: " + ", ".join(f"{m} {r[m]['train_img_per_s']:.0f} img/s" for m in args.methods), flush=True)
    out = Path(args.out)
    write_json(out / "speed.json", res)
    text = markdown(res)
    (out / "speed.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
