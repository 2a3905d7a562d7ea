"""The eval fold's operand kernels (aurora_vision/kernels/triton_fold.py) against what the base layer pays for
the same operands under autocast (the casts of x and W0 to bf16), at the shapes of ViT-B/16's qkv with AuroRA
r=2 on q and v, for several launches of fold_input. CUDA only.

    python -m aurora_bench.perf.fold_kernels --out results/speed/fold_kernels.md
"""
import argparse
from pathlib import Path

import torch
from triton.testing import do_bench_cudagraph

from aurora_vision.kernels import triton_fold


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--block-m", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    dev, bf16 = torch.device("cuda"), torch.bfloat16
    d, o, n, r = 768, 3 * 768, 2, 2
    k = -(-(d + n * r) // 8) * 8
    A = torch.randn(n * r, d, device=dev)
    w0, B = torch.randn(o, d, device=dev), torch.randn(n, d, r, device=dev)
    starts = torch.tensor([0, 2 * d], dtype=torch.int32, device=dev)
    us = lambda fn: 1000 * do_bench_cudagraph(fn, rep=100, return_mode="median")  # in a graph: GPU time, not launch cost
    configs = [(b, w, half) for b in args.block_m for w in args.warps for half in (True, False)]
    xs = {batch: torch.randn(batch * 197, d, device=dev) for batch in args.batch}
    rows = {"x to bf16 (the base layer's cast)": lambda x: x.to(bf16),
            "W0 to bf16 (the base layer's cast)": lambda x: w0.to(bf16),
            "fold_weight": lambda x: triton_fold.fold_weight(w0, B, starts, 2.0, k, bf16)}
    default = 64, 4, triton_fold.HALF_DOT  # fold_input's defaults
    times = {name: [us(lambda: fn(x)) for x in xs.values()] for name, fn in rows.items()}
    for config in configs:
        name = f"fold_input, {config[0]} rows, {config[1]} warps, {'bf16' if config[2] else 'tf32'} dot"
        times[name + (" (default)" if config == default else "")] = [
            us(lambda: triton_fold.fold_input(x, A, k, bf16, *config)) for x in xs.values()]
    lines = [f"Device: {torch.cuda.get_device_name()}; x (tokens, {d}) fp32, W0 ({o}, {d}) fp32, K = {k}; "
             "triton.testing.do_bench_cudagraph medians in us (no L2 flush between repetitions).", "",
             "| kernel | " + " | ".join(f"batch {b} ({b * 197} tokens)" for b in xs) + " |",
             "|---" * (1 + len(xs)) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{t:.1f}" for t in ts) + " |" for name, ts in times.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
