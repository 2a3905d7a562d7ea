"""What train.compile costs and buys, per mode (none / regional / regional-autotune / model): compile seconds with
a cold cache and with a warm one (the cache the cold process wrote), and the steady training step.

    python -m aurora_bench.perf.compile_cost --out results/compile_cost          # ViT-B/16, AuroRA r=2 q/v, b64
    python -m aurora_bench.perf.compile_cost --batch 256 --out results/compile_cost_b256

Every measurement is a fresh process (so cold is cold: its own inductor and Triton cache folders, emptied
first; warm is the second process on the same folders), training as the runner does: bf16 autocast and the
step as a CUDA graph on CUDA (the compile happens in the capture's warm-up), eager fp32 steps on the CPU.
Random weights and inputs. Writes compile_cost.json and compile_cost.md under --out.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..config.sections import COMPILE_MODES

MODES = tuple(m for m in COMPILE_MODES if m != "auto")  # train.compile's modes; auto picks one per device
DEFAULT_MODES = ("none", "regional", "model")
MARK = "COMPILE_COST_RESULT "


def _child(args) -> dict:
    """One process's measurement (run with --child): compile report, first step, steady step."""
    import timm
    import torch
    import torch.nn.functional as F

    import aurora_vision as av

    from ..run import compiling
    from ..run.cuda_graph import GraphedTrainStep, adamw, train_step
    from ..run.model import param_groups

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    graphs = device.type == "cuda"
    torch.manual_seed(0)
    kwargs = json.loads(args.model_kwargs)
    model = timm.create_model(args.model, num_classes=100, **kwargs)
    config = {"r": args.r, "alpha": 2 * args.r, "targets": args.targets} if args.method in ("lora", "aurora") else {}
    model = av.apply(model, args.method, config).to(device)
    size = kwargs.get("img_size", 224)
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)
    optimizer = adamw(param_groups(model, 1e-4, 1e-4, 1e-4), device, graphs)
    net = compiling.for_training(model, model, compiling.compile_mode(args.mode, device.type))
    cost = compiling.CompileCost(compiling.compile_mode(args.mode, device.type), os.environ.get(compiling.CACHE_ENV))
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=graphs, cache_enabled=not graphs)

    def loss_of(inp, target):
        with autocast():
            return F.cross_entropy(net(inp).float(), target)

    sync = torch.cuda.synchronize if graphs else (lambda: None)
    step = GraphedTrainStep(model, optimizer, loss_of) if graphs else (lambda a, b: train_step(optimizer, loss_of, a, b))
    model.train()
    sync()
    start = time.perf_counter()
    step(x, y)  # CUDA: warm-up (compiles) and capture; CPU: the first step, compiling
    if not graphs:
        step(x, y)  # a second step: the backward's compile is done by now on every path
    sync()
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        for _ in range(args.steps):
            step(x, y)
        sync()
        times.append((time.perf_counter() - t) / args.steps)
    return {"device": str(device), "first_steps_s": first, "step_ms": 1000 * statistics.median(times),
            "step_ms_all": [1000 * t for t in times], "compile": cost.report()}


def measure(args, mode: str, cache: Path) -> dict:
    """`_child` in a fresh process whose compile caches live in `cache`."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache / "triton")}
    cmd = [sys.executable, "-m", "aurora_bench.perf.compile_cost", "--child", "--mode", mode,
           "--model", args.model, "--model-kwargs", args.model_kwargs, "--method", args.method, "--r", str(args.r),
           "--targets", args.targets, "--batch", str(args.batch), "--steps", str(args.steps),
           "--repeats", str(args.repeats)] + (["--device", args.device] if args.device else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"compile_cost {mode} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return {**json.loads(lines[-1][len(MARK):]), "process_s": time.perf_counter() - start}


def markdown(res: dict) -> str:
    lines = [f"Device: {res['device']}; model {res['model']} {res['method']} r={res['r']} {res['targets']}; batch "
             f"{res['batch']}; CUDA graphs: {res['cuda_graphs']}; torch {res['torch']}. Compile seconds: dynamo + "
             "AOTAutograd + inductor, forward and backward (torch's own timers); first steps: the first step "
             "(CUDA: warm-up and capture) wall time; each measurement a fresh process.", "",
             "| compile | cold compile (s) | warm compile (s) | cold first steps (s) | warm first steps (s) | "
             "warm cache | graphs | graph breaks | GEMMs autotuned (cold) | step (ms) | img/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in res["modes"].items():
        cold, warm = r["cold"], r["warm"]
        c = lambda m: m["compile"].get("seconds", 0.0)
        lines.append(f"| {mode} | {c(cold):.1f} | {c(warm):.1f} | {cold['first_steps_s']:.1f} | "
                     f"{warm['first_steps_s']:.1f} | {warm['compile'].get('cache') or '–'} | "
                     f"{warm['compile'].get('graphs', 0)} | {warm['compile'].get('graph_breaks', 0)} | "
                     f"{cold['compile'].get('autotuned', 0)} | "
                     f"{warm['step_ms']:.1f} | {res['batch'] * 1000 / warm['step_ms']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--model-kwargs", default="{}", help="more timm.create_model keywords, as JSON")
    p.add_argument("--method", default="aurora")
    p.add_argument("--r", type=int, default=2)
    p.add_argument("--targets", default="qv")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None, help="default: cuda when there is one")
    p.add_argument("--out", default="results/compile_cost")
    p.add_argument("--cache", default=None, help="where each mode's compile caches go (emptied first; default "
                   "<out>/cache)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(_child(args)), flush=True)
        return
    import torch

    from ..run.record import git_commit, versions
    from ..store import write_json
    out = Path(args.out)
    res = {"model": args.model, "model_kwargs": json.loads(args.model_kwargs), "method": args.method, "r": args.r,
           "targets": args.targets, "batch": args.batch, "steps": args.steps, "repeats": args.repeats,
           "torch": torch.__version__, "versions": versions(), "git": git_commit(), "modes": {}}
    for mode in args.modes:
        cache = Path(args.cache or out / "cache") / mode
        shutil.rmtree(cache, ignore_errors=True)  # cold means an empty cache
        cache.mkdir(parents=True)
        cold = measure(args, mode, cache.resolve())
        # without a compile there is no cache to warm: one process is both
        res["modes"][mode] = r = {"cold": cold, "warm": cold if mode == "none" else measure(args, mode, cache.resolve())}
        print(f"{mode}: compile cold {r['cold']['compile'].get('seconds', 0):.1f} s, warm "
              f"{r['warm']['compile'].get('seconds', 0):.1f} s, step {r['warm']['step_ms']:.1f} ms", flush=True)
        res["device"], res["cuda_graphs"] = cold["device"], cold["device"].startswith("cuda")
        if res["cuda_graphs"]:
            res["device"] = torch.cuda.get_device_name(0)
        write_json(out / "compile_cost.json", res)  # after each mode: a killed measurement keeps what it made
    text = markdown(res)
    (out / "compile_cost.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
