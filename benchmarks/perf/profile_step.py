"""Where a training step's (or with --eval, a no-grad forward's) time goes: torch.profiler over a few steps
of one method, top ops by GPU time.

    python -m aurora_bench.perf.profile_step --method aurora --targets qv --r 2 --batch 256 [--eval] [--compile [regional]]

With --compile the model is torch.compile'd first and the graph breaks dynamo met are printed (a break
splits the compiled graph, and inductor cannot fuse across it). On the GPU a second table sums the kernels'
time per step by kind (GEMM, attention, AuroRA's sigma, inductor's fused kernels, the optimizer, ...): where a
step's time goes, and what a faster GEMM or a better fusion could save at most.
"""
import argparse
import json
import math
import re

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import aurora_vision as av

from ..run.compiling import add_compile_option, compile_mode, for_training
from ..run.model import param_groups


# kernel name -> kind, first match wins: attention kernels also say "cutlass" (fmha_cutlassB) and "fprop",
# inductor's "convert_element_type", convolutions "gemm" (implicit GEMM)
KINDS = [
    ("attention", r"sdpa|flash|fmha|attention"),
    ("aurora sigma", r"_sigma_(fwd|bwd)|_fold_(input|weight)"),
    ("inductor fused", r"^triton_"),
    ("convolution", r"conv|implicit_gemm|fprop|dgrad|wgrad"),  # cuDNN's: "xmma_fprop_implicit_gemm"
    ("gemm", r"gemm|nvjet|cutlass|xmma|cublas|splitk"),
    ("optimizer", r"multi_tensor|adam|foreach"),
    ("copy / fill", r"memcpy|memset"),
    ("aten elementwise / reduce", r"elementwise|vectorized|unrolled|reduce_kernel|layer_norm|softmax"),
]


def kernel_kind(name: str) -> str:
    return next((kind for kind, pattern in KINDS if re.search(pattern, name, re.IGNORECASE)), "other")


def kernel_breakdown(kernels, steps: int) -> list[tuple[str, float, float]]:
    """(kind, ms per step, share of kernel time) from (kernel name, GPU microseconds) pairs, largest first."""
    total: dict[str, float] = {}
    for name, us in kernels:
        kind = kernel_kind(name)
        total[kind] = total.get(kind, 0.0) + us
    whole = sum(total.values()) or 1.0
    return sorted(((k, us / 1e3 / steps, us / whole) for k, us in total.items()), key=lambda row: -row[1])


def device_kernels(averages):
    """(name, GPU us) of each kernel and copy in a profile's key_averages: the device events, less user
    annotations (an annotation's time is the span of the kernels under it, which are counted themselves)."""
    from torch.autograd import DeviceType
    return [(e.key, e.self_device_time_total) for e in averages
            if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]


def gemm_dims(name: str, shapes: list):
    """(M, K, N, bias elements) of one aten::mm / addmm call from its recorded input shapes, or None if unknown.
    The factors by position: mm(a, b), addmm(bias, a, b); inductor's calls add scalars and an `out=`."""
    first = 1 if name == "aten::addmm" else 0
    mats = shapes[first:first + 2]
    if len(mats) != 2 or any(len(m) != 2 for m in mats) or mats[0][1] != mats[1][0]:
        return None
    (m, k), (_, n) = mats
    return m, k, n, math.prod(shapes[0]) if first else 0


def gemm_flops(name: str, shapes: list) -> float:
    """Multiply-add FLOPs (2 M K N) of one aten::mm / addmm call; 0 if its shapes are unknown."""
    dims = gemm_dims(name, shapes)
    return 2.0 * dims[0] * dims[1] * dims[2] if dims else 0.0


def least_bytes(m: int, k: int, n: int, added: int = 0, element_size: int = 2) -> int:
    """The least memory traffic of an (M x K)(K x N) product: both factors and `added` elements (a bias, or the
    matrix an addmm adds into) read, the product written once. The rate a thin GEMM (an adapter's, rank wide)
    should be judged by: its FLOPs are too few to matter."""
    return element_size * (m * k + k * n + m * n + added)


def gemm_bytes(name: str, shapes: list) -> float:
    """least_bytes of one aten::mm / addmm call in bf16; 0 if its shapes are unknown."""
    dims = gemm_dims(name, shapes)
    return float(least_bytes(*dims)) if dims else 0.0


def gemm_table(events, steps: int, rows: int = 12) -> list[str]:
    """Markdown rows of the GEMMs by shape, largest GPU time first: calls and ms per step, TFLOP/s and GB/s reached.
    A shape far below both the others' TFLOP/s and the memory bandwidth is where a better kernel (or no kernel)
    saves time."""
    gemms = sorted((e for e in events if e.key in ("aten::mm", "aten::addmm") and e.self_device_time_total > 0),
                   key=lambda e: -e.self_device_time_total)
    out = ["| op | input shapes | calls per step | ms per step | TFLOP/s | GB/s (bf16) |", "|---|---|---|---|---|---|"]
    for e in gemms[:rows]:
        seconds = e.self_device_time_total * 1e-6
        flops, moved = (f(e.key, e.input_shapes) * e.count for f in (gemm_flops, gemm_bytes))
        tflops = f"{flops / seconds / 1e12:.0f}" if flops else "–"
        gbs = f"{moved / seconds / 1e9:,.0f}" if moved else "–"
        out.append(f"| {e.key} | {e.input_shapes} | {e.count / steps:g} | "
                   f"{e.self_device_time_total / 1e3 / steps:.2f} | {tflops} | {gbs} |")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="more timm.create_model keywords, as JSON")
    p.add_argument("--method", default="aurora")
    p.add_argument("--r", type=int, default=2)
    p.add_argument("--targets", default="qv")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--eval", action="store_true", help="profile the no-grad forward (eval) instead")
    add_compile_option(p, "torch.compile the model as train.compile does: whole (--compile alone) or regional")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = {"r": args.r, "targets": args.targets} if args.method in ("lora", "aurora") else {}
    model = av.apply(timm.create_model(args.model, num_classes=100, **args.model_kwargs), args.method, cfg).to(device)
    opt = torch.optim.AdamW(param_groups(model, 1e-4, 1e-4, 1e-4))
    args.compile = compile_mode(args.compile, device.type)  # auto: what the runner would do here
    net = for_training(model, model, args.compile)
    size = args.model_kwargs.get("img_size", 224)
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)

    def train_step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def eval_step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            net(x)

    step = eval_step if args.eval else train_step
    model.train(not args.eval)

    for _ in range(5):
        step()
    if args.compile != "none":
        from torch._dynamo.utils import counters
        print(f"graph breaks: {sum(counters['graph_break'].values())} {dict(counters['graph_break'])}; "
              f"unique graphs: {counters['stats']['unique_graphs']}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=device.type == "cuda") as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{args.method} r={args.r} {args.targets} batch {args.batch}, {args.steps} {'eval' if args.eval else 'train'} "
          f"steps{'' if args.compile == 'none' else ', compiled: ' + args.compile}")
    averages = prof.key_averages()
    print(averages.table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    if device.type == "cuda":
        rows = kernel_breakdown(device_kernels(averages), args.steps)
        print(f"\nKernel time per step by kind ({sum(ms for _, ms, _ in rows):.2f} ms in all; profiled steps are "
              "not CUDA-graphed, so the gaps between kernels are not in it):\n")
        print("| kind | ms per step | share |\n|---|---|---|")
        for kind, ms, share in rows:
            print(f"| {kind} | {ms:.2f} | {share:.0%} |")
        print("\nGEMMs by input shape (bf16 dense peak: H100 SXM 989, H200 989 TFLOP/s; memory: H100 SXM 3,350, "
              "H200 4,800 GB/s):\n")
        print("\n".join(gemm_table(prof.key_averages(group_by_input_shape=True), args.steps)))


if __name__ == "__main__":
    main()
