"""The eval fold's operand kernels (aurora_vision/layers/triton_fold.py) against what the base layer pays for
the same operands under autocast (the casts of x and W0 to bf16), at the shapes of ViT-B/16's qkv with AuroRA
r=2 on q and v, per block size of fold_input. CUDA only.

    python -m benchmarks.fold_kernels --out results/speed/fold_kernels.md
"""
import argparse
from pathlib import Path

import torch
from triton.testing import do_bench_cudagraph

from aurora_vision.layers import triton_fold


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--block-m", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    dev, bf16 = torch.device("cuda"), torch.bfloat16
    d, o, n, r = 768, 3 * 768, 2, 2
    k = -(-(d + n * r) // 8) * 8
    A = torch.randn(n * r, d, device=dev)
    w0, B = torch.randn(o, d, device=dev), torch.randn(n, d, r, device=dev)
    starts = torch.tensor([0, 2 * d], dtype=torch.int32, device=dev)
    us = lambda fn: 1000 * do_bench_cudagraph(fn, rep=100, return_mode="median")  # in a graph: GPU time, not launch cost
    lines = [f"Device: {torch.cuda.get_device_name()}; x (tokens, {d}) fp32, W0 ({o}, {d}) fp32, K = {k}; "
             "triton.testing.do_bench_cudagraph medians, us.", "",
             "| batch | tokens | x to bf16 (base) | " + " | ".join(f"fold_input BLOCK_M={b}" for b in args.block_m)
             + " | W0 to bf16 (base) | fold_weight |", "|---" * (5 + len(args.block_m)) + "|"]
    for batch in args.batch:
        x = torch.randn(batch * 197, d, device=dev)
        row = [f"{batch}", f"{x.shape[0]}", f"{us(lambda: x.to(bf16)):.1f}"]
        default = triton_fold.BLOCK_M
        for b in args.block_m:
            triton_fold.BLOCK_M = b
            row.append(f"{us(lambda: triton_fold.fold_input(x, A, k, bf16)):.1f}")
        triton_fold.BLOCK_M = default
        row += [f"{us(lambda: w0.to(bf16)):.1f}", f"{us(lambda: triton_fold.fold_weight(w0, B, starts, 2.0, k, bf16)):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
