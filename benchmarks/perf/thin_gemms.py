"""The adapter branch's six thin GEMMs, alone, at one adapted layer's real shapes: what cuBLAS takes for each
(the runner's call, eager or from inductor's code) against the least memory traffic, and, for the two weight
gradients, whose reduction runs over every token of the batch, the same product split along the tokens (a
batched GEMM and a sum, split-K by hand), and on CUDA each call again through cuBLASLt, whose Hopper heuristics
differ from cuBLAS's (`TORCH_BLAS_PREFER_CUBLASLT=1` would route every GEMM there). It decides whether those
GEMMs leave enough on the table for a library switch or a kernel of our own; profile_step's GEMM
table gives their share of a whole step.

    python -m aurora_bench.perf.thin_gemms --model vit_base_patch16_224 --batch 64 [--out DIR]

Random operands, bf16 on CUDA (GPU time inside a CUDA graph, so no launch cost; each call cycles over copies of
its operands that together exceed the L2 cache several times, so that they come from memory as in a step), fp32
on the CPU (times there only show that it runs). The layer is the first block's qkv with AuroRA or LoRA r on q
and v: width 2 r.
"""
import argparse
import contextlib
import json
import math
import time
from pathlib import Path
from typing import Callable, NamedTuple

import timm
import torch

from ..run.record import blas_library, device_name
from ..store import write_json
from .profile_step import least_bytes


def layer_shapes(model_name: str, model_kwargs: dict, batch: int) -> tuple[int, int, int]:
    """(tokens in the batch, in_features, out_features) of the first attention qkv, from a forward on the meta
    device: no weights, no compute."""
    with torch.device("meta"):
        model = timm.create_model(model_name, **model_kwargs)
    qkv = next((m for name, m in model.named_modules() if name.endswith("attn.qkv")), None)
    if qkv is None:
        raise SystemExit(f"--model {model_name}: no attn.qkv linear to take the shapes from")
    seen = []
    qkv.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape))
    size = getattr(getattr(model, "patch_embed", None), "img_size", None) \
        or timm.data.resolve_model_data_config(model)["input_size"][1:]
    model(torch.empty(1, 3, *size, device="meta"))
    return batch * seen[0][:-1].numel(), qkv.in_features, qkv.out_features


def _timer(device):
    if device.type == "cuda":
        from triton.testing import do_bench_cudagraph
        return lambda fn: do_bench_cudagraph(fn, rep=50, return_mode="median") * 1e-3

    def cpu_seconds(fn, steps=3):
        fn()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        return (time.perf_counter() - start) / steps
    return cpu_seconds


def split_product(left: torch.Tensor, right: torch.Tensor, parts: int) -> torch.Tensor:
    """left^T right (both tokens x features) as `parts` GEMMs over slices of the tokens in one batched call, then
    their sum in fp32: split-K, so that a reduction this long (K the batch's tokens) fills the GPU."""
    tokens = left.shape[0]
    return torch.bmm(left.view(parts, tokens // parts, -1).transpose(1, 2),
                     right.view(parts, tokens // parts, -1)).sum(0, dtype=torch.float32)


def _copies(device, traffic: int) -> int:
    """How many operand sets one timed call cycles over: 4x the L2 cache in all on CUDA (at most 64), one on CPU."""
    if device.type != "cuda":
        return 1
    return min(64, max(2, math.ceil(4 * torch.cuda.get_device_properties(device).L2_cache_size / traffic)))


class Gemm(NamedTuple):
    name: str
    dims: tuple  # (M, K, N)
    shapes: list  # its operands'
    call: Callable
    adds_into: bool = False  # an addmm that reads the M x N matrix it adds into
    over_tokens: bool = False  # K is the batch's tokens: a weight gradient, timed split along them too


def branch_gemms(n_: int, d: int, o: int, w: int) -> list[Gemm]:
    """The six GEMMs an adapted Linear (tokens n_, d -> o, branch width w) adds to a training step, each as its
    forward and autograd's backward compute it."""
    return [
        Gemm("x A^T (down)", (n_, d, w), [(n_, d), (w, d)], lambda x, a: x @ a.T),
        Gemm("out + g U^T (up, into the output)", (n_, w, o), [(n_, o), (n_, w), (o, w)],
             lambda out, g, u: torch.addmm(out, g, u.T), adds_into=True),
        Gemm("gy U (grad of g)", (n_, o, w), [(n_, o), (o, w)], lambda gy, u: gy @ u),
        Gemm("gz A (grad of x)", (n_, w, d), [(n_, w), (w, d)], lambda gz, a: gz @ a),
        Gemm("gz^T x (grad of A)", (w, n_, d), [(n_, w), (n_, d)], lambda gz, x: gz.T @ x, over_tokens=True),
        Gemm("gy^T g (grad of U)", (o, n_, w), [(n_, o), (n_, w)], lambda gy, g: gy.T @ g, over_tokens=True),
    ]


@contextlib.contextmanager
def using_blas(name: str):
    """torch's GEMMs through cuBLAS or cuBLASLt inside the block (torch.backends.cuda.preferred_blas_library)."""
    before = torch.backends.cuda.preferred_blas_library()
    torch.backends.cuda.preferred_blas_library(name)
    try:
        yield
    finally:
        torch.backends.cuda.preferred_blas_library(before)


def _time_one(gemm: Gemm, device, dtype, seconds, splits) -> dict:
    """One GEMM's row: microseconds per call (and per split, for a weight gradient) over fresh operand copies."""
    m, k, n = gemm.dims
    moved = least_bytes(m, k, n, m * n if gemm.adds_into else 0, torch.tensor([], dtype=dtype).element_size())
    sets = [[torch.randn(*s, device=device, dtype=dtype) for s in gemm.shapes]
            for _ in range(_copies(device, moved))]
    per_call = lambda fn: seconds(lambda: [fn(*ops) for ops in sets]) / len(sets)  # noqa: E731
    row = {"gemm": gemm.name, "m": m, "k": k, "n": n, "bytes": moved, "us": per_call(gemm.call) * 1e6}
    if device.type == "cuda":
        with using_blas("cublaslt"):
            row["lt_us"] = per_call(gemm.call) * 1e6
    if gemm.over_tokens:  # split the tokens: one batched GEMM, then a sum
        tried = {s: per_call(lambda left, right, s=s: split_product(left, right, s)) * 1e6
                 for s in splits if k % s == 0}
        if tried:
            best = min(tried, key=tried.get)
            row.update(split_k=best, split_us=tried[best], split_tried=tried)
    return row


def measure(tokens: int, d_in: int, d_out: int, width: int, device, splits=(4, 8, 16, 32, 64)) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    seconds = _timer(device)
    return [_time_one(gemm, device, dtype, seconds, splits) for gemm in branch_gemms(tokens, d_in, d_out, width)]


def markdown(res: dict) -> str:
    gbs = lambda moved, us: f"{moved / us / 1e3:,.0f}"  # noqa: E731  bytes per us -> GB/s of the least traffic
    lines = [f"Device: {res['device']}; model {res['model']} at batch {res['batch']}: the first qkv "
             f"({res['d_in']} -> {res['d_out']}, {res['tokens']:,} tokens), branch width {res['width']}, "
             f"{res['dtype']}.", "",
             f"| GEMM | M x K x N | {res['blas']} (us) | GB/s | cuBLASLt (us) | GB/s | split along tokens: best (us) "
             "| GB/s |", "|---|---|---|---|---|---|---|---|"]
    for r in res["gemms"]:
        lt = f"{r['lt_us']:.1f} | {gbs(r['bytes'], r['lt_us'])}" if "lt_us" in r else "– | –"
        split = (f"{r['split_us']:.1f} ({r['split_k']} parts) | {gbs(r['bytes'], r['split_us'])}"
                 if "split_us" in r else "– | –")
        lines.append(f"| {r['gemm']} | {r['m']} x {r['k']} x {r['n']} | {r['us']:.1f} | "
                     f"{gbs(r['bytes'], r['us'])} | {lt} | {split} |")
    total = sum(r["us"] for r in res["gemms"])
    best = sum(min(r["us"], r.get("lt_us", r["us"]), r.get("split_us", r["us"])) for r in res["gemms"])
    lines += ["", f"Per adapted layer: {total:.1f} us as called, {best:.1f} us taking the faster form of each."]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="more timm.create_model keywords, as JSON")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--r", type=int, default=2, help="rank of each of the two adapters (q and v)")
    p.add_argument("--device")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokens, d_in, d_out = layer_shapes(args.model, args.model_kwargs, args.batch)
    torch.manual_seed(0)
    res = {"device": device_name(device), "dtype": "bfloat16" if device.type == "cuda" else "float32",
           "blas": blas_library(device) or "one call",
           "model": args.model, "batch": args.batch, "tokens": tokens,
           "d_in": d_in, "d_out": d_out, "width": 2 * args.r,
           "gemms": measure(tokens, d_in, d_out, 2 * args.r, device)}
    text = markdown(res)
    print(text)
    if args.out:
        write_json(args.out / "thin_gemms.json", res)
        (args.out / "thin_gemms.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
